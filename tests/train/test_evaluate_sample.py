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
