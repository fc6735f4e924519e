"""Training on a bucketed dataset (ouro/data/buckets.py): single-bucket global batches.

Batch order, a pure function of (seed, step) like BatchOrder's (so a resumed run sees the
batches an uninterrupted one would, and every host picks the same bucket without talking to
the others): each bucket b with n_b >= global_batch rows has its own BatchOrder (its epoch
permutations, groups and host slicing: the global batch of a step is the same on any host
count); an epoch is sum_b floor(n_b / B) steps, and which bucket each step of epoch e reads is
a permutation, drawn from (seed, e), of the multiset {b repeated floor(n_b / B) times}. So
buckets are drawn in proportion to their sizes, exactly within every epoch, and the k-th step
of bucket b in epoch e is global batch e * floor(n_b / B) + k of b's own order. A bucket's
remainder (n_b mod B rows) is left out of that epoch, different rows each epoch (b's
permutation changes); a bucket with fewer rows than one global batch is never trained on
(the run says so). `data.holdout` rows are the last rows of the bucket with the most rows,
the one the run's preview grids sample at.

Global row numbers concatenate the buckets in index order (BucketedIndex.offsets), so the
Loader of ouro/data/pipeline.py, its Grain iterator and its checkpointed position work as
they are; BucketedSource sends each batch's rows to its bucket's ShardedSource.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ouro.data.buckets import BucketedIndex, read_buckets
from ouro.data.pipeline import BatchOrder, Loader
from ouro.errors import UserError


@dataclasses.dataclass(frozen=True)
class BucketOrder:
    sizes: tuple[int, ...]  # rows of each bucket that may be trained on
    offsets: tuple[int, ...]  # first global row of each bucket
    global_batch: int
    seed: int = 0
    groups: int = 1
    labels: tuple[str, ...] = ()  # bucket names, for messages and the checkpoint's data state

    def __post_init__(self):
        orders = {b: BatchOrder(n, self.global_batch, seed=self.seed, groups=self.groups)
                  for b, n in enumerate(self.sizes) if n - n % self.groups >= self.global_batch}
        if not orders:
            raise UserError(f"batch_size={self.global_batch}: no aspect bucket has that many rows "
                            f"({dict(zip(self.labels, self.sizes))}); lower batch_size")
        object.__setattr__(self, "orders", orders)
        object.__setattr__(self, "_schedules", {})

    # what Loader reads from an order
    @property
    def rows(self) -> int:
        return int(sum(self.sizes))

    @property
    def steps_per_epoch(self) -> int:
        return sum(o.steps_per_epoch for o in self.orders.values())

    @property
    def epoch_rows(self) -> int:
        return self.steps_per_epoch * self.global_batch

    @property
    def skipped(self) -> list[str]:
        """Buckets with fewer rows than one global batch: never trained on."""
        return [self.labels[b] if self.labels else str(b) for b in range(len(self.sizes)) if b not in self.orders]

    def signature(self) -> dict[str, Any]:
        return {"buckets": ",".join(f"{label}:{n}" for label, n in zip(self.labels, self.sizes))}

    def schedule(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(bucket of each step of the epoch, how many steps of that bucket came before it)."""
        got = self._schedules.get(epoch)
        if got is None:
            ids = np.concatenate([np.full(o.steps_per_epoch, b) for b, o in self.orders.items()])
            seq = np.random.default_rng([self.seed, epoch, len(self.sizes)]).permutation(ids)
            rank = np.zeros(len(seq), np.int64)
            for b in self.orders:
                rank[seq == b] = np.arange(int((seq == b).sum()))
            for old in [e for e in list(self._schedules) if e < epoch - 1]:  # bounded memory
                self._schedules.pop(old, None)
            got = self._schedules[epoch] = (seq, rank)
        return got

    def bucket_step(self, step: int) -> tuple[int, int]:
        """(bucket, step number in that bucket's own BatchOrder) of global step `step`."""
        if step < 0:
            raise ValueError(f"step {step} < 0")
        epoch, i = divmod(step, self.steps_per_epoch)
        seq, rank = self.schedule(epoch)
        b = int(seq[i])
        return b, epoch * self.orders[b].steps_per_epoch + int(rank[i])

    def global_rows(self, step: int) -> np.ndarray:
        b, k = self.bucket_step(step)
        return self.orders[b].global_rows(k) + self.offsets[b]

    def host_rows(self, step: int, process_index: int, process_count: int) -> np.ndarray:
        b, k = self.bucket_step(step)
        return self.orders[b].host_rows(k, process_index, process_count) + self.offsets[b]

    def host_ranges(self, process_index: int, process_count: int) -> dict[int, tuple[int, int]]:
        """{bucket: [lo, hi) of its own rows} host p can ever read (what a RAM preload holds)."""
        return {b: o.host_range(process_index, process_count) for b, o in self.orders.items()}


class BucketedSource:
    """One ShardedSource per bucket behind global row numbers (a batch is from one bucket)."""

    def __init__(self, index: BucketedIndex, fields: tuple[str, ...]):
        from ouro.data.source import ShardedSource

        self.index, self.url, self.fields = index, index.url, fields
        self.sources = [ShardedSource(index.bucket_url(i), fields) for i in range(len(index.buckets))]
        self.offsets = index.offsets
        self.rows = int(self.offsets[-1])

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        rows = np.asarray(rows, np.int64)
        b = int(np.searchsorted(self.offsets, rows[0], side="right") - 1)
        if rows[-1] >= self.offsets[b + 1]:
            raise ValueError(f"rows {rows[0]}..{rows[-1]} span two buckets")  # BucketOrder never asks
        return self.sources[b].read(rows - self.offsets[b])


def bucketed_loader(url: str, global_batch: int, *, fields: tuple[str, ...], seed: int = 0, groups: int = 1,
                    mode: str = "auto", workers: int = 4, prefetch: int = 4,
                    channels: int | None = None, embed_dim: int | None = None,
                    process_index: int = 0, process_count: int = 1, progress: bool = False,
                    holdout: int = 0, transform: Any = None) -> Loader:
    """The Loader of a bucketed dataset (see the module doc); arguments as sharded_loader's."""
    from ouro.data.sharded import PRELOAD_FRACTION, available_ram, check_shapes

    index = read_buckets(url)
    source = BucketedSource(index, fields)
    for b, s in zip(index.buckets, source.sources):
        check_shapes(s, latent_shape=None if channels is None else (*b.latents, channels), embed_dim=embed_dim)
    main = index.most_rows()
    sizes = [k.rows for k in index.buckets]
    if not 0 <= holdout < sizes[main]:
        raise UserError(f"data.holdout={holdout}: must leave rows to train on in bucket {index.buckets[main].name} "
                        f"(the largest of dataset {url}, {sizes[main]} rows; held-out rows come from it)")
    sizes[main] -= holdout
    order = BucketOrder(tuple(sizes), tuple(int(o) for o in index.offsets[:-1]), global_batch, seed=seed,
                        groups=groups, labels=tuple(k.label for k in index.buckets))
    ranges = order.host_ranges(process_index, process_count)
    share = sum((hi - lo) * sum(source.sources[b].index.fields[f].row_bytes for f in fields)
                for b, (lo, hi) in ranges.items())
    if mode not in ("auto", "preload", "stream"):
        raise UserError(f"data.mode={mode!r}: expected 'auto', 'preload' or 'stream'")
    if mode == "preload" or (mode == "auto" and share < PRELOAD_FRACTION * available_ram()):
        for b, (lo, hi) in ranges.items():
            source.sources[b].preload(lo, hi, progress=progress)
        workers = 0  # gathers from RAM: threads would only contend for the GIL
    return Loader(source, order, process_index=process_index, process_count=process_count,
                  transform=transform, workers=workers, prefetch=prefetch)
