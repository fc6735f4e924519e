"""Packing texts into rows: every text once, segments kept apart, same result as alone."""

from functools import partial

import jax
import numpy as np
from flax import nnx

from ouro.text.config import GemmaConfig
from ouro.text.encoder import _pooled, model_from_params
from ouro.text.packing import ROW_LEN, pack

TINY = GemmaConfig(vocab_size=60, dim=32, depth=6, num_heads=4, num_kv_heads=1, head_dim=16, mlp_dim=48,
                   sliding_window=5, global_every=3)


def random_texts(seed, n, max_len):
    rng = np.random.default_rng(seed)
    return [[2] + rng.integers(3, 60, rng.integers(1, max_len)).tolist() for _ in range(n)]


def test_pack_covers_every_text_once_with_contiguous_segments():
    ids = random_texts(0, 300, 40) + [[2] + [5] * 200, [2] + [7] * 300]  # two long texts
    seen = []
    for b in pack(ids, rows_per_batch=4, include_bos=False):
        assert b.tokens.shape == b.mask.shape == b.segments.shape == b.pool.shape
        if b.max_segments > 1:
            assert b.tokens.shape == (4, ROW_LEN)
        for i, row, seg in b.slots:
            where = np.flatnonzero(b.segments[row] == seg + 1)
            assert len(where) == len(ids[i]) and np.all(np.diff(where) == 1)  # contiguous
            np.testing.assert_array_equal(b.tokens[row, where], ids[i])
            assert not b.pool[row, where[0]] and b.pool[row, where[1:]].all()  # BOS excluded
            seen.append(i)
        assert not (b.mask & (b.segments == 0)).any()
    assert sorted(seen) == list(range(len(ids)))
    rows = sum(1 for b in pack(ids[:300], rows_per_batch=1, include_bos=True))
    assert rows <= int(np.ceil(sum(map(len, ids[:300])) / ROW_LEN)) + 2  # first-fit wastes little
    few = list(pack(ids[:5], rows_per_batch=8, include_bos=True))  # 5 short texts fit one row
    assert len(few) == 1 and few[0].tokens.shape == (1, ROW_LEN)


def _tiny_model_state(seed=0):
    rng = np.random.default_rng(seed)
    from ouro.text.weights import expected_shapes

    params = {k: (rng.standard_normal(s) * (0.3 if k.endswith("scale") else 0.2)).astype(np.float32)
              for k, s in expected_shapes(TINY).items()}
    graphdef, state = nnx.split(model_from_params(params, TINY))
    return jax.jit(partial(_pooled, graphdef), static_argnames=("max_segments",)), state


def test_packed_equals_alone_on_a_tiny_model():
    fn, state = _tiny_model_state()
    ids = random_texts(1, 40, 30) + [[2] + list(range(3, 59)) * 3]  # one long text (> ROW_LEN)
    for include_bos in (False, True):
        packed = {}
        for b in pack(ids, rows_per_batch=2, include_bos=include_bos):
            out = np.asarray(fn(state, b.tokens, b.mask, b.segments, b.pool, max_segments=b.max_segments))
            packed.update({i: out[row, seg] for i, row, seg in b.slots})
        for i in (0, 7, 19, 39, 40):
            alone = next(pack([ids[i]], rows_per_batch=1, include_bos=include_bos))
            ref = np.asarray(fn(state, alone.tokens, alone.mask, alone.segments, alone.pool, max_segments=alone.max_segments))[0, 0]
            np.testing.assert_allclose(packed[i], ref, atol=2e-5)
