"""The one block type of XUT (HDM `TransformerBlock`): self-attention, optional
cross-attention, SwiGLU, each wrapped by the shared-AdaLN modulate/gate residual."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.adaln import Modulation, modulated_residual
from ouro.nn.attention import CrossAttention, SelfAttention
from ouro.nn.mlp import SwiGLU
from ouro.nn.norm import RMSNorm
from ouro.nn.remat import RESIDUAL, tag


class TransformerBlock(nnx.Module):
    def __init__(
        self,
        dim: int,
        head_dim: int,
        mlp_dim: int,
        *,
        cross: bool = False,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
    ):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.cross = cross
        self.attn_pre_norm = RMSNorm(dim, param_dtype=param_dtype)
        self.attn = SelfAttention(dim, head_dim, **kw)
        if cross:
            # HDM's decoder cross-attention reads the encoder output: ctx width = D
            self.xattn_pre_norm = RMSNorm(dim, param_dtype=param_dtype)
            self.xattn = CrossAttention(dim, dim, head_dim, **kw)
        self.mlp_pre_norm = RMSNorm(dim, param_dtype=param_dtype)
        self.mlp = SwiGLU(dim, mlp_dim, **kw)

    def __call__(
        self,
        x_bld: jax.Array,
        pos_bl2: jax.Array,
        mod: Modulation,
        ctx_bsd: jax.Array | None = None,
        ctx_pos_bs2: jax.Array | None = None,
        key_valid: jax.Array | None = None,
    ) -> jax.Array:
        """key_valid (B, L) bool: False tokens (text padding) are never attended to, by the
        self-attention nor, when the context is this token set (XUT's decoder), the cross."""
        # the residual stream between sub-layers is what remat "attn"/"offload" keep
        x = tag(modulated_residual(x_bld, self.attn_pre_norm, mod.attn, lambda h: self.attn(h, pos_bl2, key_valid)),
                RESIDUAL)
        if self.cross:
            if ctx_bsd is None:
                raise ValueError("TransformerBlock(cross=True) needs ctx_bsd")
            x = tag(modulated_residual(x, self.xattn_pre_norm, mod.xattn,
                                       lambda h: self.xattn(h, ctx_bsd, pos_bl2, ctx_pos_bs2, key_valid)), RESIDUAL)
        return modulated_residual(x, self.mlp_pre_norm, mod.mlp, self.mlp)
