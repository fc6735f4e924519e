"""Classifier-free guidance as pure functions of the two velocity predictions.

    v = v_uncond + scale (v_cond - v_uncond)                          CFG (Ho & Salimans 2022)
    only for t in [lo, hi], else v = v_cond                          guidance interval
                                                                      (Kynkaanniemi et al. 2024)
    v <- phi * v * std(v_cond) / std(v) + (1 - phi) * v             guidance rescale
                                                                      (Lin et al. 2024, eq. 15-16)

`v_uncond` is whatever the weak branch predicted: the model's null condition, a negative
prompt's condition, or an autoguidance model. The std is per sample over every non-batch
axis. No model in here: the PyTorch pipeline can mirror these lines one for one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

FULL = (0.0, 1.0)


def check_guidance(scale: float, interval: tuple[float, float], rescale: float) -> None:
    lo, hi = interval
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"cfg_interval={interval}: need 0 <= lo <= hi <= 1 (t = 1 is noise)")
    if not 0.0 <= rescale <= 1.0:
        raise ValueError(f"cfg_rescale={rescale}: must be in [0, 1]")
    if scale < 0:
        raise ValueError(f"cfg_scale={scale}: must be >= 0")


def in_interval(t_b: jax.Array, interval: tuple[float, float]) -> jax.Array:
    """(B,) bool: guidance is on at these times (lo <= t <= hi)."""
    lo, hi = interval
    return (t_b >= lo) & (t_b <= hi)


def rescale_to(v: jax.Array, v_ref: jax.Array, phi: float) -> jax.Array:
    """Lin et al.'s rescale: blend v with v scaled to v_ref's per-sample std."""
    if phi == 0.0:
        return v
    axes = tuple(range(1, v.ndim))
    ratio = jnp.std(v_ref, axis=axes, keepdims=True) / jnp.maximum(jnp.std(v, axis=axes, keepdims=True), 1e-12)
    return phi * (v * ratio) + (1.0 - phi) * v


def combine(v_cond: jax.Array, v_uncond: jax.Array, t_b: jax.Array, *, scale: float,
            interval: tuple[float, float] = FULL, rescale: float = 0.0) -> jax.Array:
    """The guided velocity from both predictions at times t_b (B,)."""
    v = rescale_to(v_uncond + scale * (v_cond - v_uncond), v_cond, rescale)
    if tuple(interval) == FULL:
        return v
    on = in_interval(t_b, interval).reshape((-1,) + (1,) * (v.ndim - 1))
    return jnp.where(on, v, v_cond)
