"""A checkpoint disk that fills up (a real 3 MiB tmpfs where we may mount one, else a
read-only directory), and two runs on one out_dir."""

import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from ouro.train import train
from ouro.train.checkpoint import CheckpointSaveError, Checkpointer
from ouro.train.runlock import RunLock, RunLocked

pytestmark = pytest.mark.faults


@contextlib.contextmanager
def small_disk(path: Path):
    """Yield (directory, exhaust()) where exhaust() makes further writes there fail."""
    path.mkdir()
    if os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(path)],
                                            capture_output=True).returncode == 0:
        def fill():  # until ENOSPC; a disk the first run's checkpoints already filled
            # refuses even the filler file, which is the same end state
            with contextlib.suppress(OSError), open(path / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        try:
            yield path, fill, "No space left on device"
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
    elif os.geteuid() != 0:  # permissions hold for non-root users: a read-only directory
        yield path, lambda: os.chmod(path, 0o555), "Permission denied"
        os.chmod(path, 0o755)
    else:
        pytest.skip("root without mount rights: cannot make a small or read-only disk")


def _partial_bytes(ckpt_dir: Path) -> int:
    return sum(f.stat().st_size for d in ckpt_dir.glob("*.orbax-checkpoint-tmp*") for f in d.rglob("*") if f.is_file())


def test_full_checkpoint_disk_stops_with_path_and_cause_keeping_the_previous(fx, reference, tmp_path, caplog):
    with small_disk(tmp_path / "disk") as (disk, exhaust, cause):
        ckpt_dir = disk / "ckpt"
        cfg = fx.worker.toy_cfg(tmp_path / "run", ckpt_dir=str(ckpt_dir))
        train(cfg, fx.worker.make_toy, stop_after=4)
        exhaust()
        with pytest.raises(CheckpointSaveError) as err:
            train(cfg, fx.worker.make_toy)
        msg = str(err.value)
        print(f"FAULT-TRIAL disk: {msg}")
        assert str(ckpt_dir) in msg and cause in msg and "step 4 is intact" in msg, msg
        # promptly: the async write of step 8 is polled after every step, so the failure stops
        # the run as soon as the write has failed, and at the latest at the next checkpoint
        # (step 12), whose save first waits for step 8's. How many steps that is depends on
        # how long the failing write takes (under heavy load it outlasted steps 9-12).
        assert 8 <= fx.loss_rows(tmp_path / "run")[-1][0] <= 12
        assert "\n" not in msg  # one line, as `ouro train` prints it
        # and nothing before it: Orbax's per-thread tracebacks went to a log file it names
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.records[:2]
        log = Path(msg.split("Orbax's errors: ")[1].rstrip(")"))
        assert "Traceback" in log.read_text()
        assert _partial_bytes(ckpt_dir) == 0  # the failed save's files are gone: space freed
        assert Checkpointer(ckpt_dir).all_steps() == [4]
        with contextlib.suppress(FileNotFoundError):
            (disk / "filler").unlink()
        os.chmod(disk, 0o755)
        # space back: the run resumes from the intact step 4 and ends as if never disturbed
        rest = train(cfg, fx.worker.make_toy)
        assert rest["resumed_from"] == 4 and rest["finished"]
        assert not list(ckpt_dir.glob("*.orbax-checkpoint-tmp*"))  # the writer cleaned up
        shutil.copytree(ckpt_dir, tmp_path / "run" / "checkpoints")  # where assert_same_run looks
    fx.assert_same_run(tmp_path / "run", reference)


def test_second_run_on_one_out_dir_is_refused_naming_the_holder(fx, reference, tmp_path, trial):
    """Two `ouro train`-like processes on one out_dir, started together or staggered: while
    one trains the other is refused naming it; loss.csv is never doubled or interleaved."""
    stagger = [0.0, 1.5, 5.0][trial % 3]
    a = fx.spawn(tmp_path)
    time.sleep(stagger)
    b = fx.spawn(tmp_path)
    results = [(p.wait(timeout=300), *p.communicate()) for p in (a, b)]
    codes = [r[0] for r in results]
    print(f"FAULT-TRIAL concurrent {trial}: second started +{stagger}s -> exit codes {codes}")
    if sorted(codes) == [0, 2]:
        refused = next(r for r in results if r[0] == 2)[2]
        assert "is being written by another run: pid" in refused and socket.gethostname() in refused
    else:  # no overlap: the second found the run finished and only re-checked it
        assert codes == [0, 0] and '"resumed_from": 12' in results[1][1], results
    fx.assert_same_run(tmp_path, reference)


def test_lock_of_a_dead_run_does_not_block_and_pod_hosts_share(tmp_path):
    holder = subprocess.Popen(["python3", "-c", "import fcntl, os, sys, time; "
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                               "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, b'{\"pid\": %d, \"host\": \"h\"}' % os.getpid()); "
                               "print('locked', flush=True); time.sleep(60)", str(tmp_path / "run.lock")],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunLocked, match=f"pid {holder.pid} on host h"):
        RunLock(tmp_path).acquire()
    with RunLock(tmp_path, enabled=False):  # a pod host other than process 0: no lock taken
        pass
    holder.kill()  # SIGKILL: no clean-up ran, the file still names the dead holder
    holder.wait()
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == holder.pid
    with RunLock(tmp_path) as lock:  # stale: the kernel dropped the flock with the process
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
        with pytest.raises(RunLocked, match=f"pid {os.getpid()}"):  # same process, second train
            RunLock(tmp_path).acquire()
