"""One writer per run directory: `<dir>/run.lock` names the process that is writing it.

    with RunLock(out_dir):        # raises RunLocked naming the holder's pid, host, start time
        train...

The lock is an exclusive `flock` on the file, which the kernel drops when the holder dies,
so a crashed (even SIGKILLed) run never blocks the next one; the file's JSON (pid, host,
start time, command) only names the holder in the refusal. A file left behind by a dead
holder is therefore stale by construction; if a lock is held but names a dead pid on this
host (a pid reused after a fork, say), the message says so. On a pod only process 0 takes
the lock (`enabled=False` elsewhere): the hosts of one run share its directories by design.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ouro.errors import UserError
from ouro.liveness import pid_alive

LOCK_NAME = "run.lock"


class RunLocked(UserError):
    """Another live process is writing this run directory."""


class RunDirUnwritable(UserError):
    """The run directory cannot be created or written (read-only disk, permissions)."""


def holder_of(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


class RunLock:
    def __init__(self, directory: str | os.PathLike, *, enabled: bool = True):
        self.path = Path(directory) / LOCK_NAME
        self.enabled = enabled
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self.enabled or self._fd is not None:
            return
        try:  # the first write of a run: a read-only or missing disk is named here, once
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunDirUnwritable(f"{self.path.parent}: the run directory cannot be written "
                                   f"({e.strerror or e}); choose a writable out_dir/ckpt_dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                # no flock on this filesystem (some network mounts): say so, don't refuse
                print(f"WARNING: {self.path}: cannot lock ({e}); concurrent runs are not "
                      f"detected here", file=sys.stderr)
                return
            raise RunLocked(self._refusal()) from None
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv[:8]}
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)  # in place: the flock is on this inode
        except OSError:  # a full disk: the lock holds all the same, only unnamed
            pass

    def _refusal(self) -> str:
        h = holder_of(self.path)
        who = f"pid {h.get('pid', '?')} on host {h.get('host', '?')} (since {h.get('started', '?')})"
        if h.get("host") == socket.gethostname() and isinstance(h.get("pid"), int) and not pid_alive(h["pid"]):
            who += ", a pid that is no longer alive yet the lock is held (a forked child?)"
        return (f"{self.path.parent} is being written by another run: {who}. Wait for it to "
                f"finish, stop it, or choose another out_dir")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # the file stays (unlinking races a waiting opener)
        os.close(self._fd)  # drops the flock
        self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_for(directory: str | os.PathLike, *, enabled: bool = True, ttl_s: float | None = None) -> Any:
    """The run lock for a directory: flock on a local path, a conditional object on gs://
    (ouro/train/gcs_lock.py; `ttl_s`: TrainConfig.lock_ttl_s, a stale holder's grace)."""
    if "://" in str(directory) and not str(directory).startswith("file://"):
        from ouro.train.gcs_lock import TTL_S, GcsRunLock

        return GcsRunLock(str(directory), enabled=enabled, ttl_s=TTL_S if ttl_s is None else ttl_s)
    return RunLock(directory, enabled=enabled)
