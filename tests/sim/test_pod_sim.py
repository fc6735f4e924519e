"""Pod in a box, short variant (make test): 2 hosts in their own mount namespaces sharing
only the GCS emulator; a SIGTERM to one host -> both save the same step, exit 0, resume,
loss rows + checkpoint bit-identical to an uninterrupted run; a missing bucket -> one line
on every host before compiling. `make pod-sim` runs the whole matrix with 4 hosts."""

import subprocess
import sys
import time

import pytest


@pytest.mark.podsim
@pytest.mark.slow
def test_pod_in_a_box_short(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ouro.sim", "--hosts", "2", "--trials", "preempt-one,bucket-missing",
                        "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=1500)
    table = r.stdout[r.stdout.find("| trial |"):]
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    for trial in ("reference", "preempt-one", "bucket-missing"):
        assert f"| {trial} | PASS |" in table, table
    assert "bit-identical" in table and "bucket gs://no-such-bucket does not exist" in table


def test_hosts_that_share_a_directory_are_refused(tmp_path):
    from ouro.sim.host import claim

    shared = tmp_path / "cache"
    assert claim("0", [tmp_path / "a", shared]) is None
    assert claim("0", [tmp_path / "a", shared]) is None  # the same host again: fine
    assert claim("1", [tmp_path / "b", shared]) == f"{shared} is shared with simulated host 0"


@pytest.mark.podsim
def test_a_host_dead_at_start_up_stops_the_others_with_one_line(tmp_path, capfd):
    """Host 1's interpreter is missing (exit 127) while host 0 waits for it in
    jax.distributed's start-up: the driver stops host 0 after the grace, not at the deadline."""
    from ouro.sim.cluster import Pod

    pod = Pod(2, "http://127.0.0.1:9", tmp_path, isolate=False)
    start = (f"{sys.executable} -c 'from ouro.sharding import init_distributed; init_distributed(); "
             f"print(\"host 0 past start-up\")'")
    procs = pod.launch([], tag="dead", shell=f'[ "$JAX_PROCESS_ID" = 1 ] && exec no-such-python -m ouro train; exec {start}')
    t = time.time()
    codes = Pod.wait(procs, timeout=600, grace_s=3)
    took = time.time() - t
    line = capfd.readouterr().err.strip()
    assert codes == [None, 127] and took < 60, (codes, took)
    assert line.startswith("pod-sim: host 1 exited with 127 (") and "no-such-python" in line and "not found" in line, line
    assert "while hosts 0 waited for it: stopped them 3 s later" in line and "\n" not in line, line
    assert "host 0 past start-up" not in (tmp_path / "logs" / "01-dead-host0.log").read_text()


def test_stops_that_were_asked_for_are_not_failures(tmp_path):
    """A SIGTERM'd host that exits 143 before the others (a preempted `ouro run`) does not get
    the others killed: they finish their save."""
    from ouro.sim.cluster import Pod

    pod = Pod(2, "http://127.0.0.1:9", tmp_path, isolate=False)
    procs = pod.launch([], tag="stop", shell='[ "$JAX_PROCESS_ID" = 1 ] && exit 143; sleep 2; exit 0')
    assert Pod.wait(procs, timeout=60, grace_s=0.5) == [0, 143]
