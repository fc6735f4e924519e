"""The run lock on an object store: `<run url>/run.lock`, created only if absent.

    with GcsRunLock("gs://bucket/runs/big"):   # RunLocked naming the holder's host, pid, start
        train...

GCS has no flock: the lock is an object written with ifGenerationMatch=0 ("only if it does
not exist"), so of two runs started on one path exactly one creates it and the other is
refused, naming the holder (its JSON: host, pid, start time, command). The holder rewrites
it every ttl/3 seconds (a heartbeat, each write conditional on the generation it last
wrote). A SIGKILLed or preempted holder cannot delete it, so a lock whose heartbeat is
older than `ttl_s` is stale, as is one naming a dead pid on this very host or a boot of it before the last (a
recreated VM); a new run takes
a stale lock over with ifGenerationMatch=<its generation>, so of two runs racing for the
same stale lock one wins. Release deletes it (conditional on our generation).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any

from ouro import liveness
from ouro.data import storage
from ouro.train.runlock import LOCK_NAME, RunLocked

TTL_S = 120.0  # TrainConfig.lock_ttl_s's default: a preempted VM's lock frees itself this long after its last heartbeat


def _split(url: str) -> tuple[str, str]:
    bucket, _, key = url.split("://", 1)[1].partition("/")
    return bucket, key


class GcsRunLock:
    def __init__(self, directory: str, *, enabled: bool = True, ttl_s: float = TTL_S):
        self.url = storage.join(directory, LOCK_NAME)
        self.enabled, self.ttl_s = enabled, ttl_s
        self.generation: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- the JSON API calls gcsfs does not expose with a generation precondition ----------
    def _write(self, if_generation: int) -> int:
        """Write our holder record only if the object's generation is `if_generation`
        (0: absent); FileExistsError when it is not. Returns the new generation."""
        fs = storage.filesystem(self.url)
        bucket, key = _split(self.url)
        me = {**liveness.me(), "argv": sys.argv[:8],
              "started": getattr(self, "_started", None) or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "heartbeat": time.time()}
        self._started = me["started"]
        out = fs.call("POST", f"{fs._location}/upload/storage/v1/b/{bucket}/o", uploadType="media",
                      name=key, ifGenerationMatch=str(if_generation), data=json.dumps(me).encode(),
                      headers={"Content-Type": "application/json"}, json_out=True)
        fs.invalidate_cache(self.url)
        return int(out["generation"])

    def _holder(self) -> tuple[dict[str, Any], int | None]:
        fs = storage.filesystem(self.url)
        fs.invalidate_cache(self.url)
        try:
            info = fs.info(self.url)
            return json.loads(fs.cat_file(self.url) or b"{}"), int(info["generation"])
        except FileNotFoundError:
            return {}, None
        except ValueError:
            return {}, int(fs.info(self.url)["generation"])

    def _stale(self, h: dict[str, Any]) -> str | None:
        """Why the holder is gone (for the take-over warning), or None if it may be alive."""
        age = time.time() - float(h.get("heartbeat") or 0)
        if age > self.ttl_s:
            return f"no heartbeat for {age:.0f} s"
        if h.get("host") != socket.gethostname() or not isinstance(h.get("pid"), int):
            return None
        # its writer's host: with the pid gone, or rebooted since (a recreated VM under the
        # same name, whose pid N is another process now: ouro/liveness.py)
        theirs, ours = h.get("boot_id"), liveness.boot_id()
        if theirs and ours and theirs != ours:
            return f"this host has rebooted since: boot id {theirs[:8]}..., now {ours[:8]}..."
        return None if liveness.running_here(h) else "that pid is not running on this host"

    def acquire(self) -> None:
        if not self.enabled or self.generation is not None:
            return
        for _ in range(3):  # create; or take over a stale lock; a lost race retries
            try:
                self.generation = self._write(0)
                break
            except FileExistsError:
                pass
            h, gen = self._holder()
            if gen is None:
                continue  # released in between: try to create again
            why = self._stale(h)
            if why is None:
                raise RunLocked(self._refusal(h))
            try:
                self.generation = self._write(gen)
                print(f"WARNING: {self.url}: took over a stale lock of pid {h.get('pid', '?')} on host "
                      f"{h.get('host', '?')} ({why})", file=sys.stderr, flush=True)
                break
            except FileExistsError:
                continue
        else:
            raise RunLocked(self._refusal(self._holder()[0]))
        self._beat = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self.generation = self._write(self.generation)
            except FileExistsError:
                print(f"WARNING: {self.url}: the lock was taken over by another run (this run's "
                      f"heartbeat was late by more than {self.ttl_s:.0f} s)", file=sys.stderr, flush=True)
                return
            except Exception as e:  # noqa: BLE001 - a failed heartbeat is retried at the next beat
                print(f"WARNING: {self.url}: lock heartbeat failed ({type(e).__name__}: {e})",
                      file=sys.stderr, flush=True)

    def _refusal(self, h: dict[str, Any]) -> str:
        who = f"pid {h.get('pid', '?')} on host {h.get('host', '?')} (since {h.get('started', '?')})"
        age = time.time() - float(h.get("heartbeat") or time.time())
        return (f"{self.url.rsplit('/', 1)[0]} is being written by another run: {who}, last heartbeat "
                f"{age:.0f} s ago. Wait for it to finish, stop it, or choose another out_dir "
                f"(a lock without a heartbeat for {self.ttl_s:.0f} s is taken over)")

    def release(self) -> None:
        if self.generation is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=10)
        fs = storage.filesystem(self.url)
        bucket, key = _split(self.url)
        try:
            fs.call("DELETE", "b/{}/o/{}", bucket, key, ifGenerationMatch=str(self.generation))
        except (FileNotFoundError, FileExistsError):  # gone, or no longer ours
            pass
        fs.invalidate_cache(self.url)
        self.generation = None

    def __enter__(self) -> "GcsRunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
