"""The benchmark cases: one jitted callable + its arguments per (preset, what) pair, shared
by `ouro.bench.train` (timings) and `ouro.bench.profile` (per-op time shares, HLO counts).

  train    THE train step of ouro.train.step.build_trainer (forward + backward + AdamW +
           EMA + metric sums), state donated as in training; FLOPs = 3 x forward
  forward  the model's forward alone (jitted, same batch)
  sample   one Euler step with classifier-free guidance (conditional and unconditional
           passes in one batched call of 2B), as ouro.flow samples; FLOPs = 2 x forward
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

# preset -> (latent size, channels, batch): the issue-11 comparison configuration
# (cmp-tiny, batch 8, TREAD off) and xut-small at 256 px (32x32x4 latents), batch 2
SHAPES = {"cmp-tiny": (32, 4, 8), "xut-small": (32, 4, 2), "xut-tiny": (16, 4, 8)}


@dataclasses.dataclass
class Case:
    name: str
    fn: Callable[..., Any]  # jitted
    args: tuple
    flops: float  # model FLOPs per call (ouro.model.flops_per_image)
    batch: int
    carry: Callable[[Any], tuple] | None = None  # next args from the output (donated state)
    mesh: Any = None  # the train step traces under its mesh (the model's sharding hints read it)

    def context(self):
        return jax.set_mesh(self.mesh) if self.mesh is not None else contextlib.nullcontext()

    def lower(self):
        with self.context():
            return self.fn.lower(*self.args)

    def compile(self) -> dict[str, float]:
        """Trace + compile ahead of time (timed apart); later calls run the compiled step."""
        t0 = time.perf_counter()
        lowered = self.lower()
        t1 = time.perf_counter()
        self.fn = lowered.compile()
        return {"trace_s": t1 - t0, "compile_s": time.perf_counter() - t1}

    def call(self) -> None:
        with self.context():
            out = self.fn(*self.args)
        jax.block_until_ready(out)
        if self.carry is not None:
            self.args = self.carry(out)


def train_config(preset_name: str, dtype: str = "float32", batch: int | None = None):
    from ouro.model import preset
    from ouro.train.config import DataConfig, MeshConfig, TrainConfig

    size, ch, b = SHAPES[preset_name]
    return TrainConfig(model=preset(preset_name, in_channels=ch, dtype=dtype),
                       data=DataConfig(context="random", image_size=size, channels=ch),
                       mesh=MeshConfig(data=1), steps=1000, batch_size=batch or b,
                       tread_rate=0.0, progress=False, eval_samples=False)


def _batch(cfg) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    d = cfg.data
    return {"x": rng.normal(size=(cfg.batch_size, d.image_size, d.image_size, d.channels)).astype(np.float32),
            "ctx": rng.normal(size=(cfg.batch_size, 1, d.ctx_dim)).astype(np.float32)}


def train_case(preset_name: str, dtype: str = "float32", batch: int | None = None) -> Case:
    from ouro import sharding as shd
    from ouro.model import flops_per_image
    from ouro.train.step import build_trainer

    cfg = train_config(preset_name, dtype, batch)
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    trainer = build_trainer(cfg, mesh)
    gb = shd.global_batch(_batch(cfg), mesh)
    fwd = flops_per_image(cfg.model, cfg.data.image_size, cfg.data.image_size, ctx_len=1)
    return Case(f"train_{preset_name}_{dtype}", trainer.jitted_step, (trainer.make_state(), gb),
                3.0 * fwd * cfg.batch_size, cfg.batch_size, carry=lambda s: (s, gb), mesh=mesh)


def _model_and_inputs(preset_name: str, dtype: str, batch: int | None):
    from flax import nnx

    from ouro.model import XUDiT

    cfg = train_config(preset_name, dtype, batch)
    model = nnx.jit(lambda: XUDiT(cfg.model, rngs=nnx.Rngs(0)))()  # one init program
    graphdef, state = nnx.split(model)
    b = _batch(cfg)
    t = jnp.linspace(0.1, 0.9, cfg.batch_size)
    return cfg, graphdef, state, jnp.asarray(b["x"]), t, jnp.asarray(b["ctx"])


def forward_case(preset_name: str, dtype: str = "float32", batch: int | None = None) -> Case:
    from flax import nnx

    from ouro.model import flops_per_image

    cfg, graphdef, state, x, t, ctx = _model_and_inputs(preset_name, dtype, batch)
    fn = jax.jit(lambda s, x, t, c: nnx.merge(graphdef, s)(x, t, c))
    fwd = flops_per_image(cfg.model, cfg.data.image_size, cfg.data.image_size, ctx_len=1)
    return Case(f"forward_{preset_name}_{dtype}", fn, (state, x, t, ctx), fwd * cfg.batch_size, cfg.batch_size)


def sample_case(preset_name: str, dtype: str = "float32", batch: int | None = None, cfg_scale: float = 3.0) -> Case:
    from flax import nnx

    from ouro.flow import guided_velocity
    from ouro.model import flops_per_image

    cfg, graphdef, state, x, t, ctx = _model_and_inputs(preset_name, dtype, batch)
    dt = 1.0 / 32  # one step of a 32-step Euler schedule

    def euler_step(s, x, t, c):
        v = guided_velocity(nnx.merge(graphdef, s), x, t, c, cfg_scale=cfg_scale)
        return x - dt * v  # x <- x - dt v (t runs from 1 to 0)

    fn = jax.jit(euler_step)
    fwd = flops_per_image(cfg.model, cfg.data.image_size, cfg.data.image_size, ctx_len=1)
    return Case(f"sample_{preset_name}_{dtype}", fn, (state, x, t, ctx), 2 * fwd * cfg.batch_size, cfg.batch_size)


KINDS = {"train": train_case, "forward": forward_case, "sample": sample_case}


def make_case(kind: str, preset_name: str, dtype: str = "float32", batch: int | None = None) -> Case:
    return KINDS[kind](preset_name, dtype, batch)
