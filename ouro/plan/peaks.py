"""Throughput denominators: a device's peak FLOP/s for MFU, and the same-process matmul
that stands in for it on CPU (and that every benchmark quotes its speed against).

MFU = model FLOP/s (the model's own accounting, ouro.model.flops_per_image) / peak.
Accelerator peaks are the vendors' dense bf16 numbers per chip; a CPU has no meaningful
datasheet peak here (shared cores, turbo, BLAS kernels), so its "peak" is what a 2048^2
f32 matmul reaches in this process, and is labelled as such wherever it is reported.
"""

from __future__ import annotations

import functools
import time

# device_kind substring (lower case) -> (dense bf16 FLOP/s per chip, label)
PEAK_FLOPS = {
    "v5 lite": (197e12, "TPU v5e, 197 TFLOP/s bf16"),  # jax reports v5e as "TPU v5 lite"
    "v5e": (197e12, "TPU v5e, 197 TFLOP/s bf16"),
    "v5p": (459e12, "TPU v5p, 459 TFLOP/s bf16"),
    "v6 lite": (918e12, "TPU v6e, 918 TFLOP/s bf16"),  # Trillium reports as "TPU v6 lite"
    "v6e": (918e12, "TPU v6e, 918 TFLOP/s bf16"),
    "h100": (989e12, "H100, 989 TFLOP/s dense bf16"),
}
MATMUL_N = 2048  # the reference matmul: big enough for BLAS peak, ~0.1-0.3 s on 2 CPU cores


def matmul_flops_per_s(n: int = MATMUL_N, dtype: str = "float32", repeats: int = 5) -> float:
    """FLOP/s of a jitted n x n @ n x n matmul on the default device: the best of `repeats`
    (on a shared machine the minimum time is the least disturbed one)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), dtype=jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype=jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()  # compile + warm caches
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def chip_peak(device_kind: str) -> tuple[float, str] | None:
    """(dense bf16 FLOP/s, label) of one chip of this kind, or None if not in the table."""
    kind = device_kind.lower()
    for key, peak in PEAK_FLOPS.items():
        if key in kind:
            return peak
    return None


@functools.lru_cache(maxsize=None)
def job_peak() -> tuple[float, str]:
    """(peak FLOP/s of all devices of this job, label saying where the number comes from).

    Accelerators: the per-chip table times the global device count. Anything else (CPU,
    unknown kinds) gets the measured same-process matmul, once per process (cached); it is
    not multiplied by the device count, since simulated CPU devices share the same cores."""
    import jax

    chip = chip_peak(jax.devices()[0].device_kind)
    if chip is not None:
        n = jax.device_count()
        return chip[0] * n, f"{chip[1]} x {n} chips"
    flops = matmul_flops_per_s()
    return flops, f"{jax.default_backend()} stand-in: {MATMUL_N}^2 f32 matmul measured in this process"
