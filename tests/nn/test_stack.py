"""Stacked layers: independent weights per layer, logical 'layers' axis, scan == loop."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.nn.adaln import Modulation
from ouro.nn.stack import layer, num_layers, scan_layers
from ouro.model.backbone import TBackBone


def test_scan_equals_unrolled_loop_and_layers_differ():
    d = 32  # same sizes as test_block / the collect test below: init compiles are shared
    bb = TBackBone(d, 8, 48, 3, rngs=nnx.Rngs(0))
    assert num_layers(bb.blocks) == 3
    k = bb.blocks.attn.qkv.kernel
    assert k.shape == (3, d, 3 * d)
    assert k.get_metadata()["out_sharding"] == ("layers", "embed", "heads")
    assert not np.allclose(k[...][0], k[...][1])  # independently initialised
    ks = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(ks[0], (2, 5, d))
    pos = jax.random.uniform(ks[1], (2, 5, 2))
    mod = Modulation(*[(0.1 * jax.random.normal(ks[2], (2, d)),) * 3] * 3)
    scanned = bb(x, pos, mod)  # 3 <= UNROLL_MAX layers: scanned unrolled
    bb.unroll_max = 0
    rolled = bb(x, pos, mod)  # the same scan as a loop
    bb.unrolled = True
    looped = bb(x, pos, mod)
    np.testing.assert_allclose(scanned, looped, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rolled, looped, rtol=1e-5, atol=1e-5)
    by_hand = x
    for i in range(3):
        by_hand = layer(bb.blocks, i)(by_hand, pos, mod)
    np.testing.assert_allclose(scanned, by_hand, rtol=1e-5, atol=1e-5)


def test_scan_collect_returns_every_layer_output():
    bb = TBackBone(32, 8, 48, 3, rngs=nnx.Rngs(1))
    x = jnp.ones((1, 3, 32))
    mod = Modulation(*[(jnp.zeros((1, 32)),) * 3] * 3)
    pos = jnp.zeros((1, 3, 2))
    out, ys = scan_layers(bb.blocks, x, lambda blk, h, _: blk(h, pos, mod), collect=True)
    assert ys.shape == (3, 1, 3, 32)
    np.testing.assert_allclose(ys[-1], out)
    np.testing.assert_allclose(ys[0], layer(bb.blocks, 0)(x, pos, mod), rtol=1e-5, atol=1e-6)


def test_short_stacks_lower_without_a_loop_unless_remat_or_rolled():
    """Unrolled scan: no while loop in the lowered program (no stacked loop buffers); remat
    or unroll_max=0 keep the loop (remat needs it to save memory)."""
    d = 32
    graphdef, state = nnx.split(TBackBone(d, 8, 48, 3, rngs=nnx.Rngs(0)))
    x, pos = jnp.zeros((2, 5, d)), jnp.zeros((2, 5, 2))
    mod = Modulation(*[(jnp.zeros((2, d)),) * 3] * 3)

    def loops(**attrs):
        def loss(state, x):
            bb = nnx.merge(graphdef, state)
            for k, v in attrs.items():
                setattr(bb, k, v)
            return jnp.sum(bb(x, pos, mod))
        return jax.jit(jax.grad(loss)).lower(state, x).as_text().count("stablehlo.while")

    assert loops() == 0
    assert loops(unroll_max=2) > 0 and loops(unroll_max=0) > 0  # 3 layers > 2
    assert loops(remat="block") > 0


def test_block_remat_same_gradients_less_memory():
    """'block' remat gives the loss and gradients of no remat and keeps fewer activations for
    the backward pass (compiled temporaries shrink). Every other policy: tests/nn/test_remat.py."""
    d, n, b, l = 32, 4, 2, 64
    ks = jax.random.split(jax.random.key(2), 3)
    x = jax.random.normal(ks[0], (b, l, d))
    pos = jax.random.uniform(ks[1], (b, l, 2))
    mod = Modulation(*[(0.1 * jax.random.normal(ks[2], (b, d)),) * 3] * 3)
    graphdef, state = nnx.split(TBackBone(d, 8, 48, n, rngs=nnx.Rngs(3)))

    def grads_for(remat):
        def loss(state, x):
            bb = nnx.merge(graphdef, state)
            bb.remat = remat
            return jnp.mean(jnp.square(bb(x, pos, mod)))
        fn = jax.jit(jax.value_and_grad(loss))
        temp = fn.lower(state, x).compile().memory_analysis().temp_size_in_bytes
        return fn(state, x), temp

    (ref_loss, ref_g), ref_temp = grads_for("none")
    temps = {}
    for name in ("block",):
        (loss_r, g_r), temps[name] = grads_for(name)
        np.testing.assert_allclose(loss_r, ref_loss, rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_r, ref_g)
    assert temps["block"] < 0.8 * ref_temp, (temps, ref_temp)
    with np.testing.assert_raises_regex(ValueError, "remat must be one of"):
        scan_layers(nnx.merge(graphdef, state).blocks, x, lambda blk, h, _: h, remat="all")
