"""`embed(texts)`: the public entry point, with an on-disk cache of embeddings.

Cache: one SQLite file `<cache>/embeddings.sqlite` (transactions make concurrent or
interrupted writers safe), keyed by sha256 of (weights id, pooling, max_tokens, text),
so changing the weights or the pooling never returns stale vectors; each vector carries a
CRC32 and a damaged one is recomputed, a damaged file moved aside and rebuilt. The encoder is
loaded once per process and kept (loading costs ~2 s from the converted cache).
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import time
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ouro.text.encoder import MAX_TOKENS, POOLINGS, TextEncoder
from ouro.text.weights import cache_root

_ENCODERS: dict[str, TextEncoder] = {}
DIM = 640


def enable_compilation_cache(cache_dir=None) -> None:
    """Persist XLA executables under <cache>/jax_compilation unless the user chose a directory.

    Each batch shape costs a few seconds of compilation on CPU; persisted, a later
    process loads it instead (process-wide JAX setting, hence only when unset).
    """
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_root(cache_dir) / "jax_compilation"))


def get_encoder(cache_dir=None, *, progress: bool = True) -> TextEncoder:
    key = str(cache_root(cache_dir).resolve())
    if key not in _ENCODERS:
        enable_compilation_cache(cache_dir)
        _ENCODERS[key] = TextEncoder.from_cache(cache_dir, progress=progress)
    return _ENCODERS[key]


def _key(weights_id: str, pooling: str, max_tokens: int, text: str) -> str:
    return hashlib.sha256(f"{weights_id}\0{pooling}\0{max_tokens}\0{text}".encode("utf-8")).hexdigest()


class EmbeddingCache:
    """SQLite store of embeddings that cannot return a wrong vector.

    Each vector is stored with the CRC32 of its bytes; on read, a vector whose checksum,
    width (640), finiteness or unit norm is off is dropped (counted in `self.bad`) so the
    caller recomputes and overwrites it. A file SQLite cannot read (bad header, truncated,
    garbled pages: `PRAGMA quick_check` on open for files up to 256 MB) is moved aside as
    `<name>.corrupt-<time>`, named in a warning on stderr, and rebuilt empty.
    """

    QUICK_CHECK_MAX = 256 << 20  # quick_check reads the whole file: cheap below this

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.bad = 0
        self.db: sqlite3.Connection | None = None
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self._rebuild(e)

    def _open(self) -> None:
        self.db = sqlite3.connect(str(self.path), timeout=60)
        # v2 table: the first one ("emb") had no checksum; its rows are simply recomputed
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vec BLOB NOT NULL, "
                        "crc INTEGER NOT NULL)")
        if self.path.stat().st_size <= self.QUICK_CHECK_MAX:
            verdict = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {verdict}")

    def _rebuild(self, error: Exception) -> None:
        if self.db is not None:
            self.db.close()
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        self.path.rename(aside)
        for extra in ("-journal", "-wal", "-shm"):  # SQLite side files belong to the old file
            side = self.path.with_name(self.path.name + extra)
            if side.exists():
                side.rename(aside.with_name(aside.name + extra))
        print(f"WARNING: embedding cache {self.path} is corrupt ({error}); moved aside to "
              f"{aside.name} and rebuilt (its embeddings will be recomputed)", file=sys.stderr)
        self._open()

    @staticmethod
    def _valid(blob: bytes, crc: int) -> np.ndarray | None:
        if zlib.crc32(blob) != crc or len(blob) != DIM * 4:
            return None
        vec = np.frombuffer(blob, np.float32)
        if not np.isfinite(vec).all() or abs(float(np.linalg.norm(vec)) - 1.0) > 1e-3:
            return None
        return vec

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found = {}
        try:
            for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
                chunk = keys[start : start + 500]
                rows = self.db.execute(
                    f"SELECT key, vec, crc FROM vectors WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                for key, blob, crc in rows:
                    vec = self._valid(blob, crc)
                    if vec is None:
                        self.bad += 1
                    else:
                        found[key] = vec
        except sqlite3.DatabaseError as e:
            self._rebuild(e)
            return {}
        if self.bad:
            print(f"WARNING: {self.bad} cached embedding(s) in {self.path} failed their checksum "
                  f"or norm check; recomputing them", file=sys.stderr)
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        blobs = [(k, np.ascontiguousarray(v, np.float32).tobytes()) for k, v in items.items()]
        rows = [(k, b, zlib.crc32(b)) for k, b in blobs]
        for attempt in range(2):
            try:
                with self.db:  # one transaction: all or nothing
                    self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
                return
            except sqlite3.DatabaseError as e:
                if attempt:
                    raise
                self._rebuild(e)

    def close(self) -> None:
        self.db.close()


def embed(
    texts: Sequence[str],
    *,
    pooling: str = "mean",
    batch_size: int = 64,
    cache_dir=None,
    progress: bool = True,
    use_cache: bool = True,
) -> np.ndarray:
    """(N, 640) float32 L2-normalised Gemma-3 270M embeddings of `texts`.

    pooling: "mean" = mean of the final-norm hidden states over the text's tokens,
    BOS excluded (BOS's state is the same for every text, so it only adds a shared
    offset); "mean_bos" includes BOS. Texts longer than 512 tokens are truncated (warning).
    Empty strings raise ValueError.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    texts = list(texts)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; choose one of {POOLINGS}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
        if not text:
            raise ValueError(f"texts[{i}] is empty; an empty text has no tokens to pool")
    if not texts:
        return np.zeros((0, DIM), np.float32)
    encoder = get_encoder(cache_dir, progress=progress)
    if not use_cache:
        return encoder.embed(texts, pooling=pooling, batch_size=batch_size, progress=progress)
    cache = EmbeddingCache(cache_root(cache_dir) / "embeddings.sqlite")
    try:
        keys = [_key(encoder.weights_id, pooling, MAX_TOKENS, t) for t in texts]
        found = cache.get(keys)
        todo = sorted({k: t for k, t in zip(keys, texts) if k not in found}.items())
        if todo:
            vecs = encoder.embed([t for _, t in todo], pooling=pooling, batch_size=batch_size, progress=progress)
            new = {k: v for (k, _), v in zip(todo, vecs)}
            cache.put(new)
            found.update(new)
    finally:
        cache.close()
    return np.stack([found[k] for k in keys]).astype(np.float32)
