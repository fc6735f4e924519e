"""ouro's GCS emulator speaks what gcsfs, TensorStore and Orbax send: generations > 0 that
only grow, `ifGenerationMatch` (0 = must not exist) on every upload type, ranged reads,
paged listings, and an Orbax checkpoint written and read back through it."""

import fsspec
import numpy as np
import pytest


@pytest.fixture
def fs(gcs_emulator):
    return fsspec.filesystem("gs")


def test_objects_generations_and_preconditions(fs):
    fs.pipe("gs://ouro-test/emu/a.txt", b"hello")
    g1 = int(fs.info("gs://ouro-test/emu/a.txt")["generation"])
    fs.pipe("gs://ouro-test/emu/a.txt", b"hello again")
    g2 = int(fs.info("gs://ouro-test/emu/a.txt")["generation"])
    assert 0 < g1 < g2
    with pytest.raises(FileExistsError):  # multipart upload with ifGenerationMatch=0
        fs.pipe_file("gs://ouro-test/emu/a.txt", b"x", mode="create")
    assert fs.cat("gs://ouro-test/emu/a.txt") == b"hello again"
    big = np.random.default_rng(0).bytes(3 << 20)
    with fs.open("gs://ouro-test/emu/big.bin", "wb", block_size=1 << 20) as f:  # resumable, 3 chunks
        for i in range(0, len(big), 700_000):
            f.write(big[i:i + 700_000])
    assert fs.cat_file("gs://ouro-test/emu/big.bin", start=1_000_001, end=1_000_011) == big[1_000_001:1_000_011]
    fs.mv("gs://ouro-test/emu/a.txt", "gs://ouro-test/emu/b.txt")
    assert sorted(fs.ls("gs://ouro-test/emu")) == ["ouro-test/emu/b.txt", "ouro-test/emu/big.bin"]
    fs.rm("gs://ouro-test/emu", recursive=True)
    assert not fs.exists("gs://ouro-test/emu/b.txt")


def test_listing_pages_and_prefixes(fs, gcs_emulator):
    import requests

    for i in range(7):
        fs.pipe(f"gs://ouro-test/pages/d{i % 3}/f{i}", b"x")
    fs.pipe("gs://ouro-test/pages/top", b"x")
    url = f"{gcs_emulator.url}/storage/v1/b/ouro-test/o"
    seen, token = [], None
    while True:
        r = requests.get(url, params={"prefix": "pages/", "delimiter": "/", "maxResults": 2,
                                      **({"pageToken": token} if token else {})}).json()
        seen += r.get("prefixes", []) + [o["name"] for o in r.get("items", [])]
        token = r.get("nextPageToken")
        if not token:
            break
    assert sorted(seen) == ["pages/d0/", "pages/d1/", "pages/d2/", "pages/top"]
    r = requests.get(url, params={"startOffset": "pages/d1/", "endOffset": "pages/d2/"}).json()
    assert [o["name"] for o in r["items"]] == ["pages/d1/f1", "pages/d1/f4"]
    assert requests.get(f"{gcs_emulator.url}/storage/v1/b/nope/o").status_code == 404


def test_tensorstore_generation_preconditions(gcs_emulator):
    import tensorstore as ts

    kv = ts.KvStore.open({"driver": "gcs", "bucket": "ouro-test", "path": "tskv/"}).result()
    NO_VALUE = b"\x02"  # TensorStore's StorageGeneration::NoValue(): "must not exist" (GCS ifGenerationMatch=0)
    gen = kv.write("k", b"one", if_equal=NO_VALUE).result().generation
    assert gen
    stale = kv.write("k", b"two", if_equal=NO_VALUE).result()  # exists now: refused, not overwritten
    assert not stale.generation and kv.read("k").result().value == b"one"
    gen3 = kv.write("k", b"three", if_equal=gen).result().generation
    assert kv.read("k").result().value == b"three"
    assert kv.read("k", byte_range=slice(1, 3)).result().value == b"hr"
    assert kv.read("k", if_not_equal=gen3).result().state == "unspecified"  # 304: unchanged


def test_orbax_checkpoint_round_trip(gcs_emulator, fs):
    import jax.numpy as jnp
    import orbax.checkpoint as ocp
    from etils import epath

    state = {"w": jnp.arange(600.0).reshape(20, 30), "b": jnp.ones(3, jnp.bfloat16)}
    mgr = ocp.CheckpointManager(epath.Path("gs://ouro-test/orbax"), options=ocp.CheckpointManagerOptions(create=True),
                                item_handlers={"state": ocp.StandardCheckpointHandler()})
    mgr.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    mgr.wait_until_finished()
    assert mgr.all_steps() == [3] and fs.exists("gs://ouro-test/orbax/3/commit_success.txt")
    out = mgr.restore(3, args=ocp.args.Composite(state=ocp.args.StandardRestore(state)))["state"]
    np.testing.assert_array_equal(np.asarray(out["w"]), np.asarray(state["w"]))
    assert out["b"].dtype == jnp.bfloat16
    mgr.close()


def test_safe_step_counts_a_finished_save_not_yet_polled(gcs_emulator, fs):
    """What a lost host's line names as safe: a save that finished on the bucket while the
    loop was stuck (never polled) counts; one whose commit marker is gone does not."""
    import time

    import jax.numpy as jnp

    from ouro.train.checkpoint import Checkpointer

    ck = Checkpointer("gs://ouro-test/safe")
    ck.save(4, {"w": jnp.ones((8, 4))}, {"data": {}})
    while ck.manager.is_saving_in_progress():
        time.sleep(0.05)
    assert ck.confirmed is None and ck.safe_step() == 4
    fs.rm("gs://ouro-test/safe/4/commit_success.txt")
    assert ck.safe_step() is None
    ck.manager.close()
