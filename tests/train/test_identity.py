"""A run's config is its identity: a resume with changed keys is refused naming each
difference, except keys documented as safe, which are recorded in config.json's history."""

import json

import pytest

from ouro import cli
from ouro.config import to_dict
from ouro.fileio import write_json
from ouro.train import TrainConfig, train
from ouro.train.config import DataConfig, MeshConfig, SampleConfig, preset_config
from ouro.train.identity import SAFE_ON_RESUME, ConfigChanged, diff, is_safe


def _cfg(toy_cfg, out_dir, **kw):
    base = dict(model=toy_cfg(), data=DataConfig(context="random"), out_dir=str(out_dir), name="toy",
                steps=6, batch_size=16, warmup_steps=2, log_every=1, ckpt_every=2, keep_ckpts=2,
                progress=False, eval_samples=False, sample=SampleConfig(steps=2, per_class=1),
                mesh=MeshConfig(data=1))
    base.update(kw)
    return TrainConfig(**base)


def test_diff_and_safe_keys():
    a = to_dict(preset_config("digits-smoke"))
    b = to_dict(preset_config("digits-smoke", lr=0.1, steps=40))
    assert diff(a, b) == {"lr": (0.5, 0.1), "steps": (20, 40)}
    assert diff(a, json.loads(json.dumps(a))) == {}  # tuples vs the lists config.json holds
    del a["seed"]  # a key an older config.json lacks is not compared
    assert "seed" not in diff(a, to_dict(preset_config("digits-smoke", seed=3)))
    assert is_safe("steps") and is_safe("sample.cfg_scale") and is_safe("mesh.fsdp")
    assert not is_safe("lr") and not is_safe("model.dim") and not is_safe("data.path")
    assert all(reason for reason in SAFE_ON_RESUME.values())


def test_resume_with_changed_config_is_refused_or_recorded(toy, tmp_path):
    toy_cfg, make = toy
    train(_cfg(toy_cfg, tmp_path), make, stop_after=3)
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigChanged) as err:  # checked before anything is built
        train(_cfg(toy_cfg, tmp_path, lr=0.1, seed=7), make)
    msg = str(err.value)
    assert "lr: 0.5 \u2192 0.1" in msg and "seed: 0 \u2192 7" in msg and "\n" not in msg
    assert "steps" in msg.split("Keys that may change on resume:")[1]
    assert (tmp_path / "config.json").read_text() == before  # the record stays the run's

    out = train(_cfg(toy_cfg, tmp_path, steps=8, log_every=2), make)  # safe: accepted, recorded
    assert out["resumed_from"] == 3 and out["global_step"] == 8
    rec = json.loads((tmp_path / "config.json").read_text())
    assert rec["train"]["steps"] == 8
    [entry] = rec["history"]
    assert entry["step"] == 3 and entry["changes"] == {"log_every": [1, 2], "steps": [6, 8]}
    train(_cfg(toy_cfg, tmp_path, steps=8, log_every=2), make)  # unchanged: history kept as is
    assert json.loads((tmp_path / "config.json").read_text())["history"] == [entry]


def test_fresh_out_dir_with_a_config_but_no_checkpoint_is_not_a_resume(toy, tmp_path):
    toy_cfg, make = toy
    write_json(tmp_path / "config.json", {"train": to_dict(_cfg(toy_cfg, tmp_path, lr=0.3))})
    out = train(_cfg(toy_cfg, tmp_path, steps=2), make)
    assert out["finished"] and "history" not in json.loads((tmp_path / "config.json").read_text())


def test_ouro_train_refuses_a_changed_resume_in_one_line(tmp_path, capsys):
    cfg = preset_config("digits-smoke", out_dir=str(tmp_path))
    write_json(tmp_path / "config.json", {"train": to_dict(cfg)})
    (tmp_path / "checkpoints" / "10").mkdir(parents=True)  # refused before it is even read
    rc = cli.main(["train", "--preset", "digits-smoke", f"out_dir={tmp_path}", "lr=0.1", "model.depth=2"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("ouro train: error: ") and "lr: 0.5 \u2192 0.1" in err and "model.depth: 1 \u2192 2" in err
