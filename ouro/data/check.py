"""`check_dataset(url)`: verify every shard of a dataset against its index.json.

Index keys, every file present (and none extra), sizes and .npy headers as the index says,
crc32 checksums, and no NaN/Inf in any float field. The first problem raises UserError
naming the dataset, shard file and field; otherwise a summary dict is returned.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ouro.data.source import ShardedSource


def check_dataset(url: str, *, progress: bool = True) -> dict[str, Any]:
    from ouro.data.format import read_index

    index = read_index(url)
    source = ShardedSource(url, fields=tuple(index.fields))  # structure: files, sizes, headers
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(index.shards), desc=f"check {source.url}", unit="shard")
    finite = {}
    for i, shard in enumerate(index.shards):
        source.verify_checksums([i])
        for f in source.fields:
            block = source._read_run(i, f, 0, shard.count)
            source._check_finite(block, i, f, 0)
            if block.dtype.kind == "f":
                finite.setdefault(f, []).append((float(np.min(block)), float(np.max(block))))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    counts = [s.count for s in index.shards]
    return {
        "dataset": source.url, "rows": index.rows, "shards": len(index.shards),
        "rows_per_shard": {"min": min(counts), "max": max(counts)},
        "fields": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in index.fields.items()},
        "bytes": sum(int(d["bytes"]) for s in index.shards for d in s.files.values()),
        "value_range": {f: [min(a for a, _ in r), max(b for _, b in r)] for f, r in finite.items()},
    }
