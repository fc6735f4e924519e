"""The fused update (ouro.train.update) against its reference: make_optimizer's optax chain,
optax.apply_updates and the EMA map, step for step."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from ouro.train import TrainConfig
from ouro.train.optim import make_optimizer
from ouro.train.update import make_update


class _Net(nnx.Module):
    """Input, hidden and down-projection matrices (three muP rules), biases, a norm scale."""

    def __init__(self, *, rngs):
        part, init = nnx.with_partitioning, nnx.initializers.lecun_normal()
        self.inp = nnx.Linear(4, 8, rngs=rngs, kernel_init=part(init, ("patch", "embed")))
        self.up = nnx.Linear(8, 16, rngs=rngs, kernel_init=part(init, ("embed", "mlp")))
        self.down = nnx.Linear(16, 8, rngs=rngs, kernel_init=part(init, ("mlp", "embed")))
        self.norm = nnx.RMSNorm(8, rngs=rngs)


def _reference(cfg, params, dim):
    tx = make_optimizer(cfg, params, dim)

    def step(params, opt, ema, grads, decay):
        updates, opt = tx.update(grads, opt, params)
        params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
        return params, opt, ema, optax.tree.norm(grads)

    return tx, jax.jit(step)


@pytest.mark.parametrize("mup, weight_decay", [(True, 0.1), (False, 0.0)])
def test_fused_update_matches_the_optax_chain(mup, weight_decay):
    with nnx.use_eager_sharding(False):
        params = nnx.state(_Net(rngs=nnx.Rngs(0)), nnx.Param)
    dim = 8
    # warm-up then cosine over few steps; a clip the larger gradients trip and the smaller do not
    cfg = TrainConfig(model=None, steps=8, warmup_steps=2, weight_decay=weight_decay, clip_norm=0.5,
                      lr=0.5, mup=mup)
    tx, ref_step = _reference(cfg, params, dim)
    fused = jax.jit(make_update(cfg, params, dim))
    p_ref = p_new = params
    o_ref = o_new = tx.init(params)
    e_ref = e_new = jax.tree.map(jnp.copy, params)
    rng = np.random.default_rng(0)
    clipped = []
    for i in range(6):
        size = 0.01 if i % 2 else 1.0  # global norms ~0.2 and ~18
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * size, jnp.float32), params)
        decay = jnp.float32(min(0.999, (1.0 + i) / (10.0 + i)))
        p_ref, o_ref, e_ref, n_ref = ref_step(p_ref, o_ref, e_ref, grads, decay)
        p_new, o_new, e_new, n_new = fused(grads, o_new, p_new, e_new, decay)
        clipped.append(float(n_ref) > cfg.clip_norm)
        np.testing.assert_allclose(float(n_new), float(n_ref), rtol=1e-6)
        for a, b in zip(jax.tree.leaves((p_new, o_new, e_new)), jax.tree.leaves((p_ref, o_ref, e_ref)), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-6, atol=1e-7)
    assert any(clipped) and not all(clipped)  # both branches of the clip were exercised
    # the same state layout as the chain's: old checkpoints resume, shardings match by path
    assert jax.tree.structure(o_new) == jax.tree.structure(o_ref)
    assert int(o_new[1].count) == int(o_new[3].count) == 6
    moved = np.asarray(p_new["down"]["kernel"].get_value()) - np.asarray(params["down"]["kernel"].get_value())
    assert np.abs(moved).max() > 0  # the update did something (the comparison is not vacuous)
