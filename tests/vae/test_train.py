"""`ouro vae train`: a short run of the small autoencoder reaches a stated held-out PSNR,
resumes after an interruption, and its output loads like any diffusers AutoencoderKL."""

import json

import numpy as np
import pytest

from ouro.cli import main as ouro_main
from ouro.data.shapes import make_shapes
from ouro.train.metrics import read_csv
from ouro.vae import load_autoencoder
from ouro.vae.train import psnr, train_vae, vae_train_preset

MIN_PSNR_DB = 12.0  # 100 steps of the smoke preset at 16 px: measured 13.1-13.4 dB (the real preset: 27.7 dB)


@pytest.mark.slow  # ~200 train steps + 3 compiles: minutes on a loaded 2-core machine
def test_short_training_reaches_psnr_and_resumes(tmp_path):
    cfg = vae_train_preset("shapes-smoke", out_dir=str(tmp_path / "vae"), steps=100, log_every=25, ckpt_every=50)
    first = train_vae(cfg, stop_after=50)
    assert first == {"out_dir": cfg.out_dir, "steps": 50, "resumed_from": None, "finished": False,
                     "status": "interrupted"}
    summary = train_vae(cfg)
    assert summary["status"] == "completed"
    assert json.loads((tmp_path / "vae" / "vae_train.json").read_text())["status"] == "completed"
    assert summary["resumed_from"] == 50 and summary["steps"] == 100
    assert [r["global_step"] for r in read_csv(tmp_path / "vae" / "loss.csv")] == [25, 50, 75, 100]
    assert summary["test_psnr_db"] >= MIN_PSNR_DB, summary

    ae = load_autoencoder(cfg.out_dir)  # the diffusers-format directory it wrote
    test = make_shapes(32, seed=1, image_size=16).images
    z = ae.encode(test)
    assert z.shape == (32, 8, 8, 4)
    assert abs(z.mean()) < 0.3 and 0.6 < z.std() < 1.5  # shift/scale fitted to the latents
    assert abs(psnr(ae.decode(z), test) - summary["test_psnr_db"]) < 1e-3
    written = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert written["_class_name"] == "AutoencoderKL" and written["scaling_factor"] == summary["scaling_factor"]
    baseline = psnr(np.broadcast_to(test.mean(0), test.shape), test)
    assert summary["test_psnr_db"] > baseline + 2, (summary["test_psnr_db"], baseline)


def test_cli_rejects_bad_override(tmp_path, capsys):
    assert ouro_main(["vae", "train", "--preset", "shapes-smoke", "stepz=3"]) == 2
    assert "stepz" in capsys.readouterr().err
