"""Rectified-flow objective (SPEC convention, fixed and tested).

    x_t = (1 - t) * x0 + t * noise        t = 0 is data, t = 1 is noise
    v   = noise - x0                       the velocity the network regresses
    t  ~ ouro.flow.timesteps              logit-normal (SD3 / HDM), mode, cosmap, uniform; shift

Nothing here knows the network: the model is any `ouro.denoiser.Denoiser`
(`model(x, t, ctx, *, ctx_mask, drop, ...) -> v`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ouro.denoiser import Denoiser
from ouro.flow.timesteps import TDist, loss_weight, sample_t

Model = Denoiser
TSchedule = TDist


def _bcast(t_b: jax.Array, x: jax.Array) -> jax.Array:
    return t_b.reshape(t_b.shape + (1,) * (x.ndim - 1))  # (B, 1, 1, 1)


def interpolate(x0: jax.Array, noise: jax.Array, t_b: jax.Array) -> jax.Array:
    """x_t = (1 - t) x0 + t noise."""
    t = _bcast(t_b, x0)
    return (1.0 - t) * x0 + t * noise


def velocity_target(x0: jax.Array, noise: jax.Array) -> jax.Array:
    """d x_t / d t = noise - x0."""
    return noise - x0


def flow_loss(model: Model, x0: jax.Array, ctx: jax.Array, key: jax.Array, *,
              schedule: TSchedule = "logit_normal", ctx_mask: jax.Array | None = None,
              drop: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean squared velocity error over the batch, plus per-sample losses and their t.

    `drop` (B,) bool: samples trained on the family's null condition (CFG dropout).

    Returns (loss, {"t": (B,), "per_sample": (B,)}); `per_sample` feeds `bin_losses`.
    """
    key_t, key_n = jax.random.split(key)
    t_b = sample_t(key_t, x0.shape[0], schedule)
    noise = jax.random.normal(key_n, x0.shape, jnp.float32)
    return flow_loss_at(model, x0, ctx, t_b, noise, ctx_mask=ctx_mask, drop=drop)


def flow_loss_at(model: Model, x0: jax.Array, ctx: jax.Array, t_b: jax.Array, noise: jax.Array, *,
                 ctx_mask: jax.Array | None = None, drop: jax.Array | None = None,
                 weighting: str = "none", gamma: float = 5.0) -> tuple[jax.Array, dict[str, jax.Array]]:
    """flow_loss at given times and noise (gradient accumulation draws them for the whole
    batch once, then evaluates slices). The loss is the mean of `loss_weight(t) * MSE`
    (ouro.flow.timesteps); `per_sample` stays the UNweighted MSE, so per-t-bin curves of
    runs with different weightings remain comparable."""
    x_t = interpolate(x0, noise, t_b)
    v = model(x_t, t_b, ctx, ctx_mask=ctx_mask, drop=drop).astype(jnp.float32)
    err = jnp.square(v - velocity_target(x0, noise))
    per_sample = err.reshape(err.shape[0], -1).mean(axis=1)  # (B,)
    loss = (loss_weight(t_b, weighting, gamma) * per_sample).mean()
    return loss, {"t": t_b, "per_sample": per_sample}


def bin_losses(t_b: jax.Array, per_sample: jax.Array, bins: int = 10) -> tuple[jax.Array, jax.Array]:
    """Per-t-bin (sum, count) of per-sample losses; bins split [0, 1] evenly.

    Sums and counts (not means) so they can be accumulated on device across steps and
    divided only when logged: no host sync per step.
    """
    idx = jnp.clip((t_b * bins).astype(jnp.int32), 0, bins - 1)
    onehot = jax.nn.one_hot(idx, bins, dtype=jnp.float32)  # (B, bins)
    return onehot.T @ per_sample, onehot.sum(axis=0)
