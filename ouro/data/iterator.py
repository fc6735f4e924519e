"""A resumable, per-host-sharded epoch iterator over in-memory arrays.

Every epoch is a fresh permutation drawn from (seed, epoch), so the whole order is a pure
function of the seed: the iterator's state is just (epoch, batch index) and a resumed run
sees exactly the batches an uninterrupted run would have seen. On a pod every host builds
the same permutation and takes its own contiguous slice of each *global* batch, so hosts
never exchange data and the global batch is the same whatever the host count.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np


class EpochIterator:
    """Yields dicts of numpy arrays with a local batch of `global_batch // process_count` rows."""

    def __init__(self, arrays: Mapping[str, np.ndarray], global_batch: int, *, seed: int = 0,
                 process_index: int = 0, process_count: int = 1):
        sizes = {k: len(v) for k, v in arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"dataset arrays have different lengths: {sizes}")
        self.size = next(iter(sizes.values()))
        if global_batch <= 0 or global_batch > self.size:
            raise ValueError(f"batch_size={global_batch}: must be in 1..{self.size} (dataset size)")
        if global_batch % process_count:
            raise ValueError(f"batch_size={global_batch} is not divisible by the {process_count} processes")
        self.arrays = dict(arrays)
        self.global_batch = global_batch
        self.local_batch = global_batch // process_count
        self.seed, self.process_index = seed, process_index
        self.steps_per_epoch = self.size // global_batch  # the ragged tail is dropped
        self.epoch, self.index = 0, 0

    # -- state ------------------------------------------------------------------------
    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed}

    def restore(self, state: Mapping[str, int]) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"data iterator state has seed {state['seed']}, this run uses {self.seed}")
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    # -- iteration --------------------------------------------------------------------
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        if self.index >= self.steps_per_epoch:
            self.epoch, self.index = self.epoch + 1, 0
        perm = self._permutation(self.epoch)
        start = self.index * self.global_batch
        # sort the GLOBAL batch (faster gathers), then slice: row order, and so every per-sample
        # random draw of the step, is the same whatever the number of hosts
        rows = np.sort(perm[start:start + self.global_batch])
        rows = rows[self.process_index * self.local_batch:(self.process_index + 1) * self.local_batch]
        self.index += 1
        return {k: v[rows] for k, v in self.arrays.items()}
