"""Per-token text conditioning: Gemma-3's final-norm hidden states of every token of each
text plus a padding mask, for models whose text modality is a token sequence (MMDiT's joint
attention) rather than the pooled vector of `ouro.text.embed`.

    states, mask = embed_tokens(["a handwritten digit seven", "pizza"])
    # states (N, T, 640) float32, zero where padded; mask (N, T) bool, True = a real token

BOS is left out by default (its state is the same for every text, as in `embed`'s "mean"
pooling), so the mean of a row's real states, L2-normalised, is `embed()`'s vector.
Texts are right-padded to the longest one (at most max_tokens): Gemma's attention is causal,
so padding after a text never changes that text's states.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ouro.text.embed import get_encoder


def embed_tokens(texts: Sequence[str], *, max_tokens: int = 64, include_bos: bool = False,
                 batch_size: int = 16, encoder=None, pad_to_max: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(states (N, T, D) float32, mask (N, T) bool) with T = the longest text's token count,
    or T = max_tokens with `pad_to_max` (datasets and prompts of one run share one T, and
    the encoder compiles one width)."""
    if max_tokens < 1:
        raise ValueError(f"embed_tokens: max_tokens must be >= 1, got {max_tokens}")
    enc = encoder or get_encoder()
    start = 0 if include_bos else 1  # tokenize() puts BOS first
    rows = [ids[: start + max_tokens] for ids in enc.tokenize(texts)]
    width = start + max_tokens if pad_to_max else max(len(r) for r in rows)  # includes the BOS slot
    pad = enc.cfg.pad_id
    states = np.zeros((len(rows), width - start, enc.cfg.dim), np.float32)
    mask = np.zeros((len(rows), width - start), bool)
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        tokens = np.full((len(chunk), width), pad, np.int32)
        valid = np.zeros((len(chunk), width), bool)
        for j, r in enumerate(chunk):
            tokens[j, :len(r)], valid[j, :len(r)] = r, True
        hidden = np.asarray(enc._hidden(enc.state, tokens, valid))  # (b, width, D), one compile per width
        states[i:i + len(chunk)] = np.where(valid[:, start:, None], hidden[:, start:], 0.0)
        mask[i:i + len(chunk)] = valid[:, start:]
    return states, mask
