"""`ouro train`'s failures are one line (`ouro train: error: ...`, exit 2) and leave nothing
behind: a misspelt key or preset (with "did you mean"), a NaN stop, a read-only out_dir, a
run refused during set-up (no empty run directory holding run.lock)."""

import contextlib
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

import ouro.train
from ouro import cli
from ouro.errors import UserError
from ouro.train import NonFiniteLoss
from ouro.train.config import TrainConfig


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("ouro train: error: ") and "usage:" not in err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["lrr=0.1"], "unknown config key 'lrr'; did you mean 'lr'?"),
    (["model.dimm=3"], "unknown config key 'model.dimm'; did you mean 'model.dim'?"),
    (["data.chanels=3"], "did you mean 'data.channels'?"),
    (["--preset", "digit"], "unknown training preset 'digit'; did you mean 'digits'"),
    (["zzz=1"], "none is close among the {n} keys here (`--help` lists them)"),
])
def test_misspelt_key_or_preset_is_one_line_with_a_suggestion(capsys, argv, expected):
    assert cli.main(["train", *argv]) == 2
    err = _one_line(capsys)
    top_level = [f.name for f in dataclasses.fields(TrainConfig)]
    assert expected.format(n=len(top_level)) in err and "b1, b2" not in err  # no wall of names


def test_nan_stop_is_one_line_from_the_cli(toy, tmp_path, monkeypatch, capsys):
    from ouro.train import TrainConfig
    from ouro.train.config import DataConfig, MeshConfig

    toy_cfg, make = toy
    real = ouro.train.train

    def toy_train(cfg):  # the CLI's path with the toy network (a real model is 10x slower)
        return real(TrainConfig(model=toy_cfg(), data=DataConfig(context="random"), out_dir=cfg.out_dir,
                                steps=6, batch_size=16, lr=1e30, warmup_steps=0, log_every=1, ckpt_every=1,
                                progress=False, eval_samples=False, mesh=MeshConfig(data=1)), make)

    monkeypatch.setattr(ouro.train, "train", toy_train)
    assert cli.main(["train", "--preset", "digits-smoke", f"out_dir={tmp_path}"]) == 2
    err = _one_line(capsys)
    assert "non-finite loss/gradient at step" in err and "Last good checkpoint: step" in err
    assert issubclass(NonFiniteLoss, UserError) and issubclass(NonFiniteLoss, FloatingPointError)


@contextlib.contextmanager
def read_only_dir(path: Path):
    path.mkdir()
    if os.geteuid() != 0:
        os.chmod(path, 0o555)
        yield path
        os.chmod(path, 0o755)
    elif subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                        capture_output=True).returncode == 0:
        try:
            yield path
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
    else:
        pytest.skip("root without mount rights: cannot make a read-only directory")


def test_read_only_out_dir_is_one_line(tmp_path, capsys):
    with read_only_dir(tmp_path / "ro") as ro:
        assert cli.main(["train", "--preset", "digits-smoke", f"out_dir={ro / 'run'}"]) == 2
        err = _one_line(capsys)
        assert f"{ro / 'run'}: the run directory cannot be written" in err
        assert "Read-only file system" in err or "Permission denied" in err


def test_run_refused_in_set_up_leaves_no_run_directory(tmp_path, capsys):
    out = tmp_path / "new-run"
    rc = cli.main(["train", "--preset", "latents-smoke", f"data.path={tmp_path / 'missing'}", f"out_dir={out}"])
    assert rc == 2 and "index.json: not found" in _one_line(capsys)
    assert not out.exists()  # not an empty directory holding run.lock
