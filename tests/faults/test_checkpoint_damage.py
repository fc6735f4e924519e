"""A damaged newest checkpoint: reported by step and path, moved aside, the previous one
restored; the resumed run then equals the uninterrupted run. Nothing restores: fresh start."""

import json
import shutil

import numpy as np
import pytest

from ouro.train import NonFiniteLoss, train
from ouro.train.checkpoint import CheckpointMismatch, Checkpointer
from ouro.train.identity import ConfigChanged

pytestmark = pytest.mark.faults


def _biggest(step_dir):
    return max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def truncate(step_dir):
    f = _biggest(step_dir)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def garble_4k(step_dir):
    f = _biggest(step_dir)
    data = bytearray(f.read_bytes())
    assert len(data) > 8192
    mid = len(data) // 2
    data[mid:mid + 4096] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))


def delete_manifest(step_dir):
    (step_dir / "state" / "manifest.ocdbt").unlink()


def meta_not_json(step_dir):
    (step_dir / "meta" / "metadata").write_text("{not json")


@pytest.fixture(scope="module")
def finished_run(fx, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    train(fx.worker.toy_cfg(out), fx.worker.make_toy)
    assert Checkpointer(out / "checkpoints").all_steps() == [8, 12]
    return out


@pytest.mark.parametrize("damage", [truncate, garble_4k, delete_manifest, meta_not_json])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(fx, reference, finished_run, tmp_path, capfd, damage):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    damage(out / "checkpoints" / "12")
    summary = train(fx.worker.toy_cfg(out), fx.worker.make_toy)
    err = capfd.readouterr().err
    assert "checkpoint step 12 at" in err and str(out / "checkpoints" / "12") in err
    assert summary["resumed_from"] == 8 and summary["finished"]
    aside = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("12.corrupt-")]
    assert len(aside) == 1  # kept for inspection, not deleted
    metrics = json.loads((out / "metrics.json").read_text())
    assert any("checkpoint step 12" in w for w in metrics["warnings"])
    fx.assert_same_run(out, reference)  # steps 9-12 were redone exactly


def test_nothing_restores_starts_fresh_with_a_warning(fx, reference, finished_run, tmp_path, capfd):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    meta_not_json(out / "checkpoints" / "12")
    delete_manifest(out / "checkpoints" / "8")
    summary = train(fx.worker.toy_cfg(out), fx.worker.make_toy)
    assert summary["resumed_from"] is None and summary["finished"]
    assert "starting from scratch" in capfd.readouterr().err
    assert "starting from scratch" in json.loads((out / "metrics.json").read_text())["warnings"][-1]
    fx.assert_same_run(out, reference)


def test_divergence_from_scratch_names_no_step_none_and_keeps_good_checkpoints(fx, tmp_path):
    cfg = fx.worker.toy_cfg(tmp_path, lr=1e30, warmup_steps=0, ckpt_every=100)
    with pytest.raises(NonFiniteLoss) as err:
        train(cfg, fx.worker.make_toy)
    assert "step None" not in str(err.value) and "No checkpoint was saved" in str(err.value)
    # with checkpoints: the last good one survives and a saner rerun resumes from it
    cfg = fx.worker.toy_cfg(tmp_path / "b", lr=1e30, warmup_steps=0, ckpt_every=1)
    with pytest.raises(NonFiniteLoss, match=r"Last good checkpoint: step \d+") as err:
        train(cfg, fx.worker.make_toy)
    good = int(str(err.value).split("Last good checkpoint: step ")[1].split()[0])
    bad = int(str(err.value).split("at step ")[1].split()[0])
    assert good == bad - 1
    # resumable: the rerun restores it (no fallback) and meets the same divergence again
    with pytest.raises(NonFiniteLoss, match=f"at step {bad} .*Last good checkpoint: step {good}"):
        train(cfg, fx.worker.make_toy)
    assert Checkpointer(tmp_path / "b" / "checkpoints").latest_step() == good


def test_checkpoint_of_another_config_is_refused_not_moved_aside(fx, finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    cfg = fx.worker.toy_cfg(out, model=fx.worker.ToyConfig(dim=16))  # intact, but not this model's
    with pytest.raises(ConfigChanged, match="model.dim: 32 → 16"):  # the run's config.json says so first
        train(cfg, fx.worker.make_toy)
    (out / "config.json").unlink()  # without that record, the arrays themselves refuse
    with pytest.raises(CheckpointMismatch, match=r"checkpoint step 12 .* shape \(32,\) stored, \(16,\) expected"):
        train(cfg, fx.worker.make_toy)
    assert Checkpointer(out / "checkpoints").all_steps() == [8, 12]
    assert not list((out / "checkpoints").glob("*.corrupt-*"))


def test_sampling_a_run_whose_newest_checkpoint_is_damaged_uses_the_previous(fx, finished_run, tmp_path, capfd):
    """`ouro sample`'s restore (load_for_sampling): the damaged step is named and skipped,
    not moved (a reader leaves that to the run's writer); `--step` of it is one line."""
    from ouro import cli
    from ouro.train.sample import load_for_sampling

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    truncate(out / "checkpoints" / "12")
    s = load_for_sampling(out, make_model=fx.worker.make_toy)
    err = capfd.readouterr().err
    assert s.step == 8
    assert f"checkpoint step 12 at {out / 'checkpoints' / '12'} does not restore" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name[0].isdigit()) == ["12", "8"]
    assert cli.main(["sample", "--ckpt", str(out), "--step", "12"]) == 2
    last = capfd.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("ouro sample: error: ") and "other steps: 8 (choose one with --step)" in last
