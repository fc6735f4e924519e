"""Preemption without loose ends: SIGTERM / SIGKILL at random points, a stop in mid-window,
a SIGTERM during the final save; each resumed run equals the uninterrupted one exactly
(loss.csv rows and every checkpointed array)."""

import os
import random
import signal
import time

import pytest
from ouro.train import train
from ouro.train.checkpoint import Checkpointer

pytestmark = pytest.mark.faults


@pytest.fixture
def stray_sigterm():
    """A SIGTERM landing between two train() calls must not kill pytest: record it."""
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda *a: seen.append(a[0]))
    yield seen
    signal.signal(signal.SIGTERM, previous)


def test_stop_in_mid_window_writes_no_short_row(fx, reference, tmp_path):
    cfg = fx.worker.toy_cfg(tmp_path)
    part = train(cfg, fx.worker.make_toy, stop_after=5)  # rows at 3, 4; 5 is mid-window
    assert part["stopped_by"] == "stop_after=5" and not part["finished"]
    assert [r[0] for r in fx.loss_rows(tmp_path)] == [3, 4]
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == 5
    rest = train(cfg, fx.worker.make_toy)
    assert rest["resumed_from"] == 5 and rest["finished"]
    fx.assert_same_run(tmp_path, reference)  # the row at 6 averages steps 5-6, as uninterrupted


def test_sigterm_at_a_random_point_resumes_exactly(fx, reference, tmp_path, stray_sigterm, trial):
    cfg = fx.worker.toy_cfg(tmp_path)
    delay = random.Random(trial).uniform(0, reference["loop_s"])
    killer = fx.at_random_point_of_loop(tmp_path, delay, lambda: os.kill(os.getpid(), signal.SIGTERM))
    first = train(cfg, fx.worker.make_toy)
    killer.join()
    print(f"FAULT-TRIAL sigterm {trial}: +{delay:.3f}s into the loop -> {first['stopped_by']} at step "
          f"{first['global_step']}")
    if first["stopped_by"]:
        assert first["stopped_by"] == f"signal {int(signal.SIGTERM)}"
        stopped_at = first["global_step"]
        assert Checkpointer(tmp_path / "checkpoints").latest_step() == stopped_at  # nothing lost
        second = train(cfg, fx.worker.make_toy)
        assert second["resumed_from"] == stopped_at and second["finished"]
    fx.assert_same_run(tmp_path, reference)


def test_sigterm_during_the_final_save_loses_nothing(fx, reference, tmp_path, monkeypatch):
    """The issue's 2/3 case: a SIGTERM while the last checkpoint is being written."""
    real_save = Checkpointer.save

    def save_then_signal(self, step, *a, **kw):
        real_save(self, step, *a, **kw)
        if step == reference["step"]:  # the async write of the final checkpoint is running
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Checkpointer, "save", save_then_signal)
    out = train(fx.worker.toy_cfg(tmp_path), fx.worker.make_toy)
    assert out["finished"] and out["stopped_by"] == f"signal {int(signal.SIGTERM)}"
    assert Checkpointer(tmp_path / "checkpoints").latest_step() == reference["step"]
    monkeypatch.undo()
    again = train(fx.worker.toy_cfg(tmp_path), fx.worker.make_toy)
    assert again["resumed_from"] == reference["step"] and again["global_step"] == reference["step"]
    fx.assert_same_run(tmp_path, reference)


def test_sigkill_at_a_random_point_resumes_exactly(fx, reference, tmp_path, trial):
    child = fx.spawn(tmp_path)
    delay = random.Random(100 + trial).uniform(0, reference["loop_s"])
    fx.at_random_point_of_loop(tmp_path, delay, lambda: child.poll() is None and child.kill()).join()
    child.wait(timeout=120)
    # returncode 0: the child finished before the kill; the comparison still holds
    steps = Checkpointer(tmp_path / "checkpoints").all_steps()
    print(f"FAULT-TRIAL sigkill {trial}: +{delay:.3f}s -> exit {child.returncode}, checkpoints {steps}, "
          f"leftovers {sorted(p.name for p in (tmp_path / 'checkpoints').glob('*tmp*'))}")
    out = train(fx.worker.toy_cfg(tmp_path), fx.worker.make_toy)  # the kernel dropped the run lock
    assert out["finished"]
    fx.assert_same_run(tmp_path, reference)


@pytest.fixture(scope="module")
def xudit_reference(fx, tmp_path_factory):
    """The real model (digits-smoke XUDiT), uninterrupted."""
    out = tmp_path_factory.mktemp("xudit")
    cfg = xudit_cfg(out)
    from ouro.train.step import default_model_factory

    train(cfg)
    step, arrays = fx.final_state(out, cfg, default_model_factory)
    return {"rows": fx.loss_rows(out), "step": step, "arrays": arrays, "cfg": cfg,
            "make": default_model_factory}


def xudit_cfg(out):
    from ouro.train import preset_config

    return preset_config("digits-smoke", out_dir=str(out), steps=8, log_every=3, ckpt_every=4,
                         eval_samples=False)


def test_real_xudit_sigterm_mid_run_resumes_exactly(fx, xudit_reference, tmp_path, stray_sigterm,
                                                   monkeypatch, trial):
    import ouro.train.loop as loop

    cfg = xudit_cfg(tmp_path)
    stop_at = random.Random(200 + trial).randint(1, cfg.steps - 1)
    build = loop.build_trainer

    def build_with_signal(*a, **k):  # a real SIGTERM, through the real handler, after step stop_at
        trainer = build(*a, **k)
        step = trainer.step

        def step_then_signal(state, batch):
            state = step(state, batch)
            if int(state["step"]) == stop_at:  # host sync: test only
                os.kill(os.getpid(), signal.SIGTERM)
            return state

        trainer.step = step_then_signal
        return trainer

    monkeypatch.setattr(loop, "build_trainer", build_with_signal)
    first = train(cfg)
    monkeypatch.undo()
    assert first["stopped_by"] == f"signal {int(signal.SIGTERM)}" and first["global_step"] == stop_at
    second = train(cfg)
    assert second["resumed_from"] == stop_at and second["finished"]
    fx.assert_same_run(tmp_path, xudit_reference)
