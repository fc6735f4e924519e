"""FID: Inception pool features -> Gaussian statistics (mu, sigma) -> Frechet distance.

    net = load_inception(weights)                       # ouro/eval/inception.py
    mu, sigma = feature_stats(inception_features(net, images))
    fid = frechet_from_stats(mu, sigma, *load_stats("ref.npz"))

Reference statistics use the common `.npz` format (keys `mu` (2048,), `sigma` (2048, 2048)),
as written by pytorch-fid `--save-stats` and used by jax-flow / guided-diffusion.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.errors import UserError
from ouro.fileio import atomic_path


def frechet_from_stats(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                       eps: float = 1e-6) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64, as pytorch-fid computes it."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise UserError(f"statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():  # singular product: nudge both diagonals (pytorch-fid's fix)
        offset = np.eye(len(s1)) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = covmean.real  # imaginary parts are numerical noise for PSD inputs
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(features, np.float64)
    if len(f) < 2:
        raise UserError(f"need at least 2 images for a covariance, got {len(f)}")
    return f.mean(0), np.cov(f, rowvar=False)


def save_stats(path: str | Path, mu: np.ndarray, sigma: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        np.savez(tmp, mu=mu, sigma=sigma)
    return Path(path)


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: reference statistics not found")
    with np.load(path) as z:
        missing = [k for k in ("mu", "sigma") if k not in z.files]
        if missing:
            raise UserError(f"{path}: missing key {missing[0]!r} (expected mu and sigma, got {z.files})")
        return z["mu"], z["sigma"]


@functools.lru_cache(maxsize=4)
def _features_fn(graphdef: Any, resize: bool):
    return jax.jit(lambda params, x: nnx.merge(graphdef, params)(x, resize=resize))


def inception_features(net: nnx.Module, images: np.ndarray, *, batch_size: int = 32,
                       resize: bool = True) -> np.ndarray:
    """(N, H, W, 3) images in [-1, 1] (greyscale is repeated to RGB) -> (N, 2048) float32."""
    images = np.asarray(images, np.float32)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    graphdef, params = nnx.split(net)
    fn = _features_fn(graphdef, resize)
    return np.concatenate([np.asarray(fn(params, jnp.asarray(images[i:i + batch_size])))
                           for i in range(0, len(images), batch_size)])
