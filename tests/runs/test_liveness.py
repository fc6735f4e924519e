"""A run record or gs:// run lock written before this host rebooted (a preempted spot VM
recreated under the same name) is not "being run now", even when its pid is alive again as
some other process: the boot id tells the two apart (ouro/liveness.py)."""

import json
import os
import socket

import pytest

from ouro import liveness

BOOT = "6c1f0a52-0000-4000-8000-000000000001"
EARLIER_BOOT = "0b5e7d11-0000-4000-8000-000000000002"


@pytest.fixture
def this_boot(monkeypatch):
    monkeypatch.setattr(liveness, "boot_id", lambda: BOOT)


def _holder(boot_id):
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": boot_id}  # our pid: alive


def test_boot_id_is_the_kernels(tmp_path, monkeypatch):
    real = liveness.boot_id()
    if os.path.exists(liveness.BOOT_ID_FILE):
        assert real == open(liveness.BOOT_ID_FILE).read().strip() and len(real) == 36
    monkeypatch.setattr(liveness, "BOOT_ID_FILE", str(tmp_path / "none"))
    assert liveness.boot_id() is None  # no such file (not Linux): None, the pid check stands alone
    assert liveness.me() == {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": None}


def test_running_here_needs_this_host_this_boot_and_a_live_pid(this_boot):
    assert liveness.running_here(_holder(BOOT))
    assert not liveness.running_here(_holder(EARLIER_BOOT))  # the pid is someone else's now
    assert liveness.running_here(_holder(None))  # a record from before boot ids: pid decides
    assert not liveness.running_here({**_holder(BOOT), "host": "another-vm"})
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    assert not liveness.running_here({**_holder(BOOT), "pid": dead})


def test_run_json_of_an_earlier_boot_is_resumed_not_refused(this_boot, tmp_path):
    """`ouro run` / `ouro pod-run` rerun after a VM was recreated: its run.json (on gs:// for
    a pod) still says running by pid N on this host name; pid N is alive but unrelated."""
    from ouro.runs import notebook as run

    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    nb = tmp_path / "train.ipynb"
    record = {"notebook": str(nb), "status": "running", "start_time": "earlier", **_holder(EARLIER_BOOT)}
    (run_dir / "run.json").write_text(json.dumps(record))
    prev = run._previous_attempt(run_dir, nb)
    assert prev is not None and prev["boot_id"] == EARLIER_BOOT  # resumed as an interrupted attempt
    (run_dir / "run.json").write_text(json.dumps({**record, "boot_id": BOOT}))
    with pytest.raises(run.RunError, match=rf"being run now by pid {os.getpid()} on host {socket.gethostname()}"):
        run._previous_attempt(run_dir, nb)


def test_gs_run_lock_of_an_earlier_boot_is_taken_over(this_boot, gcs_emulator, capsys):
    """A gs:// run lock whose heartbeat is fresh (the VM died seconds ago) but whose writer's
    host has rebooted is stale at once, with the reason in the warning; this boot's is not."""
    import time

    from ouro.data import storage
    from ouro.train.gcs_lock import GcsRunLock
    from ouro.train.runlock import RunLocked

    url = "gs://ouro-test/runs/reboot"
    storage.put_bytes(f"{url}/run.lock", json.dumps({**_holder(EARLIER_BOOT), "heartbeat": time.time()}).encode())
    with GcsRunLock(url) as lock:
        assert lock.generation
        held = json.loads(storage.read_bytes(f"{url}/run.lock"))
        assert held["boot_id"] == BOOT and held["pid"] == os.getpid()  # the new holder names its boot
    err = capsys.readouterr().err
    assert (f"took over a stale lock of pid {os.getpid()} on host {socket.gethostname()} (this host has "
            f"rebooted since: boot id 0b5e7d11..., now 6c1f0a52...)") in err, err
    storage.put_bytes(f"{url}/run.lock", json.dumps({**_holder(BOOT), "heartbeat": time.time()}).encode())
    with pytest.raises(RunLocked, match=rf"pid {os.getpid()} on host {socket.gethostname()}"):
        GcsRunLock(url).acquire()
