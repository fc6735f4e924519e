"""Writing datasets: `write_shards` for arrays in memory, `ShardWriter` for resumable converters.

A converter plans its output as a fixed list of shards (the plan depends only on its
inputs), then asks `writer.done(name)` before building each one. Every .npy file is written
atomically, and a shard counts as written only once it is recorded in `.progress.json`
(itself replaced atomically), so an interrupted conversion redoes at most the shard it was
writing and finishes with exactly the files of an uninterrupted one. index.json is written
last: a dataset without it is visibly unfinished.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ouro.data.format import Field, Index, Shard, check_token_fields, dtype_name, write_index, write_npy
from ouro.errors import UserError
from ouro.fileio import write_json

PROGRESS = ".progress.json"


class ShardWriter:
    """Writes shards into a local directory; resumes from `.progress.json` if present.

    `source`: a JSON-able description of the inputs; resuming with different inputs or a
    different layout is refused instead of mixing two datasets.
    """

    def __init__(self, out_dir: str | os.PathLike, *, source: Any = None):
        if "://" in str(out_dir):
            raise UserError(f"{out_dir}: converters write to a local directory; upload it afterwards "
                            f"(e.g. gcloud storage cp -r DIR gs://bucket/)")
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.source = source
        self.fields: dict[str, Field] = {}
        self.shards: dict[str, Shard] = {}
        path = self.out / PROGRESS
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("source") != json.loads(json.dumps(source)):
                raise UserError(f"{path}: an unfinished conversion of different inputs is in this "
                                f"directory; use a new output directory or delete it")
            self.fields = {k: Field(v["dtype"], tuple(v["shape"])) for k, v in saved["fields"].items()}
            self.shards = {s["name"]: Shard(s["name"], s["count"], s["files"]) for s in saved["shards"]}
        elif (self.out / "index.json").exists():
            raise UserError(f"{self.out / 'index.json'}: a finished dataset is already here")

    def done(self, name: str) -> bool:
        return name in self.shards

    def write(self, name: str, arrays: Mapping[str, np.ndarray]) -> Shard:
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        counts = {k: len(v) for k, v in arrays.items()}
        if len(set(counts.values())) != 1 or not next(iter(counts.values())):
            raise UserError(f"shard {name}: fields must have the same, non-zero row count, got {counts}")
        fields = {k: Field(dtype_name(v.dtype), tuple(v.shape[1:])) for k, v in arrays.items()}
        if self.fields and fields != self.fields:
            raise UserError(f"shard {name}: fields {fields} differ from the earlier shards' {self.fields}")
        self.fields = fields
        files = {k: write_npy(str(self.out / f"{name}.{k}.npy"), v) for k, v in arrays.items()}
        self.shards[name] = Shard(name, next(iter(counts.values())), files)
        write_json(self.out / PROGRESS, {
            "source": self.source, "shards": [vars(s) for s in self.shards.values()],
            "fields": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in self.fields.items()}},
            sort_keys=False)  # field order as written: a resumed index.json is byte-identical
        return self.shards[name]

    def finish(self, *, text_tokens: dict[str, Any] | None = None,
               meta: dict[str, Any] | None = None) -> Index:
        """Write index.json (`text_tokens`: the per-token encoder settings, with ctx_tokens;
        `meta`: name / encoder / source, see ouro.data.describe; without a name the dataset
        is known by its directory's name, wherever it is moved)."""
        if not self.shards:
            raise UserError(f"{self.out}: no rows were converted")
        index = Index(str(self.out), self.fields, [self.shards[k] for k in sorted(self.shards)], text_tokens,
                      dict(meta or {}))
        check_token_fields(index.fields, str(self.out / "index.json"))
        write_index(index)
        (self.out / PROGRESS).unlink(missing_ok=True)
        return index


def write_shards(out_dir: str | os.PathLike, latents: np.ndarray, embeddings: np.ndarray, *,
                 labels: np.ndarray | None = None, shard_size: int = 4096,
                 extra: Mapping[str, np.ndarray] | None = None,
                 latent_dtype: str = "float16", text_tokens: dict[str, Any] | None = None,
                 captions: list[str] | None = None, encoder: dict[str, Any] | None = None,
                 source: dict[str, Any] | None = None, name: str | None = None) -> Path:
    """Write NHWC `latents` (N, H, W, C) and `embeddings` (N, E) as a sharded dataset.

    `captions` (N strings) are kept as the text field "captions" (runs sample held-out ones);
    `encoder` says what made the latents ({"kind": "pixels"} or {"kind": "autoencoder",
    "path": DIR}, see ouro.data.describe), `source` how the data was made, `name` the
    dataset's name (default: the directory's) - all recorded in index.json.

    Latents are stored as `latent_dtype` (float16: half the bytes; training casts them to
    float32/bfloat16). `labels` (N,) and `extra` fields (e.g. ctx_tokens (N, T, E),
    ctx_mask (N, T), with `text_tokens` the encoder settings) are stored beside them, row-aligned.
    """
    n = len(latents)
    arrays = {"latents": np.asarray(latents), "embeddings": np.asarray(embeddings)}
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    arrays.update(extra or {})
    if captions is not None:
        from ouro.data.format import CAPTIONS, encode_captions

        arrays[CAPTIONS] = encode_captions(list(captions))
    for k, v in arrays.items():
        if len(v) != n:
            raise UserError(f"write_shards: {k} has {len(v)} rows, latents has {n}")
    if arrays["latents"].ndim != 4:
        raise UserError(f"write_shards: latents must be (N, H, W, C) NHWC, got {arrays['latents'].shape}")
    if arrays["embeddings"].ndim != 2:
        raise UserError(f"write_shards: embeddings must be (N, E), got {arrays['embeddings'].shape}")
    arrays["latents"] = arrays["latents"].astype(latent_dtype, copy=False)
    arrays["embeddings"] = arrays["embeddings"].astype(np.float32, copy=False)
    out = Path(out_dir)
    for old in [out / "index.json", out / PROGRESS, *out.glob("shard-*.npy")]:  # a fresh write
        old.unlink(missing_ok=True)
    writer = ShardWriter(out, source={"write_shards": n, "shard_size": shard_size})
    for i, start in enumerate(range(0, n, shard_size)):
        shard = f"shard-{i:05d}"
        if not writer.done(shard):
            writer.write(shard, {k: v[start:start + shard_size] for k, v in arrays.items()})
    meta = {"source": source or {"converter": "write_shards", "rows": n},
            **({"encoder": encoder} if encoder else {}), **({"name": name} if name else {})}
    writer.finish(text_tokens=text_tokens, meta=meta)
    return Path(out_dir)
