"""Remat policies (ouro/nn/remat.py) on a tiny XUT core (XUTBackBone: encoder groups, then
decoder groups whose first block cross-attends, scanned as a loop): the same loss and
gradients under every policy, and the memory ladder they exist for."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ouro.model.backbone import XUTBackBone
from ouro.nn.adaln import Modulation
from ouro.nn.remat import REMAT_NAMES, checkpointed

KS = jax.random.split(jax.random.key(1), 3)
X = jax.random.normal(KS[0], (2, 16, 32))  # (B, L, D)
POS = jax.random.uniform(KS[1], (2, 16, 2))
MOD = Modulation(*[(0.1 * jax.random.normal(KS[2], (2, 32)),) * 3] * 3)


def _split(remat: str):
    # depth 2 x (1 encoder block, 2 decoder blocks); unroll_max=0: the rolled loop remat runs
    # in on every model. The same seed gives the same weights under every policy.
    return nnx.split(XUTBackBone(32, 16, 64, 2, 1, 2, rngs=nnx.Rngs(0), remat=remat, unroll_max=0))


def _loss(graphdef):
    return lambda state, x: jnp.mean(nnx.merge(graphdef, state)(x, POS, MOD) ** 2)


def _loss_and_grads(remat: str):
    graphdef, state = _split(remat)
    loss, (g_state, g_x) = jax.jit(jax.value_and_grad(_loss(graphdef), argnums=(0, 1)))(state, X)
    return float(loss), jax.tree.leaves(g_state) + [g_x]


@pytest.fixture(scope="module")
def reference():
    return _loss_and_grads("none")


@pytest.mark.parametrize("remat", REMAT_NAMES[1:])
def test_every_policy_gives_the_same_loss_and_gradients(remat, reference):
    loss0, grads0 = reference
    loss, grads = _loss_and_grads(remat)
    assert len(grads0) > 20 and min(float(jnp.abs(g).max()) for g in grads0) > 0
    # equal to float32 rounding, not bit for bit: a recomputed op can be fused (so rounded)
    # differently from its first evaluation. Observed: loss within 1e-7 relative, every
    # gradient leaf within 2e-6 of its largest entry; asserted with 5x margin.
    assert loss == pytest.approx(loss0, rel=1e-6)
    for g, g0 in zip(grads, grads0):
        assert g.shape == g0.shape
        assert float(jnp.abs(g - g0).max()) <= 1e-5 * float(jnp.abs(g0).max()), (remat, g.shape)


def _saved_floats(remat: str, capsys) -> dict[str, int]:
    """Floats the backward pass keeps (weights aside), by memory space ("" or "<host>")."""
    graphdef, state = _split(remat)
    capsys.readouterr()
    jax.ad_checkpoint.print_saved_residuals(lambda x: _loss(graphdef)(state, x), X)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "from a constant" not in ln]
    out = {"": 0, "<host>": 0}
    for m in filter(None, (re.match(r"\w+(<host>)?\[([\d,]*)\]", ln) for ln in lines)):
        out[m.group(1) or ""] += math.prod(int(d) for d in m.group(2).split(",") if d)
    return out


def test_policies_keep_less_as_they_recompute_more(capsys):
    saved = {r: _saved_floats(r, capsys) for r in REMAT_NAMES}
    device = {r: s[""] for r, s in saved.items()}
    # what the backward pass keeps on the device shrinks along the ladder
    assert device["none"] > device["matmuls"] > device["attn"] > device["block"] > 0, saved
    assert all(saved[r]["<host>"] == 0 for r in REMAT_NAMES if r != "offload"), saved
    # offload keeps what attn keeps, its named activations in host memory: the device keeps
    # no more than block's layer inputs
    assert sum(saved["offload"].values()) == device["attn"], saved
    assert device["offload"] <= device["block"] and saved["offload"]["<host>"] > 0, saved


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="remat must be one of .*'attn'.*got 'all'"):
        checkpointed(lambda x: x, "all")
