"""Paths that may be URLs: local directories and any fsspec URL (gs://, s3://, memory://).

Never pathlib on a URL (it folds `gs://b/x` into `gs:/b/x`): URLs are joined as strings and
opened through fsspec; local paths stay plain paths so NumPy can memory-map them.
gs:// needs gcsfs (in the lock); it honours STORAGE_EMULATOR_HOST (an emulator such as
ouro/sim/gcs_emulator.py), with anonymous access there. Writes to object stores replace
whole objects (`put_bytes`, `put_file`): a reader sees the old object or the new one, never
half of one; `if_absent=True` is GCS's ifGenerationMatch=0 (fails if the object exists).
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
    if protocol == "gs" and os.environ.get("STORAGE_EMULATOR_HOST"):
        _emulator_client()
    return fsspec.filesystem(protocol)


def _emulator_client() -> None:
    """gs:// on an emulator: anonymous, and gcsfs's plain JSON-API client.

    gcsfs chooses its class once, when it is imported: unless GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT
    was "false" then, fsspec's gs:// is the zonal/HNS client, whose first upload or listing
    asks the bucket over TLS gRPC whether it is hierarchical. An emulator speaks plain HTTP:
    the handshake fails and gRPC retries with no deadline, so the call never returns.
    papermill imports gcsfs when it is itself imported (`ouro run`; a notebook test earlier
    in the same pytest worker), often before the emulator's variables are set - hence the
    class is fixed here, whoever imported gcsfs first, for every fsspec user (Orbax's epath)."""
    import fsspec

    if "token" not in fsspec.config.conf.get("gs", {}):
        # an emulator takes no credentials; without this gcsfs probes the GCE metadata
        # server first (seconds). Set in fsspec's config so Orbax's epath gets it too.
        fsspec.config.conf.setdefault("gs", {})["token"] = "anon"
    os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")  # for gcsfs imported from now on
    from gcsfs.core import GCSFileSystem

    for protocol in ("gs", "gcs"):  # Orbax's epath asks for "gcs"
        if fsspec.get_filesystem_class(protocol) is not GCSFileSystem:
            fsspec.register_implementation(protocol, GCSFileSystem, clobber=True)


def put_bytes(url: str, data: bytes, *, if_absent: bool = False) -> None:
    """One whole object. if_absent: refuse (FileExistsError) if it exists (ifGenerationMatch=0)."""
    fs = filesystem(url)
    if if_absent:
        fs.pipe_file(url, data, mode="create")
    else:
        fs.pipe_file(url, data)
    fs.invalidate_cache(url)


def put_file(local: str | os.PathLike, url: str) -> None:
    """Upload a local file as one whole object (replaced atomically on GCS)."""
    fs = filesystem(url)
    fs.put_file(str(local), url)
    fs.invalidate_cache(url)


def remove(url: str, *, recursive: bool = False) -> None:
    fs = filesystem(url)
    try:
        fs.rm(url, recursive=recursive)
    except FileNotFoundError:
        pass
    fs.invalidate_cache(url)


def walk_files(url: str) -> dict[str, dict]:
    """{relative path: object info (size, generation, md5Hash...)} for every object under url."""
    fs = filesystem(url)
    fs.invalidate_cache(url)
    root = url.split("://", 1)[1].rstrip("/") + "/"
    try:
        found = fs.find(url, detail=True)
    except FileNotFoundError:
        return {}
    return {name[len(root):]: info for name, info in found.items()
            if name.startswith(root) and info.get("type") != "directory"}


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


def check_reachable(*paths: str | os.PathLike | None) -> None:
    """For each gs:// path: is its bucket there, reachable, and are we allowed in? Raises
    UserError with one line naming the URL (and endpoint) - before anything compiles,
    instead of a retry loop or a TensorStore trace minutes later. Local paths: skipped."""
    import urllib.error
    import urllib.request

    from ouro.errors import UserError

    for path in paths:
        if not path or not str(path).startswith("gs://"):
            continue
        bucket = str(path)[5:].split("/", 1)[0]
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        endpoint = (emulator if "://" in emulator else f"http://{emulator}") if emulator else "https://storage.googleapis.com"
        headers = {}
        token = os.environ.get("GOOGLE_AUTH_TOKEN_FOR_TESTING")
        if not emulator and not token:
            try:
                import google.auth
                import google.auth.transport.requests

                creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_write"])
                creds.refresh(google.auth.transport.requests.Request())
                token = creds.token
            except Exception as e:  # noqa: BLE001 - any failure here means no usable credentials
                raise UserError(f"{path}: no Google Cloud credentials ({type(e).__name__}: "
                                f"{' '.join(str(e).split())[:160]}); run `gcloud auth application-default "
                                f"login` or use a VM service account") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"{endpoint}/storage/v1/b/{bucket}?fields=name", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10):
                pass
        except urllib.error.HTTPError as e:
            why = {404: f"bucket gs://{bucket} does not exist",
                   401: "no credentials were accepted (set up Google Cloud credentials)",
                   403: f"the credentials may not access gs://{bucket}"}.get(e.code, f"HTTP {e.code}")
            raise UserError(f"{path}: {why} (at {endpoint})") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UserError(f"{path}: cannot reach the storage endpoint {endpoint} ({reason})") from None


def local_copy(url: str, *, skip: tuple[str, ...] = ("checkpoints/", "run.lock", "xla-cache/")) -> Any:
    """A local mirror of an object or a tree of objects (run records: loss.csv, metrics.json,
    config.json, PNGs), for readers that take paths (`ouro fit`, `ouro report`): under
    $OURO_CACHE/remote/<bucket>/<key>, refreshed on every call; checkpoints are left on the
    bucket (Orbax reads them there). Objects are whole, so each copied file is consistent."""
    import shutil
    from pathlib import Path

    fs = filesystem(url)
    url = url.rstrip("/")
    dest = Path(os.environ.get("OURO_CACHE") or Path.home() / ".cache" / "ouro") / "remote" / url.split("://", 1)[1]
    fs.invalidate_cache()
    if fs.isfile(url):
        dest.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(url, str(dest))
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    files = walk_files(url)
    if not files:
        raise FileNotFoundError(f"{url}: no such object or directory")
    for rel in files:
        if rel.startswith(skip) or any(f"/{s}" in f"/{rel}" for s in skip if s.endswith("/")):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{url}/{rel}", str(dest / rel))
    return dest
