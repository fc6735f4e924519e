"""Ouroboros PT files -> shards.

A PT file is a torch pickle of {"keys": (N,) int64, "latents": (N, 4, 32, 32) float16 NCHW,
"embeddings": (N, 640) float32} (~3 GB). It is opened with torch.load(weights_only=True,
mmap=True): no arbitrary unpickling, and only the rows of the shard being written are read.
Shards never span files; shard `shard-FFFFF-JJJJJ` holds rows [J*shard_size, ...) of file F,
transposed to NHWC float16, with the image ids kept as the field `keys`.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ouro.data.convert.plan import chunks, run_plan
from ouro.data.format import Index
from ouro.errors import UserError

FIELDS = {"keys": 1, "latents": 4, "embeddings": 2}  # name -> ndim


def _torch():
    try:
        import torch
    except ImportError:
        raise UserError("reading PT files needs torch: pip install 'ouro[torch]' "
                        "(or pip install torch --index-url https://download.pytorch.org/whl/cpu)") from None
    return torch


def open_pt(path: str) -> dict:
    torch = _torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(f"{path}: not a readable PT file with weights_only=True ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    n = None
    for key, ndim in FIELDS.items():
        if key not in obj:
            raise UserError(f"{path}: key {key!r} missing (a PT shard has keys, latents, embeddings)")
        t = obj[key]
        if not hasattr(t, "shape") or t.ndim != ndim:
            raise UserError(f"{path}: {key!r} must be a {ndim}-d tensor, got {getattr(t, 'shape', type(t))}")
        if n is not None and t.shape[0] != n:
            raise UserError(f"{path}: {key!r} has {t.shape[0]} rows, 'keys' has {n}")
        n = t.shape[0]
    return obj


def convert_pt(files: Sequence[str], out_dir: str, *, shard_size: int = 8192,
               progress: bool = True) -> Index:
    files = [str(f) for f in files]
    if not files:
        raise UserError("from-pt: no PT files given")
    opened = {f: open_pt(f) for f in files}  # checks every file before writing anything
    plan = []
    for fi, f in enumerate(files):
        for j, (a, b) in enumerate(chunks(int(opened[f]["keys"].shape[0]), shard_size)):
            plan.append((f"shard-{fi:05d}-{j:05d}", lambda f=f, a=a, b=b: _rows(opened[f], a, b)))
    source = {"from-pt": [[os.path.basename(f), os.path.getsize(f)] for f in files], "shard_size": shard_size}
    # Ouroboros PT files hold SDXL-VAE latents; the VAE itself is not in them
    meta = {"encoder": {"kind": "external", "by": "Ouroboros PT files (SDXL-VAE latents)"},
            "source": {"converter": "from-pt", "input": [os.path.abspath(f) for f in files]}}
    return run_plan(out_dir, plan, source=source, desc="from-pt", progress=progress, meta=meta)


def _rows(obj: dict, a: int, b: int) -> dict[str, np.ndarray]:
    lat = obj["latents"][a:b].permute(0, 2, 3, 1).contiguous()  # NCHW -> NHWC (B, H, W, C)
    return {"latents": lat.half().numpy(),  # stored float16 whatever the source precision
            "embeddings": obj["embeddings"][a:b].float().numpy(),
            "keys": obj["keys"][a:b].long().numpy()}
