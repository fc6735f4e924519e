"""Shared AdaLN (HDM `shared_adaln_{attn,xattn,ffw}`) and the per-block modulate/gate wrapper.

The whole model has exactly three conditioning MLPs, one per sub-layer kind, each
LayerNorm(D) -> Linear(D, 4D) -> Mish -> Linear(4D, 3D) with the last layer zero-initialised,
its output split into (scale, shift, gate). Every block reuses the same three tensors; a
block's own conditioning parameters are only its RMSNorm weights. Sub-layers are wrapped as

    h = RMSNorm(x) * (1 + scale) + shift
    x = h + (1 + gate) * f(h)

i.e. the residual lands on the *modulated* h (HDM code) and, with the zero init, every branch
starts fully on (1 + 0): this is not DiT's adaLN-Zero.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.linear import axes, dense

# (scale, shift, gate), each (B, D) float32
Mod = tuple[jax.Array, jax.Array, jax.Array]


class Modulation(NamedTuple):
    attn: Mod
    xattn: Mod
    mlp: Mod


class AdaLNMLP(nnx.Module):
    """c (B, D) -> (scale, shift, gate); runs in float32 (it is B rows, cost is nil)."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.norm = nnx.LayerNorm(
            dim,
            epsilon=1e-5,  # torch.nn.LayerNorm default, as in HDM
            param_dtype=param_dtype,
            scale_metadata=axes("embed"),
            bias_metadata=axes("embed"),
            rngs=rngs,
        )
        self.fc1 = dense(dim, 4 * dim, ("embed", "mlp"), rngs=rngs, param_dtype=param_dtype)
        self.fc2 = dense(
            4 * dim, 3 * dim, ("mlp", "embed"), kernel_init=nnx.initializers.zeros_init(),
            rngs=rngs, param_dtype=param_dtype,
        )

    def __call__(self, c_bd: jax.Array) -> Mod:
        y = self.fc2(jax.nn.mish(self.fc1(self.norm(c_bd.astype(jnp.float32)))))  # (B, 3D)
        scale, shift, gate = jnp.split(y, 3, axis=-1)
        return scale, shift, gate


class SharedAdaLN(nnx.Module):
    def __init__(self, dim: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.attn = AdaLNMLP(dim, rngs=rngs, param_dtype=param_dtype)
        self.xattn = AdaLNMLP(dim, rngs=rngs, param_dtype=param_dtype)
        self.ffw = AdaLNMLP(dim, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, c_bd: jax.Array) -> Modulation:
        return Modulation(self.attn(c_bd), self.xattn(c_bd), self.ffw(c_bd))


def modulated_residual(
    x_bld: jax.Array, norm: Callable[[jax.Array], jax.Array], mod: Mod, f: Callable[[jax.Array], jax.Array]
) -> jax.Array:
    """h = norm(x)*(1+scale)+shift; return h + (1+gate)*f(h). float32 residual stream."""
    scale, shift, gate = (m[:, None, :].astype(jnp.float32) for m in mod)  # (B, 1, D)
    h = norm(x_bld) * (1 + scale) + shift
    return h + (1 + gate) * f(h).astype(jnp.float32)
