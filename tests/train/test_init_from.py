"""`init_from=RUN` starts a new run from another run's EMA weights (fresh optimizer, step 0;
a shape mismatch names the parameter), and `sample_every` draws grids during training on the
digits (the toy network keeps it fast; tests/train/test_own_data.py runs the real model)."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from ouro import sharding as shd
from ouro.config import override
from ouro.errors import UserError
from ouro.train import train
from ouro.train.config import DataConfig, MeshConfig, SampleConfig, TrainConfig
from ouro.train.init_from import initial_state
from ouro.train.sample import load_for_sampling
from ouro.train.step import build_trainer


def toy_config(toy_cfg, out_dir, **kw):
    return TrainConfig(model=toy_cfg(), data=DataConfig(context="random"), out_dir=str(out_dir), name="toy",
                       steps=2, batch_size=16, warmup_steps=1, log_every=1, ckpt_every=2, progress=False,
                       eval_samples=False, sample_every=1, sample=SampleConfig(steps=2, per_class=1),
                       mesh=MeshConfig(data=1), tensorboard=False, **kw)


def test_sample_every_and_init_from(toy, tmp_path):
    toy_cfg, make = toy
    cfg = toy_config(toy_cfg, tmp_path / "src")
    summary = train(cfg, make)
    # sample_every: grids from the EMA weights during training, the last one is samples.png
    out = Path(cfg.out_dir)
    assert summary["finished"] and summary["dataset"]["name"] == "digits"
    grids = out / "train_samples"
    assert (grids / "step_0000001_grid.png").is_file() and (grids / "step_0000002_grid.png").is_file()
    assert (out / "samples.png").read_bytes() == (out / "train_samples" / "step_0000002_grid.png").read_bytes()
    assert json.loads((out / "train_samples" / "prompts.json").read_text())["prompts"] == [str(k) for k in range(10)]

    # init_from: the source's EMA weights in a fresh state
    ema = load_for_sampling(cfg.out_dir, make_model=make).params
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    new = override(cfg, [f"out_dir={tmp_path / 'ft'}", f"init_from={cfg.out_dir}"])
    state, loaded = initial_state(new, build_trainer(new, mesh, make))
    assert loaded == {"run": cfg.out_dir, "step": 2, "weights": "ema"}
    for a, b, c in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(state["ema"]), jax.tree.leaves(ema)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
        np.testing.assert_array_equal(np.asarray(b), np.asarray(c))
    assert int(state["step"]) == 0
    assert all(not np.asarray(m).any() for m in jax.tree.leaves(state["opt"])
               if np.asarray(m).dtype.kind == "f")  # fresh Adam moments

    wider = override(new, ["model.dim=64"])
    with pytest.raises(UserError, match=r"init_from=.*: parameter ctx.bias has shape \(32,\) there, \(64,\) here"):
        initial_state(wider, build_trainer(wider, mesh, make))
    with pytest.raises(UserError, match="not a training run directory"):
        initial_state(override(new, [f"init_from={tmp_path}"]), build_trainer(new, mesh, make))

    summary = train(override(new, ["steps=1", "sample_every=0"]), make)  # through the loop
    assert summary["global_step"] == 1 and summary["resumed_from"] is None
    assert json.loads((tmp_path / "ft" / "init_from.json").read_text())["step"] == 2
