"""Aspect-ratio buckets (multi-aspect training, as HDM and SDXL train): which (H, W) sizes a
dataset keeps its images at, which bucket an image goes to, and how a bucketed dataset is laid
out on disk.

A bucket set has about one area budget: `--buckets auto` (with `--size S`) takes every width
that is a multiple of `step` px, gives it the tallest multiple-of-`step` height whose area is
<= S*S (the SDXL/NovelAI rule), and keeps those whose long/short side ratio is <= max_aspect.
At S=32, step 8, max_aspect 2: 40x24, 32x32, 24x40 (W x H; 960-1024 px, 3 buckets). An
explicit list (`--buckets 32x32,40x24,24x40`) is taken as given. Sizes are written W x H
everywhere a user reads or types them (as `ouro sample --size WxH`); arrays are (H, W). An image goes to the
bucket whose log aspect ratio is nearest its own (ties: the larger area), is centre-cropped
the least amount to that aspect, then resized: its aspect is kept up to that crop.

On disk a bucketed dataset is a directory of ordinary datasets, one per bucket (every row of
one has the same shape: a static shape per bucket, one compile per bucket in training):

    <dataset>/index.json        {"format": "ouro-shards", "version": 1, "rows": N,
                                 "name", "encoder", "source",
                                 "buckets": [{"name": "b40x24", "pixels": [24, 40],
                                              "latents": [h, w], "rows": n}, ...],
                                 "bucketing": {"spec": "auto", "size": 32, "step": 8,
                                               "max_aspect": 2.0}}
    <dataset>/b40x24/index.json an ordinary dataset (ouro/data/format.py) of that bucket's rows
"latents" is the bucket in the model's data space: the pixel bucket / the autoencoder's
downsampling (= pixels for a pixel dataset). Global row r of the bucketed dataset is row
r - offset[b] of bucket b, buckets in index order.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import numpy as np

from ouro.data import storage
from ouro.data.format import FORMAT, META_KEYS, VERSION, Index, read_index
from ouro.errors import UserError

DEFAULT_MAX_ASPECT = 2.0  # SDXL / HDM bucket sets stop near 1:2 (beyond it crops lose the subject)


@dataclasses.dataclass(frozen=True)
class Bucket:
    pixels: tuple[int, int]  # (H, W) of the images in pixels
    latents: tuple[int, int]  # (h, w) in the model's data space (pixels / downsample)
    rows: int = 0

    @property
    def name(self) -> str:
        return f"b{self.pixels[1]}x{self.pixels[0]}"  # W x H, as users write sizes

    @property
    def label(self) -> str:
        """The data-space size as `WxH` (how data.buckets and the compile counts name it)."""
        return f"{self.latents[1]}x{self.latents[0]}"


def parse_sizes(spec: str, what: str = "--buckets") -> list[tuple[int, int]]:
    """'32x32,40x24' (W x H) -> [(32, 32), (24, 40)] as (H, W); UserError naming `what` otherwise."""
    out = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        m = re.fullmatch(r"(\d+)x(\d+)", part)
        if not m or not int(m[1]) or not int(m[2]):
            raise UserError(f"{what} {spec}: {part!r} is not WxH (positive integers, e.g. 40x24)")
        out.append((int(m[2]), int(m[1])))
    if not out:
        raise UserError(f"{what} {spec!r}: expected 'auto' or a list of WxH sizes, e.g. 32x32,40x24,24x40")
    if len(set(out)) != len(out):
        raise UserError(f"{what} {spec}: a size is listed twice")
    return out


def auto_sizes(size: int, step: int, max_aspect: float = DEFAULT_MAX_ASPECT) -> list[tuple[int, int]]:
    """(H, W) buckets of area <= size^2 on a `step` px grid with long/short <= max_aspect,
    widest first (see the module doc)."""
    if step < 1 or size < step:
        raise UserError(f"--bucket-step {step}: must be in 1..--size ({size})")
    if max_aspect < 1:
        raise UserError(f"--max-aspect {max_aspect}: must be >= 1")
    out = []
    for w in range(step, size * int(math.ceil(max_aspect)) + step, step):
        h = (size * size // w) // step * step
        if h >= step and max(h, w) / min(h, w) <= max_aspect + 1e-9:
            out.append((h, w))
    return out[::-1]


def make_buckets(spec: str, *, size: int, step: int, max_aspect: float, downsample: int) -> list[Bucket]:
    """The pixel buckets of `--buckets spec`, each with its data-space size (/ downsample)."""
    sizes = auto_sizes(size, step, max_aspect) if spec == "auto" else parse_sizes(spec)
    for h, w in sizes:
        if h % downsample or w % downsample:
            raise UserError(f"--buckets: {w}x{h} px is not a multiple of the autoencoder's downsampling "
                            f"({downsample}); pick sizes (or --bucket-step) that are")
    return [Bucket((h, w), (h // downsample, w // downsample)) for h, w in sizes]


def nearest(height: int, width: int, buckets: list[Bucket]) -> int:
    """Index of the bucket whose aspect is nearest an image's (in log ratio; ties: larger area)."""
    a = math.log(width / height)
    return min(range(len(buckets)), key=lambda i: (round(abs(math.log(buckets[i].pixels[1] / buckets[i].pixels[0]) - a), 9),
                                                  -buckets[i].pixels[0] * buckets[i].pixels[1]))


def default_step(size: int, downsample: int) -> int:
    """--bucket-step default: 64 px (SDXL's grid) or size/4 for small images, a multiple of the
    autoencoder's downsampling (32 px -> 8; 1024 px latents -> 64)."""
    step = min(64, max(1, size // 4))
    return max(downsample, step // downsample * downsample)


# -- the bucketed dataset ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BucketedIndex:
    url: str
    buckets: list[Bucket]
    indexes: list[Index]  # one ordinary dataset per bucket
    meta: dict[str, Any]  # name / encoder / source
    bucketing: dict[str, Any]

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.buckets)

    @property
    def offsets(self) -> np.ndarray:
        """(K + 1,) first global row of each bucket, then the total."""
        return np.concatenate([[0], np.cumsum([b.rows for b in self.buckets])]).astype(np.int64)

    @property
    def fields(self) -> dict:
        """The fields of the first bucket (all share every field but the latents' H, W)."""
        return self.indexes[0].fields

    @property
    def text_tokens(self) -> dict[str, Any] | None:
        return self.indexes[0].text_tokens

    def bucket_url(self, i: int) -> str:
        return storage.join(self.url, self.buckets[i].name)

    def most_rows(self) -> int:
        """The most common bucket (ties: the first): where previews sample and holdout comes from."""
        return int(np.argmax([b.rows for b in self.buckets]))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "rows": self.rows,
                **{k: self.meta[k] for k in META_KEYS if k in self.meta},
                "buckets": [{"name": b.name, "pixels": list(b.pixels), "latents": list(b.latents), "rows": b.rows}
                            for b in self.buckets],
                "bucketing": self.bucketing}


def is_bucketed(url: str) -> bool:
    where = storage.join(str(url).rstrip("/"), "index.json")
    if not storage.exists(where):
        return False
    try:
        return "buckets" in json.loads(storage.read_bytes(where).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False  # read_index names the file


def read_buckets(url: str) -> BucketedIndex:
    """Parse a bucketed dataset's index.json and every bucket's own; UserError naming the file
    and key when a bucket's rows or shapes disagree with the top-level list."""
    url = str(url).rstrip("/")
    where = storage.join(url, "index.json")
    raw = json.loads(storage.read_bytes(where).decode("utf-8"))
    if raw.get("format") != FORMAT:
        raise UserError(f"{where}: key 'format' must be {FORMAT!r}")
    if not isinstance(raw.get("buckets"), list) or not raw["buckets"]:
        raise UserError(f"{where}: key 'buckets' must be a non-empty list")
    buckets, indexes = [], []
    for i, b in enumerate(raw["buckets"]):
        f = f"{where}: buckets[{i}]"
        try:
            bucket = Bucket(tuple(int(v) for v in b["pixels"]), tuple(int(v) for v in b["latents"]), int(b["rows"]))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{f}: needs 'pixels' [H, W], 'latents' [h, w] and 'rows'") from None
        if b.get("name") != bucket.name:
            raise UserError(f"{f}: name {b.get('name')!r} != {bucket.name!r} (from its pixels)")
        index = read_index(storage.join(url, bucket.name))
        lat = index.fields["latents"].shape
        if index.rows != bucket.rows or tuple(lat[:2]) != bucket.latents:
            raise UserError(f"{storage.join(url, bucket.name, 'index.json')}: {index.rows} rows of latents "
                            f"{list(lat)}, but {where} lists bucket {bucket.name} with {bucket.rows} rows "
                            f"of {list(bucket.latents)}")
        if indexes:
            first = {k: v for k, v in indexes[0].fields.items() if k not in ("latents", "captions")}
            mine = {k: v for k, v in index.fields.items() if k not in ("latents", "captions")}
            if first != mine or lat[2] != indexes[0].fields["latents"].shape[2]:
                raise UserError(f"{storage.join(url, bucket.name, 'index.json')}: fields differ from bucket "
                                f"{buckets[0].name}'s (every bucket holds the same fields)")
        buckets.append(bucket)
        indexes.append(index)
    meta = {k: raw[k] for k in META_KEYS if k in raw}
    return BucketedIndex(url, buckets, indexes, meta, dict(raw.get("bucketing") or {}))


def write_buckets(index: BucketedIndex) -> None:
    from ouro.fileio import write_json

    write_json(storage.join(index.url, "index.json"), index.to_json(), indent=1, sort_keys=False)
