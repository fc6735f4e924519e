"""`embed(texts)`: the public entry point, with an on-disk cache of embeddings.

Cache: one SQLite file `<cache>/embeddings.sqlite` (transactions make concurrent or
interrupted writers safe), keyed by sha256 of (weights id, pooling, max_tokens, text),
so changing the weights or the pooling never returns stale vectors. The encoder is
loaded once per process and kept (loading costs ~2 s from the converted cache).
"""

from __future__ import annotations

import hashlib
import sqlite3
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
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), timeout=60)
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")

    def get(self, keys: list[str]) -> dict[str, np.ndarray]:
        found = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of bound parameters
            chunk = keys[start : start + 500]
            rows = self.db.execute(f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, blob in rows:
                vec = np.frombuffer(blob, np.float32)
                if vec.shape == (DIM,):
                    found[key] = vec
        return found

    def put(self, items: dict[str, np.ndarray]) -> None:
        with self.db:  # one transaction: all or nothing
            self.db.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?)",
                [(k, np.ascontiguousarray(v, np.float32).tobytes()) for k, v in items.items()],
            )

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
