"""Pack tokenised texts into fixed-shape batches for the encoder (host-side NumPy).

Short texts (<= ROW_LEN tokens) are packed back to back into rows of ROW_LEN tokens by
first-fit decreasing, each text a segment (ids 1, 2, ...; 0 = padding) that the model
keeps separate (block-diagonal causal attention, positions restarting at 0). ImageNet
names average ~6 tokens, so packing removes the padding that bucketing leaves (~1.5x
the real tokens) and every short-text batch has one shape: one compilation.
Longer texts get a row each, right-padded to a bucket length (one compilation per bucket).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Iterator, Sequence

import numpy as np

ROW_LEN = 128  # tokens per packed row; attention cost per token grows with it, MLP does not
BUCKETS = (192, 256, 384, 512, 768, 1024, 1536, 2048, 4096, 8192, 16384, 32768)


@dataclasses.dataclass
class Batch:
    tokens: np.ndarray  # (R, T) int32
    mask: np.ndarray  # (R, T) bool, real tokens
    segments: np.ndarray  # (R, T) int32, 1.. per text in the row, 0 = padding
    pool: np.ndarray  # (R, T) bool, tokens averaged into the embedding
    slots: list[tuple[int, int, int]]  # (text index, row, segment - 1)
    max_segments: int  # static size of the per-row segment axis


def bucket_length(n: int) -> int:
    return next((b for b in BUCKETS if b >= n), n)


def _rows_first_fit(lengths: dict[int, int], row_len: int) -> list[list[int]]:
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(lengths, key=lambda i: -lengths[i]):
        n = lengths[i]
        r = next((r for r, f in enumerate(free) if f >= n), None)
        if r is None:
            rows.append([])
            free.append(row_len)
            r = len(rows) - 1
        rows[r].append(i)
        free[r] -= n
    return rows


def _batch(ids, rows: list[list[int]], n_rows: int, length: int, max_segments: int, include_bos: bool, pad_id: int) -> Batch:
    tokens = np.full((n_rows, length), pad_id, np.int32)
    mask = np.zeros((n_rows, length), bool)
    segments = np.zeros((n_rows, length), np.int32)
    pool = np.zeros((n_rows, length), bool)
    slots = []
    for r, members in enumerate(rows):
        start = 0
        for s, i in enumerate(members):
            n = len(ids[i])
            tokens[r, start : start + n] = ids[i]
            mask[r, start : start + n] = True
            segments[r, start : start + n] = s + 1
            pool[r, start + (0 if include_bos else 1) : start + n] = True  # ids start with BOS
            slots.append((i, r, s))
            start += n
    return Batch(tokens, mask, segments, pool, slots, max_segments)


def pack(ids: Sequence[Sequence[int]], *, rows_per_batch: int, include_bos: bool, pad_id: int = 0,
         row_len: int = ROW_LEN) -> Iterator[Batch]:
    """Yield batches covering every text once; `ids[i]` must start with BOS and be >= 2 long."""
    short = {i: len(t) for i, t in enumerate(ids) if len(t) <= row_len}
    rows = _rows_first_fit(short, row_len)
    if 0 < len(rows) < rows_per_batch:
        # Few texts: a power-of-two row count (at most log2(rows_per_batch) extra shapes)
        # instead of computing a mostly empty full batch.
        rows_per_batch = 1 << (len(rows) - 1).bit_length()
    for start in range(0, len(rows), rows_per_batch):
        yield _batch(ids, rows[start : start + rows_per_batch], rows_per_batch, row_len, row_len // 2, include_bos, pad_id)
    by_bucket: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(ids):
        if len(t) > row_len:
            by_bucket[bucket_length(len(t))].append(i)
    for length, members in sorted(by_bucket.items()):
        per_batch = max(1, rows_per_batch * row_len // length)  # about the same tokens per call
        for start in range(0, len(members), per_batch):
            chunk = [[i] for i in members[start : start + per_batch]]
            yield _batch(ids, chunk, per_batch, length, 1, include_bos, pad_id)
