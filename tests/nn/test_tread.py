"""TREAD routing: kept counts, order, context tokens, drop/merge round trip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ouro.nn import tread


def test_route_keeps_int_L_times_one_minus_rate_sorted_unique_per_sample():
    r = tread.route(jax.random.key(0), 6, 50, 0.3)
    idx = np.asarray(r.keep_idx_bk)
    assert idx.shape == (6, int(50 * 0.7))
    assert np.all(np.diff(idx, axis=1) > 0)  # ascending => unique, order preserved
    assert idx.min() >= 0 and idx.max() < 50
    assert len({tuple(row) for row in idx}) > 1  # per-sample subsets


def test_keep_count_validates_rate():
    assert tread.keep_count(64, 0.5) == 32
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="tread_rate"):
            tread.keep_count(64, bad)


def test_drop_keeps_all_context_tokens_and_merge_restores_bypassed():
    b, l, t, d = 3, 10, 2, 4
    x = jax.random.normal(jax.random.key(1), (b, l + t, d))
    r = tread.route(jax.random.key(2), b, l, 0.5)
    kept = tread.drop(x, r)
    assert kept.shape == (b, 5 + t, d)
    np.testing.assert_array_equal(kept[:, -t:], x[:, -t:])  # context never dropped
    for i in range(b):
        np.testing.assert_array_equal(kept[i, :5], x[i, np.asarray(r.keep_idx_bk[i])])
    np.testing.assert_array_equal(tread.merge(x, kept, r), x)  # identity core -> identity

    core = kept + 100.0  # a "core" that changes every token it sees
    out = np.asarray(tread.merge(x, core, r))
    for i in range(b):
        keep = set(np.asarray(r.keep_idx_bk[i]).tolist())
        for j in range(l):
            want = x[i, j] + 100.0 if j in keep else x[i, j]
            np.testing.assert_allclose(out[i, j], want)
    np.testing.assert_allclose(out[:, l:], x[:, l:] + 100.0)  # context comes from the core


def test_drop_gathers_positions_per_sample():
    b, l = 2, 6
    pos = jnp.broadcast_to(jnp.arange(l + 1, dtype=jnp.float32)[:, None] * jnp.ones(2), (b, l + 1, 2))
    r = tread.route(jax.random.key(3), b, l, 0.5)
    got = tread.drop(pos, r)
    np.testing.assert_array_equal(got[:, :3, 0], r.keep_idx_bk.astype(jnp.float32))
    np.testing.assert_array_equal(got[:, 3, 0], [l, l])
