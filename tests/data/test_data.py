import numpy as np
import pytest

from ouro.data import EpochIterator, load_digits
from ouro.data.digits import CAPTIONS, upsample


def test_digits_split_is_deterministic_and_scaled():
    a = load_digits("random")
    b = load_digits("random")
    assert a.x_train.shape == (1437, 16, 16, 1) and a.x_test.shape == (360, 16, 16, 1)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert -1.0 <= a.x_train.min() < -0.99 and 0.99 < a.x_train.max() <= 1.0
    assert sorted(np.bincount(a.y_test)) [0] >= 35  # stratified: every class in the test split
    assert a.ctx(a.y_train[:3]).shape == (3, 1, 640)
    np.testing.assert_allclose(np.linalg.norm(a.class_ctx, axis=1), 1.0, rtol=1e-5)
    assert CAPTIONS[7] == "a handwritten digit seven"
    with pytest.raises(ValueError, match="data.context"):
        load_digits("clip")


def test_upsample_keeps_values_at_block_centres():
    img = np.zeros((1, 8, 8))
    img[0, 3, 4] = 16
    up = upsample(img)
    assert up.shape == (1, 16, 16, 1)
    assert up[0, 6:8, 8:10, 0].min() > 0.1 and (up > -1).sum() == 16 and up[0, 0, 0, 0] == -1.0


def _arrays(n=50):
    return {"x": np.arange(n, dtype=np.float32)[:, None], "label": np.arange(n)}


def test_iterator_covers_epoch_and_resumes_exactly():
    it = EpochIterator(_arrays(), 8, seed=3)
    assert it.steps_per_epoch == 6
    first_epoch = np.concatenate([next(it)["label"] for _ in range(6)])
    assert len(set(first_epoch)) == 48  # no repeats within an epoch
    seq = [next(it)["label"] for _ in range(5)]
    # resume from a saved state mid-way
    it2 = EpochIterator(_arrays(), 8, seed=3)
    for _ in range(8):
        next(it2)
    state = it2.state()
    it3 = EpochIterator(_arrays(), 8, seed=3)
    it3.restore(state)
    np.testing.assert_array_equal(next(it3)["label"], seq[2])
    assert state["epoch"] == 1
    with pytest.raises(ValueError, match="seed"):
        EpochIterator(_arrays(), 8, seed=4).restore(state)
    with pytest.raises(ValueError, match="batch_size"):
        EpochIterator(_arrays(), 51)


def test_hosts_split_the_same_global_batch():
    whole = EpochIterator(_arrays(), 8, seed=1)
    hosts = [EpochIterator(_arrays(), 8, seed=1, process_index=p, process_count=2) for p in range(2)]
    for _ in range(7):
        g = next(whole)["label"]
        parts = np.concatenate([next(h)["label"] for h in hosts])
        np.testing.assert_array_equal(parts, g)  # same rows in the same order
