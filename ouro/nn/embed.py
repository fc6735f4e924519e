"""Input/output embeddings of XUDiT: patchify, unpatchify, timestep and aspect-ratio add-on.

Patch embedding is HDM's Conv(C_in->D, kernel p, stride p) written as a Linear over the
flattened (py, px, c) patch pixels, which is the same map with a transposed weight layout
(conv weight (D, C, p, p) <-> kernel (p*p*C, D)) and needs no conv on CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.linear import dense


def patchify(x_bhwc: jax.Array, p: int) -> jax.Array:
    """(B, H, W, C) -> (B, H/p * W/p, p*p*C), tokens row-major, pixels (py, px, c)."""
    b, h, w, c = x_bhwc.shape
    x = x_bhwc.reshape(b, h // p, p, w // p, p, c)  # (B, h, py, w, px, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, h, w, py, px, C)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(x_blk: jax.Array, p: int, h: int, w: int) -> jax.Array:
    """(B, h*w, p*p*C) -> (B, h*p, w*p, C); channels fastest, then px, then py."""
    b, _, k = x_blk.shape
    c = k // (p * p)
    x = x_blk.reshape(b, h, w, p, p, c)  # (B, h, w, py, px, C)
    x = x.transpose(0, 1, 3, 2, 4, 5)  # (B, h, py, w, px, C)
    return x.reshape(b, h * p, w * p, c)


class PatchEmbed(nnx.Module):
    def __init__(self, patch: int, in_channels: int, dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.patch, self.dtype = patch, dtype
        self.proj = dense(patch * patch * in_channels, dim, ("patch", "embed"), rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, x_bhwc: jax.Array) -> jax.Array:
        return self.proj(patchify(x_bhwc.astype(self.dtype), self.patch)).astype(jnp.float32)  # (B, L, D)


class UnPatch(nnx.Module):
    """Final Linear(D -> p*p*C_out), no final norm. HDM initialises its weight with
    normal(std = 1 / D**2) (`std=1/in_features**2` in XUDiT.init_weight), so the output at
    init is tiny but not exactly zero (gradients reach every layer from step one)."""

    def __init__(self, patch: int, dim: int, out_channels: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.patch, self.dtype = patch, dtype
        self.proj = dense(
            dim, patch * patch * out_channels, ("embed", "patch"),
            kernel_init=nnx.initializers.normal(stddev=1.0 / dim**2),
            rngs=rngs, dtype=dtype, param_dtype=param_dtype,
        )

    def __call__(self, x_bld: jax.Array, h: int, w: int) -> jax.Array:
        return unpatchify(self.proj(x_bld.astype(self.dtype)).astype(jnp.float32), self.patch, h, w)


def timestep_features(t_b: jax.Array, dim: int) -> jax.Array:
    """[cos, sin] of (1000 t) * exp(-ln(1e4) k / (D/2)), k < D/2 -> (B, D) float32."""
    half = dim // 2
    freqs = jnp.exp(-math.log(1e4) * jnp.arange(half, dtype=jnp.float32) / half)
    args = (t_b.astype(jnp.float32) * 1000.0)[:, None] * freqs[None, :]  # (B, D/2)
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class TimestepEmbedding(nnx.Module):
    """t in [0, 1] -> sinusoidal features -> Linear(D, D) -> Mish = conditioning vector c."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        if dim % 2:
            raise ValueError(f"TimestepEmbedding: dim must be even, got {dim}")
        self.dim = dim
        self.proj = dense(dim, dim, (None, "embed"), rngs=rngs, param_dtype=param_dtype)

    def __call__(self, t_b: jax.Array) -> jax.Array:
        return jax.nn.mish(self.proj(timestep_features(t_b, self.dim)))


class AspectEmbedding(nnx.Module):
    """HDM's add-on info: log(W/H) -> Linear(1, D) -> Mish -> Linear(D, D) zero-init;
    added to c, so at init it contributes exactly nothing."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.fc1 = dense(1, dim, (None, "embed"), rngs=rngs, param_dtype=param_dtype)
        self.fc2 = dense(dim, dim, ("embed", None), kernel_init=nnx.initializers.zeros_init(), rngs=rngs, param_dtype=param_dtype)

    def __call__(self, log_aspect_b: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.mish(self.fc1(log_aspect_b.astype(jnp.float32)[:, None])))
