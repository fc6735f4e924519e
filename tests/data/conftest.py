"""A small sharded dataset shared by the data tests: 4 shards of uneven counts, float16."""

import numpy as np
import pytest

from ouro.data import ShardWriter

COUNTS = (10, 7, 9, 6)


def make_dataset(path, counts=COUNTS, shape=(8, 8, 4), width=640, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(counts)
    lat = rng.normal(size=(n, *shape)).astype(np.float16)
    emb = rng.normal(size=(n, width)).astype(np.float32)
    writer = ShardWriter(path, source="test")
    start = 0
    for i, c in enumerate(counts):
        writer.write(f"shard-{i:05d}", {"latents": lat[start:start + c], "embeddings": emb[start:start + c],
                                         "labels": np.arange(start, start + c)})
        start += c
    writer.finish()
    return lat, emb


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("latents")
    lat, emb = make_dataset(path)
    return path, lat, emb


@pytest.fixture
def write_dataset():
    return make_dataset

