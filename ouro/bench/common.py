"""Shared benchmark plumbing: the reference matmul and JSON writing."""

from __future__ import annotations

import json
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
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), dtype=jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype=jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: x @ y)
    seconds = time_call(lambda: f(a, b).block_until_ready(), warmup=2, repeats=5)
    return 2 * n**3 / seconds


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
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"env": environment(), **result}, indent=2, sort_keys=True))
    tmp.replace(path)
    return path
