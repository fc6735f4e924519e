"""SwiGLU feed-forward (HDM `SwiGLU(dim, mlp_dim, dim)`): one Linear D->2M with bias split
into (a, b), silu(a) * b, then Linear M->D with bias."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.linear import dense


class SwiGLU(nnx.Module):
    def __init__(self, dim: int, mlp_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.dtype = dtype
        self.w_in = dense(dim, 2 * mlp_dim, ("embed", "mlp"), **kw)
        self.w_out = dense(mlp_dim, dim, ("mlp", "embed"), **kw)

    def __call__(self, x_bld: jax.Array) -> jax.Array:
        a, b = jnp.split(self.w_in(x_bld.astype(self.dtype)), 2, axis=-1)  # (B, L, M) each
        return self.w_out(jax.nn.silu(a) * b)


class GeluMLP(nnx.Module):
    """DiT's (timm) Mlp: Linear(D, M) -> GELU (tanh approximation) -> Linear(M, D), biases."""

    def __init__(self, dim: int, mlp_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.dtype = dtype
        self.fc1 = dense(dim, mlp_dim, ("embed", "mlp"), **kw)
        self.fc2 = dense(mlp_dim, dim, ("mlp", "embed"), **kw)

    def __call__(self, x_bld: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.gelu(self.fc1(x_bld.astype(self.dtype)), approximate=True))
