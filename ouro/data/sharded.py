"""Generic dataset of pre-computed latents + text embeddings, stored as .npz shards.

Layout of a dataset directory:
    index.json            {"shards": [{"file": "shard-00000.npz", "count": N}, ...],
                           "latent_shape": [H, W, C], "embed_dim": 640}
    shard-00000.npz       latents (N, H, W, C) float16/float32 NHWC, embeddings (N, 640)
                          float32, optional labels (N,) int

Per-host sharding: host p of P owns shards p, p+P, p+2P, ... and preloads them into RAM;
it then iterates its own rows with the resumable EpochIterator at a local batch of
global_batch / P (every host must own the same number of rows: we trim to the minimum).
Converters (Ouroboros PT files, image folders, parquet) write this layout via `write_shards`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ouro.data.iterator import EpochIterator


def write_shards(out_dir: str | Path, latents: np.ndarray, embeddings: np.ndarray, *,
                 labels: np.ndarray | None = None, shard_size: int = 4096) -> Path:
    """Write arrays as shards + index.json (each file written to a temp name, then renamed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(latents) != len(embeddings):
        raise ValueError(f"latents ({len(latents)}) and embeddings ({len(embeddings)}) differ in length")
    shards = []
    for i, start in enumerate(range(0, len(latents), shard_size)):
        sl = slice(start, start + shard_size)
        arrays = {"latents": latents[sl], "embeddings": embeddings[sl].astype(np.float32)}
        if labels is not None:
            arrays["labels"] = np.asarray(labels[sl])
        name = f"shard-{i:05d}.npz"
        with open(out / (name + ".tmp"), "wb") as f:
            np.savez(f, **arrays)
        os.replace(out / (name + ".tmp"), out / name)
        shards.append({"file": name, "count": int(len(arrays["latents"]))})
    index = {"shards": shards, "latent_shape": list(latents.shape[1:]),
             "embed_dim": int(embeddings.shape[-1])}
    (out / "index.json.tmp").write_text(json.dumps(index, indent=1))
    os.replace(out / "index.json.tmp", out / "index.json")
    return out


def read_index(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a sharded latent dataset (no index.json)")
    index = json.loads(path.read_text())
    for key in ("shards", "latent_shape", "embed_dim"):
        if key not in index:
            raise ValueError(f"{path}: missing key {key!r}")
    return index


def load_host_arrays(data_dir: str | Path, *, process_index: int = 0,
                     process_count: int = 1) -> dict[str, np.ndarray]:
    """This host's rows (RAM preload): x (N, H, W, C) float32, ctx (N, 1, E), label (N,)."""
    index = read_index(data_dir)
    shards = index["shards"]
    if len(shards) < process_count:
        raise ValueError(f"{data_dir}: {len(shards)} shards cannot feed {process_count} hosts")
    counts = [sum(s["count"] for s in shards[p::process_count]) for p in range(process_count)]
    keep = min(counts)  # equal rows per host so every host runs the same number of steps
    parts: dict[str, list[np.ndarray]] = {"x": [], "ctx": [], "label": []}
    for shard in shards[process_index::process_count]:
        with np.load(Path(data_dir) / shard["file"]) as z:
            parts["x"].append(z["latents"].astype(np.float32))
            parts["ctx"].append(z["embeddings"].astype(np.float32)[:, None, :])  # (N, 1, E)
            n = len(z["latents"])
            parts["label"].append(z["labels"].astype(np.int32) if "labels" in z
                                  else np.full((n,), -1, np.int32))
    return {k: np.concatenate(v)[:keep] for k, v in parts.items()}


def host_iterator(data_dir: str | Path, global_batch: int, *, seed: int = 0,
                  process_index: int = 0, process_count: int = 1) -> EpochIterator:
    """Resumable iterator over this host's shards; yields local batches of global_batch / P."""
    if global_batch % process_count:
        raise ValueError(f"batch_size={global_batch} is not divisible by the {process_count} processes")
    arrays = load_host_arrays(data_dir, process_index=process_index, process_count=process_count)
    arrays = {k: arrays[k] for k in ("x", "ctx")}  # the train step takes x and ctx only
    return EpochIterator(arrays, global_batch // process_count, seed=seed)
