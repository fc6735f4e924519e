"""Self- and cross-attention with axial RoPE on queries and keys (HDM SelfAttention /
CrossAttention): fused projections without bias, output projection with bias, scale
1/sqrt(head_dim), no QK-norm, no dropout. The score/softmax/value product goes through
`jax.nn.dot_product_attention`: cuDNN's fused (flash) kernel on NVIDIA GPUs for bf16/fp16
inputs, XLA's composition elsewhere (CPU, TPU, float32 on GPU), see `implementation`. The
XLA path keeps logits and softmax in float32 for bf16 inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.linear import dense
from ouro.nn.masks import key_padding
from ouro.nn.remat import ATTN_OUT, ATTN_QKV, tag
from ouro.nn.rope import AxialRoPE


def _heads(dim: int, head_dim: int) -> int:
    if dim % head_dim:
        raise ValueError(f"attention: dim {dim} is not a multiple of head_dim {head_dim}")
    return dim // head_dim


def implementation(dtype, backend: str | None = None) -> str:
    """The dot_product_attention kernel for inputs of `dtype` on `backend` (default: JAX's).
    cuDNN's fused attention needs a GPU and 16-bit inputs; jax's `implementation=None` would
    pick XLA everywhere today, so the choice is made here, explicitly."""
    backend = backend or jax.default_backend()
    if backend in ("gpu", "cuda") and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16):
        return "cudnn"
    return "xla"


def attend(q_blnh: jax.Array, k_bsnh: jax.Array, v_bsnh: jax.Array,
           key_valid_bs: jax.Array | None = None) -> jax.Array:
    """softmax(q k^T / sqrt(H)) v. The scale is applied to q (B L N H), where it fuses into the
    rotation's output, instead of to the (B N L S) scores, which it would cost a full pass over.
    key_valid_bs (B, S): False keys (text padding) get no attention."""
    scale = jnp.asarray(q_blnh.shape[-1] ** -0.5, q_blnh.dtype)
    out = jax.nn.dot_product_attention(q_blnh * scale, k_bsnh, v_bsnh, scale=1.0, mask=key_padding(key_valid_bs),
                                       implementation=implementation(q_blnh.dtype))
    return tag(out, ATTN_OUT)  # kept by remat attn/offload


class SelfAttention(nnx.Module):
    def __init__(self, dim: int, head_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.heads, self.head_dim, self.dtype = _heads(dim, head_dim), head_dim, dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.qkv = dense(dim, 3 * dim, ("embed", "heads"), bias=False, **kw)
        self.out = dense(dim, dim, ("heads", "embed"), **kw)
        self.rope = AxialRoPE(self.heads, head_dim, param_dtype=param_dtype)

    def __call__(self, x_bld: jax.Array, pos_bl2: jax.Array, key_valid_bl: jax.Array | None = None) -> jax.Array:
        b, l, d = x_bld.shape
        # the projection's output, not q/k after RoPE, is what remat attn/offload keep: RoPE's
        # angles are learned, so its backward needs its input, and keeping that avoids recomputing the projection
        qkv = tag(self.qkv(x_bld.astype(self.dtype)), ATTN_QKV).reshape(b, l, 3, self.heads, self.head_dim)  # (B, L, 3, N, H)
        qk = self.rope(qkv[:, :, :2], pos_bl2)  # q and k: one rotation
        q, k, v = qk[:, :, 0], qk[:, :, 1], qkv[:, :, 2]
        o_blnh = attend(q, k, v, key_valid_bl)
        return self.out(o_blnh.reshape(b, l, d))  # (B, L, D)


class CrossAttention(nnx.Module):
    """Queries from x, keys/values from ctx (ctx_dim wide); RoPE on both sides."""

    def __init__(
        self, dim: int, ctx_dim: int, head_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32
    ):
        self.heads, self.head_dim, self.dtype = _heads(dim, head_dim), head_dim, dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        ctx_axis = "embed" if ctx_dim == dim else "ctx"
        self.q = dense(dim, dim, ("embed", "heads"), bias=False, **kw)
        self.kv = dense(ctx_dim, 2 * dim, (ctx_axis, "heads"), bias=False, **kw)
        self.out = dense(dim, dim, ("heads", "embed"), **kw)
        self.rope = AxialRoPE(self.heads, head_dim, param_dtype=param_dtype)

    def __call__(
        self, x_bld: jax.Array, ctx_bsc: jax.Array, pos_bl2: jax.Array, ctx_pos_bs2: jax.Array | None = None,
        key_valid_bs: jax.Array | None = None,
    ) -> jax.Array:
        """ctx_pos_bs2=None: the context is x's own token set at x's positions (XUT's decoder
        reads the encoder output), so q and k turn by the same angles in one rotation."""
        b, l, d = x_bld.shape
        s = ctx_bsc.shape[1]
        q = tag(self.q(x_bld.astype(self.dtype)), ATTN_QKV).reshape(b, l, self.heads, self.head_dim)  # (B, L, N, H)
        kv = tag(self.kv(ctx_bsc.astype(self.dtype)), ATTN_QKV).reshape(b, s, 2, self.heads, self.head_dim)  # (B, S, 2, N, H)
        k, v = kv[:, :, 0], kv[:, :, 1]
        if ctx_pos_bs2 is None:
            if s != l:
                raise ValueError(f"CrossAttention: ctx_pos_bs2=None means the context shares x's {l} tokens, "
                                 f"got {s} context tokens")
            qk = self.rope(jnp.stack([q, k], axis=2), pos_bl2)
            q, k = qk[:, :, 0], qk[:, :, 1]
        else:
            q, k = self.rope(q, pos_bl2), self.rope(k, ctx_pos_bs2)
        o_blnh = attend(q, k, v, key_valid_bs)
        return self.out(o_blnh.reshape(b, l, d))  # (B, L, D)
