"""CLI manners: one-line user errors with exit 2, --version, help that lists every config key."""

import dataclasses
import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from ouro import cli
from ouro.config_doc import field_comments, fields
from ouro.train.config import DataConfig, TrainConfig, preset_config


@pytest.mark.parametrize("argv, message", [
    (["train", "lr=-1"], "ouro train: error: lr=-1.0: must be >0"),
    (["train", "--preset", "digits-smoke", "steps=2", "warmup_steps=5"],
     "ouro train: error: warmup_steps: 5 must be in [0, steps=2]"),
    (["train", "model.dim=63"], "ouro train: error: model.dim=63: must be a multiple of head_dim=32"),
    (["train", "stepz=3"], "ouro train: error: unknown config key 'stepz'"),
    (["train", "steps=ten"], "ouro train: error: steps='ten': expected int"),
    (["sample", "--ckpt", "outputs/nope"], "ouro sample: error: --ckpt outputs/nope: not a training run directory"),
    (["sweep", "--ckpt", "outputs/nope"], "ouro sweep: error: --ckpt outputs/nope: not a training run directory"),
])
def test_user_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith(message), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and out == ""


def test_debug_keeps_the_traceback():
    from ouro.config import ConfigError

    with pytest.raises(ConfigError, match=r"lr=-1\.0: must be >0"):
        cli.main(["train", "lr=-1", "--debug"])


def test_sample_checkpointless_run_dir_is_a_user_error(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"train": dataclasses.asdict(preset_config("digits-smoke"))}))
    assert cli.main(["sample", "--ckpt", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ouro sample: error: --ckpt {tmp_path}: no checkpoint") and len(err.splitlines()) == 1


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ouro {version('ouro')}"


def test_version_in_a_fresh_process_does_not_import_jax():
    code = "import sys; from ouro import cli; cli.main(['--version']); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [f"ouro", version("ouro"), "False"]


def test_train_help_lists_every_key_with_type_default_and_reason(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--preset", "digits-smoke", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.count("Rerunning the same command resumes") == 1  # the docstring once, not twice
    cfg = preset_config("digits-smoke")
    keys = [k for k, *_ in fields(cfg)]
    assert len(keys) > 40 and "model.dim" in keys and "sample.cfg_scale" in keys
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("  ") and ln.split()[0] in keys}
    assert set(lines) == set(keys)
    # the digits-smoke values, the field types and the comments written beside the fields
    assert "int" in lines["steps"] and "= 20 " in lines["steps"] and "# total optimizer steps" in lines["steps"]
    assert "{logit_normal,mode,cosmap,uniform}" in lines["flow.t_dist"] and "= 'logit_normal'" in lines["flow.t_dist"]
    assert "= 32 " in lines["model.dim"] and "# model width D" in lines["model.dim"]
    assert lines["data.kind"].endswith("# " + field_comments(DataConfig)["kind"])


def test_field_comments_follow_the_source():
    comments = field_comments(TrainConfig)
    assert comments["lr"].startswith("muP base lr")
    assert comments["ckpt_every"] == "Orbax checkpoint every N steps (+ at the end)"
    assert set(comments) <= {f.name for f in dataclasses.fields(TrainConfig)}


def test_print_config_is_the_resolved_config(capsys):
    assert cli.main(["train", "--preset", "digits-smoke", "lr=0.25", "model.dim=64", "--print-config"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["lr"] == 0.25 and doc["model"]["dim"] == 64 and doc["steps"] == 20 and doc["name"] == "digits-smoke"


@pytest.mark.parametrize("command", ["sample", "sweep"])
def test_sample_and_sweep_help_show_defaults(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: euler)" in out and "(default: None)" in out
    assert ("(default: 3.0)" if command == "sample" else "(default: 4,8,16,32)") in out


def test_top_level_usage_mentions_version_and_debug(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--version" in out and "--debug" in out and "report" in out
