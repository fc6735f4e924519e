"""Samples -> images: a run trained on latents decodes through its autoencoder, never writes
raw latents as PNGs.

The run's config says what x is: data.space ("pixels" / "latents", from the dataset's
index.json) and data.autoencoder (the AutoencoderKL directory that made the latents).
Older run configs have no data.space: a sharded run with an autoencoder, or whose samples
are neither 1 nor 3 channels, is taken as latents.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ouro.errors import UserError


def is_latent(data: Any) -> bool:
    return (getattr(data, "space", "pixels") == "latents" or bool(getattr(data, "autoencoder", ""))
            or (data.kind == "sharded" and data.channels not in (1, 3)))


@functools.lru_cache(maxsize=2)
def _autoencoder(path: str) -> Any:
    from ouro.vae import load_autoencoder

    return load_autoencoder(path)


def require_decoder(data: Any, what: str = "this run") -> None:
    """UserError (one line) when the run is in latent space and no autoencoder is known:
    checked before sampling, so nothing is computed only to be refused."""
    if is_latent(data) and not data.autoencoder:
        raise UserError(f"{what} was trained on latents ({data.path or 'a sharded dataset'}) whose "
                        f"autoencoder is not recorded; give data.autoencoder=DIR (an AutoencoderKL "
                        f"directory) to decode them - raw latents are not written as images")


def to_pixels(data: Any, samples: np.ndarray, *, what: str = "this run") -> np.ndarray:
    """(N, H, W, C) samples -> images in [-1, 1]: decoded through data.autoencoder when the
    run is in latent space (require_decoder's error when none is known)."""
    if not is_latent(data):
        return samples
    require_decoder(data, what)
    return _autoencoder(str(data.autoencoder)).decode(samples)  # a moved directory: UserError naming it
