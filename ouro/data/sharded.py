"""Training on a sharded latent dataset (format: ouro/data/format.py).

`sharded_loader(url, global_batch, ...)` checks the dataset (index, files, and against the
model's expected shapes), decides RAM preload vs streaming, and returns the resumable Grain
loader of ouro/data/pipeline.py yielding {"x": (B, H, W, C) float16 as stored, "ctx": (B, 1, E)
float32}, plus what the model's condition needs (`condition`, ouro.denoiser): per-token text
"ctx_tokens" (B, T, E) float16 as stored + "ctx_mask" (B, T) bool, or class ids "label" (B,)
int32. The train step casts x and ctx_tokens to float32 on device (the model then computes in
its own dtype). A dataset without the fields the model reads fails before any compile.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ouro.data.pipeline import BatchOrder, Loader
from ouro.data.source import ShardedSource
from ouro.errors import UserError

PRELOAD_FRACTION = 0.5  # "auto" preloads when this host's share fits in half the free RAM


# the model's condition (batch field) -> the dataset fields it is made from
CONDITION_FIELDS = {"ctx": (), "ctx_tokens": ("ctx_tokens", "ctx_mask"), "label": ("labels",)}
HOW = {"ctx_tokens": "convert with `ouro data from-images|from-parquet ... --text-tokens T`, "
                     "or train with model.text_input=pooled",
       "label": "convert with `ouro data from-parquet ... --label-column`, or condition on text"}


def to_batch(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Dataset fields -> the train step's batch: NHWC latents (as stored, e.g. float16: the
    step casts on device), one pooled context token, and per-token text / labels if read."""
    batch = {"x": rows["latents"],
             "ctx": rows["embeddings"].astype(np.float32, copy=False)[:, None, :]}  # (B, 1, E)
    if "ctx_tokens" in rows:  # float16 as stored: the largest field, cast on device
        batch["ctx_tokens"], batch["ctx_mask"] = rows["ctx_tokens"], rows["ctx_mask"].astype(bool, copy=False)
    if "labels" in rows:
        batch["label"] = rows["labels"].astype(np.int32, copy=False)
    return batch


def fields_for(have: Any, condition: str, url: str, model: str = "the model") -> tuple[str, ...]:
    """The dataset fields to load for a model reading batch field `condition`; UserError
    (one line, naming the dataset and the field) when the dataset does not have them."""
    if condition not in CONDITION_FIELDS:
        raise UserError(f"{model} reads batch field {condition!r}; a sharded dataset provides "
                        f"{', '.join(CONDITION_FIELDS)}")
    need = CONDITION_FIELDS[condition]  # `have`: the dataset's fields (index.json)
    for f in need:
        if f not in have:
            raise UserError(f"{url}/index.json: dataset has no field {f!r}, which {model} reads as "
                            f"{condition!r}; {HOW[condition]}")
    return ("latents", "embeddings", *need)


def check_shapes(source: ShardedSource, *, latent_shape: tuple[int, ...] | None = None,
                 embed_dim: int | None = None) -> None:
    """(Per-token text too: ctx_tokens must be embed_dim wide, as the pooled embeddings.)"""
    """The dataset against what the model expects, before any model is built."""
    where = f"{source.url}/index.json"
    lat, emb = source.index.fields["latents"], source.index.fields["embeddings"]
    if len(lat.shape) != 3:
        raise UserError(f"{where}: field 'latents' has row shape {list(lat.shape)}, expected [H, W, C] (NHWC)")
    if latent_shape is not None and tuple(lat.shape) != tuple(latent_shape):
        raise UserError(f"{where}: field 'latents' is {list(lat.shape)} (H, W, C) but the model expects "
                        f"{list(latent_shape)} (data.image_size, data.image_size, data.channels)")
    if len(emb.shape) != 1:
        raise UserError(f"{where}: field 'embeddings' has row shape {list(emb.shape)}, expected [E]")
    if embed_dim is not None and emb.shape[0] != embed_dim:
        raise UserError(f"{where}: field 'embeddings' is {emb.shape[0]} wide but the model expects "
                        f"{embed_dim} (data.ctx_dim / model.ctx_dim)")
    for name, f in (("latents", lat), ("embeddings", emb)):
        if np.dtype(f.dtype).kind != "f":
            raise UserError(f"{where}: field {name!r} has dtype {f.dtype}, expected a float type")
    tok = source.index.fields.get("ctx_tokens")  # read_index checked the pair's own shapes
    if tok is not None and embed_dim is not None and tok.shape[1] != embed_dim:
        raise UserError(f"{where}: field 'ctx_tokens' is {tok.shape[1]} wide (per token) but the model "
                        f"expects {embed_dim} (data.ctx_dim / model.ctx_dim)")


def available_ram() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not POSIX: assume it does not fit
        return 0


def sharded_loader(url: str, global_batch: int, *, seed: int = 0, groups: int = 1,
                   mode: str = "auto", workers: int = 4, prefetch: int = 4,
                   latent_shape: tuple[int, ...] | None = None, embed_dim: int | None = None,
                   process_index: int = 0, process_count: int = 1,
                   progress: bool = False, condition: str = "ctx", model: str = "the model",
                   holdout: int = 0) -> Loader:
    """`condition`: the batch field the model reads (ctx, ctx_tokens or label): only the
    dataset fields it needs are read (per-token text is ~10x the bytes of SDXL latents).
    `holdout`: the dataset's last rows that are never trained on (sample prompts)."""
    from ouro.data.buckets import is_bucketed, read_buckets
    from ouro.data.format import read_index

    if is_bucketed(url):  # aspect buckets: single-bucket batches (ouro/data/bucket_loader.py)
        from ouro.data.bucket_loader import bucketed_loader

        fields = fields_for(read_buckets(url).fields, condition, str(url).rstrip("/"), model)
        return bucketed_loader(url, global_batch, fields=fields, seed=seed, groups=groups, mode=mode,
                               workers=workers, prefetch=prefetch, embed_dim=embed_dim,
                               channels=None if latent_shape is None else latent_shape[-1],
                               process_index=process_index, process_count=process_count, progress=progress,
                               holdout=holdout, transform=to_batch)
    fields = fields_for(read_index(url).fields, condition, str(url).rstrip("/"), model)
    source = ShardedSource(url, fields)
    check_shapes(source, latent_shape=latent_shape, embed_dim=embed_dim)
    if not 0 <= holdout < source.rows:
        raise UserError(f"data.holdout={holdout}: must leave rows to train on (dataset {url} has {source.rows})")
    order = BatchOrder(source.rows - holdout, global_batch, seed=seed, groups=groups)
    lo, hi = order.host_range(process_index, process_count)
    share = (hi - lo) * sum(source.index.fields[f].row_bytes for f in source.fields)
    if mode not in ("auto", "preload", "stream"):
        raise UserError(f"data.mode={mode!r}: expected 'auto', 'preload' or 'stream'")
    if mode == "preload" or (mode == "auto" and share < PRELOAD_FRACTION * available_ram()):
        source.preload(lo, hi, progress=progress)
        workers = 0  # gathers from RAM: threads would only contend for the GIL
    return Loader(source, order, process_index=process_index, process_count=process_count,
                  transform=to_batch, workers=workers, prefetch=prefetch)


def load_host_arrays(url: str, *, process_index: int = 0, process_count: int = 1) -> dict[str, Any]:
    """This host's contiguous 1/P share of the rows as {"x", "ctx"} arrays (RAM)."""
    source = ShardedSource(url)
    n = source.rows // process_count
    return to_batch(source.read(np.arange(process_index * n, (process_index + 1) * n)))
