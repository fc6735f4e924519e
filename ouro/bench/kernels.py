"""The kernels a train step is made of, timed in XLA (this process's JAX backend) and in
PyTorch's CPU kernels, side by side (`python -m ouro.bench kernels`).

HDM's reference XUDiT is eager PyTorch; on a CPU its speed is the speed of these kernels.
Comparing them one by one tells a reader where a gap between ouro's compiled step and an
eager PyTorch one comes from, on the same machine, in the same process, with the same
thread count (PyTorch is set to use every core, as XLA:CPU does):

  matmul      the 2048^2 f32 matmul every ratio in train.json is taken against
  projection  a (B*L, D) @ (D, 6D) weight matmul of the cmp-tiny block (B 8, L 257, D 256)
  scores      q k^T per (sample, head): a batched (32 x 257 x 64) @ (32 x 64 x 257) dot
  attention   softmax(q k^T / sqrt(H)) v, forward, and forward + backward: ouro's attention
              (jax.nn.dot_product_attention, XLA) against torch's scaled_dot_product_attention

Each figure is the median of REPEATS timed calls after a warm-up; JAX results are waited
for (block_until_ready). PyTorch is optional: without it only the XLA column is written.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from ouro.bench.common import time_call

REPEATS = 20
# cmp-tiny's attention: batch 8, 256 image tokens + 1 context token, 4 heads x 64
SHAPES = {"batch": 8, "tokens": 257, "heads": 4, "head_dim": 64, "dim": 256}


def _xla_kernels(s: dict[str, int]) -> dict[str, tuple[Callable[[], Any], float]]:
    import jax
    import jax.numpy as jnp

    from ouro.nn.attention import attend

    b, l, n, h, d = s["batch"], s["tokens"], s["heads"], s["head_dim"], s["dim"]
    key = iter(jax.random.split(jax.random.key(0), 16))

    def rand(*shape):
        return jax.random.normal(next(key), shape, jnp.float32)

    m = rand(2048, 2048)
    x, w = rand(b * l, d), rand(d, 6 * d)
    q, k, v, g = rand(b, l, n, h), rand(b, l, n, h), rand(b, l, n, h), rand(b, l, n, h)
    qb, kb = rand(b * n, l, h), rand(b * n, l, h)

    def ready(f, *args):
        f = jax.jit(f)
        return lambda: jax.block_until_ready(f(*args))

    grad = jax.grad(lambda q, k, v: jnp.sum(attend(q, k, v) * g), argnums=(0, 1, 2))
    return {
        "matmul": (ready(lambda a: a @ a, m), 2 * 2048**3),
        "projection": (ready(lambda a, c: a @ c, x, w), 2 * b * l * d * 6 * d),
        "scores": (ready(lambda a, c: jnp.einsum("blh,bmh->blm", a, c), qb, kb), 2 * b * n * l * l * h),
        "attention_forward": (ready(attend, q, k, v), 4 * b * n * l * l * h),
        "attention_forward_backward": (ready(grad, q, k, v), 12 * b * n * l * l * h),
    }


def _torch_kernels(torch, s: dict[str, int]) -> dict[str, Callable[[], Any]]:
    b, l, n, h, d = s["batch"], s["tokens"], s["heads"], s["head_dim"], s["dim"]
    gen = torch.Generator().manual_seed(0)

    def rand(*shape, grad=False):
        return torch.randn(*shape, generator=gen, requires_grad=grad)

    m = rand(2048, 2048)
    x, w = rand(b * l, d), rand(d, 6 * d)
    qb, kb = rand(b * n, l, h), rand(b * n, l, h)
    q, k, v = (rand(b, n, l, h, grad=True) for _ in range(3))  # torch's (B, N, L, H) layout
    g = rand(b, n, l, h)
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            return sdpa(q, k, v)

    def forward_backward():
        q.grad = k.grad = v.grad = None
        (sdpa(q, k, v) * g).sum().backward()

    return {
        "matmul": lambda: m @ m,
        "projection": lambda: x @ w,
        "scores": lambda: torch.bmm(qb, kb.transpose(1, 2)),
        "attention_forward": forward,
        "attention_forward_backward": forward_backward,
    }


def run(shapes: dict[str, int] | None = None, repeats: int = REPEATS) -> dict[str, Any]:
    s = {**SHAPES, **(shapes or {})}
    xla = _xla_kernels(s)
    try:
        import torch
    except ImportError:  # the optional extra is not installed: XLA figures only
        torch = None
    ref = None
    if torch is not None:
        threads = torch.get_num_threads()
        torch.set_num_threads(os.cpu_count() or 1)
        ref = _torch_kernels(torch, s)
    out: dict[str, Any] = {
        "note": "seconds are medians of timed calls; gflops = FLOPs / median; torch_speedup = xla_s / torch_s "
                "(> 1: PyTorch's kernel is faster on this machine)",
        "shapes": s, "torch": getattr(torch, "__version__", None),
        "torch_threads": os.cpu_count() if torch is not None else None,
    }
    try:
        for name, (fn, flops) in xla.items():
            row = {"flops": flops, "xla_s": time_call(fn, warmup=2, repeats=repeats)}
            row["xla_gflops"] = flops / row["xla_s"] / 1e9
            if ref is not None:
                row["torch_s"] = time_call(ref[name], warmup=2, repeats=repeats)
                row["torch_gflops"] = flops / row["torch_s"] / 1e9
                row["torch_speedup"] = row["xla_s"] / row["torch_s"]
            out[name] = row
            print(f"[bench kernels] {name}: XLA {row['xla_gflops']:.0f} GFLOP/s"
                  + (f", torch {row['torch_gflops']:.0f} GFLOP/s" if ref is not None else ""), flush=True)
    finally:
        if torch is not None:
            torch.set_num_threads(threads)
    out["scores_over_matmul"] = {k: out["scores"][f"{k}_gflops"] / out["matmul"][f"{k}_gflops"]
                                 for k in ("xla", "torch") if f"{k}_gflops" in out["scores"]}
    return out


if __name__ == "__main__":
    for k, v in run().items():
        print(k, v if not isinstance(v, dict) else {a: (round(b, 4) if isinstance(b, float) else b) for a, b in v.items()})
