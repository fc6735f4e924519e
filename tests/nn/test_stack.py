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
    scanned = bb(x, pos, mod)
    bb.unrolled = True
    looped = bb(x, pos, mod)
    np.testing.assert_allclose(scanned, looped, rtol=1e-5, atol=1e-5)
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
