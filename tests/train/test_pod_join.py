"""`ouro train` on a pod where a host never starts: each host that did start waits
join_timeout_s in jax.distributed's start-up, then prints one line and exits 3, instead of
jax's own 300 s wait ending in a C++ abort and a stack trace (ouro/sharding.py)."""

import os
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_host_that_never_starts_is_one_line_after_join_timeout(tmp_path):
    port = _free_port()
    procs = []
    for pid in (0, 2):  # of 3: process 0 (the coordinator) and process 2 start, process 1 never does
        env = {**os.environ, "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "3",
               "JAX_PROCESS_ID": str(pid), "JAX_PLATFORMS": "cpu"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ouro", "train", "--preset", "digits-smoke", "join_timeout_s=4",
             f"out_dir={tmp_path / 'run'}"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    t = time.time()
    results = [p.communicate(timeout=120) for p in procs]
    took = time.time() - t
    for pid, p, (out, err) in zip((0, 2), procs, results):
        lines = [ln for ln in err.splitlines() if ln.startswith("ouro")]
        assert p.returncode == 3, (p.returncode, err[-2000:])
        assert lines == [f"ouro: error: the pod did not start: process {pid} of 3 (coordinator 127.0.0.1:{port}) "
                         f"waited 4 s (join_timeout_s) in jax.distributed's start-up for hosts that never "
                         f"joined; start the same `ouro train` on every host (or raise join_timeout_s)"], err[-2000:]
        assert "Check failure" not in err and "Traceback" not in err, err[-2000:]
    assert took < 60, took  # 4 s after start-up, not jax's own 300 s
    assert not (tmp_path / "run" / "loss.csv").exists()


def test_join_timeout_is_checked(capsys):
    from ouro.cli import main as ouro

    assert ouro(["train", "--preset", "digits-smoke", "join_timeout_s=0"]) == 2
    assert capsys.readouterr().err.strip() == "ouro train: error: join_timeout_s=0.0: must be >=1"
