"""Paths that may be URLs: local directories and any fsspec URL (gs://, s3://, memory://).

Never pathlib on a URL (it folds `gs://b/x` into `gs:/b/x`): URLs are joined as strings and
opened through fsspec; local paths stay plain paths so NumPy can memory-map them.
gs:// needs gcsfs (in the lock); it honours STORAGE_EMULATOR_HOST (the tests' emulator).
"""

from __future__ import annotations

import os
from typing import Any


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def join(base: str | os.PathLike, *parts: str) -> str:
    base = str(base)
    if is_url(base):
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base.removeprefix("file://"), *parts)


def filesystem(path: str | os.PathLike) -> Any:
    """The fsspec filesystem for a URL (gcsfs for gs://); None for a local path."""
    if not is_url(path):
        return None
    import fsspec

    protocol = str(path).split("://", 1)[0]
    return fsspec.filesystem(protocol)


def exists(path: str) -> bool:
    fs = filesystem(path)
    return os.path.exists(path) if fs is None else fs.exists(path)


def size(path: str) -> int:
    fs = filesystem(path)
    return os.path.getsize(path) if fs is None else int(fs.size(path))


def read_bytes(path: str, start: int | None = None, end: int | None = None) -> bytes:
    """The whole file, or bytes [start, end) (one ranged request on object stores)."""
    fs = filesystem(path)
    if fs is not None:
        return fs.cat_file(path, start=start, end=end)
    with open(path, "rb") as f:
        if start:
            f.seek(start)
        return f.read() if end is None else f.read(end - (start or 0))


def read_ranges(paths: list[str], starts: list[int], ends: list[int]) -> list[bytes]:
    """Many byte ranges at once: gcsfs issues them concurrently (one event loop)."""
    if not paths:
        return []
    fs = filesystem(paths[0])
    if fs is None:
        return [read_bytes(p, s, e) for p, s, e in zip(paths, starts, ends)]
    return fs.cat_ranges(paths, starts, ends)


def listdir(path: str) -> list[str]:
    """Names (not paths) of the entries of a directory."""
    fs = filesystem(path)
    if fs is None:
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    try:
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(path, detail=False))
    except FileNotFoundError:
        return []
