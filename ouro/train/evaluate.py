"""Sample quality on the digits: a reference classifier trained on the real train split.

  accuracy  fraction of samples of class k that the classifier assigns to k
  frechet   Frechet distance between Gaussian fits of classifier features (last hidden
            layer) of the samples and of the real TRAIN split (FID-style, tiny network)
  floors    the same numbers for the real TEST split (what a perfect generator would get;
            Frechet distances shrink with sample count, so compare at similar sizes)
The classifier is a scikit-learn MLP, deterministic (fixed seed), refitted in a few
seconds and memoised per process.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from scipy import linalg


@functools.lru_cache(maxsize=2)
def reference_classifier() -> Any:
    from sklearn.neural_network import MLPClassifier

    from ouro.data import load_digits

    d = load_digits("random")  # images and split do not depend on the context source
    clf = MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=400, random_state=0, alpha=1e-3)
    clf.fit(d.x_train.reshape(len(d.x_train), -1), d.y_train)
    return clf


def features(clf: Any, images: np.ndarray) -> np.ndarray:
    """Activations of the classifier's last hidden layer, (N, 64)."""
    h = np.clip(images, -1, 1).reshape(len(images), -1)
    for w, b in zip(clf.coefs_[:-1], clf.intercepts_[:-1]):
        h = np.maximum(h @ w + b, 0.0)  # MLPClassifier's default relu
    return h


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) between Gaussian fits."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # ReLU features with dead units: singular, still fine
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    covmean = covmean.real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2.0 * covmean))


def evaluate_samples(images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Score generated digits (N, 16, 16, 1) in [-1, 1] against their intended labels."""
    from ouro.data import load_digits

    images = np.asarray(images, np.float32)
    labels = np.asarray(labels)
    if images.shape[1:] != (16, 16, 1) or len(images) != len(labels):
        raise ValueError(f"evaluate_samples: expected (N, 16, 16, 1) images and N labels, got "
                         f"{images.shape} and {labels.shape}")
    clf = reference_classifier()
    d = load_digits("random")
    pred = clf.predict(np.clip(images, -1, 1).reshape(len(images), -1))
    f_train = features(clf, d.x_train)
    per_class = {int(k): float(np.mean(pred[labels == k] == k)) for k in np.unique(labels)}
    return {
        "n_samples": int(len(images)),
        "accuracy": float(np.mean(pred == labels)),
        "accuracy_per_class": per_class,
        "frechet": frechet_distance(features(clf, images), f_train),
        "floor_test_accuracy": float(clf.score(d.x_test.reshape(len(d.x_test), -1), d.y_test)),
        "floor_test_frechet": frechet_distance(features(clf, d.x_test), f_train),
        "n_test": int(len(d.x_test)),
    }
