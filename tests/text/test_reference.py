"""The JAX Gemma3 forward against an independent float64 NumPy implementation of the
same equations (written per head with explicit loops, no shared code with ouro.text.model)."""

import math

import jax
import numpy as np
import pytest
from flax import nnx

from ouro.text.config import GemmaConfig
from ouro.text.encoder import TextEncoder, model_from_params
from ouro.text.weights import expected_shapes


def np_rmsnorm(x, offset_scale, eps):
    return x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps) * (1.0 + offset_scale)


def np_rope(x_th, positions, base):
    """Rotate pairs (j, j + H/2) of each position's vector by angle pos * base^(-2j/H)."""
    h = x_th.shape[-1]
    out = np.empty_like(x_th)
    for t, pos in enumerate(positions):
        for j in range(h // 2):
            angle = pos * base ** (-2.0 * j / h)
            c, s = math.cos(angle), math.sin(angle)
            a, b = x_th[t, j], x_th[t, j + h // 2]
            out[t, j], out[t, j + h // 2] = a * c - b * s, b * c + a * s
    return out


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def numpy_forward(p, cfg: GemmaConfig, tokens, n_layers=None):
    """Final-norm hidden states (T, D) in float64 for one unpadded text."""
    f64 = lambda a: np.asarray(a, np.float64)
    T = len(tokens)
    pos = np.arange(T)
    x = f64(p["input_embedding"][np.asarray(tokens)]) * math.sqrt(cfg.dim)
    for l in range(cfg.depth if n_layers is None else n_layers):
        g = lambda name: f64(p[name][l])
        is_global = (l + 1) % cfg.global_every == 0
        base = cfg.rope_base_global if is_global else cfg.rope_base_local
        h = np_rmsnorm(x, g("layers/pre_attention_norm/scale"), cfg.norm_eps)
        wq, wkv, wo = g("layers/attn/q_einsum"), g("layers/attn/kv_einsum"), g("layers/attn/attn_vec_einsum")
        heads = []
        for n in range(cfg.num_heads):
            kv = n * cfg.num_kv_heads // cfg.num_heads
            q = h @ wq[n]  # (T, H)
            k, v = h @ wkv[0, kv], h @ wkv[1, kv]
            q = np_rope(np_rmsnorm(q, g("layers/attn/query_norm/scale"), cfg.norm_eps), pos, base)
            k = np_rope(np_rmsnorm(k, g("layers/attn/key_norm/scale"), cfg.norm_eps), pos, base)
            scores = (q / math.sqrt(cfg.query_pre_attn_scalar)) @ k.T
            for i in range(T):
                for j in range(T):
                    if j > i or (not is_global and i - j >= cfg.sliding_window):
                        scores[i, j] = -np.inf
            w = np.exp(scores - scores.max(axis=1, keepdims=True))
            heads.append((w / w.sum(axis=1, keepdims=True)) @ v @ wo[n])
        x = x + np_rmsnorm(sum(heads), g("layers/post_attention_norm/scale"), cfg.norm_eps)
        h = np_rmsnorm(x, g("layers/pre_ffw_norm/scale"), cfg.norm_eps)
        gate, up = g("layers/mlp/gating_einsum")
        ff = (gelu_tanh(h @ gate.T) * (h @ up.T)) @ g("layers/mlp/linear")
        x = x + np_rmsnorm(ff, g("layers/post_ffw_norm/scale"), cfg.norm_eps)
    return np_rmsnorm(x, f64(p["final_norm/scale"]), cfg.norm_eps)


def random_params(cfg: GemmaConfig, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in expected_shapes(cfg).items():
        scale = 0.3 if key.endswith("scale") else 1.0 / math.sqrt(shape[-2] if len(shape) > 1 else 1)
        out[key] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return out


TINY = GemmaConfig(vocab_size=50, dim=32, depth=6, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=48,
                   sliding_window=4, global_every=3)


def jax_hidden(params, cfg, tokens_bt, mask_bt):
    model = model_from_params(params, cfg)
    return np.asarray(nnx.jit(lambda m, t, k: m(t, k))(model, tokens_bt, mask_bt))


def test_tiny_model_matches_numpy_reference_with_sliding_window():
    params = random_params(TINY)
    tokens = [2, 7, 11, 3, 45, 9, 9, 30, 1, 17]  # longer than the window of 4
    want = numpy_forward(params, TINY, tokens)
    got = jax_hidden(params, TINY, np.asarray([tokens]), np.ones((1, len(tokens)), bool))[0]
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
    # The window matters: with an unlimited window the reference answer changes.
    wide = numpy_forward(params, GemmaConfig(**{**TINY.__dict__, "sliding_window": 100}), tokens)
    assert np.abs(wide[-1] - want[-1]).max() > 1e-3


def test_tiny_batch_with_padding_equals_one_at_a_time():
    params = random_params(TINY, seed=1)
    texts = [[2, 5], [2, 8, 9, 10, 11, 12, 13], [2, 40, 41, 42]]
    T = 9
    tokens = np.zeros((len(texts), T), np.int32)
    mask = np.zeros((len(texts), T), bool)
    for i, t in enumerate(texts):
        tokens[i, : len(t)], mask[i, : len(t)] = t, True
    batched = jax_hidden(params, TINY, tokens, mask)
    for i, t in enumerate(texts):
        single = jax_hidden(params, TINY, np.asarray([t]), np.ones((1, len(t)), bool))[0]
        np.testing.assert_allclose(batched[i, : len(t)], single, rtol=1e-5, atol=1e-5)


@pytest.mark.gemma
def test_real_weights_match_numpy_reference(encoder):
    text = "A photo of a golden retriever, wet from the lake."
    tokens = encoder.tokenize([text])[0]
    want = numpy_forward(encoder.params(), encoder.cfg, tokens)
    got = encoder.hidden_states([text])[0]
    assert got.shape == (len(tokens), 640)
    rel = np.linalg.norm(got - want, axis=-1) / np.linalg.norm(want, axis=-1)
    assert rel.max() < 1e-4, rel
