"""Axial 2D rotary position embedding with learnable per-head log-frequencies.

Follows HDM's `AxialRoPE` (k-diffusion lineage): frequencies of shape (heads, head_dim/4, 2)
initialised log-spaced from pi to 5*pi, the same for y and x; rotation pair p = (2p, 2p+1)
of the head vector uses frequency j = p // 2 on axis p % 2 (0 = y, 1 = x), so the FULL
head_dim is rotated. Positions are bin centres on a box whose long side spans [-1, 1]
(aspect-ratio aware); context tokens sit at (0, 0) and are therefore left unrotated.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.nn.linear import axes

MIN_FREQ = math.pi  # lowest angular frequency (per unit of position)
MAX_FREQ = 5 * math.pi  # highest; HDM's freqs_pixel_log(max_freq=10) -> 10*pi/2


def bin_centres(lo: float, hi: float, n: int) -> np.ndarray:
    edges = np.linspace(lo, hi, n + 1, dtype=np.float64)
    return (edges[:-1] + edges[1:]) / 2


def axial_positions(height: int, width: int) -> np.ndarray:
    """(height*width, 2) float32 [y, x] positions of a row-major token grid.

    The long side spans [-1, 1] and the short side +-short/long, so a 1:2 image gets
    y in [-0.5, 0.5] and x in [-1, 1]; positions of a W x H grid are the transpose of H x W.
    """
    if height < 1 or width < 1:
        raise ValueError(f"axial_positions: grid must be at least 1x1, got {height}x{width}")
    long = max(height, width)
    ys = bin_centres(-height / long, height / long, height)
    xs = bin_centres(-width / long, width / long, width)
    grid_hw2 = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1)  # (H, W, 2)
    return grid_hw2.reshape(height * width, 2).astype(np.float32)


def cropped_positions(full_h: int, full_w: int, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Positions of a height x width token crop at (top, left) of a full_h x full_w grid:
    a random crop keeps the positions it had in the full image (HDM make_cropped_pos)."""
    if top < 0 or left < 0 or top + height > full_h or left + width > full_w:
        raise ValueError(
            f"cropped_positions: crop {height}x{width} at ({top}, {left}) does not fit in {full_h}x{full_w}"
        )
    grid = axial_positions(full_h, full_w).reshape(full_h, full_w, 2)
    return np.ascontiguousarray(grid[top : top + height, left : left + width]).reshape(height * width, 2)


def init_log_freqs(heads: int, head_dim: int) -> np.ndarray:
    if head_dim % 4:
        raise ValueError(f"AxialRoPE: head_dim must be a multiple of 4 (two axes x pairs), got {head_dim}")
    log_f = np.linspace(math.log(MIN_FREQ), math.log(MAX_FREQ), head_dim // 4)
    return np.broadcast_to(log_f[None, :, None], (heads, head_dim // 4, 2)).astype(np.float32)


def rotation(pos_bl2: jax.Array, log_freqs_nj2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(cos, sin), each (B, L, N, H/2) float32: the angle of pair p is pos[p % 2] * freq[n, p // 2, p % 2].

    Computed once per attention and shared by queries and keys: the transcendentals are
    then evaluated once per pair, not once per element of q and again of k."""
    pos_bl2 = pos_bl2.astype(jnp.float32)
    b, l = pos_bl2.shape[:2]
    n = log_freqs_nj2.shape[0]
    freqs_nj2 = jnp.exp(log_freqs_nj2.astype(jnp.float32))
    angles = (pos_bl2[:, :, None, None, :] * freqs_nj2).reshape(b, l, n, -1)  # (B, L, N, H/2)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rotation(x: jax.Array, cos_blnp: jax.Array, sin_blnp: jax.Array) -> jax.Array:
    """Rotate adjacent pairs (2p, 2p+1) of x (B, L, ..., N, H) by the angles of `rotation`
    (broadcast over any axes between L and N, e.g. q and k stacked); float32 math."""
    x32 = x.astype(jnp.float32)
    pairs = x32.reshape(x.shape[:-1] + (x.shape[-1] // 2, 2))  # (..., N, H/2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    extra = x.ndim - 4  # axes between L and N
    c = cos_blnp.reshape(cos_blnp.shape[:2] + (1,) * extra + cos_blnp.shape[2:])
    s_ = sin_blnp.reshape(c.shape)
    out = jnp.stack([x0 * c - x1 * s_, x0 * s_ + x1 * c], axis=-1)  # complex multiply by e^(i angle)
    return out.reshape(x.shape).astype(x.dtype)


def rotate(x_blnh: jax.Array, pos_bl2: jax.Array, log_freqs_nj2: jax.Array) -> jax.Array:
    """Rotate adjacent pairs of x (B, L, N, H) by angles pos * exp(log_freqs); float32 math.

    Pair p = (2p, 2p+1) turns by pos[p % 2] * freq[n, p // 2, p % 2] (as a complex number
    x[2p] + i x[2p+1] multiplied by e^(i angle))."""
    b, l = x_blnh.shape[:2]
    cos, sin = rotation(jnp.broadcast_to(pos_bl2, (b, l, 2)), log_freqs_nj2)
    return apply_rotation(x_blnh, cos, sin)


class AxialRoPE(nnx.Module):
    """Learnable log-frequencies (heads, head_dim/4, 2); `__call__(x, pos)` rotates x."""

    def __init__(self, heads: int, head_dim: int, *, param_dtype=jnp.float32):
        self.freqs = nnx.Param(
            jnp.asarray(init_log_freqs(heads, head_dim), param_dtype), **axes(None, None, None)
        )

    def __call__(self, x_blnh: jax.Array, pos_bl2: jax.Array) -> jax.Array:
        return rotate(x_blnh, pos_bl2, self.freqs[...])
