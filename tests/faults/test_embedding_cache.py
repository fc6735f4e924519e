"""The embedding cache never returns a wrong vector: bit-rot in one stored vector is
recomputed, a damaged database file is named, moved aside and rebuilt."""

import importlib
import sqlite3
import types

import numpy as np
import pytest

embed_mod = importlib.import_module("ouro.text.embed")

pytestmark = pytest.mark.faults
TEXTS = [f"caption {i}" for i in range(40)]


class FakeEncoder:
    """Deterministic unit vectors per text; counts what it had to compute."""
    weights_id = "fake-weights"

    def __init__(self):
        self.computed = 0

    def embed(self, texts, **kw):
        self.computed += len(texts)
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=640) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def cached(tmp_path, monkeypatch):
    enc = FakeEncoder()
    monkeypatch.setattr(embed_mod, "get_encoder", lambda *a, **k: enc)
    run = lambda: embed_mod.embed(TEXTS, cache_dir=tmp_path, progress=False)  # noqa: E731
    truth = run()
    assert enc.computed == len(TEXTS)
    return types.SimpleNamespace(run=run, truth=truth, enc=enc, db=tmp_path / "embeddings.sqlite", dir=tmp_path)


def test_bit_rot_in_one_vector_is_recomputed_not_returned(cached, capfd):
    db = sqlite3.connect(cached.db)
    key, blob = db.execute("SELECT key, vec FROM vectors LIMIT 1").fetchone()
    rotten = bytearray(blob)
    rotten[101] ^= 0x04  # one flipped bit: still finite, norm still ~1
    with db:
        db.execute("UPDATE vectors SET vec = ? WHERE key = ?", (bytes(rotten), key))
    db.close()
    before = cached.enc.computed
    np.testing.assert_array_equal(cached.run(), cached.truth)
    assert cached.enc.computed == before + 1  # exactly the damaged entry
    assert "failed their checksum" in capfd.readouterr().err
    assert cached.run() is not None and cached.enc.computed == before + 1  # repaired in place


def _garbage_header(path):
    data = bytearray(path.read_bytes())
    data[:16] = b"garbage garbage!"
    path.write_bytes(bytes(data))


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _garble_pages(path):
    data = bytearray(path.read_bytes())
    assert len(data) > 8 * 4096
    data[2 * 4096: 6 * 4096] = np.random.default_rng(1).integers(0, 256, 4 * 4096, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage_header, _truncate, _garble_pages])
def test_damaged_database_is_named_moved_aside_and_rebuilt(cached, capfd, damage):
    damage(cached.db)
    np.testing.assert_array_equal(cached.run(), cached.truth)  # never a wrong vector
    err = capfd.readouterr().err
    assert f"embedding cache {cached.db} is corrupt" in err
    assert len(list(cached.dir.glob("embeddings.sqlite.corrupt-*"))) == 1
    before = cached.enc.computed
    np.testing.assert_array_equal(cached.run(), cached.truth)  # the rebuilt cache serves it
    assert cached.enc.computed == before
