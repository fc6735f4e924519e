"""A tiny stand-in network with XUDiT's call signature and logical axis names, so the
training machinery is tested in seconds and independently of the real model."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from ouro.model import registry


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    dim: int = 32
    in_channels: int = 1
    ctx_dim: int = 640
    patch_size: int = 2


class Toy(nnx.Module):
    def __init__(self, cfg: ToyConfig, *, rngs: nnx.Rngs):
        part, init = nnx.with_partitioning, nnx.initializers.lecun_normal()
        self.inp = nnx.Linear(cfg.in_channels + 1, cfg.dim, rngs=rngs, kernel_init=part(init, ("patch", "embed")))
        self.ctx = nnx.Linear(cfg.ctx_dim, cfg.dim, rngs=rngs, kernel_init=part(init, ("ctx", "embed")))
        self.hid = nnx.Linear(cfg.dim, cfg.dim, rngs=rngs, kernel_init=part(init, ("embed", "mlp")))
        self.out = nnx.Linear(cfg.dim, cfg.in_channels, rngs=rngs, kernel_init=part(init, ("embed", None)))

    def __call__(self, x, t, ctx, *, ctx_mask=None, drop=None, cond=None, tread_rate=0.0, rng=None):
        if drop is not None:  # the null condition: a zero context, as XUT's
            ctx = jnp.where(drop[:, None, None], 0.0, ctx)
        tt = jnp.broadcast_to(t[:, None, None, None], x.shape[:3] + (1,))
        h = self.inp(jnp.concatenate([x, tt], -1)) + self.ctx(ctx[:, 0])[:, None, None, :]  # (B, H, W, D)
        if tread_rate > 0:  # stands in for token routing: randomness from the rng
            h = h * (1 + 0.01 * jax.random.normal(rng, h.shape[:1]))[:, None, None, None]
        return self.out(jax.nn.gelu(self.hid(jax.nn.gelu(h))))


def make_toy(cfg, rngs):
    return Toy(cfg, rngs=rngs)


def toy_flops(cfg, height, width, ctx_len=1, tread_rate=0.0):
    return 2 * height * width * ((cfg.in_channels + 1) * cfg.dim + cfg.dim * cfg.dim + cfg.dim * cfg.in_channels)


# registered like any family, so the trainer's accounting (FLOPs are required) knows it
# (this file is also loaded by path from tests/faults and mp_worker.py: each copy defines its own
# ToyConfig class, so a second copy registers under its module's name)
_NAME = "toy" if "toy" not in registry.FAMILIES else f"toy-{__name__}"
registry.register(registry.Family(_NAME, ToyConfig, Toy, {}, lambda c: 0, toy_flops, lambda c: "toy", routing=True))


@pytest.fixture
def toy():
    return ToyConfig, make_toy


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One real (tiny) XUT digits run for the whole session: `train()` 4 steps, checkpoints at
    2 and 4, the end-of-run samples.png; sampling, sweep and CLI tests read it (never write
    into its checkpoints). Returns (run_dir, train summary)."""
    from ouro.config import override
    from ouro.train import preset_config, train

    run = tmp_path_factory.mktemp("digits-run")
    # data.context=gemma: the class table is the committed Gemma-3 embeddings of the digit captions
    # (ouro/data/digit_captions.json; no encoder needed to train), so a prompt can be checked against it
    cfg = override(preset_config("digits-smoke"), ["steps=4", "warmup_steps=2", "ckpt_every=2", "log_every=2",
                                                   "data.context=gemma", f"out_dir={run}"])
    return run, train(cfg)
