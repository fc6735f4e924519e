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


def rotate(x_blnh: jax.Array, pos_bl2: jax.Array, log_freqs_nj2: jax.Array) -> jax.Array:
    """Rotate adjacent pairs of x (B, L, N, H) by angles pos * exp(log_freqs); float32 math.

    Pair p = (2p, 2p+1) turns by pos[p % 2] * freq[n, p // 2, p % 2]:
    out = x * cos + swap(x) * sin with swap(x)[2p] = -x[2p+1], swap(x)[2p+1] = x[2p]
    (this form also compiles ~30% faster than slicing pairs apart and restacking).
    """
    b, l, n, h = x_blnh.shape
    freqs_nj2 = jnp.exp(log_freqs_nj2.astype(jnp.float32))
    pos_bl2 = jnp.broadcast_to(pos_bl2.astype(jnp.float32), (b, l, 2))
    angles_blnp = (pos_bl2[:, :, None, None, :] * freqs_nj2).reshape(b, l, n, h // 2)  # (B, L, N, H/2)
    cos = jnp.repeat(jnp.cos(angles_blnp), 2, axis=-1)  # (B, L, N, H), each pair's angle twice
    sin = jnp.repeat(jnp.sin(angles_blnp), 2, axis=-1)
    x = x_blnh.astype(jnp.float32)
    swapped = jnp.stack([-x[..., 1::2], x[..., 0::2]], axis=-1).reshape(b, l, n, h)
    return (x * cos + swapped * sin).astype(x_blnh.dtype)


class AxialRoPE(nnx.Module):
    """Learnable log-frequencies (heads, head_dim/4, 2); `__call__(x, pos)` rotates x."""

    def __init__(self, heads: int, head_dim: int, *, param_dtype=jnp.float32):
        self.freqs = nnx.Param(
            jnp.asarray(init_log_freqs(heads, head_dim), param_dtype), **axes(None, None, None)
        )

    def __call__(self, x_blnh: jax.Array, pos_bl2: jax.Array) -> jax.Array:
        return rotate(x_blnh, pos_bl2, self.freqs[...])
