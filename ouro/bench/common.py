"""Shared benchmark plumbing: the reference matmul and JSON writing."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path("outputs/bench")


def time_call(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5) -> float:
    """Median wall time of `fn()` in seconds; `fn` must block until its result is ready."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def reference_matmul_flops(n: int = 2048, dtype: str = "float32") -> float:
    """FLOP/s of an n x n @ n x n jitted matmul on the default device (the ratio base)."""
    from ouro.plan.peaks import matmul_flops_per_s

    return matmul_flops_per_s(n, dtype)


def environment() -> dict[str, Any]:
    import jax

    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": len(jax.devices()),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write(name: str, result: dict[str, Any], out_dir: Path = BENCH_DIR) -> Path:
    from ouro.fileio import write_json

    return write_json(Path(out_dir) / f"{name}.json", {"env": environment(), **result})
