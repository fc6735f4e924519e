"""Gemma-3 270M decoder in Flax NNX (text only), written for embedding extraction.

Parameter names and layouts follow the official `gemma` checkpoint (embedder /
layer_i / attn / q_einsum ...), with the per-layer parameters stacked on a leading
"layers" axis and applied with `nnx.scan`, so loading either weight source is a name
mapping plus a stack. RMSNorm scales are stored the official way (offset: x * (1 + scale)).

Equations (Gemma 3 technical report; llama.cpp's gemma3 graph agrees):
  x = E[tokens] * sqrt(D)
  per layer:  h = attn(norm(x)); x += post_attn_norm(h)
              h = mlp(norm(x));  x += post_ffw_norm(h)
  attn: per-head RMSNorm on q and k, rotate-half RoPE (base 1e4 local / 1e6 global),
        q * 256^-1/2, causal; local layers only see the last `sliding_window` keys.
  mlp:  down(gelu_tanh(gate(x)) * up(x))
  out = final_norm(x); logits = out @ E^T (tied embedding).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.text.config import GemmaConfig


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    # Statistics in float32 whatever the compute dtype: bf16 mean-of-squares drifts.
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (y * (1.0 + scale.astype(jnp.float32))).astype(x.dtype)


def rope_tables(positions_bt: jax.Array, head_dim: int, base: float) -> tuple[jax.Array, jax.Array]:
    """sin, cos of shape (B, T, head_dim // 2) for rotate-half RoPE."""
    inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)  # (H/2,)
    angles = positions_bt[..., None].astype(jnp.float32) * jnp.asarray(inv_freq, jnp.float32)
    return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x_btnh: jax.Array, sin_bth: jax.Array, cos_bth: jax.Array) -> jax.Array:
    # rotate-half: the head vector is split in two halves (not interleaved pairs).
    x1, x2 = jnp.split(x_btnh.astype(jnp.float32), 2, axis=-1)
    sin, cos = sin_bth[:, :, None, :], cos_bth[:, :, None, :]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_btnh.dtype)


class RMSNorm(nnx.Module):
    def __init__(self, dim: int, *, eps: float, rngs: nnx.Rngs, param_dtype=jnp.float32):
        del rngs  # deterministic init; kept for the uniform constructor signature
        self.scale = nnx.Param(jnp.zeros((dim,), param_dtype))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        return rms_norm(x, self.scale[...], self.eps)


class Attention(nnx.Module):
    def __init__(self, cfg: GemmaConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        d, n, k, h = cfg.dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        init = nnx.initializers.normal(0.02)
        self.q_einsum = nnx.Param(init(rngs.params(), (n, d, h), param_dtype))
        self.kv_einsum = nnx.Param(init(rngs.params(), (2, k, d, h), param_dtype))
        self.attn_vec_einsum = nnx.Param(init(rngs.params(), (n, h, d), param_dtype))
        self.query_norm = RMSNorm(h, eps=cfg.norm_eps, rngs=rngs, param_dtype=param_dtype)
        self.key_norm = RMSNorm(h, eps=cfg.norm_eps, rngs=rngs, param_dtype=param_dtype)
        self.cfg, self.dtype = cfg, dtype

    def __call__(self, x_btd, sin_bth, cos_bth, allowed_btt):
        cfg, dt = self.cfg, self.dtype
        x_btd = x_btd.astype(dt)
        q_btnh = jnp.einsum("btd,ndh->btnh", x_btd, self.q_einsum[...].astype(dt))
        k_btkh = jnp.einsum("btd,kdh->btkh", x_btd, self.kv_einsum[0].astype(dt))
        v_btkh = jnp.einsum("btd,kdh->btkh", x_btd, self.kv_einsum[1].astype(dt))
        q_btnh = apply_rope(self.query_norm(q_btnh), sin_bth, cos_bth) * cfg.query_scale
        k_btkh = apply_rope(self.key_norm(k_btkh), sin_bth, cos_bth)
        b, t, n, h = q_btnh.shape
        g = n // cfg.num_kv_heads  # query heads per kv head (grouped-query attention)
        q_btkgh = q_btnh.reshape(b, t, cfg.num_kv_heads, g, h)  # (B, T, K, G, H)
        logits = jnp.einsum("bqkgh,bskh->bkgqs", q_btkgh, k_btkh).astype(jnp.float32)
        logits = jnp.where(allowed_btt[:, None, None], logits, -1e30)  # (B, K, G, Tq, Ts)
        probs = jax.nn.softmax(logits, axis=-1).astype(dt)
        o_btkgh = jnp.einsum("bkgqs,bskh->bqkgh", probs, v_btkh)
        o_btnh = o_btkgh.reshape(b, t, n, h)  # (B, T, N, H)
        return jnp.einsum("btnh,nhd->btd", o_btnh, self.attn_vec_einsum[...].astype(dt))


class MLP(nnx.Module):
    def __init__(self, cfg: GemmaConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        init = nnx.initializers.normal(0.02)
        self.gating_einsum = nnx.Param(init(rngs.params(), (2, cfg.mlp_dim, cfg.dim), param_dtype))  # [gate, up]
        self.linear = nnx.Param(init(rngs.params(), (cfg.mlp_dim, cfg.dim), param_dtype))
        self.dtype = dtype

    def __call__(self, x_btd):
        dt = self.dtype
        w = self.gating_einsum[...].astype(dt)
        gate_btf = jnp.einsum("btd,fd->btf", x_btd.astype(dt), w[0])
        up_btf = jnp.einsum("btd,fd->btf", x_btd.astype(dt), w[1])
        return jnp.einsum("btf,fd->btd", jax.nn.gelu(gate_btf, approximate=True) * up_btf, self.linear[...].astype(dt))


class Block(nnx.Module):
    def __init__(self, cfg: GemmaConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        norm = lambda dim: RMSNorm(dim, eps=cfg.norm_eps, rngs=rngs, param_dtype=param_dtype)
        self.pre_attention_norm = norm(cfg.dim)
        self.attn = Attention(cfg, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.post_attention_norm = norm(cfg.dim)
        self.pre_ffw_norm = norm(cfg.dim)
        self.mlp = MLP(cfg, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.post_ffw_norm = norm(cfg.dim)

    def __call__(self, x_btd, sin_bth, cos_bth, allowed_btt):
        x_btd = x_btd + self.post_attention_norm(self.attn(self.pre_attention_norm(x_btd), sin_bth, cos_bth, allowed_btt))
        return x_btd + self.post_ffw_norm(self.mlp(self.pre_ffw_norm(x_btd)))


class Gemma3(nnx.Module):
    """`hidden = model(tokens, mask)`: final-norm hidden states (B, T, D); `model.logits(hidden)`."""

    def __init__(self, cfg: GemmaConfig, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.cfg, self.dtype = cfg, dtype
        self.input_embedding = nnx.Param(nnx.initializers.normal(0.02)(rngs.params(), (cfg.vocab_size, cfg.dim), param_dtype))

        @nnx.split_rngs(splits=cfg.depth)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make_blocks(rngs: nnx.Rngs) -> Block:
            return Block(cfg, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

        self.layers = make_blocks(rngs)  # every parameter has a leading (depth,) axis
        self.final_norm = RMSNorm(cfg.dim, eps=cfg.norm_eps, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, tokens_bt: jax.Array, mask_bt: jax.Array, segments_bt: jax.Array | None = None) -> jax.Array:
        """tokens (B, T) int, mask (B, T) bool (True = real token).

        Without `segments_bt` each row is one right-padded text. With it, a row packs
        several texts back to back (segment ids 1, 2, ...; 0 = padding): attention stays
        inside a segment and positions restart at 0 for each, so every text gets exactly
        the hidden states it would get alone.
        """
        cfg = self.cfg
        b, t = tokens_bt.shape
        x_btd = jnp.take(self.input_embedding[...], tokens_bt, axis=0).astype(jnp.float32)
        x_btd = (x_btd * math.sqrt(cfg.dim)).astype(self.dtype)
        index_bt = jnp.broadcast_to(jnp.arange(t)[None], (b, t))
        if segments_bt is None:
            segments_bt = mask_bt.astype(jnp.int32)
        same_btt = segments_bt[:, :, None] == segments_bt[:, None, :]
        # Position = index minus the index where the token's segment starts.
        starts_bt = jnp.where(jnp.concatenate([jnp.ones((b, 1), bool), segments_bt[:, 1:] != segments_bt[:, :-1]], 1), index_bt, 0)
        positions_bt = index_bt - jax.lax.cummax(starts_bt, axis=1)
        q_idx, k_idx = index_bt[:, :, None], index_bt[:, None, :]
        causal_btt = (k_idx <= q_idx) & same_btt & mask_bt[:, None, :]
        local_btt = causal_btt & (q_idx - k_idx < cfg.sliding_window)
        sin_l, cos_l = rope_tables(positions_bt, cfg.head_dim, cfg.rope_base_local)
        sin_g, cos_g = rope_tables(positions_bt, cfg.head_dim, cfg.rope_base_global)
        is_global = jnp.asarray([cfg.is_global(i) for i in range(cfg.depth)])

        @nnx.scan(in_axes=(nnx.Carry, 0, 0), out_axes=nnx.Carry)
        def run(x_btd, block: Block, glob):
            sin = jnp.where(glob, sin_g, sin_l)
            cos = jnp.where(glob, cos_g, cos_l)
            allowed = jnp.where(glob, causal_btt, local_btt)
            return block(x_btd, sin, cos, allowed)

        x_btd = run(x_btd, self.layers, is_global)
        return self.final_norm(x_btd)

    def logits(self, hidden_btd: jax.Array) -> jax.Array:
        return jnp.einsum("btd,vd->btv", hidden_btd.astype(jnp.float32), self.input_embedding[...].astype(jnp.float32))
