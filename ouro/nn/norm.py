"""RMSNorm, computed in float32 whatever the compute dtype (HDM: eps 1e-6, learned weight)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.linear import axes


class RMSNorm(nnx.Module):
    """x / rms(x) * weight over the last axis; output float32 (the residual stream's dtype)."""

    def __init__(self, dim: int, *, eps: float = 1e-6, param_dtype=jnp.float32):
        self.eps = eps
        self.weight = nnx.Param(jnp.ones((dim,), param_dtype), **axes("embed"))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        inv_rms = jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
        return x * inv_rms * self.weight[...].astype(jnp.float32)
