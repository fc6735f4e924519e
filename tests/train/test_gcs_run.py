"""A run that lives on gs:// (ouro's emulator): out_dir and checkpoints on the bucket, the run
interrupted, the local staging disk wiped (a preempted VM comes back empty), resumed: the
loss history and the checkpoint equal an uninterrupted local run's. Plus the gs:// run lock,
damaged-checkpoint fallback on gs://, and the one-line refusals before compiling."""

import json
import shutil

import fsspec
import numpy as np
import pytest

from ouro.config import override
from ouro.errors import UserError
from ouro.train import preset_config, train
from ouro.train.metrics import read_csv

ARGS = ["steps=8", "ckpt_every=4", "log_every=2", "eval_samples=false", "tensorboard=true", "keep_ckpts=2"]


def _cfg(out_dir):
    return override(preset_config("digits-smoke"), [*ARGS, f"out_dir={out_dir}"])


def _final_arrays(ckpt_dir, cfg):
    import jax

    from ouro import sharding as shd
    from ouro.train.checkpoint import Checkpointer, flatten
    from ouro.train.step import build_trainer

    trainer = build_trainer(cfg, shd.make_mesh(devices=jax.devices()[:1]))
    ck = Checkpointer(ckpt_dir)
    state, _ = ck.restore(trainer.abstract_state, trainer.state_shardings)
    ck.close()
    return ck.all_steps(), {k: np.asarray(v) for k, v in flatten(jax.device_get(state)).items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, gcs_emulator):
    out = tmp_path_factory.mktemp("ref")
    train(_cfg(out))
    return out


@pytest.fixture(scope="module")
def gs_run(gcs_emulator, tmp_path_factory):
    """A run on the bucket: stopped at step 6, the local staging disk wiped, resumed to 8."""
    tmp = tmp_path_factory.mktemp("gs-run")
    mp = pytest.MonkeyPatch()
    mp.setenv("OURO_CACHE", str(tmp / "cache"))
    url = "gs://ouro-test/runs/gone"
    fs = fsspec.filesystem("gs")
    first = train(_cfg(url), stop_after=6)  # checkpoint 4 + the stop's 6
    rows_after_stop = read_csv(_local(fs, f"{url}/loss.csv", tmp))
    lock_left = fs.exists(f"{url}/run.lock")
    shutil.rmtree(tmp / "cache")  # the VM is gone, its disk with it
    rest = train(_cfg(url))
    yield url, first, rows_after_stop, lock_left, rest, tmp
    mp.undo()


def test_run_on_gs_survives_losing_the_local_disk(gs_run, reference):
    from ouro.train.run_record import RunRecord

    url, first, rows_after_stop, lock_left, rest, tmp = gs_run
    fs = fsspec.filesystem("gs")
    assert first["global_step"] == 6 and first["out_dir"] == url
    assert [r["global_step"] for r in rows_after_stop] == [2, 4, 6] and not lock_left  # lock released
    assert rest["resumed_from"] == 6 and rest["finished"]
    got = read_csv(_local(fs, f"{url}/loss.csv", tmp))
    want = read_csv(reference / "loss.csv")
    assert [r["global_step"] for r in got] == [r["global_step"] for r in want] == [2, 4, 6, 8]
    assert [r["loss"] for r in got] == [r["loss"] for r in want]  # bit-identical history
    metrics = json.loads(fs.cat(f"{url}/metrics.json"))
    assert metrics["finished"] and metrics["resumed_from"] == 6 and metrics["global_step"] == 8
    assert json.loads(fs.cat(f"{url}/config.json"))["train"]["out_dir"] == url
    assert fs.glob(f"{url}/tensorboard/events.out.tfevents.*")
    steps, arrays = _final_arrays(f"{url}/checkpoints", _cfg(url))
    ref_steps, ref_arrays = _final_arrays(reference / "checkpoints", _cfg(reference))
    assert steps == [6, 8] and ref_steps == [4, 8]  # keep_ckpts=2: step 4 pruned on the bucket
    for k, v in ref_arrays.items():
        np.testing.assert_array_equal(arrays[k], v, err_msg=k)
    assert RunRecord(url).local.joinpath("loss.csv").exists()  # a reader's pull


def test_readers_take_gs_runs(gs_run, tmp_path, capsys):
    """`ouro fit`, `ouro report` and `ouro sample --ckpt` on the bucket's run."""
    from ouro.cli import main as ouro

    url = gs_run[0]
    fs = fsspec.filesystem("gs")
    ouro(["fit", f"{url}/loss.csv", "--out", str(tmp_path / "fit"), "--n-boot", "5"])
    # read from the bucket: the run's 4 rows (too few to fit a power law, which it says by name)
    assert "curve 'gone': 4 usable points" in capsys.readouterr().err
    assert ouro(["report", "--outputs", "gs://ouro-test", "--reports", str(tmp_path / "rep")]) == 0
    assert "runs/gone" in (tmp_path / "rep" / "Detail.md").read_text()
    assert ouro(["sample", "--ckpt", url, "--class", "3", "--per-class", "2", "--steps", "2"]) == 0
    fs.invalidate_cache()
    assert fs.glob(f"{url}/samples/*/*.png")  # the grid and images, uploaded into the run


def _local(fs, url, tmp_path):
    dest = tmp_path / "read" / url.rsplit("/", 1)[-1]
    dest.parent.mkdir(exist_ok=True)
    fs.invalidate_cache()
    fs.get_file(url, str(dest))
    return dest


def test_second_run_on_one_gs_path_is_refused_naming_the_first(gcs_emulator):
    import os
    import socket

    from ouro.train.gcs_lock import GcsRunLock
    from ouro.train.runlock import RunLocked

    url = "gs://ouro-test/runs/locked"
    with GcsRunLock(url):
        with pytest.raises(RunLocked, match=rf"pid {os.getpid()} on host {socket.gethostname()}"):
            train(_cfg(url))
    with GcsRunLock(url):  # released: free again
        pass


def test_stale_gs_lock_of_a_dead_holder_is_taken_over(gcs_emulator, capsys):
    from ouro.data import storage
    from ouro.train.gcs_lock import GcsRunLock

    url = "gs://ouro-test/runs/stale"
    storage.put_bytes(f"{url}/run.lock", json.dumps({"pid": 1, "host": "gone-vm", "heartbeat": 0}).encode())
    with GcsRunLock(url) as lock:
        assert lock.generation
    assert "took over a stale lock of pid 1 on host gone-vm" in capsys.readouterr().err


def test_lock_ttl_is_the_config_value(gcs_emulator, capsys):
    """lock_ttl_s decides how long a silent holder is honoured: a holder last heard 60 s ago
    refuses `train` under lock_ttl_s=90 (the refusal says so) and is taken over at 30 s."""
    import time

    from ouro.cli import main as ouro
    from ouro.data import storage
    from ouro.train.runlock import RunLocked, lock_for

    url = "gs://ouro-test/runs/ttl"
    holder = {"pid": 4242, "host": "other-vm", "heartbeat": time.time() - 60, "started": "earlier"}
    storage.put_bytes(f"{url}/run.lock", json.dumps(holder).encode())
    with pytest.raises(RunLocked, match=r"pid 4242 on host other-vm .*a lock without a heartbeat for 90 s is taken over"):
        train(override(_cfg(url), ["lock_ttl_s=90"]))
    cfg = override(preset_config("digits-smoke"), ["lock_ttl_s=30"])
    with lock_for(url, ttl_s=cfg.lock_ttl_s) as lock:
        assert lock.generation
    assert "took over a stale lock of pid 4242 on host other-vm (no heartbeat for 60 s)" in capsys.readouterr().err
    assert ouro(["train", "--preset", "digits-smoke", "lock_ttl_s=5"]) == 2
    assert capsys.readouterr().err.strip() == "ouro train: error: lock_ttl_s=5.0: must be >=10"


GS_NOTEBOOK = """\
# %% tags=["parameters"]
out_dir = ""
x = 1

# %%
from ouro.fileio import write_json
write_json(out_dir + "/result.json", {"x2": x * 2})
"""


def test_ouro_run_on_gs_keeps_run_json_on_the_bucket_from_process_0(gcs_emulator, tmp_path, monkeypatch, capsys):
    """`ouro run -p out_dir gs://...` as each pod host runs it: process 1 runs the notebook and
    writes no record anywhere; process 0 writes run.json and the executed notebook into the
    bucket's run directory (no local run.json: the VM's disk does not outlive it), `ouro
    report` reads the status from there, and a completed run there is not run again."""
    from ouro.cli import main as ouro

    nb = tmp_path / "gsnb.py"
    nb.write_text(GS_NOTEBOOK)
    url, runs = "gs://ouro-test/runs/nb", tmp_path / "runs"
    fs = fsspec.filesystem("gs")
    args = ["run", str(nb), "-p", "out_dir", url, "-p", "x", "21", "--runs-root", str(runs), "--no-progress"]
    monkeypatch.setenv("JAX_PROCESS_ID", "1")
    assert ouro([*args, "--run-name", "nb/host1"]) == 0
    fs.invalidate_cache()
    assert json.loads(fs.cat(f"{url}/result.json")) == {"x2": 42}
    assert not fs.exists(f"{url}/run.json") and (runs / "nb" / "host1" / "gsnb.ipynb").exists()
    monkeypatch.setenv("JAX_PROCESS_ID", "0")
    assert ouro([*args, "--run-name", "nb/host0"]) == 0
    fs.invalidate_cache()
    rec = json.loads(fs.cat(f"{url}/run.json"))
    assert rec["status"] == "completed" and rec["parameters"] == {"out_dir": url, "x": 21}
    assert rec["executed_notebook"] == "gsnb.ipynb" and fs.exists(f"{url}/gsnb.ipynb")
    assert not list(runs.rglob("run.json"))
    assert ouro(["report", "--outputs", "gs://ouro-test", "--reports", str(tmp_path / "rep")]) == 0
    row = next(ln for ln in (tmp_path / "rep" / "Detail.md").read_text().splitlines() if ln.startswith("| `nb` |"))
    assert "notebook `gsnb.py` (executed: `gsnb.ipynb`)" in row and "| completed |" in row, row
    capsys.readouterr()
    assert ouro([*args, "--run-name", "nb/host0"]) == 2
    assert f"run record {url}/run.json already holds a completed run" in capsys.readouterr().err


def test_damaged_gs_checkpoint_falls_back_with_a_named_warning(gcs_emulator, tmp_path, monkeypatch):
    """Newest checkpoint on the bucket damaged - an object deleted, then (after the rerun wrote
    step 8 again) one truncated: each resume names the damage and falls back to step 4."""
    monkeypatch.setenv("OURO_CACHE", str(tmp_path / "cache"))
    url = "gs://ouro-test/runs/damaged"
    fs = fsspec.filesystem("gs")
    train(_cfg(url))  # checkpoints 4 and 8
    for damage in ("delete", "truncate"):
        fs.invalidate_cache()
        victim = sorted(p for p in fs.find(f"{url}/checkpoints/8/state") if fs.size(p) > 100)[0]
        if damage == "delete":
            fs.rm(victim)
        else:
            fs.pipe(victim, fs.cat(victim)[:50])
        rest = train(_cfg(url))
        assert rest["resumed_from"] == 4 and rest["finished"], damage
        warning = rest["warnings"][0]
        assert f"checkpoint step 8 at {url}/checkpoints/8 does not restore" in warning, warning
        assert victim.split("/", 1)[1] in warning and "moved aside to 8.corrupt-" in warning
        fs.invalidate_cache()
        assert fs.exists(f"{url}/checkpoints/8/commit_success.txt")  # step 8 written anew


@pytest.mark.parametrize("url, expect", [
    ("gs://no-such-bucket/run", "gs://no-such-bucket/run: bucket gs://no-such-bucket does not exist"),
])
def test_missing_bucket_is_one_line_before_compiling(gcs_emulator, url, expect):
    with pytest.raises(UserError, match=expect):
        train(_cfg(url))


def test_unreachable_endpoint_is_one_line(gcs_emulator, monkeypatch, tmp_path, capsys):
    from ouro.cli import main as ouro

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(UserError, match=r"gs://ouro-test/x: cannot reach the storage endpoint http://127.0.0.1:9"):
        train(_cfg("gs://ouro-test/x"))
    # data on the bucket: the line comes before its index.json is read (was a gcsfs trace, exit 1)
    capsys.readouterr()
    assert ouro(["train", "--preset", "latents-smoke", "data.path=gs://ouro-test/data", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ouro train: error: gs://ouro-test/data: cannot reach the storage endpoint "
                          "http://127.0.0.1:9") and "\n" not in err, err


def test_no_credentials_is_one_line(gcs_emulator, monkeypatch):
    from ouro.data.storage import check_reachable
    from ouro.sim.gcs_emulator import GcsEmulator

    strict = GcsEmulator(["ouro-test"], require_token=True).start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", strict.url)
        monkeypatch.delenv("GOOGLE_AUTH_TOKEN_FOR_TESTING")
        with pytest.raises(UserError, match=rf"gs://ouro-test/run: no credentials were accepted .*\(at {strict.url}\)"):
            check_reachable("gs://ouro-test/run")
        monkeypatch.setenv("GOOGLE_AUTH_TOKEN_FOR_TESTING", "t")
        check_reachable("gs://ouro-test/run")  # with a token: fine
    finally:
        strict.stop()
