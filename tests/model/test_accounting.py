"""param_count / flops_per_image against the materialised model and an independent count
of the matmuls in the traced forward pass; presets against the spec's table."""

import math

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from ouro.model import PRESETS, XUDiT, flops_per_image, param_count, preset
from ouro.model.cli import table

SPEC_TABLE = {"xut-small": 237e6, "xut-base": 343e6, "xut-large": 555e6}


def abstract_param_count(cfg) -> int:
    model = nnx.eval_shape(lambda: XUDiT(cfg, rngs=nnx.Rngs(0)))  # shapes only, nothing allocated
    return sum(math.prod(v.shape) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))


@pytest.mark.parametrize("name", list(PRESETS))
def test_param_count_equals_materialised_shapes(name):
    assert param_count(PRESETS[name]) == abstract_param_count(PRESETS[name])


def test_tiny_param_count_equals_materialised_arrays():
    m = XUDiT(preset("xut-tiny"), rngs=nnx.Rngs(0))
    assert param_count(m.config) == sum(a.size for a in jax.tree.leaves(nnx.state(m, nnx.Param)))


@pytest.mark.parametrize("name,want", list(SPEC_TABLE.items()))
def test_presets_match_spec_table_within_one_percent(name, want):
    assert abs(param_count(PRESETS[name]) - want) / want < 0.01


@pytest.mark.parametrize(
    "overrides",
    [dict(dec_blocks=3, enc_blocks=2), dict(pre_blocks=0, post_blocks=0), dict(skip="per_level", depth=3),
     dict(in_channels=3, out_channels=8, patch_size=4, ctx_dim=32)],
)
def test_param_count_for_config_variants(overrides):
    cfg = preset("xut-tiny", **overrides)
    assert param_count(cfg) == abstract_param_count(cfg)


def _dot_flops(jaxpr) -> int:
    """2 * MACs of every dot_general in a jaxpr, recursing into sub-jaxprs (scan x length)."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[i] for i in lhs_contract)
        mult = eqn.params.get("length", 1) if eqn.primitive.name == "scan" else 1
        for v in eqn.params.values():
            for sub in v if isinstance(v, (tuple, list)) else (v,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += mult * _dot_flops(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += mult * _dot_flops(sub)
    return total


@pytest.mark.parametrize(
    "overrides,h,w,t_ctx,rate",
    [(dict(), 8, 12, 1, 0.0), (dict(dec_blocks=2, skip="per_level"), 8, 8, 3, 0.0), (dict(dec_blocks=2), 12, 8, 2, 0.5)],
)
def test_flops_per_image_equals_traced_matmuls(overrides, h, w, t_ctx, rate):
    cfg = preset("xut-tiny", **overrides)
    model = nnx.eval_shape(lambda: XUDiT(cfg, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(model)
    b = 2
    x, t, ctx = jnp.zeros((b, h, w, 4)), jnp.zeros((b,)), jnp.zeros((b, t_ctx, cfg.ctx_dim))
    fn = lambda s: nnx.merge(graphdef, s)(x, t, ctx, tread_rate=rate, rng=jax.random.key(0))
    traced = _dot_flops(jax.make_jaxpr(fn)(state).jaxpr)
    assert traced == b * flops_per_image(cfg, h, w, ctx_len=t_ctx, tread_rate=rate)


def test_tread_reduces_core_flops_and_table_lists_every_preset():
    cfg = PRESETS["xut-small"]
    full, routed = flops_per_image(cfg, 32, 32), flops_per_image(cfg, 32, 32, tread_rate=0.5)
    assert 0.4 * full < routed < 0.7 * full
    text = table()
    for name, cfg in PRESETS.items():
        assert name in text and f"{param_count(cfg):,}" in text
