"""Joint attention over several modalities (SD3's MMDiT; mmdit_jax): each modality has its
OWN qkv projection, QK RMSNorm (mandatory: keeps attention logits bounded when modalities
of different statistics meet) and output projection, but the attention itself runs once
over the concatenation of all modalities' tokens, under one boolean mask (ouro.nn.masks)."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.linear import axes, dense


class HeadRMSNorm(nnx.Module):
    """RMSNorm over head_dim with a learned weight (per modality, shared by heads), float32."""

    def __init__(self, head_dim: int, *, eps: float = 1e-6, param_dtype=jnp.float32):
        self.eps = eps
        self.weight = nnx.Param(jnp.ones((head_dim,), param_dtype), **axes(None))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(jnp.float32)
        return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), -1, keepdims=True) + self.eps) * self.weight[...]


class ModalityProjections(nnx.Module):
    def __init__(self, dim: int, head_dim: int, *, rngs: nnx.Rngs, dtype, param_dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.qkv = dense(dim, 3 * dim, ("embed", "heads"), **kw)
        self.q_norm = HeadRMSNorm(head_dim, param_dtype=param_dtype)
        self.k_norm = HeadRMSNorm(head_dim, param_dtype=param_dtype)
        self.out = dense(dim, dim, ("heads", "embed"), **kw)


class JointAttention(nnx.Module):
    def __init__(self, dim: int, heads: int, modalities: int, *, rngs: nnx.Rngs, dtype=jnp.float32,
                 param_dtype=jnp.float32):
        if dim % heads:
            raise ValueError(f"JointAttention: dim {dim} is not a multiple of heads {heads}")
        self.heads, self.head_dim, self.dtype = heads, dim // heads, dtype
        self.mods = nnx.List([ModalityProjections(dim, self.head_dim, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
                              for _ in range(modalities)])

    def __call__(self, xs: Sequence[jax.Array], mask_bnn: jax.Array) -> list[jax.Array]:
        """xs: per modality (B, L_m, D) -> per modality (B, L_m, D); mask (B|1, N, N), N = sum L_m."""
        if len(xs) != len(self.mods):
            raise ValueError(f"JointAttention: built for {len(self.mods)} modalities, got {len(xs)}")
        b = xs[0].shape[0]
        qs, ks, vs = [], [], []
        for x_bld, m in zip(xs, self.mods):
            l, d = x_bld.shape[1], x_bld.shape[2]
            qkv = m.qkv(x_bld.astype(self.dtype)).reshape(b, l, 3, self.heads, self.head_dim)  # (B, L, 3, N, H)
            qs.append(m.q_norm(qkv[:, :, 0]).astype(self.dtype))
            ks.append(m.k_norm(qkv[:, :, 1]).astype(self.dtype))
            vs.append(qkv[:, :, 2])
        q, k, v = (jnp.concatenate(a, axis=1) for a in (qs, ks, vs))  # (B, N, heads, H)
        o = jax.nn.dot_product_attention(q, k, v, mask=mask_bnn[:, None])  # (B, N, heads, H)
        outs, start = [], 0
        for x_bld, m in zip(xs, self.mods):
            l, d = x_bld.shape[1], x_bld.shape[2]
            outs.append(m.out(o[:, start:start + l].reshape(b, l, d)).astype(jnp.float32))
            start += l
        return outs
