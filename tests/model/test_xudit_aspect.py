"""XUT on an aspect bucket: the axial RoPE of every attention gets the bucket's own (h, w)
token grid - x across the long side in [-1, 1], y across the short side in +-h/w - and the
text tokens sit at the origin (unrotated). What a bucketed run (ouro/data/bucket_loader.py)
feeds the model is only the batch's shape: the positions must follow it."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ouro.model import XUDiT, preset
from ouro.nn import rope


@pytest.fixture(scope="module")
def small():
    cfg = dataclasses.replace(preset("xut-tiny"), dim=32, mlp_dim=64, head_dim=16, depth=1, in_channels=3,
                              out_channels=3, ctx_dim=16)
    return cfg, XUDiT(cfg, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("height,width", [(12, 20), (20, 12)])  # the 20x12 and 12x20 (W x H) buckets
def test_rope_positions_follow_a_non_square_bucket(monkeypatch, small, height, width):
    cfg, model = small
    seen = []
    call = rope.AxialRoPE.__call__

    def spy(self, x, pos):
        jax.debug.callback(lambda p: seen.append(np.asarray(p)), pos)  # works under jit and scan
        return call(self, x, pos)

    monkeypatch.setattr(rope.AxialRoPE, "__call__", spy)
    b, t_ctx = 2, 3
    x = jnp.ones((b, height, width, 3))
    out = nnx.jit(lambda m, x: m(x, jnp.full((b,), 0.5), jnp.ones((b, t_ctx, 16))))(model, x)
    jax.effects_barrier()
    assert out.shape == (b, height, width, 3)
    p = cfg.patch_size
    h, w = height // p, width // p  # the token grid: 6 x 10 for the 20x12 bucket at patch 2
    long = max(h, w)
    ys = -h / long + (2 * np.arange(h) + 1) / long  # bin centres of [-h/long, h/long]
    xs = -w / long + (2 * np.arange(w) + 1) / long
    want = np.stack(np.meshgrid(ys, xs, indexing="ij"), -1).reshape(h * w, 2)
    assert seen, "no attention ran"
    for pos in seen:  # every attention of the network, same grid
        assert pos.shape[-2:] == (h * w + t_ctx, 2)
        np.testing.assert_allclose(pos.reshape(-1, h * w + t_ctx, 2)[0, :h * w], want, atol=1e-6)
        np.testing.assert_array_equal(pos.reshape(-1, h * w + t_ctx, 2)[0, h * w:], 0.0)  # text: unrotated
    # the long side spans [-1, 1] whichever it is; the other +-short/long
    grid = want.reshape(h, w, 2)
    assert np.isclose(max(abs(grid[..., 0]).max(), abs(grid[..., 1]).max()) + 1 / long, 1.0)
    assert np.isclose(abs(grid[..., 0]).max() + 1 / long, h / long)
