"""`ouro data from-images|from-parquet --buckets ...`: images -> a bucketed dataset (ouro/data/buckets.py).

Every image's header is read for its (H, W) (the converter does that: a file, a parquet cell); it goes to the bucket nearest its aspect; each
bucket's rows (in dataset order) are written as an ordinary dataset in `<out>/b<H>x<W>/`
through the same shard plan as a square conversion, and the top-level index.json listing the
buckets is written last. Resumable like every converter: a bucket whose index.json exists was
finished by an earlier run of the same command and is kept; the bucket being written resumes
from its own `.progress.json`. Buckets that receive no image are left out of the dataset.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ouro.data.buckets import (DEFAULT_MAX_ASPECT, BucketedIndex, default_step, make_buckets, nearest,
                               write_buckets)
from ouro.data.format import read_index
from ouro.errors import UserError


def downsample_of(encode: Any, size: int) -> int:
    """How many pixels per latent cell the encoder takes (1 for pixel space): one probe encode."""
    if encode is None:
        return 1
    out = np.asarray(encode(np.zeros((1, size, size, 3), np.float32)))
    if out.ndim != 4 or size % out.shape[1]:
        raise UserError(f"the autoencoder maps {size}x{size} px to {out.shape}; expected (1, h, w, c) with h "
                        f"dividing {size}")
    return size // out.shape[1]


def convert_bucketed(sizes: list[tuple[int, int]], plan_for: Callable[[list[int], tuple[int, int]], list],
                     out_dir: str, spec: str, *, size: int, step: int | None, max_aspect: float | None,
                     encode: Any, source: dict[str, Any], meta: dict[str, Any], progress: bool,
                     text_tokens: dict[str, Any] | None, desc: str) -> BucketedIndex:
    """Write rows of source sizes `sizes` ((H, W) px each, in dataset order) as one dataset
    per aspect bucket: `plan_for(row numbers, bucket (H, W) px)` gives the shard plan that
    writes those rows at that size (ouro.data.convert.plan.run_plan); `desc`: the command."""
    from ouro.data.convert.plan import run_plan

    out = Path(out_dir)
    if "://" in str(out_dir):
        raise UserError(f"{out_dir}: converters write to a local directory; upload it afterwards")
    if (out / "index.json").exists():
        raise UserError(f"{out / 'index.json'}: a finished dataset is already here")
    d = downsample_of(encode, size)
    step = default_step(size, d) if step is None else step
    max_aspect = DEFAULT_MAX_ASPECT if max_aspect is None else max_aspect
    buckets = make_buckets(spec, size=size, step=step, max_aspect=max_aspect, downsample=d)
    which = [nearest(h, w, buckets) for h, w in sizes]
    bucketing = {"spec": spec, "size": size, "step": step if spec == "auto" else None,
                 "max_aspect": max_aspect if spec == "auto" else None, "downsample": d}
    source = {**source, "bucketing": bucketing}
    kept = []
    for i, bucket in enumerate(buckets):
        mine = [r for r, k in enumerate(which) if k == i]
        if not mine:
            continue
        sub = out / bucket.name
        sub_source = {**source, "bucket": bucket.name, "rows": len(mine)}
        if (sub / "index.json").exists():  # finished by an earlier run of this command
            done = read_index(str(sub))
            if done.meta.get("source", {}).get("bucket_of") != sub_source:
                raise UserError(f"{sub / 'index.json'}: a bucket of a conversion of different inputs is in "
                                f"this directory; use a new output directory or delete it")
        else:
            run_plan(str(sub), plan_for(mine, bucket.pixels), source=sub_source, desc=f"{desc} {bucket.name}",
                     progress=progress, text_tokens=text_tokens,
                     meta={**meta, "source": {**meta["source"], "bucket_of": sub_source}})
        kept.append(dataclasses.replace(bucket, rows=len(mine)))
    meta = {**meta, "source": {**meta["source"], "bucketing": bucketing}}
    index = BucketedIndex(str(out), kept, [read_index(str(out / b.name)) for b in kept], meta, bucketing)
    write_buckets(index)
    return index
