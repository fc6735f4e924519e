"""The text-conditioning study's pieces (ouro/vae/study.py, ouro/vae/report_study.py): arms at
equal training FLOPs by the model's own accounting, held-out slicing, the report section."""

import json
import types

import numpy as np
import pytest

from ouro.report.detail import build_report
from ouro.train.loop import model_train_flops
from ouro.vae import study


@pytest.fixture
def base(tmp_path):
    data = tmp_path / "latents"
    data.mkdir()
    (data / "shapes.json").write_text(json.dumps({"latent_shape": [8, 8, 4]}))
    ae = types.SimpleNamespace(path="")
    return study.base_config(data, ae, out_dir=str(tmp_path / "study"), dim=64, depth=1, batch_size=32,
                             ckpt_every=50)


def test_every_arm_gets_the_budget_in_steps(base):
    T = 16
    budget = 300 * 32 * model_train_flops(base.model, base, 1)  # 300 steps of the pooled arm
    plans = {arm: study.arm_config(base, arm, flops=budget, ctx_len=T) for arm in study.ARMS}
    pooled_cfg, pooled = plans["pooled"]
    assert pooled["steps"] == 300 and pooled_cfg.model.text_input == "pooled"
    for arm, (cfg, acc) in plans.items():
        per_image = model_train_flops(cfg.model, cfg, T if cfg.model.text_input == "tokens" else 1)
        assert acc["train_flops_per_image"] == per_image
        assert abs(acc["train_flops"] - budget) <= 0.5 * 32 * per_image  # within half a step
        assert cfg.steps == acc["steps"] and cfg.out_dir.endswith(f"study/{arm}")
        assert cfg.keep_ckpts * cfg.ckpt_every > cfg.steps  # every checkpoint kept: the learning curve
    tokens_cfg, tokens = plans["tokens"]
    assert tokens_cfg.model.text_input == "tokens"
    assert tokens["train_flops_per_image"] > pooled["train_flops_per_image"]  # T text tokens vs one
    assert tokens["steps"] < pooled["steps"]
    assert plans["tokens-shift3"][0].flow.shift == 3.0 and plans["tokens-uniform"][0].flow.t_dist == "uniform"
    assert plans["tokens-minsnr"][0].flow.loss_weight == "min_snr"
    with pytest.raises(ValueError, match="arm 'bogus': unknown"):
        study.arm_config(base, "bogus", flops=budget, ctx_len=T)


def test_heldout_slices_and_feeds_each_text_input():
    from ouro.data.shapes import make_shapes

    sh = make_shapes(6, seed=3, image_size=16)
    states = np.random.default_rng(0).standard_normal((6, 5, 8)).astype(np.float32)
    h = study.Heldout(sh, np.ones((6, 8), np.float32), states, np.ones((6, 5), bool), np.arange(6) < 2)
    part = h[:4]
    assert len(part) == 4 and part.shapes.captions == sh.captions[:4] and part.seen.tolist() == [1, 1, 0, 0]
    assert all(len(v) == 4 for v in part.shapes.attrs.values())
    ctx, mask = part.for_model("pooled")
    assert ctx.shape == (4, 1, 8) and mask is None
    ctx, mask = part.for_model("tokens")
    assert ctx.shape == (4, 5, 8) and mask.shape == (4, 5)
    from ouro.eval.shapes_score import score_shapes

    split = study._seen_split(sh.images, h)  # the whole-caption score of each part on its own
    want = [score_shapes(sh.images[sl], {k: v[sl] for k, v in sh.attrs.items()})["all"] for sl in (slice(0, 2), slice(2, 6))]
    assert split == {"n_seen": 2, "all_seen": want[0], "all_unseen": want[1]}


def _report():
    score = {"colour": 0.9, "shape": 0.5, "size": 0.75, "position": 0.25, "all": 0.125, "n": 8}
    row = lambda cfg, iv=(0.0, 1.0): {**score, "cfg_scale": cfg, "interval": list(iv), "all_seen": 0.2,  # noqa: E731
                                      "all_unseen": None}
    arm = lambda steps: {"steps": steps, "batch_size": 32, "train_flops": 7e12, "train_flops_per_image": 3e8,  # noqa: E731
                         "wall_s_total": 1234.0, "final_loss": 0.5, "loss_t_bins": [0.1, None],
                         "rows": [row(1.0), row(3.0), row(3.0, (0.0, 0.7))],
                         "curve": [{**score, "step": 100}, {**score, "step": 200, "all": 0.25}]}
    return {"n_eval": 8, "eval_seed": 0, "test_seed": 10001, "sample_steps": 16, "n_images": 64,
            "captions_unique": 60, "text_tokens": 16, "heldout_seen": 7, "vae": {"steps": 10, "test_psnr_db": 20.0},
            "model": {"dim": 64, "depth": 1, "batch_size": 32, "tread_rate": 0.5}, "budget_flops": 7e12,
            "budget_steps": 700, "ceiling": {"real": {**score, "all": 1.0}, "reconstructed": {**score, "all": 0.8}},
            "arms": {"tokens": arm(500), "pooled": arm(700)}, "curve_n": 4, "curve_cfg": 3.0,
            "best": {"arm": "tokens", **row(3.0)}}


def test_report_section_tables_the_study(tmp_path):
    outputs, reports = tmp_path / "outputs", tmp_path / "reports"
    run = outputs / "runs" / "text_conditioning"
    (run / "tokens" / "study_samples").mkdir(parents=True)
    (run / "text_conditioning.json").write_text(json.dumps(_report()))
    (run / "run.json").write_text(json.dumps({"run_name": "text_conditioning", "status": "completed"}))
    from ouro.train.png import save_images

    save_images(np.zeros((2, 4, 4, 3), np.float32), run / "tokens" / "study_samples", ["a", "b"],
                prefix="cfg3_t0-1", upscale=1)
    section = build_report(outputs, reports, tmp_path).split("## Text conditioning study")[1]
    assert "| tokens | 500 | 7.00 | 1234 | 3 | all t | 0.900 | 0.500 | 0.750 | 0.250 | 0.125 | 0.200 | — |" in section
    assert "| tokens | 500 | 7.00 | 1234 | 3 | t in [0, 0.7] |" in section
    assert "| reconstructed | — |" in section and "Best: **tokens** at CFG 3: whole-caption 0.125" in section
    assert "| pooled | 200 | 2.00 | 0.900 | 0.500 | 0.750 | 0.250 | 0.250 |" in section  # curve: 7e12 / 700 per step
    assert "| tokens | 200 | 2.80 |" in section
    assert "| pooled | 0.5000 | 1.76 | 0.100 — |" in section  # s/step = 1234 / 700
    figure = "text_conditioning--tokens_study_samples_cfg3_t0-1_grid.png"
    assert (reports / "figures" / figure).exists() and figure in section
    empty = build_report(tmp_path / "none", tmp_path / "r2", tmp_path).split("## Text conditioning study")[1]
    assert "Not yet run" in empty


def test_closed_captions_repeat_k_captions_with_new_placements_per_seed(tmp_path):
    from ouro.data.shapes import make_shapes

    attrs = study.closed_captions(4, 12)
    train = make_shapes(12, seed=0, image_size=16, attrs=attrs)
    test = make_shapes(12, seed=10001, image_size=16, attrs=attrs)
    assert len(set(train.captions)) == 4 and train.captions == train.captions[:4] * 3
    assert test.captions == train.captions and not np.array_equal(test.images, train.images)  # same text, new images
    assert study.closed_captions(4, 4)["relation"].tolist() == attrs["relation"][:4].tolist()
    with pytest.raises(ValueError, match="n=10 must be a positive multiple of k=4"):
        study.closed_captions(4, 10)
    with pytest.raises(ValueError, match="attrs: need 3 values"):
        make_shapes(3, image_size=16, attrs={k: v[:2] for k, v in attrs.items()})
    run = tmp_path / "arm"
    assert not study.finished(run, 5)
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"global_step": 5}))
    assert study.finished(run, 5) and not study.finished(run, 6)


def test_study_tables_show_the_limits_checks():
    from ouro.vae.report_study import study_tables

    report = _report()
    score = {"colour": 0.8, "shape": 0.4, "size": 0.6, "position": 0.5, "all": 0.25, "n": 8}
    report["capacity"] = {"captions": 32, "n_images": 8192, "n_eval": 256, "steps": 499, "train_flops": 7e12,
                          "final_loss": 0.59, "rows": [{**score, "cfg_scale": 3.0}],
                          "curve": [{**score, "step": 100}]}
    report["sampler_steps"] = [{**score, "steps": 64, "cfg_scale": 3.0}]
    text = study_tables(report)
    assert "Capacity check: the tokens arm trained on 32 distinct captions only (8192 images)" in text
    assert "| 499 | 7.00 | 0.5900 | 3 | 0.800 | 0.400 | 0.600 | 0.500 | 0.250 |" in text
    assert "| 100 | 1.40 | 0.800 |" in text  # its curve: 7e12 / 499 FLOPs per step
    assert "| 16 | 0.900 | 0.500 | 0.750 | 0.250 | 0.125 |" in text and "| 64 | 0.800 |" in text  # sampler steps
    # shape and size among found objects: 0.5 / 0.9 and 0.75 / 0.9; the capacity arm 0.4 / 0.8, 0.6 / 0.8
    assert "| tokens, CFG 1, all t | 0.900 | 0.556 | 0.833 |" in text
    assert "| capacity check (32 captions), CFG 3 | 0.800 | 0.500 | 0.750 |" in text
    assert "| reconstructed images | 0.900 | 0.556 | 0.833 |" in text
