"""Training/sampling throughput (`python -m ouro.bench train`).

Speeds are ratios to a large matmul measured in the same process (ouro.bench.common):
  train_<preset>_<dtype>: images/s and model FLOP/s (3 x forward FLOPs per image) of the
                          jitted train step; flops_ratio = model FLOP/s / matmul FLOP/s
  sample_<preset>:        images/s for ONE Euler step with CFG (one batched call on 2B)
  cfg_batched_vs_separate: time of the batched CFG velocity / time of two separate passes
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ouro.bench.common import reference_matmul_flops, time_call

CASES = [  # (preset, latent size, channels, batch, dtype)
    ("xut-tiny", 16, 4, 32, "float32"),
    ("xut-tiny", 16, 4, 32, "bfloat16"),
    ("xut-small", 16, 4, 2, "float32"),
    ("xut-small", 16, 4, 2, "bfloat16"),
]


def _train_cfg(name: str, size: int, ch: int, batch: int, dtype: str):
    from ouro.model import preset
    from ouro.train.config import DataConfig, TrainConfig

    return TrainConfig(model=preset(name, in_channels=ch, dtype=dtype),
                       data=DataConfig(image_size=size, channels=ch), steps=1000, batch_size=batch,
                       progress=False, eval_samples=False)


def bench_train_step(name, size, ch, batch, dtype, ref: float) -> dict[str, Any]:
    from ouro import sharding as shd
    from ouro.train.loop import model_train_flops
    from ouro.train.step import build_trainer

    cfg = _train_cfg(name, size, ch, batch, dtype)
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    trainer = build_trainer(cfg, mesh)
    state = {"s": trainer.make_state()}
    rng = np.random.default_rng(0)
    batch_np = {"x": rng.normal(size=(batch, size, size, ch)).astype(np.float32),
                "ctx": rng.normal(size=(batch, 1, cfg.data.ctx_dim)).astype(np.float32)}
    gb = shd.global_batch(batch_np, mesh)

    def step():
        state["s"] = trainer.step(state["s"], gb)
        state["s"]["step"].block_until_ready()

    seconds = time_call(step, warmup=1, repeats=3)
    flops = model_train_flops(cfg.model, cfg)
    ips = batch / seconds
    return {"images_per_s": ips, "model_flops_per_s": ips * flops, "flops_ratio": ips * flops / ref,
            "train_flops_per_image": flops, "batch": batch, "seconds_per_step": seconds}


def bench_sampling(name: str, size: int, ch: int, batch: int) -> dict[str, Any]:
    from flax import nnx

    from ouro.flow import guided_velocity
    from ouro.model import XUDiT, preset

    cfg = preset(name, in_channels=ch)
    model = XUDiT(cfg, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    x = jax.random.normal(jax.random.key(0), (batch, size, size, ch))
    t = jnp.full((batch,), 0.5)
    ctx = jax.random.normal(jax.random.key(1), (batch, 1, cfg.ctx_dim))

    @jax.jit
    def batched(state, x, t, ctx):
        m = nnx.merge(graphdef, state)
        return guided_velocity(m, x, t, ctx, cfg_scale=3.0)

    @jax.jit
    def separate(state, x, t, ctx):
        m = nnx.merge(graphdef, state)
        v_c, v_u = m(x, t, ctx), m(x, t, jnp.zeros_like(ctx))
        return v_u + 3.0 * (v_c - v_u)

    tb = time_call(lambda: batched(state, x, t, ctx).block_until_ready(), warmup=1, repeats=5)
    ts = time_call(lambda: separate(state, x, t, ctx).block_until_ready(), warmup=1, repeats=5)
    return {"images_per_s_per_cfg_step": batch / tb, "cfg_batched_s": tb, "cfg_separate_s": ts,
            "cfg_batched_over_separate": tb / ts, "batch": batch}


def run(cases=CASES) -> dict[str, Any]:
    ref32 = reference_matmul_flops(2048, "float32")
    ref16 = reference_matmul_flops(2048, "bfloat16")
    out: dict[str, Any] = {"reference_matmul_flops_f32": ref32, "reference_matmul_flops_bf16": ref16}
    for name, size, ch, batch, dtype in cases:
        key = f"train_{name}_{dtype}"
        try:
            out[key] = bench_train_step(name, size, ch, batch, dtype, ref32)
        except Exception as e:  # noqa: BLE001 - report and keep benchmarking the rest
            out[key] = {"error": repr(e)[:300]}
    out["sample_xut-tiny"] = bench_sampling("xut-tiny", 16, 4, 64)
    return out
