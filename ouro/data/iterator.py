"""`EpochIterator(arrays, global_batch, ...)`: the resumable loader over in-memory arrays.

Kept for callers of earlier versions; it is the Grain loader of ouro/data/pipeline.py over
an ArraySource with one row group, i.e. one global shuffle per epoch drawn from (seed,
epoch): the same batches as before, the same on any host count.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ouro.data.pipeline import ArraySource, BatchOrder, Loader


def EpochIterator(arrays: Mapping[str, np.ndarray], global_batch: int, *, seed: int = 0,  # noqa: N802
                  process_index: int = 0, process_count: int = 1) -> Loader:
    source = ArraySource(arrays)
    return Loader(source, BatchOrder(source.rows, global_batch, seed=seed), process_index=process_index,
                  process_count=process_count)
