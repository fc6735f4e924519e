"""Patch embed/unpatch, timestep features, aspect add-on."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.nn.embed import AspectEmbedding, PatchEmbed, UnPatch, patchify, timestep_features, unpatchify


def test_patchify_unpatchify_round_trip_and_layout():
    x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
    tok = patchify(x, 2)
    assert tok.shape == (2, 2 * 3, 12)
    # token 1 = patch row 0, column 1; pixel (py, px, c) order, channels fastest
    np.testing.assert_array_equal(tok[0, 1], x[0, 0:2, 2:4, :].reshape(-1))
    np.testing.assert_array_equal(unpatchify(tok, 2, 2, 3), x)


def test_patch_embed_equals_strided_conv():
    p, c, d = 2, 3, 8
    emb = PatchEmbed(p, c, d, rngs=nnx.Rngs(0))
    emb.proj.bias[...] = jax.random.normal(jax.random.key(1), (d,))
    x = jax.random.normal(jax.random.key(2), (2, 6, 4, c))
    kernel_hwio = emb.proj.kernel[...].reshape(p, p, c, d)
    conv = jax.lax.conv_general_dilated(x, kernel_hwio, (p, p), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    want = (conv + emb.proj.bias[...]).reshape(2, -1, d)  # row-major tokens
    np.testing.assert_allclose(emb(x), want, atol=1e-5)


def test_unpatch_init_is_tiny_normal_std_one_over_d_squared():
    d = 128
    up = UnPatch(2, d, 4, rngs=nnx.Rngs(0))
    k = np.asarray(up.proj.kernel[...])
    np.testing.assert_allclose(k.std(), 1 / d**2, rtol=0.15)
    np.testing.assert_array_equal(up.proj.bias[...], 0)


def test_timestep_features_formula():
    d = 16
    t = jnp.array([0.0, 0.25, 1.0])
    got = np.asarray(timestep_features(t, d))
    k = np.arange(d // 2)
    args = 1000 * np.asarray(t)[:, None] * np.exp(-math.log(1e4) * k / (d // 2))
    np.testing.assert_allclose(got, np.concatenate([np.cos(args), np.sin(args)], -1), atol=2e-4)


def test_aspect_addon_contributes_nothing_at_init():
    a = AspectEmbedding(32, rngs=nnx.Rngs(0))
    out = a(jnp.log(jnp.array([0.5, 1.0, 2.0, 16 / 9])))
    assert out.shape == (4, 32)
    np.testing.assert_array_equal(out, 0)
