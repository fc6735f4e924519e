"""Guidance interval, rescale, negative prompts, shifted grids and image-to-image, each on
its definition; with a toy model where the formula is the point and the real MMDiT where
the family's null condition is."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ouro.flow import guided_velocity, model_evals, sample
from ouro.flow.guidance import combine, rescale_to
from ouro.flow.timesteps import time_grid


def toy(x, t_b, ctx, *, ctx_mask=None, drop=None):
    """v depends on x, t and the condition; the null condition is ctx -> 0."""
    c = ctx[:, 0, :1]
    if drop is not None:
        c = jnp.where(drop[:, None], 0.0, c)
    return -x * (1 - t_b[:, None]) + 2.0 * c + t_b[:, None] * c**2


X = jax.random.normal(jax.random.key(0), (4, 3))
CTX = jax.random.normal(jax.random.key(1), (4, 1, 2))


def test_combine_formulas():
    vc, vu = jax.random.normal(jax.random.key(2), (2, 3, 5, 5, 2))
    t = jnp.array([0.05, 0.5, 0.95])
    cfg = vu + 4.0 * (vc - vu)
    np.testing.assert_allclose(combine(vc, vu, t, scale=4.0), cfg, rtol=1e-6)
    # interval: inside -> CFG, outside -> conditional only
    out = combine(vc, vu, t, scale=4.0, interval=(0.2, 0.7))
    np.testing.assert_allclose(out[1], cfg[1], rtol=1e-6)
    np.testing.assert_allclose(out[0], vc[0]), np.testing.assert_allclose(out[2], vc[2])
    # rescale: phi = 1 matches the conditional std per sample, phi blends linearly
    r1 = rescale_to(cfg, vc, 1.0)
    np.testing.assert_allclose(jnp.std(r1, axis=(1, 2, 3)), jnp.std(vc, axis=(1, 2, 3)), rtol=1e-5)
    r = combine(vc, vu, t, scale=4.0, rescale=0.7)
    np.testing.assert_allclose(r, 0.7 * r1 + 0.3 * cfg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(combine(vc, vu, t, scale=4.0, rescale=0.0), cfg)


def test_interval_outside_equals_conditional_and_skips_the_weak_pass():
    calls = []

    def counting(x, t_b, ctx, **kw):
        calls.append(x.shape[0])
        return toy(x, t_b, ctx, **kw)

    cond_only = sample(toy, X, CTX, steps=6)
    empty = sample(counting, X, CTX, steps=6, cfg_scale=3.0, cfg_interval=(0.0, 0.0))
    np.testing.assert_allclose(empty, cond_only, rtol=1e-6)
    full = sample(toy, X, CTX, steps=6, cfg_scale=3.0)
    mid = sample(toy, X, CTX, steps=6, cfg_scale=3.0, cfg_interval=(0.3, 0.7))
    assert not np.allclose(mid, full) and not np.allclose(mid, cond_only)
    # by hand: Euler with CFG only at grid times inside [0.3, 0.7]
    x, g = X, time_grid(6)
    for t, tn in zip(g[:-1], g[1:]):
        tb = jnp.full((4,), t)
        vc, vu = toy(x, tb, CTX), toy(x, tb, CTX, drop=jnp.ones(4, bool))
        v = vu + 3.0 * (vc - vu) if 0.3 <= t <= 0.7 else vc
        x = x + (tn - t) * v
    np.testing.assert_allclose(mid, x, rtol=1e-5, atol=1e-6)
    # evaluations: 6 steps, guidance at t = 4/6, 3/6, 2/6 only -> 6 + 3
    assert model_evals(6, "euler", 3.0, cfg_interval=(0.3, 0.7)) == 9
    assert model_evals(6, "heun", 3.0) == 24 and model_evals(6, "euler", 1.0) == 6
    calls.clear()
    jax.jit(lambda z: sample(counting, z, CTX, steps=6, cfg_scale=3.0, cfg_interval=(0.3, 0.7)))(X)
    assert sorted(set(calls)) == [4, 8]  # lax.cond: a conditional-only branch and a doubled one


def test_shifted_sampler_integrates_on_the_shifted_grid():
    x, g = X, time_grid(5, 3.0)
    for t, tn in zip(g[:-1], g[1:]):
        x = x + (tn - t) * toy(x, jnp.full((4,), t), CTX)
    np.testing.assert_allclose(sample(toy, X, CTX, steps=5, shift=3.0), x, rtol=1e-5, atol=1e-6)
    assert not np.allclose(sample(toy, X, CTX, steps=5), x)


def test_img2img_strength_one_is_text_to_image_and_lower_strength_starts_from_the_image():
    init = jax.random.normal(jax.random.key(3), X.shape)
    t2i = sample(toy, X, CTX, steps=8, cfg_scale=2.0)
    np.testing.assert_allclose(sample(toy, X, CTX, steps=8, cfg_scale=2.0, init=init, strength=1.0), t2i, rtol=1e-6)
    # strength 0.5: x_0.5 = (x + noise) / 2, then ceil(8 * 0.5) = 4 Euler steps from 0.5 to 0
    x, g = 0.5 * init + 0.5 * X, time_grid(4, 1.0, 0.5)
    np.testing.assert_allclose(g, [0.5, 0.375, 0.25, 0.125, 0])
    for t, tn in zip(g[:-1], g[1:]):
        x = x + (tn - t) * toy(x, jnp.full((4,), t), CTX)
    np.testing.assert_allclose(sample(toy, X, CTX, steps=8, init=init, strength=0.5), x, rtol=1e-5, atol=1e-6)
    assert model_evals(8, "euler", 1.0, img2img=True, strength=0.5) == 4
    with pytest.raises(ValueError, match="strength"):
        sample(toy, X, CTX, init=init, strength=0.0)


def test_negative_prompt_is_the_weak_branch():
    neg = jax.random.normal(jax.random.key(4), CTX.shape)
    t = jnp.full((4,), 0.4)
    v = guided_velocity(toy, X, t, CTX, cfg_scale=3.0, neg_ctx=neg)
    vc, vn = toy(X, t, CTX), toy(X, t, neg)
    np.testing.assert_allclose(v, vn + 3.0 * (vc - vn), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="neg_ctx"):
        guided_velocity(toy, X, t, CTX, cfg_scale=3.0, neg_ctx=neg[:, :, :1])


def test_empty_negative_text_is_plain_cfg_on_mmdit():
    """MMDiT's null condition is the empty (fully masked) text: a negative prompt that is the
    empty text gives exactly plain CFG (a real family, through the batched call)."""
    from ouro.model.registry import build, preset

    cfg = preset("mmdit-tiny", in_channels=1, patch_size=2, dim=32, depth=1, heads=2, mlp_dim=64,
                 ctx_dim=8, text_input="tokens")
    x = jax.random.normal(jax.random.key(5), (2, 4, 4, 1))
    ctx = jax.random.normal(jax.random.key(6), (2, 3, 8))
    mask = jnp.array([[True, True, False], [True, False, False]])
    t = jnp.array([0.3, 0.8])

    @jax.jit  # one compile: eager model building costs tens of seconds on a busy CPU
    def run():
        model = build(cfg, nnx.Rngs(0))
        # zero-initialised gates make the output 0: perturb every parameter so it depends on the text
        leaves, tree = jax.tree.flatten(nnx.state(model, nnx.Param))
        keys = jax.random.split(jax.random.key(9), len(leaves))
        nnx.update(model, jax.tree.unflatten(tree, [p + 0.2 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]))
        plain = guided_velocity(model, x, t, ctx, cfg_scale=4.0, ctx_mask=mask)
        empty = guided_velocity(model, x, t, ctx, cfg_scale=4.0, ctx_mask=mask,
                                neg_ctx=jax.random.normal(jax.random.key(7), ctx.shape), neg_mask=jnp.zeros_like(mask))
        other = guided_velocity(model, x, t, ctx, cfg_scale=4.0, ctx_mask=mask, neg_ctx=ctx[::-1], neg_mask=mask[::-1])
        return plain, empty, other

    plain, empty, other = run()
    np.testing.assert_allclose(empty, plain, rtol=1e-5, atol=1e-5)
    assert not np.allclose(other, plain, atol=1e-4)
