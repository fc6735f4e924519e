"""The report's latent-pipeline section: a table per run with latent_pipeline.json + its grids."""

import json

import numpy as np

from ouro.report.detail import build_report
from ouro.train.png import save_images


def test_latent_section_tables_scores_and_copies_grids(tmp_path):
    outputs, reports = tmp_path / "outputs", tmp_path / "reports"
    run = outputs / "latent-x"
    score = {"colour": 0.9, "shape": 0.5, "size": 0.75, "position": 0.25, "all": 0.125, "n": 8}
    (run).mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"global_step": 3}))
    (run / "latent_pipeline.json").write_text(json.dumps({
        "n": 8, "autoencoder": "/home/someone/proj/outputs/vae-shapes",  # recorded on another machine "sampler_steps": 16, "train_step": 3,
        "real": {**score, "colour": 1.0}, "reconstructed": {**score, "psnr_db": 27.5}, "generated": {"3": score}}))
    img = np.zeros((2, 4, 4, 3), np.float32)
    save_images(img, run / "pipeline_real", ["a", "b"], prefix="real", upscale=1)
    save_images(img, run / "pipeline_cfg3", ["a", "b"], prefix="gen_cfg3", upscale=1)
    md = build_report(outputs, reports, tmp_path)
    section = md.split("## Latent pipeline")[1]
    assert "| generated, CFG 3 | 0.900 | 0.500 | 0.750 | 0.250 | 0.125 |" in section
    assert "| real | 1.000 |" in section and "PSNR 27.50 dB" in section
    assert "autoencoder `…/outputs/vae-shapes`" in section and "/home/someone" not in md
    assert (reports / "figures" / "latent-x--gen_cfg3_grid.png").exists()
    assert (reports / "figures" / "latent-x--real_grid.png").exists()
    assert "Not yet run" in build_report(tmp_path / "empty", tmp_path / "r2", tmp_path).split("## Latent pipeline")[1]
