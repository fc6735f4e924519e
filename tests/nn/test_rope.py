"""Axial RoPE: positions, frequency layout, and rotation properties."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ouro.nn.rope import AxialRoPE, axial_positions, cropped_positions, init_log_freqs, rotate


def _rand(shape, seed):
    return np.asarray(jax.random.normal(jax.random.key(seed), shape), np.float32)


def test_positions_square_are_centres_of_unit_box():
    pos = axial_positions(4, 4).reshape(4, 4, 2)
    np.testing.assert_allclose(pos[:, 0, 0], [-0.75, -0.25, 0.25, 0.75])  # y down the rows
    np.testing.assert_allclose(pos[0, :, 1], [-0.75, -0.25, 0.25, 0.75])  # x along a row
    assert np.all(pos[:, :, 0] == pos[:, :1, 0]) and np.all(pos[:, :, 1] == pos[:1, :, 1])


def test_positions_1_to_2_aspect_span_long_and_short_side():
    h, w = 4, 8
    pos = axial_positions(h, w).reshape(h, w, 2)
    ys, xs = pos[:, 0, 0], pos[0, :, 1]
    # bin centres: edges = centres -/+ half a bin; long side [-1, 1], short side [-0.5, 0.5]
    np.testing.assert_allclose([xs[0] - 1 / w, xs[-1] + 1 / w], [-1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose([ys[0] - 0.5 / h, ys[-1] + 0.5 / h], [-0.5, 0.5], atol=1e-6)


@pytest.mark.parametrize("h,w", [(3, 5), (2, 8), (6, 6)])
def test_positions_transpose_under_swapping_height_and_width(h, w):
    a = axial_positions(h, w).reshape(h, w, 2)
    b = axial_positions(w, h).reshape(w, h, 2)
    np.testing.assert_allclose(a, b.transpose(1, 0, 2)[..., ::-1], atol=1e-7)


def test_init_log_freqs_are_log_spaced_pi_to_5pi_same_for_both_axes():
    f = init_log_freqs(3, 32)
    assert f.shape == (3, 8, 2)
    np.testing.assert_allclose(np.exp(f[:, 0]), math.pi, rtol=1e-6)
    np.testing.assert_allclose(np.exp(f[:, -1]), 5 * math.pi, rtol=1e-6)
    np.testing.assert_allclose(np.diff(f[0, :, 0]), np.diff(f[0, :, 0])[0], rtol=1e-5)
    np.testing.assert_array_equal(f[..., 0], f[..., 1])
    with pytest.raises(ValueError, match="multiple of 4"):
        init_log_freqs(2, 30)


def test_rotation_matches_independent_complex_reference():
    b, l, n, h = 2, 5, 3, 16
    x = _rand((b, l, n, h), 0)
    pos = _rand((b, l, 2), 1)
    logf = _rand((n, h // 4, 2), 2) * 0.3
    got = np.asarray(rotate(jnp.asarray(x), jnp.asarray(pos), jnp.asarray(logf)))
    # reference: pair p = (2p, 2p+1) as a complex number, frequency j = p // 2 on axis p % 2
    want = np.empty_like(x)
    for p in range(h // 2):
        j, axis = divmod(p, 2)
        theta = pos[:, :, None, axis] * np.exp(logf[None, None, :, j, axis])  # (B, L, N)
        z = (x[..., 2 * p] + 1j * x[..., 2 * p + 1]) * np.exp(1j * theta)
        want[..., 2 * p], want[..., 2 * p + 1] = z.real, z.imag
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_rotation_preserves_norm_and_leaves_origin_unrotated():
    rope = AxialRoPE(4, 32)
    x = jnp.asarray(_rand((2, 7, 4, 32), 3))
    pos = jnp.asarray(_rand((2, 7, 2), 4)) * 3
    y = rope(x, pos)
    np.testing.assert_allclose(jnp.linalg.norm(y, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5)
    assert not np.allclose(y, x)
    np.testing.assert_array_equal(rope(x, jnp.zeros((2, 7, 2))), x)  # context tokens at (0, 0)


def test_scores_depend_only_on_relative_position():
    rope = AxialRoPE(2, 16)
    q, k = jnp.asarray(_rand((1, 1, 2, 16), 5)), jnp.asarray(_rand((1, 1, 2, 16), 6))
    p1, p2, shift = jnp.array([[[0.3, -0.2]]]), jnp.array([[[-0.5, 0.7]]]), jnp.array([[[0.11, 0.42]]])
    s = jnp.sum(rope(q, p1) * rope(k, p2), -1)
    s_shifted = jnp.sum(rope(q, p1 + shift) * rope(k, p2 + shift), -1)
    np.testing.assert_allclose(s, s_shifted, rtol=1e-4, atol=1e-5)


def test_cropped_positions_are_the_crop_of_the_full_grid():
    full = axial_positions(6, 8).reshape(6, 8, 2)
    np.testing.assert_array_equal(cropped_positions(6, 8, 1, 2, 4, 5).reshape(4, 5, 2), full[1:5, 2:7])
    with pytest.raises(ValueError, match="does not fit"):
        cropped_positions(6, 8, 3, 0, 4, 4)


def _plain_rotate(x, pos, logf):
    """Independent formulation, differentiated by JAX: angles per (B, L, N, pair), rotate-by-swap."""
    b, l = x.shape[:2]
    n, h = x.shape[-2:]
    theta = jnp.broadcast_to(pos, (b, l, 2))[:, :, None, None, :] * jnp.exp(logf)  # (B, L, N, J, 2)
    theta = theta.reshape(b, l, n, h // 2)
    theta = theta.reshape((b, l) + (1,) * (x.ndim - 4) + (n, h // 2))
    cos, sin = jnp.repeat(jnp.cos(theta), 2, -1), jnp.repeat(jnp.sin(theta), 2, -1)
    swapped = jnp.stack([-x[..., 1::2], x[..., 0::2]], -1).reshape(x.shape)
    return x * cos + swapped * sin


@pytest.mark.parametrize("shape, pos_batch", [((3, 6, 4, 16), 3), ((3, 6, 4, 16), 1), ((3, 6, 2, 4, 16), 1)])
def test_handwritten_backward_matches_autodiff_of_an_independent_formulation(shape, pos_batch):
    """rotate's custom VJP: gradients for x and the learnable log-frequencies, with positions per
    sample or shared by the batch (1, L, 2), and with q and k stacked on an axis between L and N."""
    n, h = shape[-2:]
    x = jnp.asarray(_rand(shape, 7))
    pos = jnp.asarray(_rand((pos_batch, shape[1], 2), 8))
    logf = jnp.asarray(_rand((n, h // 4, 2), 9) * 0.3)
    w = jnp.asarray(_rand(shape, 10))
    got = jax.grad(lambda x, f: jnp.sum(rotate(x, pos, f) * w), argnums=(0, 1))(x, logf)
    want = jax.grad(lambda x, f: jnp.sum(_plain_rotate(x, pos, f) * w), argnums=(0, 1))(x, logf)
    np.testing.assert_allclose(rotate(x, pos, logf), _plain_rotate(x, pos, logf), atol=1e-5)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-4)
    assert float(jnp.abs(got[1]).max()) > 1e-2  # the frequencies do get a gradient


def test_handwritten_backward_keeps_bfloat16_inputs_bfloat16():
    x = jnp.asarray(_rand((2, 5, 2, 8), 11), jnp.bfloat16)
    pos, logf = jnp.asarray(_rand((1, 5, 2), 12)), jnp.asarray(init_log_freqs(2, 8))
    y, vjp = jax.vjp(lambda x, f: rotate(x, pos, f), x, logf)
    dx, dlogf = vjp(jnp.ones_like(y))
    assert (y.dtype, dx.dtype, dlogf.dtype) == (jnp.bfloat16, jnp.bfloat16, jnp.float32)
    want = jax.grad(lambda x, f: jnp.sum(_plain_rotate(x.astype(jnp.float32), pos, f)), argnums=(0, 1))(x, logf)
    np.testing.assert_allclose(np.asarray(dx, np.float32), want[0], atol=2e-2)
    np.testing.assert_allclose(dlogf, want[1], rtol=5e-2, atol=5e-2)
