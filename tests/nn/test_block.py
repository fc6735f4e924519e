"""One XUT block against an independent float64 NumPy reference of its math, and the
shared AdaLN wrapper semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ouro.nn.adaln import Modulation, SharedAdaLN
from ouro.nn.block import TransformerBlock


def _np(a):
    return np.asarray(a, np.float64)


def _rms(x, w):
    return x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-6) * w


def _rope(x, pos, logf):  # x (B, L, N, H); complex-pair reference
    out = np.empty_like(x)
    for p in range(x.shape[-1] // 2):
        j, axis = divmod(p, 2)
        th = pos[:, :, None, axis] * np.exp(logf[None, None, :, j, axis])
        z = (x[..., 2 * p] + 1j * x[..., 2 * p + 1]) * np.exp(1j * th)
        out[..., 2 * p], out[..., 2 * p + 1] = z.real, z.imag
    return out


def _attn(q, k, v):  # (B, L, N, H)
    s = np.einsum("blnh,bsnh->bnls", q, k) / np.sqrt(q.shape[-1])
    s = np.exp(s - s.max(-1, keepdims=True))
    return np.einsum("bnls,bsnh->blnh", s / s.sum(-1, keepdims=True), v)


def _lin(layer, x):
    y = x @ _np(layer.kernel[...])
    return y + _np(layer.bias[...]) if layer.bias is not None else y


def reference_block(blk, x, pos, mod, ctx, n, hd):
    b, l, d = x.shape

    def sub(x, norm, m, f):
        scale, shift, gate = (_np(a)[:, None] for a in m)
        h = _rms(x, _np(norm.weight[...])) * (1 + scale) + shift
        return h + (1 + gate) * f(h)

    def self_attn(h):
        q, k, v = np.split(_lin(blk.attn.qkv, h), 3, -1)
        lf = _np(blk.attn.rope.freqs[...])
        q, k, v = (a.reshape(b, l, n, hd) for a in (q, k, v))
        return _lin(blk.attn.out, _attn(_rope(q, pos, lf), _rope(k, pos, lf), v).reshape(b, l, d))

    def cross_attn(h):
        q = _lin(blk.xattn.q, h).reshape(b, l, n, hd)
        k, v = (a.reshape(b, ctx.shape[1], n, hd) for a in np.split(_lin(blk.xattn.kv, ctx), 2, -1))
        lf = _np(blk.xattn.rope.freqs[...])
        return _lin(blk.xattn.out, _attn(_rope(q, pos, lf), _rope(k, pos, lf), v).reshape(b, l, d))

    def swiglu(h):
        a, g = np.split(_lin(blk.mlp.w_in, h), 2, -1)
        return _lin(blk.mlp.w_out, a / (1 + np.exp(-a)) * g)

    x = sub(x, blk.attn_pre_norm, mod.attn, self_attn)
    x = sub(x, blk.xattn_pre_norm, mod.xattn, cross_attn)
    return sub(x, blk.mlp_pre_norm, mod.mlp, swiglu)


def test_block_matches_numpy_reference():
    d, hd, m, b, l = 32, 8, 48, 2, 6
    blk = TransformerBlock(d, hd, m, cross=True, rngs=nnx.Rngs(0))
    for norm in (blk.attn_pre_norm, blk.xattn_pre_norm, blk.mlp_pre_norm):  # non-trivial norm weights
        norm.weight[...] = 1 + 0.1 * jax.random.normal(jax.random.key(9), (d,))
    ks = jax.random.split(jax.random.key(1), 12)
    x = jax.random.normal(ks[0], (b, l, d))
    ctx = jax.random.normal(ks[1], (b, l, d))
    pos = jax.random.uniform(ks[2], (b, l, 2), minval=-1, maxval=1)
    mod = Modulation(*[tuple(0.2 * jax.random.normal(ks[3 + 3 * i + j], (b, d)) for j in range(3)) for i in range(3)])
    got = blk(x, pos, mod, ctx, pos)
    want = reference_block(blk, _np(x), _np(pos), mod, _np(ctx), d // hd, hd)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


def test_shared_adaln_zero_at_init_and_three_mlps():
    ada = SharedAdaLN(16, rngs=nnx.Rngs(0))
    mod = ada(jax.random.normal(jax.random.key(0), (3, 16)))
    assert len(mod) == 3 and all(len(m) == 3 for m in mod)
    for m in mod:
        for a in m:
            assert a.shape == (3, 16)
            np.testing.assert_array_equal(a, 0)


def test_zero_modulation_branch_is_fully_on_not_adaln_zero():
    d = 32
    blk = TransformerBlock(d, 8, 48, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (1, 4, d))
    zero = tuple(jnp.zeros((1, d)) for _ in range(3))
    out = blk(x, jnp.zeros((1, 4, 2)), Modulation(zero, zero, zero))
    # adaLN-Zero would return x; here h = RMSNorm(x) and both branches add on top of it
    assert not np.allclose(out, x, atol=1e-2)
    # with zero modulation the attention sub-layer starts from the normalised x
    h = x / jnp.sqrt(jnp.mean(x**2, -1, keepdims=True) + 1e-6)
    expected_attn = h + blk.attn(h, jnp.zeros((1, 4, 2)))
    h2 = expected_attn / jnp.sqrt(jnp.mean(expected_attn**2, -1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(out, h2 + blk.mlp(h2), rtol=1e-4, atol=1e-5)


def test_cross_attention_without_context_positions_needs_the_same_token_set():
    """ctx_pos_bs2=None (XUT's decoder) means the context is x's own tokens at x's positions:
    that equals passing the positions explicitly, and another length is a clear error."""
    from ouro.nn.attention import CrossAttention

    att = CrossAttention(32, 32, 16, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 5, 32))
    ctx = jax.random.normal(jax.random.key(2), (2, 5, 32))
    pos = jax.random.normal(jax.random.key(3), (1, 5, 2))
    np.testing.assert_allclose(att(x, ctx, pos), att(x, ctx, pos, jnp.broadcast_to(pos, (2, 5, 2))),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shares x's 5 tokens, got 3"):
        att(x, ctx[:, :3], pos)
