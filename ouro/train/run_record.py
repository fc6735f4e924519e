"""A run's record on an object store: loss.csv, metrics.json, config.json, samples, TensorBoard.

    record = RunRecord("gs://bucket/runs/big", primary=True)   # pulls the bucket's copy
    write_json(record.local / "metrics.json", ...)              # the local code paths, unchanged
    record.sync()                                               # changed files -> whole objects

Local out_dir: `record.local` is out_dir itself and sync() does nothing.

gs:// out_dir (a pod: no host's disk outlives a preemption): the primary host writes the
record into a private staging directory ($OURO_CACHE/run-staging/<hash of the URL>) with
the same code as a local run (loss.csv appended, TensorBoard appending its event file), and
`sync()` uploads every file that changed since the last sync as one whole object: GCS
replaces objects atomically, so a reader sees the previous loss.csv or the new one, never a
half-written one. loss.csv is rewritten whole each time (about 100 bytes a row: 20,000 rows
are 2 MB), which keeps it one file every reader (`ouro fit`, `ouro report`) already reads.

When it syncs: before every checkpoint save (so once step S's checkpoint exists on gs://,
loss.csv there holds every row up to S and a resume from S on a fresh VM loses none),
every `every_s` seconds while logging, and at the end. `pull()` at start replaces the
staging directory with the bucket's copy: the bucket is the truth, and a stale staging
copy left by an earlier run on this machine never wins. checkpoints/ and run.lock are not
part of the record: Orbax and the lock write them on the bucket directly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from ouro.data import storage

SKIP = ("checkpoints/", "run.lock")  # written on the bucket directly, never staged


def staging_root() -> Path:
    return Path(os.environ.get("OURO_CACHE") or Path.home() / ".cache" / "ouro") / "run-staging"


class RunRecord:
    def __init__(self, out_dir: str | os.PathLike, *, primary: bool = True, every_s: float = 60.0):
        self.url = str(out_dir).rstrip("/") if storage.is_url(out_dir) else None
        self.primary, self.every_s = primary, every_s
        self._sent: dict[str, tuple[int, int]] = {}  # rel path -> (size, mtime_ns) last uploaded
        self._last = time.monotonic()
        if self.url is None:
            self.local = Path(out_dir)
            self.local.mkdir(parents=True, exist_ok=True)
            return
        self.local = staging_root() / hashlib.sha1(self.url.encode()).hexdigest()[:16]
        if primary:
            self.pull()
        else:
            self.local.mkdir(parents=True, exist_ok=True)

    @property
    def out_dir(self) -> str:
        """Where the run lives, as the user named it (the URL, or the local path)."""
        return self.url or str(self.local)

    def child(self, name: str) -> str:
        """A path beside the record that is written in place (checkpoints/): URL or local."""
        return storage.join(self.out_dir, name)

    def pull(self) -> None:
        """Replace the staging directory with the bucket's copy of the record."""
        shutil.rmtree(self.local, ignore_errors=True)
        self.local.mkdir(parents=True, exist_ok=True)
        fs = storage.filesystem(self.url)
        for rel, info in storage.walk_files(self.url).items():
            if rel.startswith(SKIP) or "/checkpoints/" in f"/{rel}":
                continue
            dest = self.local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{self.url}/{rel}", str(dest))
            self._sent[rel] = self._stamp(dest)

    @staticmethod
    def _stamp(p: Path) -> tuple[int, int]:
        st = p.stat()
        return st.st_size, st.st_mtime_ns

    def sync(self) -> int:
        """Upload every staged file that changed since the last sync; returns how many."""
        self._last = time.monotonic()
        if self.url is None or not self.primary:
            return 0
        n = 0
        for p in sorted(self.local.rglob("*")):
            if not p.is_file() or p.name.startswith("."):  # .tmp files of an atomic write
                continue
            rel = p.relative_to(self.local).as_posix()
            stamp = self._stamp(p)
            if self._sent.get(rel) != stamp:
                storage.put_file(p, f"{self.url}/{rel}")
                self._sent[rel] = stamp
                n += 1
        return n

    def maybe_sync(self) -> None:
        """sync() if `every_s` seconds have passed since the last one (cheap to call often)."""
        if self.url is not None and time.monotonic() - self._last >= self.every_s:
            self.sync()
