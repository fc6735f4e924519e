"""The input pipeline: which rows make each global batch, and a Grain loader that reads them.

Batch order (a pure function of seed, epoch and step, so a resumed run sees exactly the
batches an uninterrupted one would): the dataset's rows are cut into `groups` equal
contiguous row groups; each epoch every group gets its own permutation drawn from
(seed, epoch, group), and global batch i is the concatenation over groups of each group's
i-th sub-batch (sorted, for faster gathers). Host p of P takes the p-th contiguous slice of
that global batch, so the global batch (rows and order, hence every per-sample random
draw of the step) is the same whatever the number of hosts. With groups = G and P dividing
G, host p only ever touches groups [p*G/P, (p+1)*G/P): the row range it RAM-preloads is
its 1/P share. groups = 1 is one global shuffle (and the order of earlier ouro versions).

The loader is a Grain MapDataset over step numbers (`MapDataset.range(...).map(read
batch)`), made an IterDataset with ReadOptions(num_threads, prefetch): reading runs ahead
in threads, and Grain's iterator state (`next_index` = batches consumed) is the checkpointed
position. We do our own index math instead of Grain's IndexSampler/ShardByJaxProcess
because those shard the *record* space per process, which changes the global batch with the
host count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ouro.errors import UserError

ENDLESS = 2**62  # Grain needs a length; the loop decides when to stop


@dataclasses.dataclass(frozen=True)
class BatchOrder:
    rows: int  # rows in the dataset
    global_batch: int
    seed: int = 0
    groups: int = 1

    def __post_init__(self):
        if self.groups < 1 or self.global_batch % self.groups:
            raise UserError(f"data.groups={self.groups} must be >= 1 and divide batch_size={self.global_batch}")
        if not 0 < self.global_batch <= self.rows - self.rows % self.groups:
            raise UserError(f"batch_size={self.global_batch}: must be in 1..{self.rows} (dataset size)")
        object.__setattr__(self, "_perms", {})  # (epoch, group) -> permutation; two epochs kept

    @property
    def group_rows(self) -> int:
        return self.rows // self.groups  # the last rows % groups rows are never used

    @property
    def sub_batch(self) -> int:
        return self.global_batch // self.groups

    @property
    def steps_per_epoch(self) -> int:
        return self.group_rows // self.sub_batch  # each group's ragged tail is dropped

    @property
    def epoch_rows(self) -> int:
        return self.group_rows * self.groups  # rows an epoch visits

    def signature(self) -> dict[str, Any]:
        return {}  # BucketOrder (ouro/data/bucket_loader.py) adds its buckets

    def permutation(self, epoch: int, group: int) -> np.ndarray:
        """Rows of `group` in epoch order (cached: 11M rows cost ~0.1 s to permute)."""
        perm = self._perms.get((epoch, group))
        if perm is None:
            key = [self.seed, epoch] if self.groups == 1 else [self.seed, epoch, group]
            perm = np.random.default_rng(key).permutation(self.group_rows) + group * self.group_rows
            for old in [k for k in list(self._perms) if k[0] < epoch - 1]:  # bounded memory
                self._perms.pop(old, None)
            self._perms[(epoch, group)] = perm
        return perm

    def global_rows(self, step: int) -> np.ndarray:
        """(global_batch,) row numbers of global batch `step` (counted from the start)."""
        epoch, i = divmod(step, self.steps_per_epoch)
        sb = self.sub_batch
        return np.concatenate([np.sort(self.permutation(epoch, g)[i * sb:(i + 1) * sb])
                               for g in range(self.groups)])

    def host_rows(self, step: int, process_index: int, process_count: int) -> np.ndarray:
        local = self.global_batch // process_count
        if step < 0:
            raise ValueError(f"step {step} < 0")
        if process_count == 1:
            return self.global_rows(step)
        epoch, i = divmod(step, self.steps_per_epoch)
        sb = self.sub_batch
        lo, hi = process_index * local, (process_index + 1) * local
        parts = [np.sort(self.permutation(epoch, g)[i * sb:(i + 1) * sb])
                 for g in range(lo // sb, (hi - 1) // sb + 1)]  # only the groups this slice spans
        first = (lo // sb) * sb
        return np.concatenate(parts)[lo - first:hi - first]

    def host_range(self, process_index: int, process_count: int) -> tuple[int, int]:
        """[lo, hi): every row host p can ever read (what a RAM preload must hold)."""
        local, sb = self.global_batch // process_count, self.sub_batch
        g0, g1 = process_index * local // sb, ((process_index + 1) * local - 1) // sb + 1
        return g0 * self.group_rows, g1 * self.group_rows


class ArraySource:
    """In-memory arrays as a source (the digits)."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        sizes = {k: len(v) for k, v in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"dataset arrays have different lengths: {sizes}")
        self.arrays, self.rows = dict(arrays), next(iter(sizes.values()))

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[rows] for k, v in self.arrays.items()}


class Loader:
    """Local batches of global_batch / process_count rows; `state()`/`restore()` for checkpoints.

    `source` has `.read(sorted rows) -> dict` (ArraySource, ShardedSource); `transform` maps
    that dict to the training batch (e.g. latents -> x); `workers` reader threads (0: read in
    the calling thread) and `prefetch` batches read ahead.
    """

    def __init__(self, source: Any, order: BatchOrder, *, process_index: int = 0,
                 process_count: int = 1, transform: Callable[[dict], dict] | None = None,
                 workers: int = 0, prefetch: int = 2):
        if order.global_batch % process_count:
            raise UserError(f"batch_size={order.global_batch} is not divisible by the "
                            f"{process_count} processes")
        self.source, self.order = source, order
        self.process_index, self.process_count = process_index, process_count
        self.local_batch = order.global_batch // process_count
        self.steps_per_epoch = order.steps_per_epoch
        self.size = order.epoch_rows  # rows an epoch visits
        self.seed = order.seed
        self._transform = transform or (lambda b: b)
        self._workers, self._prefetch = workers, prefetch
        self._start = 0
        self._it = None

    def batch(self, step: int) -> dict[str, np.ndarray]:
        rows = self.order.host_rows(step, self.process_index, self.process_count)
        return self._transform(self.source.read(rows))

    # -- state ------------------------------------------------------------------------------
    @property
    def position(self) -> int:
        """Batches consumed so far (= the next step's batch number)."""
        return self._start if self._it is None else int(self._it.get_state()["next_index"])

    def state(self) -> dict[str, Any]:
        step = self.position
        return {"step": step, "epoch": step // self.steps_per_epoch, "index": step % self.steps_per_epoch,
                "seed": self.seed, "groups": self.order.groups, "global_batch": self.order.global_batch,
                "rows": self.order.rows, **self.order.signature()}

    def restore(self, state: Mapping[str, Any]) -> None:
        for key, mine in (("seed", self.seed), ("groups", self.order.groups),
                          ("global_batch", self.order.global_batch), ("rows", self.order.rows),
                          *self.order.signature().items()):
            if key in state and type(mine)(state[key]) != mine:
                raise UserError(f"the checkpoint's data position was saved with {key}={state[key]}, "
                                f"this run has {key}={mine}: resuming would not see the same batches")
        # checkpoints of earlier versions saved only (epoch, index)
        step = state["step"] if "step" in state else state["epoch"] * self.steps_per_epoch + state["index"]
        self._start, self._it = int(step), None

    # -- iteration --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self._it is None:
            import grain

            ds = grain.MapDataset.range(0, ENDLESS).map(self.batch)
            opts = grain.ReadOptions(num_threads=self._workers, prefetch_buffer_size=self._prefetch)
            self._it = iter(ds.to_iter_dataset(opts))
            self._it.set_state({"next_index": self._start})
        return next(self._it)
