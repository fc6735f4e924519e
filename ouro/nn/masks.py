"""Boolean attention masks over the concatenation of several modalities' tokens
(mmdit_jax's convention): shape (B, N, N) with N = sum of the modalities' lengths,
mask[b, i, j] = True means query i MAY attend to key j.

Per modality: full or causal (query i sees keys j <= i of the same modality). Between
modalities: joint (every query sees every other modality's keys) or blocked. Key padding
(e.g. text padding, or a whole text dropped for CFG) removes keys. The diagonal is always
allowed, so a padded query still has one key and its softmax row stays finite (its output
is ignored downstream, as padding is)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def structure_mask(lengths: Sequence[int], *, causal: Sequence[bool], cross: bool = True) -> np.ndarray:
    """(N, N) static part of the mask: causal/full blocks on the diagonal, joint or blocked elsewhere."""
    if len(causal) != len(lengths):
        raise ValueError(f"structure_mask: {len(lengths)} modalities but {len(causal)} causal flags")
    n = int(sum(lengths))
    mask = np.full((n, n), bool(cross))
    start = 0
    for length, is_causal in zip(lengths, causal):
        end = start + length
        block = np.tril(np.ones((length, length), bool)) if is_causal else np.ones((length, length), bool)
        mask[start:end, start:end] = block
        start = end
    return mask


def joint_mask(lengths: Sequence[int], *, causal: Sequence[bool], cross: bool = True,
               key_valid: jax.Array | None = None) -> jax.Array:
    """(B, N, N) bool (B = 1 without key_valid). key_valid (B, N): False = padding key."""
    mask = jnp.asarray(structure_mask(lengths, causal=causal, cross=cross))[None]  # (1, N, N)
    if key_valid is not None:
        if key_valid.shape[-1] != mask.shape[-1]:
            raise ValueError(f"joint_mask: key_valid has {key_valid.shape[-1]} keys, modalities have {mask.shape[-1]}")
        mask = mask & key_valid[:, None, :]
    return mask | jnp.eye(mask.shape[-1], dtype=bool)[None]


def key_padding(key_valid_bs: jax.Array | None) -> jax.Array | None:
    """(B, S) bool valid keys -> the (B, 1, 1, S) mask jax.nn.dot_product_attention broadcasts
    over heads and queries (XUT's text padding). Every query must keep one valid key (XUT's
    image keys always are), else its softmax row would be empty."""
    return None if key_valid_bs is None else key_valid_bs[:, None, None, :]
