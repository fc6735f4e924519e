"""`check_dataset(url)`: verify every shard of a dataset against its index.json.

Index keys, every file present (and none extra), sizes and .npy headers as the index says,
crc32 checksums, and no NaN/Inf in any float field. Per-token text (ctx_tokens + ctx_mask)
is checked row by row: at least one real token, and padded token states exactly zero (a
mask that does not belong to its states shows up here). The first problem raises UserError
naming the dataset, shard file and field; otherwise a summary dict is returned.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ouro.data.source import ShardedSource
from ouro.errors import UserError


def check_token_rows(source: ShardedSource, i: int, tokens: np.ndarray, mask: np.ndarray) -> None:
    """Shard i's per-token text: every row has a real token, padding states are zero."""
    mask = mask.astype(bool)
    where = source.where(source.index.shards[i], "ctx_mask")
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
        raise UserError(f"{where}: row {int(empty[0])} of field 'ctx_mask' has no real token "
                        f"(dataset {source.url}); every caption needs at least one")
    stray = np.flatnonzero(((tokens != 0).any(axis=2) & ~mask).any(axis=1))
    if stray.size:
        raise UserError(f"{source.where(source.index.shards[i], 'ctx_tokens')}: row {int(stray[0])} of field "
                        f"'ctx_tokens' has non-zero states where ctx_mask says padding (dataset {source.url})")


def check_dataset(url: str, *, progress: bool = True) -> dict[str, Any]:
    """A bucketed dataset (ouro/data/buckets.py): the top-level list against every bucket's
    index (rows, latent shapes, shared fields), then each bucket checked as a dataset."""
    from ouro.data.buckets import is_bucketed, read_buckets

    if not is_bucketed(url):
        return _check_one(url, progress=progress)
    index = read_buckets(url)
    per = [_check_one(index.bucket_url(i), progress=progress) for i in range(len(index.buckets))]
    ranges = {}
    for r in per:
        for f, (a, b) in r["value_range"].items():
            lo, hi = ranges.get(f, (a, b))
            ranges[f] = [min(lo, a), max(hi, b)]
    return {"dataset": index.url, "rows": index.rows, "shards": sum(r["shards"] for r in per),
            "buckets": [{"name": b.name, "pixels": list(b.pixels), "latents": list(b.latents), "rows": b.rows}
                        for b in index.buckets],
            "bucketing": index.bucketing, "fields": per[0]["fields"] | {"latents": {
                "dtype": per[0]["fields"]["latents"]["dtype"], "shape": ["H", "W", index.fields["latents"].shape[2]]}},
            "bytes": sum(r["bytes"] for r in per), "value_range": ranges,
            **({"text_tokens": per[0]["text_tokens"]} if "text_tokens" in per[0] else {})}


def _check_one(url: str, *, progress: bool) -> dict[str, Any]:
    from ouro.data.format import read_index

    index = read_index(url)
    source = ShardedSource(url, fields=tuple(index.fields))  # structure: files, sizes, headers
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(index.shards), desc=f"check {source.url}", unit="shard")
    finite = {}
    for i, shard in enumerate(index.shards):
        source.verify_checksums([i])
        blocks = {}
        for f in source.fields:
            block = blocks[f] = source._read_run(i, f, 0, shard.count)
            source._check_finite(block, i, f, 0)
            if block.dtype.kind == "f":
                finite.setdefault(f, []).append((float(np.min(block)), float(np.max(block))))
        if "ctx_tokens" in blocks:  # read_index guarantees ctx_mask comes with it
            check_token_rows(source, i, blocks["ctx_tokens"], blocks["ctx_mask"])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    counts = [s.count for s in index.shards]
    return {
        "dataset": source.url, "rows": index.rows, "shards": len(index.shards),
        "rows_per_shard": {"min": min(counts), "max": max(counts)},
        "fields": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in index.fields.items()},
        "bytes": sum(int(d["bytes"]) for s in index.shards for d in s.files.values()),
        "value_range": {f: [min(a for a, _ in r), max(b for _, b in r)] for f, r in finite.items()},
        **({"text_tokens": index.text_tokens} if index.text_tokens else {}),
    }
