"""The embedded shapes dataset and its analytic scorer."""

import numpy as np
import pytest

from ouro.data.shapes import COLOUR_NAMES, RELATIONS, SHAPES, SIZE_NAMES, make_shapes, parse_caption
from ouro.eval.shapes_score import CHANCE, score_shapes


@pytest.fixture(scope="module")
def ds():
    return make_shapes(600, seed=3)


def test_deterministic_per_seed(ds):
    again = make_shapes(600, seed=3)
    np.testing.assert_array_equal(again.images, ds.images)
    assert again.captions == ds.captions
    other = make_shapes(600, seed=4)
    assert other.captions != ds.captions
    assert ds.images.shape == (600, 32, 32, 3) and ds.images.min() == -1 and ds.images.max() == 1


def test_captions_name_the_attributes(ds):
    a = {k: int(v[0]) for k, v in ds.attrs.items()}
    assert ds.captions[0] == (f"a {SIZE_NAMES[a['size_a']]} {COLOUR_NAMES[a['colour_a']]} {SHAPES[a['shape_a']]} "
                              f"{RELATIONS[a['relation']]} a {SIZE_NAMES[a['size_b']]} "
                              f"{COLOUR_NAMES[a['colour_b']]} {SHAPES[a['shape_b']]}")
    assert (ds.attrs["colour_a"] != ds.attrs["colour_b"]).all()
    for k, n in (("colour_a", 6), ("shape_b", 3), ("size_a", 2), ("relation", 4)):  # all values drawn
        assert set(ds.attrs[k].tolist()) == set(range(n))
    assert len(set(ds.captions)) > 500  # compositional: few repeats


def test_parse_caption_inverts_caption(ds):
    for i, text in enumerate(ds.captions):
        assert parse_caption(text) == {k: int(v[i]) for k, v in ds.attrs.items()}
    assert parse_caption("  A large RED circle   above a small blue square ") is not None  # as a user types it
    for other in ("a handwritten digit seven", "a large red circle", "a large red circle above a small blue cube"):
        assert parse_caption(other) is None


@pytest.mark.parametrize("size", [32, 64])
def test_scorer_reads_real_images(ds, size):
    d = ds if size == 32 else make_shapes(200, seed=5, image_size=size)
    scores = score_shapes(d.images, d.attrs)
    for k in ("colour", "shape", "size", "position", "all"):
        assert scores[k] >= 0.99, (k, scores)


def test_scorer_is_at_most_chance_on_noise_and_wrong_captions(ds):
    rng = np.random.default_rng(0)
    noise = rng.uniform(-1, 1, ds.images.shape).astype(np.float32)
    scores = score_shapes(noise, ds.attrs)
    for k, chance in CHANCE.items():
        assert scores[k] <= chance, (k, scores)
    perm = score_shapes(ds.images, {k: np.roll(v, 1) for k, v in ds.attrs.items()})
    assert perm["all"] < 0.05 and perm["position"] < 0.5


def test_scorer_detects_each_wrong_attribute(ds):
    flipped = score_shapes(ds.images[:, ::-1], ds.attrs)  # upside down: above <-> below
    vertical = (ds.attrs["relation"] < 2).mean()
    assert abs(flipped["position"] - (1 - vertical)) < 0.02 and flipped["colour"] == 1.0
    swapped = score_shapes(ds.images[..., ::-1], ds.attrs)  # RGB -> BGR: red <-> blue
    assert swapped["colour"] < 0.8
    for attr, n in (("shape_a", 3), ("size_b", 2)):  # one object's attribute misnamed
        wrong = {**ds.attrs, attr: (ds.attrs[attr] + 1) % n}
        assert abs(score_shapes(ds.images, wrong)[attr[:-2]] - 0.5) < 0.01
