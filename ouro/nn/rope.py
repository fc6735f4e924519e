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


def cos_sin(pos_bl2: jax.Array, log_freqs_nj2: jax.Array) -> tuple[jax.Array, jax.Array]:
    """cos and sin of the rotation angles, each (B, L, N, H/2) float32; B is pos's own batch
    (1 when every sample shares the positions, so the transcendentals are not repeated per sample).

    Pair p = (2p, 2p+1) of head n turns by pos[p % 2] * freq[n, p // 2, p % 2].
    """
    b, l, _ = pos_bl2.shape
    n, j, _ = log_freqs_nj2.shape
    freqs_nj2 = jnp.exp(log_freqs_nj2.astype(jnp.float32))
    angles_blnp = (pos_bl2.astype(jnp.float32)[:, :, None, None, :] * freqs_nj2).reshape(b, l, n, 2 * j)
    return jnp.cos(angles_blnp), jnp.sin(angles_blnp)


def _turn(x: jax.Array, cos_blnp: jax.Array, sin_blnp: jax.Array) -> jax.Array:
    """(x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin) per adjacent pair of x (B, L, ..., N, H),
    in float32; axes between L and N share the rotation. A complex multiply: no swapped copy of x."""
    h = x.shape[-1]
    extra = (1,) * (x.ndim - 4)
    cos = cos_blnp.reshape(cos_blnp.shape[:2] + extra + cos_blnp.shape[2:])
    sin = sin_blnp.reshape(sin_blnp.shape[:2] + extra + sin_blnp.shape[2:])
    pairs = x.astype(jnp.float32).reshape(x.shape[:-1] + (h // 2, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    return jnp.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], axis=-1).reshape(x.shape)


@jax.custom_vjp
def rotate(x: jax.Array, pos_bl2: jax.Array, log_freqs_nj2: jax.Array) -> jax.Array:
    """Rotate x (B, L, ..., N, H) by angles pos * exp(log_freqs); pos (B or 1, L, 2).

    Axes between L and N (q and k stacked) share one rotation. The backward pass is written
    out (below) rather than derived, because the derived one is slow where it does not need to
    be: it recomputes cos/sin per element of x and reduces the frequencies' gradient in
    XLA:CPU's slowest form (measured on the cmp-tiny attention: 9.9 -> 5.7 ms fwd+bwd).
    """
    return _rotate_fwd(x, pos_bl2, log_freqs_nj2)[0]


def _rotate_fwd(x, pos_bl2, log_freqs_nj2):
    cos, sin = cos_sin(pos_bl2, log_freqs_nj2)
    out = _turn(x, cos, sin).astype(x.dtype)
    return out, (out, cos, sin, pos_bl2, log_freqs_nj2)


def _rotate_bwd(res, d_out):
    out, cos, sin, pos_bl2, log_freqs_nj2 = res
    d_x = _turn(d_out, cos, -sin).astype(d_out.dtype)  # the inverse rotation
    # d out / d angle per pair is (-out1, out0): the angle's gradient needs out, not x
    h = out.shape[-1]
    o = out.astype(jnp.float32).reshape(out.shape[:-1] + (h // 2, 2))
    d = d_out.astype(jnp.float32).reshape(o.shape)
    d_angle = d[..., 1] * o[..., 0] - d[..., 0] * o[..., 1]  # (B, L, ..., N, H/2)
    d_angle = d_angle.sum(axis=tuple(range(2, d_angle.ndim - 2)))  # the shared axes
    if pos_bl2.shape[0] == 1 and d_angle.shape[0] != 1:
        d_angle = d_angle.sum(axis=0, keepdims=True)  # positions shared by the batch
    n, j, _ = log_freqs_nj2.shape
    d_angle = d_angle.reshape(d_angle.shape[:3] + (j, 2))
    pos = pos_bl2.astype(jnp.float32)
    d_log_freqs = jnp.exp(log_freqs_nj2.astype(jnp.float32)) * jnp.einsum("blnja,bla->nja", d_angle, pos)
    # positions are data, never trained: their cotangent is zero
    return d_x, jnp.zeros_like(pos_bl2), d_log_freqs.astype(log_freqs_nj2.dtype)


rotate.defvjp(_rotate_fwd, _rotate_bwd)


class AxialRoPE(nnx.Module):
    """Learnable log-frequencies (heads, head_dim/4, 2); `__call__(x, pos)` rotates x
    (B, L, ..., N, H): stack tensors at the same positions to rotate them at once."""

    def __init__(self, heads: int, head_dim: int, *, param_dtype=jnp.float32):
        self.freqs = nnx.Param(
            jnp.asarray(init_log_freqs(heads, head_dim), param_dtype), **axes(None, None, None)
        )

    def __call__(self, x_blnh: jax.Array, pos_bl2: jax.Array) -> jax.Array:
        return rotate(x_blnh, pos_bl2, self.freqs[...])
