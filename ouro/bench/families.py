"""Train-step throughput of every model family (`python -m ouro.bench families`).

Each family's digits preset (the models of the architecture comparison: 16x16x1 images,
patch 4, batch 64, f32) through the real `build_trainer` step. Speed is reported as model
FLOP/s (3 x the family's own forward FLOPs per image) divided by a 2048^2 matmul timed in
the same process right before and right after, so load on a shared machine shows as drift
between the two instead of silently skewing the ratio.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ouro.bench.common import reference_matmul_flops, time_call

PRESETS = ("digits", "digits-dit", "digits-mmdit", "digits-icmmdit")
BATCH = 64


def bench_family(preset: str, batch: int = BATCH, repeats: int = 5) -> dict[str, Any]:
    import dataclasses

    from ouro import sharding as shd
    from ouro.model import family_of, param_count
    from ouro.train import preset_config
    from ouro.train.loop import model_train_flops
    from ouro.train.step import build_trainer

    cfg = dataclasses.replace(preset_config(preset), batch_size=batch, progress=False)
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    trainer = build_trainer(cfg, mesh)
    state = {"s": trainer.make_state()}
    rng = np.random.default_rng(0)
    size, ch = cfg.data.image_size, cfg.data.channels
    gb = shd.global_batch({"x": rng.normal(size=(batch, size, size, ch)).astype(np.float32),
                           "ctx": rng.normal(size=(batch, 1, cfg.data.ctx_dim)).astype(np.float32),
                           "label": rng.integers(0, 10, size=batch).astype(np.int32)}, mesh)

    def step():
        state["s"] = trainer.step(state["s"], gb)
        state["s"]["step"].block_until_ready()

    seconds = time_call(step, warmup=2, repeats=repeats)
    flops = model_train_flops(cfg.model, cfg)
    return {"family": family_of(cfg.model).name, "params": param_count(cfg.model), "batch": batch,
            "train_flops_per_image": flops, "seconds_per_step": seconds, "images_per_s": batch / seconds,
            "model_flops_per_s": batch * flops / seconds}


def run(presets=PRESETS, batch: int = BATCH, repeats: int = 5) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in presets:
        before = reference_matmul_flops(2048, "float32")
        r = bench_family(p, batch, repeats)
        after = reference_matmul_flops(2048, "float32")
        r.update(matmul_flops_before=before, matmul_flops_after=after,
                 flops_ratio=r["model_flops_per_s"] / ((before + after) / 2))
        out[p] = r
    return out
