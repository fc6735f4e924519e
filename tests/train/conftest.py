"""A tiny stand-in network with XUDiT's call signature and logical axis names, so the
training machinery is tested in seconds and independently of the real model."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest
from flax import nnx


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

    def __call__(self, x, t, ctx, *, tread_rate=0.0, rng=None):
        tt = jnp.broadcast_to(t[:, None, None, None], x.shape[:3] + (1,))
        h = self.inp(jnp.concatenate([x, tt], -1)) + self.ctx(ctx[:, 0])[:, None, None, :]  # (B, H, W, D)
        if tread_rate > 0:  # stands in for token routing: randomness from the rng
            h = h * (1 + 0.01 * jax.random.normal(rng, h.shape[:1]))[:, None, None, None]
        return self.out(jax.nn.gelu(self.hid(jax.nn.gelu(h))))


def make_toy(cfg, rngs):
    return Toy(cfg, rngs=rngs)


@pytest.fixture
def toy():
    return ToyConfig, make_toy
