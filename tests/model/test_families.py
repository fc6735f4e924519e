"""DiT, MMDiT and InContextMMDiT against their definitions: adaLN-Zero identity at init,
masks, summed conditioning, joint attention vs a NumPy reference, parameter counts vs the
(abstract) parameters of every preset, FLOPs vs the traced matmuls, batched == one-by-one."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ouro.config import ConfigError
from ouro.denoiser import Denoiser
from ouro.model import FAMILIES, DiT, MMDiT, build, family_of, flops_per_image, param_count, preset
from ouro.model.dit import DiTConfig
from ouro.model.incontext import InContextConfig
from ouro.model.mmdit import MMDiTConfig
from ouro.nn.joint_attention import JointAttention
from ouro.nn.masks import joint_mask, structure_mask
from ouro.nn.stack import layer
from tests.model.test_accounting import _dot_flops

SMALL = {  # every family at a test size: (config, ctx)
    "dit": DiTConfig(dim=32, depth=2, heads=2, in_channels=2, ctx_dim=12, patch_size=2),
    "dit-class": DiTConfig(dim=32, depth=2, heads=2, in_channels=2, cond="class", num_classes=5, patch_size=2),
    "mmdit": MMDiTConfig(dim=32, depth=2, heads=2, mlp_dim=48, in_channels=2, ctx_dim=12, patch_size=2),
    "icmmdit": InContextConfig(dim=32, depth=2, heads=2, mlp_dim=48, in_channels=2, ctx_dim=12, patch_size=2),
}


def _inputs(cfg, b=3, hw=(8, 6), t_ctx=3, seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(k[0], (b, *hw, cfg.in_channels))
    t = jax.random.uniform(k[1], (b,))
    if getattr(cfg, "cond", "text") == "class":
        ctx = jnp.arange(b, dtype=jnp.int32) % cfg.num_classes
    else:
        ctx = jax.random.normal(k[2], (b, 1 if isinstance(cfg, DiTConfig) else t_ctx, cfg.ctx_dim))
    return x, t, ctx


@jax.jit
def _noisy(state, key, scale):
    leaves, tree = jax.tree.flatten(state)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def _live(cfg, seed=1, scale=0.3):
    """A model whose every parameter (the zero-initialised gates too) is random, so each path
    is live. Shapes from eval_shape + one small jitted fill: no init program to compile."""
    graphdef, params, rest = nnx.split(nnx.eval_shape(lambda: build(cfg, nnx.Rngs(0))), nnx.Param, ...)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), params)
    return nnx.merge(graphdef, _noisy(zeros, jax.random.key(seed), scale), rest)


def _build(cfg):
    return nnx.jit(lambda: build(cfg, nnx.Rngs(0)))()  # one compiled init: eager init is slow on CPU


@nnx.jit
def _call(m, x, t, ctx, ctx_mask, drop, cond):
    return m(x, t, ctx, ctx_mask=ctx_mask, drop=drop, cond=cond)


def run(m, x, t, ctx, *, ctx_mask=None, drop=None, cond=None):
    """The model's forward, jitted (one compile per shape instead of one per op)."""
    return _call(m, x, t, ctx, ctx_mask, drop, cond)


@pytest.fixture(scope="module")
def models():
    return {k: _build(c) for k, c in SMALL.items()}


def test_registry_lists_families_and_finds_them_by_config(models):
    assert {"xut", "dit", "mmdit", "incontext-mmdit"} <= set(FAMILIES)
    assert family_of(SMALL["icmmdit"]).name == "incontext-mmdit" and family_of(SMALL["mmdit"]).name == "mmdit"
    for m in models.values():
        assert isinstance(m, Denoiser)
    with pytest.raises(TypeError, match="not the config of a registered model family"):
        family_of(object())
    with pytest.raises(KeyError, match="unknown model preset"):
        preset("dit-huge")


@pytest.mark.parametrize("name", ["dit", "dit-class", "mmdit"])
def test_adaln_zero_blocks_are_identity_and_output_is_exactly_zero(models, name):
    m, cfg = models[name], SMALL[name]
    x, t, ctx = _inputs(cfg)
    assert np.all(np.asarray(run(m, x, t, ctx)) == 0.0)
    c = jax.random.normal(jax.random.key(3), (3, cfg.dim))
    h = jax.random.normal(jax.random.key(4), (3, 12, cfg.dim))
    txt = jax.random.normal(jax.random.key(5), (3, 4, cfg.dim))
    mask = joint_mask((12, 4), causal=(False, False))

    @nnx.jit
    def every_block(blocks):
        outs = []
        for i in range(cfg.depth):
            blk = layer(blocks, i)
            outs.append(blk((h, txt), c, mask) if name == "mmdit" else (blk(h, c), txt))
        return outs

    for out_h, out_txt in every_block(m.blocks):
        np.testing.assert_array_equal(out_h, h)
        np.testing.assert_array_equal(out_txt, txt)
    # ...but not because the blocks are dead: with live gates the output moves
    live = _live(cfg)
    assert float(jnp.abs(run(live, x, t, ctx)).max()) > 1e-3


def test_structure_mask_causal_and_blocked():
    m = structure_mask((3, 2), causal=(True, False), cross=False)
    np.testing.assert_array_equal(m[:3, :3], np.tril(np.ones((3, 3), bool)))
    np.testing.assert_array_equal(m[3:, 3:], np.ones((2, 2), bool))
    assert not m[:3, 3:].any() and not m[3:, :3].any()
    assert structure_mask((3, 2), causal=(False, False), cross=True).all()
    km = joint_mask((2, 2), causal=(False, False), key_valid=jnp.array([[1, 1, 1, 0]], bool))
    assert not bool(km[0, 0, 3]) and bool(km[0, 3, 3])  # padding key hidden; diagonal kept


def test_blocked_modality_ignores_the_other_and_padding_is_invisible():
    cfg = dataclasses.replace(SMALL["mmdit"], cross_modal=False)
    m = _live(cfg)
    x, t, ctx = _inputs(cfg)
    other = ctx + jax.random.normal(jax.random.key(9), ctx.shape)
    np.testing.assert_allclose(run(m, x, t, ctx), run(m, x, t, other), atol=1e-6)
    joint = _live(SMALL["mmdit"])
    assert not np.allclose(run(joint, x, t, ctx), run(joint, x, t, other), atol=1e-4)  # joint: the text matters
    mask = jnp.array([[True, True, False]] * 3)  # last text token is padding
    moved = ctx.at[:, 2].add(5.0)
    np.testing.assert_allclose(run(joint, x, t, ctx, ctx_mask=mask), run(joint, x, t, moved, ctx_mask=mask), atol=1e-5)
    assert not np.allclose(run(joint, x, t, ctx), run(joint, x, t, moved), atol=1e-4)


def test_causal_image_modality_position_by_position():
    cfg = dataclasses.replace(SMALL["mmdit"], patch_size=1, causal=(True, False), cross_modal=False)
    m = _live(cfg)
    x, t, ctx = _inputs(cfg, b=1, hw=(3, 3))
    base = np.asarray(run(m, x, t, ctx)).reshape(9, -1)  # patch 1: token i = pixel i, row-major
    for j in (2, 5, 8):
        y = np.asarray(run(m, x.reshape(1, 9, -1).at[:, j].add(1.0).reshape(x.shape), t, ctx)).reshape(9, -1)
        np.testing.assert_allclose(y[:j], base[:j], atol=1e-6)  # earlier positions do not see j
        assert not np.allclose(y[j], base[j], atol=1e-4)


@pytest.mark.parametrize("name", ["mmdit", "icmmdit"])
def test_conditioning_variables_are_summed(name):
    two = dataclasses.replace(SMALL[name], cond_vars=("t", "r"))
    m2 = _live(two)
    x, t, ctx = _inputs(two)
    r1, r2 = jnp.full((3,), 0.2), jnp.full((3,), 0.7)
    assert not np.allclose(run(m2, x, t, ctx, cond={"r": r1}), run(m2, x, t, ctx, cond={"r": r2}), atol=1e-4)
    # r absent == the single-variable model with the same remaining weights
    pure = nnx.to_pure_dict(nnx.state(m2))
    del pure["cond_embedder"]["embed"]["r"]
    graphdef1, state1 = nnx.split(nnx.eval_shape(lambda: build(SMALL[name], nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state1, pure)
    m1 = nnx.merge(graphdef1, state1)
    np.testing.assert_allclose(run(m2, x, t, ctx), run(m1, x, t, ctx), atol=1e-6)
    with pytest.raises(ValueError, match="unknown conditioning variable"):
        run(m1, x, t, ctx, cond={"r": r1})


def test_joint_attention_equals_numpy_reference():
    graphdef, params, rest = nnx.split(nnx.eval_shape(lambda: JointAttention(16, 2, 2, rngs=nnx.Rngs(0))),
                                       nnx.Param, ...)
    zeros = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), params)
    att = nnx.merge(graphdef, _noisy(zeros, jax.random.key(1), 0.5), rest)
    xs = [jax.random.normal(jax.random.key(1), (2, 5, 16)), jax.random.normal(jax.random.key(2), (2, 3, 16))]
    valid = jnp.array([[1] * 7 + [0], [1] * 8], bool)
    mask = joint_mask((5, 3), causal=(True, False), key_valid=valid)
    got = nnx.jit(lambda a, xs, mask: a(xs, mask))(att, xs, mask)

    def rms(a, w):
        return a / np.sqrt(np.mean(a * a, -1, keepdims=True) + 1e-6) * w

    qs, ks, vs = [], [], []
    for x, m in zip(xs, att.mods):
        qkv = np.asarray(x, np.float64) @ np.asarray(m.qkv.kernel[...]) + np.asarray(m.qkv.bias[...])
        q, k, v = np.split(qkv.reshape(2, -1, 3, 2, 8), 3, axis=2)
        qs.append(rms(q[:, :, 0], np.asarray(m.q_norm.weight[...])))
        ks.append(rms(k[:, :, 0], np.asarray(m.k_norm.weight[...])))
        vs.append(v[:, :, 0])
    q, k, v = (np.concatenate(a, 1) for a in (qs, ks, vs))  # (B, N, heads, H)
    s = np.einsum("bqnh,bknh->bnqk", q, k) / np.sqrt(8)
    s = np.where(np.asarray(mask)[:, None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    o = np.einsum("bnqk,bknh->bqnh", p, v).reshape(2, 8, 16)
    for i, (lo, hi) in enumerate([(0, 5), (5, 8)]):
        m = att.mods[i]
        ref = o[:, lo:hi] @ np.asarray(m.out.kernel[...]) + np.asarray(m.out.bias[...])
        np.testing.assert_allclose(got[i], ref, rtol=1e-4, atol=1e-5)


def _abstract_count(cfg) -> int:
    model = nnx.eval_shape(lambda: build(cfg, nnx.Rngs(0)))
    return sum(math.prod(v.shape) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name", [n for f in ("dit", "mmdit", "incontext-mmdit") for n in FAMILIES[f].presets])
def test_param_count_equals_parameters_of_every_preset(name):
    cfg = preset(name)
    assert param_count(cfg) == _abstract_count(cfg)
    if cfg.dim <= 64:  # the tiny ones materialised for real
        m = _build(cfg)
        assert param_count(cfg) == sum(a.size for a in jax.tree.leaves(nnx.state(m, nnx.Param)))


def test_param_count_variants_and_dit_xl_matches_the_paper():
    for cfg in SMALL.values():
        assert param_count(cfg) == _abstract_count(cfg)
    # DiT-XL/2 class-conditional with learned sigma (8 output channels): the paper's
    # 675,129,632 includes the fixed 256 x 1152 position table, which ouro computes instead
    xl = preset("dit-xlarge", cond="class", out_channels=8)
    assert param_count(xl) + 256 * 1152 == 675_129_632


@pytest.mark.parametrize("name,t_ctx", [("dit", 1), ("dit-class", 1), ("mmdit", 3), ("icmmdit", 2)])
def test_flops_per_image_equals_traced_matmuls(models, name, t_ctx):
    cfg = SMALL[name]
    graphdef, state = nnx.split(models[name])
    x, t, ctx = _inputs(cfg, b=2, t_ctx=t_ctx)
    fn = lambda s: nnx.merge(graphdef, s)(x, t, ctx)  # noqa: E731
    traced = _dot_flops(jax.make_jaxpr(fn)(state).jaxpr)
    # DiT's label table is a gather (0 FLOPs) - nothing to subtract
    assert traced == 2 * flops_per_image(cfg, 8, 6, ctx_len=t_ctx)


@pytest.mark.parametrize("name", list(SMALL))
def test_batched_equals_one_by_one_with_drop_and_mask(name):
    cfg = SMALL[name]
    m = _live(cfg)
    x, t, ctx = _inputs(cfg)
    drop = jnp.array([False, True, False])
    kw = {}
    if not isinstance(cfg, DiTConfig):
        kw["ctx_mask"] = jnp.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], bool)
    batched = run(m, x, t, ctx, drop=drop, **kw)
    for i in range(3):
        one = run(m, x[i:i + 1], t[i:i + 1], ctx[i:i + 1], drop=drop[i:i + 1],
                **{k: v[i:i + 1] for k, v in kw.items()})
        # float32 rounding only: a batch of 3 and a batch of 1 reduce in different orders
        # (outputs up to ~20; seen: 1.4e-5 relative on one element of 96 for DiT)
        np.testing.assert_allclose(batched[i:i + 1], one, rtol=5e-5, atol=5e-5)
    # drop is the family's null condition: it changes the output, and it ignores the condition
    assert not np.allclose(batched[1], run(m, x, t, ctx, **kw)[1], atol=1e-4)
    other = ctx[::-1] if ctx.ndim == 1 else ctx + 1.0
    np.testing.assert_allclose(run(m, x, t, other, drop=jnp.ones(3, bool), **kw),
                               run(m, x, t, ctx, drop=jnp.ones(3, bool), **kw), atol=1e-5)


def test_families_reject_what_they_do_not_support(models):
    x, t, ctx = _inputs(SMALL["dit"])
    with pytest.raises(ValueError, match="token routing"):
        models["dit"](x, t, ctx, tread_rate=0.5, rng=jax.random.key(0))  # checked before any compute
    with pytest.raises(ValueError, match="int labels"):
        run(models["dit-class"], x, t, ctx)
    with pytest.raises(ValueError, match="ctx_dim"):
        run(models["mmdit"], x, t, jnp.zeros((3, 2, 7)))
    with pytest.raises(ConfigError, match="dim=30: must be a multiple of heads=4"):
        DiTConfig(dim=30, heads=4)
