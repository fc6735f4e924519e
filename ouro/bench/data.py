"""Loader throughput (`python -m ouro.bench data`): rows/s per host vs a v5e-32 host's demand.

Rows shaped as the Ouroboros xut-small-256 run: latents 32x32x4 float16 + embeddings 640
float32 (10,752 bytes/row). One host's demand: 128 rows per step (global batch 1024 over 8
hosts); step time = 128 x train FLOPs per image (3 x forward, from the model's own count at
the preset's TREAD rate 0.5) / (4 chips x 197 TFLOP/s bf16 x MFU), MFU assumed 0.4.
Cases (each delivers the train step's batch: float16 x (128, 32, 32, 4), ctx (128, 1, 640)):
  preload:       the host's share in RAM (data.mode=preload)
  mmap_cached:   memory-mapped shards, files in the page cache (data.mode=stream, local)
  mmap_cold:     the same after evicting the files from the page cache (posix_fadvise
                 DONTNEED), so pages come from disk
  arrayrecord:   the same rows as ArrayRecord records (one record = row bytes; file freshly
                 written, so in the page cache: compare with mmap_cached), read by
                 array_record's parallel reader + decode: the alternative format we measured
`rows_per_s / demand_rows_per_s` is the headroom. The reference matmul (same process) lets
runs on different machines be compared; timings under load are unreliable.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

import numpy as np

from ouro.bench.common import reference_matmul_flops

ROWS, SHARD, LOCAL_BATCH, STEPS = 16384, 4096, 128, 48
V5E_BF16_FLOPS, CHIPS_PER_HOST, MFU = 197e12, 4, 0.4


def demand() -> dict[str, float]:
    from ouro.model import flops_per_image, preset

    fwd = float(flops_per_image(preset("xut-small", in_channels=4, patch_size=2), 32, 32, ctx_len=1,
                                tread_rate=0.5))
    step_s = LOCAL_BATCH * 3 * fwd / (CHIPS_PER_HOST * V5E_BF16_FLOPS * MFU)
    return {"forward_flops_per_image": fwd, "assumed_mfu": MFU, "step_seconds": step_s,
            "demand_rows_per_s": LOCAL_BATCH / step_s}


def _evict(path: str) -> None:
    for name in os.listdir(path):
        fd = os.open(os.path.join(path, name), os.O_RDONLY)
        try:
            os.fsync(fd)  # DONTNEED drops only clean pages: flush the just-written files first
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _rate(loader, steps: int) -> float:
    next(loader)  # start-up (threads, first permutation) outside the timing
    t0 = time.perf_counter()
    for _ in range(steps):
        b = next(loader)
    assert b["x"].shape == (LOCAL_BATCH, 32, 32, 4)
    return steps * LOCAL_BATCH / (time.perf_counter() - t0)


def _arrayrecord(path: str, lat: np.ndarray, emb: np.ndarray, steps: int) -> float:
    from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

    file = os.path.join(path, "rows.array_record")
    w = ArrayRecordWriter(file, "group_size:1")
    for a, b in zip(lat, emb):
        w.write(a.tobytes() + b.tobytes())
    w.close()
    reader = ArrayRecordReader(file, "readahead_buffer_size:0")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        rows = np.sort(rng.choice(len(lat), LOCAL_BATCH, replace=False))
        recs = reader.read([int(r) for r in rows])
        buf = np.frombuffer(b"".join(recs), np.uint8).reshape(LOCAL_BATCH, -1)
        x = buf[:, :8192].view(np.float16).reshape(-1, 32, 32, 4)  # float16, as the loader yields
        ctx = buf[:, 8192:].view(np.float32)[:, None, :]
    assert x.shape == (LOCAL_BATCH, 32, 32, 4) and ctx.shape == (LOCAL_BATCH, 1, 640)
    reader.close()
    return steps * LOCAL_BATCH / (time.perf_counter() - t0)


def run(rows: int = ROWS, steps: int = STEPS) -> dict[str, Any]:
    from ouro.data import sharded_loader, write_shards

    need = demand()
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(rows, 32, 32, 4)).astype(np.float16)
    emb = rng.normal(size=(rows, 640)).astype(np.float32)
    out: dict[str, Any] = {"rows": rows, "row_bytes": 32 * 32 * 4 * 2 + 640 * 4, "local_batch": LOCAL_BATCH,
                           **need, "reference_matmul_flops": reference_matmul_flops()}
    with tempfile.TemporaryDirectory(dir=os.environ.get("OURO_BENCH_TMP")) as d:
        write_shards(d, lat, emb, shard_size=SHARD)
        kw = dict(seed=0, groups=8, latent_shape=(32, 32, 4), embed_dim=640, process_index=0,
                  process_count=8)  # host 0 of a v5e-32: 1/8 of the rows
        cases = {}
        t0 = time.perf_counter()
        pre = sharded_loader(d, LOCAL_BATCH * 8, mode="preload", **kw)
        out["preload_seconds"] = time.perf_counter() - t0
        cases["preload"] = _rate(pre, steps)
        del pre
        cases["mmap_cached"] = _rate(sharded_loader(d, LOCAL_BATCH * 8, mode="stream", workers=4, **kw), steps)
        _evict(d)
        cases["mmap_cold"] = _rate(sharded_loader(d, LOCAL_BATCH * 8, mode="stream", workers=4, **kw), steps)
        _evict(d)
        cases["arrayrecord"] = _arrayrecord(d, lat, emb, steps)
    for name, rate in cases.items():
        out[name] = {"rows_per_s": rate, "x_demand": rate / need["demand_rows_per_s"]}
    return out
