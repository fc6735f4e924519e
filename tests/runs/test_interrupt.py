"""`ouro run` under SIGTERM and Ctrl-C: the real training notebook (digits-smoke, random
context) is stopped mid-training, train() saves its step, run.json ends "interrupted", and
the exact same command resumes the run instead of being refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "jax-notebooks"  # the notebook tests' compile cache (git-ignored)


def _rows(csv: Path) -> list[int]:
    try:
        lines = csv.read_text().splitlines()
    except OSError:
        return []
    col = lines[0].split(",").index("global_step") if lines else 0
    return [int(line.split(",")[col]) for line in lines[1:] if line.count(",") >= col]


def _start(runs: Path) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=1"),
           "JAX_COMPILATION_CACHE_DIR": os.environ.get("JAX_COMPILATION_CACHE_DIR", str(CACHE)),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "ouro", "run", str(ROOT / "notebooks" / "training.py"),
           "-p", "preset", "digits-smoke", "-p", "steps", "100000",
           "-p", "overrides", '["data.context=random", "eval_samples=false", "log_every=2", "ckpt_every=100000"]',
           "--run-name", "stopped", "--runs-root", str(runs), "--no-progress"]
    # its own session: the SIGINT below goes to its whole process group, as a terminal's Ctrl-C
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def _when_trained_past(proc: subprocess.Popen, csv: Path, step: int) -> None:
    deadline = time.monotonic() + 240
    while not any(s > step for s in _rows(csv)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no training progress"
        time.sleep(0.1)


def _latest_checkpoint(run: Path) -> int:
    return max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.faults
def test_ouro_run_stopped_by_sigterm_then_ctrl_c_saves_and_the_same_command_resumes(tmp_path):
    run = tmp_path / "runs" / "stopped"
    first = _start(tmp_path / "runs")
    _when_trained_past(first, run / "loss.csv", 2)
    first.send_signal(signal.SIGTERM)  # to `ouro run` alone, as a scheduler would
    out, err = first.communicate(timeout=180)
    assert first.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines() == [err.strip()] and err.startswith("ouro run: interrupted by SIGTERM"), err
    assert "rerun the same command to resume" in err and "Traceback" not in err
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "interrupted" and rec["signal"] == "SIGTERM"
    stopped_at = _latest_checkpoint(run)  # train()'s graceful save, not a scheduled one
    assert stopped_at >= 3 and stopped_at % 2 in (0, 1)
    assert json.loads((run / "metrics.json").read_text())["stopped_by"] == f"signal {int(signal.SIGINT)}"

    again = _start(tmp_path / "runs")  # the exact same command: resumed, not refused
    _when_trained_past(again, run / "loss.csv", stopped_at + 2)
    os.killpg(again.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
    out, err = again.communicate(timeout=180)
    assert again.returncode == 128 + signal.SIGINT and err.startswith("ouro run: interrupted by SIGINT"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "interrupted" and [a["status"] for a in rec["attempts"]] == ["interrupted"]
    assert (run / rec["attempts"][0]["executed_notebook"]).is_file() and (run / "training.ipynb").is_file()
    assert json.loads((run / "metrics.json").read_text())["resumed_from"] == stopped_at
    assert _latest_checkpoint(run) > stopped_at + 2
    steps = _rows(run / "loss.csv")  # one continued curve: no restart from step 0, no repeats
    assert steps == sorted(set(steps)) and steps[0] == 2
