"""The sharded format and the Grain loader: round trips, batch order, modes, resume."""

import numpy as np
import pytest

from ouro.data import BatchOrder, ShardedSource, read_index, sharded_loader, write_shards
from ouro.data.pipeline import ArraySource, Loader

from ouro.errors import UserError


def test_write_shards_round_trip_and_index(tmp_path):
    rng = np.random.default_rng(0)
    lat = rng.normal(size=(30, 4, 4, 2)).astype(np.float32)
    emb = rng.normal(size=(30, 640)).astype(np.float32)
    tok = rng.normal(size=(30, 5, 16)).astype(np.float32)
    write_shards(tmp_path, lat, emb, labels=np.arange(30), shard_size=8,
                 extra={"ctx_tokens": tok, "ctx_mask": np.ones((30, 5), bool)})
    index = read_index(str(tmp_path))
    assert [s.count for s in index.shards] == [8, 8, 8, 6]
    assert index.fields["latents"].dtype == "float16" and index.fields["latents"].shape == (4, 4, 2)
    assert set(index.fields) == {"latents", "embeddings", "labels", "ctx_tokens", "ctx_mask"}
    assert all(s.files["latents"]["crc32"].startswith("0x") for s in index.shards)
    src = ShardedSource(str(tmp_path), fields=("latents", "labels", "ctx_tokens"))
    got = src.read(np.array([0, 7, 8, 29]))
    np.testing.assert_array_equal(got["latents"], lat[[0, 7, 8, 29]].astype(np.float16))
    np.testing.assert_array_equal(got["labels"], [0, 7, 8, 29])
    np.testing.assert_array_equal(got["ctx_tokens"], tok[[0, 7, 8, 29]])
    src.verify_checksums(range(4))
    write_shards(tmp_path, lat[:5], emb[:5], shard_size=8)  # a fresh write replaces the dataset
    assert read_index(str(tmp_path)).rows == 5 and not list(tmp_path.glob("shard-00003*"))


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_global_batch_is_the_same_on_any_host_count(groups):
    order = BatchOrder(50, 8, seed=3, groups=groups)
    assert order.steps_per_epoch == (50 // groups) // (8 // groups)
    seen = []
    for step in range(order.steps_per_epoch * 2 + 1):
        whole = order.global_rows(step)
        for hosts in (1, 2, 4, 8):
            parts = [order.host_rows(step, p, hosts) for p in range(hosts)]
            np.testing.assert_array_equal(np.concatenate(parts), whole)
            for p, part in enumerate(parts):
                lo, hi = order.host_range(p, hosts)
                assert lo <= part.min() and part.max() < hi  # never outside what it preloaded
            if hosts == groups:  # hosts == groups: each preloads exactly its 1/P
                assert order.host_range(1, hosts)[1] - order.host_range(1, hosts)[0] == 50 // groups
        if step < order.steps_per_epoch:
            seen.append(whole)
    epoch = np.concatenate(seen)
    assert len(set(epoch)) == len(epoch)  # no row twice within an epoch


def test_one_group_keeps_the_earlier_order():
    # earlier ouro versions: one permutation from (seed, epoch), sorted global batch
    order = BatchOrder(50, 8, seed=1)
    perm = np.random.default_rng([1, 1]).permutation(50)
    np.testing.assert_array_equal(order.global_rows(order.steps_per_epoch + 2), np.sort(perm[16:24]))


def test_preload_and_stream_give_the_same_batches_and_resume(dataset):
    path, lat, emb = dataset
    kw = dict(seed=5, groups=2, latent_shape=(8, 8, 4), embed_dim=640)
    pre = sharded_loader(str(path), 8, mode="preload", **kw)
    stream = sharded_loader(str(path), 8, mode="stream", workers=2, **kw)
    assert pre.source._ram is not None and stream.source._ram is None
    assert pre.steps_per_epoch == 4  # 32 rows, 2 groups of 16, sub-batches of 4
    a = [next(pre) for _ in range(6)]
    b = [next(stream) for _ in range(6)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["x"], y["x"])
        assert x["x"].dtype == np.float16 and x["ctx"].shape == (8, 1, 640)  # cast on device
    rows = pre.order.global_rows(0)
    np.testing.assert_array_equal(a[0]["x"], lat[rows].astype(np.float32))
    np.testing.assert_array_equal(a[0]["ctx"][:, 0], emb[rows])
    state = stream.state()
    assert state["step"] == 6 and state["epoch"] == 1
    resumed = sharded_loader(str(path), 8, mode="stream", workers=2, **kw)
    resumed.restore(state)
    np.testing.assert_array_equal(next(resumed)["x"], next(pre)["x"])
    with pytest.raises(UserError, match="seed=5"):
        sharded_loader(str(path), 8, mode="stream", seed=6, groups=2).restore(state)
    # two hosts: each preloads only its half, and together they make the global batch
    hosts = [sharded_loader(str(path), 8, mode="preload", process_index=p, process_count=2, **kw)
             for p in range(2)]
    assert [len(h.source._ram["latents"]) for h in hosts] == [16, 16]
    whole = sharded_loader(str(path), 8, mode="preload", **kw)
    for _ in range(5):
        np.testing.assert_array_equal(np.concatenate([next(h)["x"] for h in hosts]), next(whole)["x"])


def test_array_loader_resumes_old_state():
    arrays = {"x": np.arange(50)[:, None]}
    it = Loader(ArraySource(arrays), BatchOrder(50, 8, seed=3))
    seq = [next(it)["x"] for _ in range(9)]
    old = Loader(ArraySource(arrays), BatchOrder(50, 8, seed=3))
    old.restore({"epoch": 1, "index": 1, "seed": 3})  # state written by earlier versions
    np.testing.assert_array_equal(next(old)["x"], seq[7])
