"""XUT with per-token text (model.text_input=tokens): padding is invisible, the null
condition is the empty text, and TREAD keeps the text keys' padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ouro.model.config import XUTConfig
from ouro.model.registry import build
from tests.model.test_families import _noisy

CFG = XUTConfig(dim=32, mlp_dim=48, head_dim=16, depth=1, enc_blocks=1, dec_blocks=2, pre_blocks=1,
                post_blocks=1, in_channels=2, patch_size=2, ctx_dim=12, text_input="tokens")


@nnx.jit(static_argnames="rate")
def _run(m, x, t, ctx, mask, drop, rate=0.0):
    return m(x, t, ctx, ctx_mask=mask, drop=drop, tread_rate=rate,
             rng=jax.random.key(3) if rate else None)


@pytest.fixture(scope="module")
def xut():
    # the real init plus noise on every parameter: the zero-initialised paths come alive while
    # the text keeps a visible (~10%) share of the output (all-random weights drown it)
    g, params, rest = nnx.split(nnx.jit(lambda: build(CFG, nnx.Rngs(0)))(), nnx.Param, ...)
    return nnx.merge(g, _noisy(params, jax.random.key(1), 0.1), rest)


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_padding_tokens_do_not_change_the_output(xut, rate):
    # every call has the same shapes (T = 5, a mask, a drop vector): one compile per rate
    k = jax.random.split(jax.random.key(0), 4)
    x, t = jax.random.normal(k[0], (2, 8, 8, 2)), jnp.array([0.3, 0.7])
    real = jax.random.normal(k[1], (2, 2, 12))  # two real text tokens each
    pad_a = jnp.concatenate([real, jax.random.normal(k[2], (2, 3, 12))], axis=1)  # + 3 padding
    pad_b = jnp.concatenate([real, 100.0 * jax.random.normal(k[3], (2, 3, 12))], axis=1)
    mask, keep = jnp.array([[True] * 2 + [False] * 3] * 2), jnp.zeros(2, bool)
    a, b = _run(xut, x, t, pad_a, mask, keep, rate), _run(xut, x, t, pad_b, mask, keep, rate)
    np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-5)
    # the mask is what hides them: unmasked, the same extra tokens change the output
    assert not np.allclose(_run(xut, x, t, pad_a, jnp.ones_like(mask), keep, rate), a, atol=1e-3)
    if rate == 0.0:  # and a padded text is the unpadded one
        np.testing.assert_allclose(a, _run(xut, x, t, real, None, None), rtol=2e-5, atol=2e-5)


def test_null_condition_is_the_empty_text(xut):
    k = jax.random.split(jax.random.key(1), 3)
    x, t = jax.random.normal(k[0], (2, 8, 8, 2)), jnp.array([0.2, 0.9])
    ctx = jax.random.normal(k[1], (2, 5, 12))
    mask = jnp.array([[True, True, True, False, False], [True, False, False, False, False]])
    run = lambda c, m, d: _run(xut, x, t, c, m, jnp.asarray(d, bool))  # noqa: E731 - shapes of the test above
    dropped = run(ctx, mask, [True, True])
    empty = run(jax.random.normal(k[2], ctx.shape), jnp.zeros_like(mask), [False, False])
    np.testing.assert_allclose(dropped, empty, rtol=2e-5, atol=2e-5)
    cond = run(ctx, mask, [False, False])
    assert not np.allclose(dropped, cond, atol=1e-3)
    # per sample: dropping sample 0 leaves sample 1 as it was
    part = run(ctx, mask, [True, False])
    np.testing.assert_allclose(part[1], cond[1], rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(part[0], dropped[0], rtol=2e-5, atol=2e-5)


def test_condition_input_and_mask_shape_check(xut):
    assert CFG.condition_input == "ctx_tokens" and XUTConfig().condition_input == "ctx"
    x, t = jnp.zeros((2, 8, 8, 2)), jnp.zeros((2,))
    with pytest.raises(ValueError, match="ctx_mask must be"):
        xut(x, t, jnp.zeros((2, 3, 12)), ctx_mask=jnp.ones((2, 4), bool))
