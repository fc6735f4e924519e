"""Fixed 2-D sine-cosine position embeddings (MAE / DiT `get_2d_sincos_pos_embed`): half of
the width encodes the row, half the column; each half is [sin, cos] of position x
1/10000^(k/(D/4)). Not a parameter: recomputed from (h, w), so any resolution works."""

from __future__ import annotations

import numpy as np


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    ang = pos.reshape(-1)[:, None] * omega[None, :]  # (L, dim/2)
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)


def sincos_2d(h: int, w: int, dim: int) -> np.ndarray:
    """(h*w, dim) float32, tokens row-major (as ouro.nn.embed.patchify orders them)."""
    if dim % 4:
        raise ValueError(f"sincos_2d: dim must be a multiple of 4, got {dim}")
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return np.concatenate([_sincos_1d(dim // 2, yy), _sincos_1d(dim // 2, xx)], axis=1).astype(np.float32)
