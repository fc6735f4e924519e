"""Atomic writes: every file ouro writes appears whole or not at all (temp name, then rename).

    with atomic_path("outputs/run/samples.png") as tmp:   # any writer that takes a path
        fig.savefig(tmp)
    write_json(path, obj)   # strict JSON: NaN/Inf become null, never bare NaN
    write_text(path, text); write_bytes(path, data)

The temp file lives in the target's directory (same filesystem, so the rename is atomic)
and carries the pid plus a random suffix, so concurrent writers never share a temp name.
A writer that raises leaves the previous file untouched and no temp file behind.

Object-store URLs (gs://bucket/run/metrics.json) take the same calls: the temp file is
local and is uploaded as one whole object on success (GCS replaces objects atomically: a
reader sees the old object or the new one, never a half-written one).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it onto `path`.

    `suffix` (default: the target's own suffix) keeps writers that infer the format from
    the extension (matplotlib, np.save) working on the temp name.
    """
    from ouro.data.storage import is_url, put_file

    if is_url(path):
        import tempfile

        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        suffix = Path(name).suffix if suffix is None else suffix
        with tempfile.TemporaryDirectory(prefix="ouro-upload-") as d:
            tmp = Path(d) / f"{Path(name).stem}.tmp{suffix}"
            yield tmp
            put_file(tmp, str(path))
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path | str:
    from ouro.data.storage import is_url, put_bytes

    if is_url(path):  # one request, one whole object
        put_bytes(str(path), data)
        return str(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path | str:
    return write_bytes(path, text.encode("utf-8"))


def strict(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats -> None (strict readers reject bare NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / jax scalars
        return strict(obj.item())
    return obj


def write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2, sort_keys: bool = True) -> Path | str:
    """Strict JSON (allow_nan=False after mapping NaN/Inf to null), written atomically."""
    text = json.dumps(strict(obj), indent=indent, sort_keys=sort_keys, default=str, allow_nan=False)
    return write_text(path, text + "\n")
