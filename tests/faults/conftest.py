"""Shared pieces of the fault trials (tests/faults, marker `faults`).

OURO_FAULT_TRIALS (default 1) is the number of seeded trials each randomised test runs:
`make test` runs 1 per test, `make faults` 10. Every trial compares against one
uninterrupted run of the same config: loss.csv rows and the final checkpoint's arrays.
"""

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest

HERE = Path(__file__).parent
TRIALS = int(os.environ.get("OURO_FAULT_TRIALS", "1"))
_spec = importlib.util.spec_from_file_location("ouro_fault_worker", HERE / "worker.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def final_state(out_dir, cfg=None, make=None):
    """(step, flat numpy arrays) of the newest checkpoint in out_dir/checkpoints."""
    from ouro import sharding as shd
    from ouro.train.checkpoint import Checkpointer, flatten
    from ouro.train.step import build_trainer

    cfg = cfg or worker.toy_cfg(out_dir)
    trainer = build_trainer(cfg, shd.make_mesh(devices=jax.devices()[:1]), make or worker.make_toy)
    ck = Checkpointer(Path(out_dir) / "checkpoints")
    step = ck.latest_step()
    state, _ = ck.restore(trainer.abstract_state, trainer.state_shardings, step)
    ck.close()
    return step, {k: np.asarray(v) for k, v in flatten(jax.device_get(state)).items()}


def loss_rows(out_dir):
    from ouro.train.metrics import read_csv

    return [(int(r["global_step"]), r["loss"], r["lr"]) for r in read_csv(Path(out_dir) / "loss.csv")]


def assert_same_run(out_dir, ref):
    rows = loss_rows(out_dir)
    assert [r[0] for r in rows] == [r[0] for r in ref["rows"]], "loss.csv rows differ from the uninterrupted run"
    np.testing.assert_allclose([r[1:] for r in rows], [r[1:] for r in ref["rows"]], rtol=1e-6)
    step, arrays = final_state(out_dir, ref["cfg"], ref["make"])
    assert step == ref["step"]
    assert arrays.keys() == ref["arrays"].keys()
    for k, v in ref["arrays"].items():  # params, EMA, Adam moments, RNG, step, metric sums
        np.testing.assert_array_equal(arrays[k], v, err_msg=k)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted toy run: rows, final arrays, wall time of the loop."""
    from ouro.train import train

    out = tmp_path_factory.mktemp("reference")
    cfg = worker.toy_cfg(out)
    with LoopClock(out) as clock:
        train(cfg, worker.make_toy)
    step, arrays = final_state(out)
    return {"rows": loss_rows(out), "step": step, "arrays": arrays, "loop_s": clock.loop_s,
            "cfg": cfg, "make": worker.make_toy}


def _first_row_logged(csv):
    try:
        return csv.read_text().count("\n") >= 2  # header + one row: the step has compiled
    except OSError:
        return False


class LoopClock:
    """Times the compiled part of the loop from outside: from the first loss.csv row (the
    step has compiled) until the call returns."""

    def __init__(self, out_dir):
        self.csv = Path(out_dir) / "loss.csv"
        self.loop_s = None

    def __enter__(self):
        self._stop = threading.Event()
        self._seen = None
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.is_set() and self._seen is None:
            if _first_row_logged(self.csv):
                self._seen = time.perf_counter()
            time.sleep(0.002)

    def __exit__(self, *exc):
        end = time.perf_counter()
        self._stop.set()
        self._thread.join()
        self.loop_s = end - (self._seen or end)


def at_random_point_of_loop(out_dir, delay_s, action):
    """Run `action()` `delay_s` after the first loss.csv row of a fresh out_dir."""
    csv = Path(out_dir) / "loss.csv"

    def run():
        t_end = time.perf_counter() + 300
        while not _first_row_logged(csv) and time.perf_counter() < t_end:
            time.sleep(0.002)
        time.sleep(delay_s)
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def spawn(out_dir, *overrides, env=None):
    """The toy training as a child process (for SIGKILL and concurrent-run trials)."""
    return subprocess.Popen([sys.executable, str(HERE / "worker.py"), str(out_dir), *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def pytest_generate_tests(metafunc):
    if "trial" in metafunc.fixturenames:  # seeded trials: 1 in `make test`, more in `make faults`
        metafunc.parametrize("trial", range(TRIALS))


@pytest.fixture(scope="session")
def fx():
    """The helpers above, for the test modules (conftest is not importable by name)."""
    import types

    return types.SimpleNamespace(worker=worker, spawn=spawn, loss_rows=loss_rows, final_state=final_state,
                                 assert_same_run=assert_same_run, at_random_point_of_loop=at_random_point_of_loop,
                                 trials=TRIALS)
