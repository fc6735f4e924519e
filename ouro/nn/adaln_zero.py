"""adaLN-Zero (DiT, Peebles & Xie 2023; SD3's MMDiT per modality): a block's LayerNorms have
no affine parameters; SiLU(c) -> Linear(D, k*D), ZERO-initialised, gives k modulation
vectors (shift, scale, gate, ...). With the zero init every gate is 0, so every residual
branch contributes nothing and each block starts as the identity (unlike XUT's shared
AdaLN, which gates with 1 + gate)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.linear import dense


def layer_norm(x: jax.Array, eps: float = 1e-6) -> jax.Array:
    """LayerNorm without scale/bias (DiT: elementwise_affine=False), in float32."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps)


def modulate(x_bld: jax.Array, shift_bd: jax.Array, scale_bd: jax.Array) -> jax.Array:
    return x_bld * (1.0 + scale_bd[:, None, :]) + shift_bd[:, None, :]


class AdaLNZero(nnx.Module):
    """c (B, D) -> `chunks` modulation vectors, each (B, D) float32; exactly 0 at init."""

    def __init__(self, dim: int, chunks: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.chunks = chunks
        self.proj = dense(dim, chunks * dim, ("embed", "mlp"), kernel_init=nnx.initializers.zeros_init(),
                          rngs=rngs, param_dtype=param_dtype)

    def __call__(self, c_bd: jax.Array) -> list[jax.Array]:
        return jnp.split(self.proj(jax.nn.silu(c_bd.astype(jnp.float32))), self.chunks, axis=-1)
