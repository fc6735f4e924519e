"""The hosts of a pod run watch each other, and agree before they start.

    with HostWatch(cfg.host_timeout_s) as watch:     # no-op on one process
        with agreed("run-lock"):                      # process 0 decides; every host raises its refusal
            lock...
        HostWatch.current_checkpoints = ckpt          # names the safe step if a host is lost

A lost host (SIGKILL, a VM deleted mid-step) leaves the others blocked inside a collective:
jax.distributed notices only after its own heartbeat timeout (100 s by default) and then
aborts them with a fatal log line that names no step. Here every host publishes a heartbeat
in jax.distributed's key-value store every timeout/4 seconds from a daemon thread (so a
compile or a long save does not look like death); a host whose heartbeat has not changed for
`timeout_s` (measured on the watcher's own clock, so clock skew does not matter), or the
coordinator becoming unreachable, makes each survivor print one line - the lost host, and
the last checkpoint that completed - and exit with status 3 without waiting in the
collective. A rerun resumes from that checkpoint.

A survivor must issue no collective after one has failed on it: XLA's CPU collectives (gloo)
match messages by order, so a host that starts a new collective (the stop-flag all-gather,
Orbax's save barrier, a shutdown barrier) while another survivor is still inside the failed
one sends it a message of the wrong size, and gloo aborts that host - process 0 included,
whose coordination service then takes every other host down before any line is printed.
So the loop `settle`s the step before each collective whose inputs do not depend on the
train state (a failed step makes every later step fail without running), and a host whose
collective failed (`strand`) issues nothing more: it keeps beating while its watch names the
silent host, prints the line (flushed, before anything that can abort) and leaves with
os._exit - no atexit hooks, no jax.distributed shutdown barrier.

`agreed(name)`: process 0 runs the block (the run lock: only it takes the lock) and
publishes the outcome; the others wait for it and raise the same error, so a refused run
stops on every host at once instead of K-1 hosts waiting in their first collective.
The key-value store is jax's private client (jax._src.distributed): the public API has none.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from typing import Any, Iterator

import jax

from ouro.errors import UserError

LOST_EXIT = 3
_PREFIX = "ouro/alive/"


def _client() -> Any:
    from jax._src.distributed import global_state

    return global_state.client


class HostWatch:
    current_checkpoints: Any = None  # the run's Checkpointer (set by the loop): its confirmed step is safe
    current: "HostWatch | None" = None  # the active watch of this process (a pod run), for `settle`

    def __init__(self, timeout_s: float):
        self.timeout_s = float(timeout_s)
        self.active = jax.process_count() > 1 and _client() is not None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.me = jax.process_index()

    def __enter__(self) -> "HostWatch":
        if self.active:
            self._beat(str(time.time()))
            self._thread = threading.Thread(target=self._run, name="host-watch", daemon=True)
            self._thread.start()
            HostWatch.current = self
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.active:
            HostWatch.current = None
            if exc is not None and _peer_gone(exc):
                self.strand(exc)  # never returns
            self._stop.set()
            # a host that finished is not lost; one that failed is, at once (the others would
            # wait for it in their next collective)
            failed = exc_type is not None and not issubclass(exc_type, UserError)
            with contextlib.suppress(Exception):
                self._beat(f"failed:{exc_type.__name__}" if failed else "done")

    def strand(self, exc: BaseException) -> None:
        """This host's collective failed (a peer's connection dropped, or it never came): it
        is a survivor, not the failure. Issue nothing more; keep beating while the watch names
        the silent host (that prints the line and exits 3). If no host goes silent in 1.5
        timeouts (a peer that closed its socket but still beats), say so and exit 3 anyway:
        unwinding would run jax.distributed's shutdown barrier."""
        deadline = time.monotonic() + self.timeout_s * 1.5
        while time.monotonic() < deadline and self._thread is not None and self._thread.is_alive():
            time.sleep(0.2)
        self._say(f"ouro: error: a collective failed on host {self.me} "
                  f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}), but no host "
                  f"went silent within {self.timeout_s * 1.5:.0f} s (host_timeout_s={self.timeout_s:g}); "
                  f"{self._safe()}. Host {self.me} stops; rerun to resume.")
        with contextlib.suppress(Exception):
            self._beat("lost:?")
        os._exit(LOST_EXIT)

    def _beat(self, value: str) -> None:
        _client().key_value_set(f"{_PREFIX}{self.me}", f"{value} {socket.gethostname()} {os.getpid()}",
                                allow_overwrite=True)

    def _run(self) -> None:
        seen: dict[str, tuple[str, float]] = {}  # host -> (last value, monotonic time it changed)
        start = time.monotonic()
        unreachable_since: float | None = None
        n = jax.process_count()
        while not self._stop.wait(self.timeout_s / 4):
            now = time.monotonic()
            try:
                self._beat(str(time.time()))
                entries = dict(_client().key_value_dir_get(_PREFIX))
                unreachable_since = None
            except Exception as e:  # noqa: BLE001 - the coordinator (process 0) may be gone
                unreachable_since = unreachable_since or now
                if now - unreachable_since > self.timeout_s:
                    self._lost("0 (the coordinator)", now - unreachable_since, f"unreachable: {type(e).__name__}")
                continue
            for i in range(n):
                if i == self.me:
                    continue
                value = entries.get(f"{_PREFIX}{i}")
                if value is not None and value.startswith(("done", "lost:")):
                    continue  # finished, or stopping itself after a lost host
                if value is not None and value.startswith("failed:"):
                    self._lost(f"{i} ({' '.join(value.split()[1:])})", 0.0,
                               f"it stopped with {value.split()[0][7:]} (see its log)")
                last = seen.get(str(i))
                if last is None or last[0] != value:
                    seen[str(i)] = (value, now if value is not None else start)
                elif now - last[1] > self.timeout_s:
                    who = f"{i}" + (f" ({' '.join(value.split()[1:])})" if value else "")
                    self._lost(who, now - last[1], "no heartbeat")

    @staticmethod
    def _safe() -> str:
        """'the last complete checkpoint is step N in DIR', asked in a thread bounded to a few
        seconds (on gs:// it reads the emulator/bucket): the line must not wait on storage."""
        ck = HostWatch.current_checkpoints
        if ck is None:
            return "no checkpoint completed in this run"
        found: list[int | None] = [ck.confirmed]
        t = threading.Thread(target=lambda: found.__setitem__(0, ck.safe_step()), daemon=True)
        t.start()
        t.join(5.0)
        step = found[0]
        return (f"the last complete checkpoint is step {step} in {ck.directory}" if step is not None
                else "no checkpoint completed in this run")

    @staticmethod
    def _say(line: str) -> None:
        # straight to the file descriptor as well as sys.stderr's buffer: the line must be out
        # before os._exit or an abort, whatever Python's stream is doing on another thread
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            os.write(2, (line + "\n").encode())
        except OSError:
            print(line, file=sys.stderr, flush=True)

    def _lost(self, who: str, age: float, why: str) -> None:
        why = why if age == 0 else f"{why} for {age:.0f} s (host_timeout_s={self.timeout_s:g})"
        self._say(f"ouro: error: lost host {who}: {why}; "
                  f"{self._safe()}. Host {self.me} stops instead of waiting in a collective; rerun to resume.")
        with contextlib.suppress(Exception):
            self._beat(f"lost:{who.split()[0]}")
            if self.me == 0:
                self._outlive_the_others(who.split()[0])
        os._exit(LOST_EXIT)  # the main thread is blocked in a collective that will never return

    def _outlive_the_others(self, lost: str) -> None:
        """Process 0 holds jax.distributed's coordinator: once it exits, the other survivors'
        clients abort (SIGABRT) before their own watch has said anything. So it waits until
        each of them has said it (its heartbeat key reads lost:/done/failed:), at most half a
        timeout (their watches tick a quarter apart)."""
        deadline = time.monotonic() + self.timeout_s / 2
        others = {f"{_PREFIX}{i}" for i in range(jax.process_count()) if i != self.me and str(i) != lost}
        while time.monotonic() < deadline:
            entries = dict(_client().key_value_dir_get(_PREFIX))
            if all(entries.get(k, "").startswith(("lost:", "done", "failed:")) for k in others):
                return
            time.sleep(0.2)


def settle(tree: Any) -> None:
    """Wait until `tree` (the train state after the step just dispatched) is computed, before
    a collective that does not depend on it: if the step failed because a peer is gone, this
    host is stranded (see HostWatch.strand) and must not start that collective. On TPU the
    next collective would wait for the step anyway, so this costs a dispatch round trip."""
    try:
        jax.block_until_ready(tree)
    except Exception as e:  # noqa: BLE001
        watch = HostWatch.current
        if watch is not None and _peer_gone(e):
            watch.strand(e)
        raise


def _peer_gone(exc: BaseException) -> bool:
    """A collective that failed (gloo on CPU: "Gloo all-reduce failed: Connection closed by
    peer", "... Timed out waiting ..." when a peer never came), not an error of this host's
    own: on a pod that means a peer is gone or stuck, and this host is a survivor."""
    text = str(exc)
    return type(exc).__name__ == "JaxRuntimeError" and (
        ("Gloo " in text and " failed" in text)
        or any(s in text for s in ("closed by peer", "reset by peer", "Socket closed", "Broken pipe",
                                   "Timed out waiting")))


@contextlib.contextmanager
def agreed(name: str, timeout_s: float = 300.0) -> Iterator[None]:
    """Run the block; on several processes, process 0's outcome is every process's outcome."""
    if jax.process_count() == 1 or _client() is None:
        yield
        return
    key = f"ouro/agreed/{name}"
    if jax.process_index() == 0:
        try:
            yield
        except Exception as e:  # noqa: BLE001 - whatever stops process 0 stops everyone
            _client().key_value_set(key, f"{type(e).__name__}:{' '.join(str(e).split())}")
            raise
        _client().key_value_set(key, "ok")
        return
    yield
    verdict = _client().blocking_key_value_get(key, int(timeout_s * 1000))
    if verdict != "ok":
        kind, _, message = verdict.partition(":")
        from ouro.train.runlock import RunLocked

        raise (RunLocked if kind == "RunLocked" else UserError)(f"(process 0) {message}")
