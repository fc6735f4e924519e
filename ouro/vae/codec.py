"""`Autoencoder`: jitted, chunked encode/decode with the latent scaling, from a checkpoint dir.

    ae = load_autoencoder("outputs/vae-shapes")      # or a diffusers SDXL-VAE directory
    z = ae.encode(images)          # (N, H, W, 3) in [-1, 1] -> scaled latents (N, H/f, W/f, 4)
    x = ae.decode(z)               # scaled latents -> images in [-1, 1] (clipped)

Scaled latent = (posterior mean or sample - shift_factor) * scaling_factor: the convention
of diffusers pipelines, so latents written here match what the Ouroboros shards hold.
Work is done `chunk` images at a time (one compile per shape; the last chunk is padded), so
memory stays bounded for any N: the SDXL decoder at 1024 px needs ~GBs per image.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.vae.config import VAEConfig


@dataclasses.dataclass
class Autoencoder:
    cfg: VAEConfig
    graphdef: Any
    params: nnx.State
    dtype: str = "float32"  # compute dtype; "bfloat16" halves activation memory
    chunk: int = 64  # images per jitted call
    path: str = ""  # where it was loaded from (recorded in run configs)

    @classmethod
    def from_model(cls, model: nnx.Module, **kw: Any) -> "Autoencoder":
        graphdef, params = nnx.split(model)
        return cls(model.cfg, graphdef, params, **kw)

    @property
    def downsample(self) -> int:
        return self.cfg.downsample

    def latent_shape(self, image_size: int) -> tuple[int, int, int]:
        s = image_size // self.downsample
        return (s, s, self.cfg.latent_channels)

    def _run(self, fn, x: np.ndarray, *args) -> np.ndarray:
        outs = []
        for i in range(0, len(x), self.chunk):
            part = np.asarray(x[i:i + self.chunk], np.float32)
            n = len(part)
            if n < self.chunk and len(x) > self.chunk:  # pad: reuse the full-chunk compile
                part = np.concatenate([part, np.zeros((self.chunk - n,) + part.shape[1:], np.float32)])
            outs.append(np.asarray(fn(self.params, jnp.asarray(part), *args))[:n])
        return np.concatenate(outs) if outs else np.zeros((0,), np.float32)

    def encode(self, images: np.ndarray, *, sample: bool = False, seed: int = 0) -> np.ndarray:
        """Images (N, H, W, C) in [-1, 1] -> scaled latents; posterior mean unless sample."""
        fn = _encode_fn(self.graphdef, self.dtype, sample, float(self.cfg.scaling_factor),
                        float(self.cfg.shift_factor))
        if not sample:
            return self._run(fn, images, jax.random.key(0))
        keys = jax.random.split(jax.random.key(seed), -(-len(images) // self.chunk))
        outs = [self._run(fn, images[i * self.chunk:(i + 1) * self.chunk], k) for i, k in enumerate(keys)]
        return np.concatenate(outs)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Scaled latents (N, h, w, C) -> images (N, h*f, w*f, 3) clipped to [-1, 1]."""
        fn = _decode_fn(self.graphdef, self.dtype, float(self.cfg.scaling_factor),
                        float(self.cfg.shift_factor))
        return self._run(fn, latents)


def _cast(params: nnx.State, dtype: str) -> nnx.State:
    return params if dtype == "float32" else jax.tree.map(lambda p: p.astype(dtype), params)


@functools.lru_cache(maxsize=8)
def _encode_fn(graphdef: Any, dtype: str, sample: bool, scale: float, shift: float):
    def run(params, x, key):
        vae = nnx.merge(graphdef, _cast(params, dtype))
        mean, logvar = vae.encode_moments(x.astype(dtype))
        z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape) if sample else mean
        return (z - shift) * scale

    return jax.jit(run)


@functools.lru_cache(maxsize=8)
def _decode_fn(graphdef: Any, dtype: str, scale: float, shift: float):
    def run(params, z):
        vae = nnx.merge(graphdef, _cast(params, dtype))
        return jnp.clip(vae.decode((z / scale + shift).astype(dtype)), -1.0, 1.0)

    return jax.jit(run)


def load_autoencoder(path: str | Path, *, dtype: str = "float32", chunk: int = 64) -> Autoencoder:
    """A diffusers-format directory (SDXL VAE, or one `ouro vae train` wrote)."""
    from ouro.vae.weights import load_diffusers

    model = load_diffusers(path)
    return Autoencoder.from_model(model, dtype=dtype, chunk=chunk, path=str(path))
