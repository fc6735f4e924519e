"""Metric sinks: W&B mode precedence, TensorBoard events read back, W&B run name and images."""

import glob
from pathlib import Path

import numpy as np
import pytest

from ouro.train.config import DataConfig, MeshConfig, SampleConfig, TrainConfig
from ouro.train.metrics import Sinks, read_events as _events, run_name, wandb_mode


def _cfg(out_dir, **kw):
    return TrainConfig(out_dir=str(out_dir), name="digits", **kw)


@pytest.mark.parametrize("wandb, config_mode, env, expected", [
    (False, "online", "online", None),  # wandb=false: off whatever the environment says
    (True, "offline", None, "offline"),
    (True, "online", None, "online"),
    (True, "offline", "disabled", None),  # the environment wins ...
    (True, "offline", "online", "online"),
    (True, "online", "offline", "offline"),
    (True, "offline", "dryrun", "offline"),
    (True, "disabled", None, None),  # ... and the config's own "disabled" is honoured
    (True, "online", "bogus", "online"),  # an unknown WANDB_MODE falls back to the config
])
def test_wandb_mode_precedence(wandb, config_mode, env, expected):
    cfg = _cfg("outputs/x", wandb=wandb, wandb_mode=config_mode)
    assert wandb_mode(cfg, {} if env is None else {"WANDB_MODE": env}) == expected


def test_run_name_is_the_run_not_the_preset():
    assert run_name(_cfg("outputs/runs/big-1")) == "big-1"
    assert run_name(_cfg("outputs/demo/")) == "demo"


def test_wandb_disabled_by_environment_writes_nothing(tmp_path):
    sinks = Sinks(_cfg(tmp_path, wandb=True, tensorboard=False), tmp_path, {}, environ={"WANDB_MODE": "disabled"})
    sinks.log({"loss": 1.0}, 1)
    sinks.finish()
    assert sinks.sinks == [] and list(tmp_path.iterdir()) == []


def _grid_png(path):
    from PIL import Image

    Image.fromarray(np.arange(12 * 20 * 3, dtype=np.uint8).reshape(12, 20, 3)).save(path)
    return path


def test_tensorboard_and_wandb_get_scalars_and_sample_images(tmp_path):
    out = tmp_path / "run-7"
    sinks = Sinks(_cfg(out, wandb=True, wandb_mode="offline"), out, {}, environ={})
    for step in (10, 20):
        sinks.log({"loss": 1.0 / step, "lr": 1e-3 * step}, step)
    sinks.image("samples", _grid_png(tmp_path / "samples.png"), 20)
    wb = sinks.sinks[1].run
    sinks.finish()
    values = [(e.step, v.tag, v.simple_value) for e in _events(out / "tensorboard") for v in e.summary.value
              if v.HasField("simple_value")]
    assert values == [(10, "loss", pytest.approx(0.1)), (10, "lr", pytest.approx(0.01)),
                      (20, "loss", pytest.approx(0.05)), (20, "lr", pytest.approx(0.02))]
    images = [(e.step, v.image) for e in _events(out / "tensorboard") for v in e.summary.value if v.HasField("image")]
    assert len(images) == 1 and images[0][0] == 20
    assert (images[0][1].height, images[0][1].width) == (12, 20)
    media = glob.glob(str(out / "wandb" / "offline-run-*" / "files" / "media" / "images" / "samples_*.png"))
    assert len(media) == 1  # the grid as a W&B image, not a path string
    # W&B name = the run, group = the preset (read from the run object: the offline .wandb
    # log is flushed by a background service, so its bytes are not a reliable check)
    assert (wb.name, wb.group) == ("run-7", "digits")


def test_training_logs_loss_and_lr_to_tensorboard(tmp_path, toy):
    """End to end through the loop (toy network): the logged scalars, lr included."""
    from ouro.train import train

    toy_cfg, make = toy
    out = tmp_path / "my-run"
    cfg = TrainConfig(model=toy_cfg(), data=DataConfig(context="random"), out_dir=str(out), name="toy-preset",
                      steps=4, batch_size=16, warmup_steps=2, log_every=2, ckpt_every=4, progress=False,
                      eval_samples=False, sample=SampleConfig(steps=2, per_class=1), mesh=MeshConfig(data=1),
                      wandb=False)
    train(cfg, make)
    scalars = {(e.step, v.tag): v.simple_value for e in _events(out / "tensorboard") for v in e.summary.value}
    assert {(2, "loss"), (4, "loss"), (2, "lr"), (4, "lr"), (4, "grad_norm")} <= set(scalars)
    from ouro.train.optim import reference_lr

    assert scalars[(2, "lr")] == pytest.approx(reference_lr(cfg, 1, 32), rel=1e-6)


def test_the_documented_tensorboard_viewer_is_installed():
    """README: `tensorboard --logdir outputs/` (tensorboardX writes; tensorboard views)."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "tensorboard"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip()[:1].isdigit(), out.stderr[-500:]


def test_tensorboard_logging_does_not_import_torch(tmp_path):
    """tensorboardX imports torch when it is installed (2 CPU-s per training process) only to
    accept torch tensors; ouro's sink loads it without, and a process that uses torch keeps it."""
    import subprocess
    import sys

    code = ("import sys; from ouro.train.metrics import TensorBoard, read_events; "
            "tb = TensorBoard(sys.argv[1]); tb.log({'loss': 0.5}, 1); tb.finish(); "
            "print('torch' in sys.modules, [v.simple_value for e in read_events(sys.argv[1]) for v in e.summary.value]); "
            "import torch; print(torch.ones(2).sum().item())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:2] == ["False [0.5]", "2.0"], out.stdout
