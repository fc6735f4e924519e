"""Throughput columns tell the truth: images/s and model FLOP/s in loss.csv agree with the
rows' own timestamps (the clock a user sees), and MFU is model FLOP/s over a labelled peak."""

import dataclasses
import json

import pytest

from ouro.plan.peaks import chip_peak
from ouro.train.metrics import read_csv


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from ouro.train import preset_config, train

    out = tmp_path_factory.mktemp("throughput")
    base = preset_config("digits-smoke")
    # the real (tiny) XUDiT; several log rows so that consecutive windows can be compared
    cfg = dataclasses.replace(base, out_dir=str(out), steps=16, log_every=4, ckpt_every=100,
                              warmup_steps=2, eval_samples=False,
                              data=dataclasses.replace(base.data, context="random"))
    train(cfg)
    return cfg, read_csv(out / "loss.csv"), json.loads((out / "metrics.json").read_text())


def test_images_per_s_agrees_with_the_csv_timestamps(run):
    cfg, rows, _ = run
    assert [r["global_step"] for r in rows] == [4, 8, 12, 16]
    for prev, row in zip(rows, rows[1:]):
        dt = row["timestamp"] - prev["timestamp"]
        by_clock = (row["global_step"] - prev["global_step"]) * cfg.batch_size / dt
        # timestamps have 1 ms resolution; the logged value is rounded to 4 digits
        assert by_clock == pytest.approx(row["images_per_s"], rel=0.03 + 0.002 / dt)
        assert row["model_flops_per_s"] == pytest.approx(row["images_per_s"] * run[2]["train_flops_per_image"],
                                                         rel=1e-3)


def test_mfu_is_model_flops_over_a_labelled_peak(run):
    _, rows, metrics = run
    peak = metrics["peak_flops_per_s"]
    assert peak > 0 and "stand-in" in metrics["peak_source"]  # CPU: the same-process matmul
    for r in rows:
        assert r["mfu"] == pytest.approx(r["model_flops_per_s"] / peak, rel=1e-3)
    assert metrics["mfu"] == pytest.approx(rows[-1]["mfu"], rel=1e-3)


def test_peak_table_knows_the_accelerators():
    assert chip_peak("TPU v5 lite")[0] == 197e12
    assert chip_peak("TPU v5p")[0] == 459e12
    assert chip_peak("TPU v6 lite")[0] == 918e12
    assert chip_peak("NVIDIA H100 80GB HBM3")[0] == 989e12
    assert chip_peak("cpu") is None
