"""Pod in a box, short variant (make test): 2 hosts in their own mount namespaces sharing
only the GCS emulator; a SIGTERM to one host -> both save the same step, exit 0, resume,
loss rows + checkpoint bit-identical to an uninterrupted run; a missing bucket -> one line
on every host before compiling. `make pod-sim` runs the whole matrix with 4 hosts."""

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.podsim, pytest.mark.slow]


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
