"""TREAD token routing (Krause et al. 2025, as used by HDM): after the pre-blocks each sample
keeps a random subset of its image tokens for the expensive core; the bypassed tokens'
states skip the core and are scattered back unchanged before the post-blocks.

Sequence layout is [image tokens (L) | context tokens (T)]; context tokens are always kept.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Route(NamedTuple):
    keep_idx_bk: jax.Array  # (B, K) int32 kept image-token indices, ascending
    num_image: int  # L


def keep_count(num_image: int, rate: float) -> int:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"tread_rate must be in [0, 1), got {rate}")
    return max(1, int(num_image * (1.0 - rate)))


def route(key: jax.Array, batch: int, num_image: int, rate: float) -> Route:
    """Draw, per sample, int(L * (1 - rate)) image tokens to keep (order preserved)."""
    k = keep_count(num_image, rate)
    scores_bl = jax.random.uniform(key, (batch, num_image))
    keep_idx = jnp.sort(jnp.argsort(scores_bl, axis=-1)[:, :k], axis=-1).astype(jnp.int32)
    return Route(keep_idx, num_image)


def drop(x_bnd: jax.Array, r: Route) -> jax.Array:
    """(B, L+T, ...) -> (B, K+T, ...): kept image tokens (gathered) then all context tokens."""
    img, ctx = x_bnd[:, : r.num_image], x_bnd[:, r.num_image :]
    idx = r.keep_idx_bk.reshape(r.keep_idx_bk.shape + (1,) * (x_bnd.ndim - 2))
    kept = jnp.take_along_axis(img, idx, axis=1)
    return jnp.concatenate([kept, ctx], axis=1)


def merge(full_bnd: jax.Array, core_bkd: jax.Array, r: Route) -> jax.Array:
    """Scatter the core's outputs back into the full sequence; bypassed slots keep full_bnd."""
    k = r.keep_idx_bk.shape[1]
    b = full_bnd.shape[0]
    img = full_bnd[:, : r.num_image].at[jnp.arange(b)[:, None], r.keep_idx_bk].set(core_bkd[:, :k])
    return jnp.concatenate([img, core_bkd[:, k:]], axis=1)
