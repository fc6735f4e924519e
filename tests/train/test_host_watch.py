"""A pod host whose collective failed because a peer died issues no further collective (the
stop all-gather, a checkpoint barrier): on gloo a new collective meeting another survivor's
pending one aborts that survivor - process 0 included, and with it every host - before any
line is printed. It keeps beating, lets its watch name the silent host in one line, and
leaves with os._exit(3). The real thing is the lost-host trial of `make pod-sim`; here the
decisions, on a fake jax.distributed key-value store (no processes, < 2 s)."""

import threading
import time

import jax
import pytest
from jax.errors import JaxRuntimeError

from ouro.train import host_watch
from ouro.train.checkpoint import Checkpointer, StopFlag
from ouro.train.host_watch import HostWatch

PEER_GONE = JaxRuntimeError("INTERNAL: Connection closed by peer [127.0.0.1]:40017")


class FakeStore:
    """jax.distributed's key-value store as HostWatch uses it: process 0 beats, process 2 is
    silent (SIGKILLed) from the start."""

    def __init__(self):
        self.kv = {"ouro/alive/2": "1000.0 sim-host-2 4242"}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._host0, daemon=True).start()

    def _host0(self):
        while not self._stop.wait(0.02):
            self.key_value_set("ouro/alive/0", f"{time.time()} sim-host-0 100", allow_overwrite=True)

    def key_value_set(self, key, value, allow_overwrite=False):
        with self.lock:
            self.kv[key] = value

    def key_value_dir_get(self, prefix):
        with self.lock:
            return [(k, v) for k, v in self.kv.items() if k.startswith(prefix)]


class Exited(SystemExit):  # a thread that raises it ends quietly
    pass


@pytest.fixture
def pod(monkeypatch):
    """This process is host 1 of 3, with a fake store; os._exit records (thread, code)."""
    store = FakeStore()
    exits = []

    def fake_exit(code):
        exits.append((threading.current_thread().name, code, store.kv.get("ouro/alive/1", "")))
        raise Exited(code)  # ends the watch thread, or the test's call

    monkeypatch.setattr(host_watch, "_client", lambda: store)
    monkeypatch.setattr(jax, "process_count", lambda: 3)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    monkeypatch.setattr(host_watch.os, "_exit", fake_exit)
    collectives = []
    from jax.experimental import multihost_utils

    monkeypatch.setattr(multihost_utils, "process_allgather", lambda x: collectives.append(x) or x)
    HostWatch.current_checkpoints = None  # no run in this test (an earlier test's train() ran here)
    yield store, exits, collectives
    store._stop.set()
    HostWatch.current = None
    HostWatch.current_checkpoints = None


def _failed_step(monkeypatch):
    def block(tree):
        raise PEER_GONE

    monkeypatch.setattr(jax, "block_until_ready", block)
    return {"step": object()}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the fake os._exit in the watch
def test_a_survivor_names_the_silent_host_and_starts_no_collective(pod, monkeypatch, capfd):
    store, exits, collectives = pod
    state = _failed_step(monkeypatch)
    with pytest.raises(Exited):
        with HostWatch(0.4) as watch:
            assert watch.active and HostWatch.current is watch
            StopFlag().agreed(2, 2, after=state["step"])  # the step failed: no all-gather
    assert collectives == []
    # the watch spoke and left (not the main thread's fallback), its key saying it stops
    # because of host 2 (the others' watches do not take it for lost)
    assert exits[0] == ("host-watch", 3, exits[0][2]) and exits[0][2].startswith("lost:2"), exits
    err = capfd.readouterr().err
    line = [ln for ln in err.splitlines() if ln.startswith("ouro")][0]
    assert line.startswith("ouro: error: lost host 2 (sim-host-2 4242): no heartbeat for ") and \
        "(host_timeout_s=0.4); no checkpoint completed in this run. Host 1 stops instead of waiting " \
        "in a collective; rerun to resume." in line, err


def test_a_survivor_with_no_silent_host_still_says_one_line(pod, monkeypatch, capfd):
    """The peer closed its socket but every heartbeat goes on (a bug, not a death): after 1.5
    timeouts the stranded host says what failed and exits 3 anyway, still no collective."""
    store, exits, collectives = pod
    store.kv["ouro/alive/2"] = "done sim-host-2 4242"  # finished: not silent, not lost
    state = _failed_step(monkeypatch)

    class Ckpt:  # a save confirmed earlier: the safe step
        confirmed, directory = 4, "gs://b/runs/x/checkpoints"
        _pending = 8

        def safe_step(self):
            return self.confirmed

        manager = type("M", (), {"is_saving_in_progress": staticmethod(lambda: False)})()

        def wait(self):
            raise AssertionError("a confirm (Orbax's prune barrier) after a failed step")

    HostWatch.current_checkpoints = ck = Ckpt()
    t = time.time()
    with pytest.raises(Exited):
        with HostWatch(0.4):
            Checkpointer.poll(ck, after=state["step"])
    assert [e[:2] for e in exits] == [("MainThread", 3)] and 0.5 < time.time() - t < 3
    err = capfd.readouterr().err
    assert ("ouro: error: a collective failed on host 1 (JaxRuntimeError: "
            "INTERNAL: Connection closed by peer [127.0.0.1]:40017), but no host went silent within 1 s "
            "(host_timeout_s=0.4); the last complete checkpoint is step 4 in gs://b/runs/x/checkpoints. "
            "Host 1 stops; rerun to resume.") in err, err
    assert collectives == []


def test_a_step_that_succeeded_agrees_as_before(pod, monkeypatch):
    _, exits, collectives = pod
    monkeypatch.setattr(jax, "block_until_ready", lambda tree: tree)
    import numpy as np

    from jax.experimental import multihost_utils

    monkeypatch.setattr(multihost_utils, "process_allgather", lambda x: collectives.append(x) or np.array([0, 1, 0]))
    assert StopFlag().agreed(2, 2, after=object()) is True  # host 1 of 3 was signalled
    assert len(collectives) == 1 and exits == []
    assert StopFlag().agreed(3, 2, after=object()) is False and len(collectives) == 1  # not a check step


@pytest.mark.parametrize("text", ["Gloo all-reduce failed: Read error [127.0.0.1]:5: Connection reset by peer",
                                  "Gloo AllGather failed: Timed out waiting 30000ms for recv operation to complete"])
def test_any_failed_collective_strands(text):
    assert host_watch._peer_gone(JaxRuntimeError(f"INTERNAL: {text}"))
    assert not host_watch._peer_gone(RuntimeError(text))  # not from the runtime: this host's own


def test_an_error_of_this_hosts_own_is_raised_not_stranded(pod, monkeypatch):
    _, exits, collectives = pod

    def block(tree):
        raise JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")

    monkeypatch.setattr(jax, "block_until_ready", block)
    with pytest.raises(JaxRuntimeError, match="out of memory"):
        with HostWatch(30):
            StopFlag().agreed(2, 2, after=object())
    assert collectives == [] and exits == []
