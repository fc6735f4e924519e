"""Model benchmark: xut-tiny forward+backward throughput (images/s and achieved FLOP/s as a
ratio to the reference matmul measured in the same process) and xut-small compile times,
in float32 and bfloat16 compute. xut-small is compiled from abstract shapes
(nnx.eval_shape + jax.ShapeDtypeStruct), so its 237M parameters are never allocated."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.bench.common import reference_matmul_flops, time_call
from ouro.model import XUDiT, flops_per_image, param_count, preset

TINY_BATCH, TINY_HW = 16, (16, 16)
SMALL_BATCH, SMALL_HW = 2, (32, 32)


def _loss_fn(graphdef):
    def loss(state, x, t, ctx):
        return jnp.mean(nnx.merge(graphdef, state)(x, t, ctx) ** 2)

    return loss


def _inputs(cfg, b, hw, abstract=False):
    shapes = [(b, *hw, cfg.in_channels), (b,), (b, 1, cfg.ctx_dim)]
    if abstract:
        return [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    keys = jax.random.split(jax.random.key(0), 3)
    return [jax.random.normal(keys[0], shapes[0]), jax.random.uniform(keys[1], shapes[1]), jax.random.normal(keys[2], shapes[2])]


def tiny_fwd_bwd(dtype: str, ref_flops: float) -> dict:
    cfg = preset("xut-tiny", dtype=dtype)
    graphdef, state = nnx.split(XUDiT(cfg, rngs=nnx.Rngs(0)))
    step = jax.jit(jax.value_and_grad(_loss_fn(graphdef)))
    args = _inputs(cfg, TINY_BATCH, TINY_HW)
    t0 = time.perf_counter()
    jax.block_until_ready(step(state, *args))
    compile_s = time.perf_counter() - t0
    seconds = time_call(lambda: jax.block_until_ready(step(state, *args)), warmup=1, repeats=7)
    flops = 3 * flops_per_image(cfg, *TINY_HW) * TINY_BATCH
    return {
        "batch": TINY_BATCH, "latent_hw": list(TINY_HW), "first_call_s": compile_s, "step_s": seconds,
        "images_per_s": TINY_BATCH / seconds, "model_flops_per_s": flops / seconds,
        "ratio_to_reference_matmul": flops / seconds / ref_flops,
    }


def small_compile(dtype: str, backward: bool) -> dict:
    cfg = preset("xut-small", dtype=dtype)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: XUDiT(cfg, rngs=nnx.Rngs(0))))
    loss = _loss_fn(graphdef)
    fn = jax.value_and_grad(loss) if backward else (lambda s, x, t, c: nnx.merge(graphdef, s)(x, t, c))
    t0 = time.perf_counter()
    lowered = jax.jit(fn).lower(state, *_inputs(cfg, SMALL_BATCH, SMALL_HW, abstract=True))
    trace_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lowered.compile()
    return {"trace_s": trace_s, "compile_s": time.perf_counter() - t0}


def run() -> dict:
    ref = {"float32": reference_matmul_flops(dtype="float32"), "bfloat16": reference_matmul_flops(dtype="bfloat16")}
    out: dict = {
        "reference_matmul_flops_per_s": ref,
        "params": {name: param_count(preset(name)) for name in ("xut-tiny", "xut-small", "xut-base", "xut-large")},
        "note": "CPU timings on a shared machine; compare ratios, not seconds",
    }
    for dtype in ("float32", "bfloat16"):
        out[f"xut_tiny_fwd_bwd_{dtype}"] = tiny_fwd_bwd(dtype, ref[dtype])
        out[f"xut_small_forward_compile_{dtype}"] = small_compile(dtype, backward=False)
        out[f"xut_small_fwd_bwd_compile_{dtype}"] = small_compile(dtype, backward=True)
    return out
