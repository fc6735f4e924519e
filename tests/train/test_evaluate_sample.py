import json

import numpy as np
import pytest

from ouro.data import load_digits
from ouro.train.evaluate import evaluate_samples, frechet_distance


def test_evaluation_separates_real_digits_from_noise():
    d = load_digits("random")
    real = evaluate_samples(d.x_test, d.y_test)
    assert real["accuracy"] > 0.93 and real["accuracy"] == pytest.approx(real["floor_test_accuracy"])
    assert real["frechet"] == pytest.approx(real["floor_test_frechet"]) and real["frechet"] < 30
    noise = np.random.default_rng(0).uniform(-1, 1, size=(200, 16, 16, 1)).astype(np.float32)
    bad = evaluate_samples(noise, np.arange(200) % 10)
    assert bad["accuracy"] < 0.3 and bad["frechet"] > 10 * real["frechet"]
    shuffled = evaluate_samples(d.x_test, (d.y_test + 1) % 10)  # right images, wrong labels
    assert shuffled["accuracy"] < 0.1 and shuffled["frechet"] == pytest.approx(real["frechet"])
    with pytest.raises(ValueError, match="16, 16, 1"):
        evaluate_samples(noise[:, :8], np.zeros(200))


def test_frechet_distance_properties():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, a + 1.0) == pytest.approx(4.0, rel=1e-6)  # mean shift only


@pytest.mark.slow
def test_xudit_digits_train_sample_sweep_end_to_end(digits_run):
    """The real model through train -> checkpoint -> load_for_sampling -> grid -> sweep."""
    from ouro.train.sample import load_for_sampling, sample_grid
    from ouro.train.sweep import markdown, sweep

    run, s = digits_run
    assert s["finished"] and s["eval"]["n_samples"] == 20 and 0 <= s["eval"]["accuracy"] <= 1
    for name in ("samples.png", "metrics.json", "loss.csv", "config.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 4
    sampler = load_for_sampling(run)
    assert sampler.step == 4
    # same sampler settings and batch as the end-of-training evaluation: one compile serves all
    images, labels = sample_grid(sampler, per_class=2, steps=2, cfg_scale=3.0)
    assert images.shape == (20, 16, 16, 1) and list(labels[:4]) == [0, 0, 1, 1]
    assert np.isfinite(images).all()
    again, _ = sample_grid(sampler, per_class=2, steps=2, cfg_scale=3.0)
    np.testing.assert_array_equal(images, again)  # deterministic given the seed
    rows = sweep(sampler, [2], [3.0], per_class=2, progress=False)
    assert [(r["steps"], r["cfg_scale"], r["scorer"]) for r in rows] == [(2, 3.0, "digits")]
    assert 0 <= rows[0]["accuracy"] <= 1 and "| 2 | 3 |" in markdown(rows)
    assert "| real test split |" in markdown(rows)
