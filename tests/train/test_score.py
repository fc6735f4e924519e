"""A sweep scores what applies to the run: the digits classifier for a digits run by class,
the shapes reader for RGB samples of shapes captions, and otherwise says no scorer applies."""

import numpy as np
import pytest

from ouro.config import override
from ouro.data.shapes import make_shapes
from ouro.train import preset_config
from ouro.train.conditions import request
from ouro.train.sample import Sampler
from ouro.train.score import NONE_APPLIES, scorer_for
from ouro.train.sweep import markdown


@pytest.fixture
def text_run(monkeypatch):
    monkeypatch.setattr("ouro.text.embed", lambda texts, **kw: np.zeros((len(texts), 640), np.float32))
    cfg = override(preset_config("latents-smoke"), ["data.channels=3", "model.in_channels=3"])
    return Sampler(cfg, None, None, None, None, 5)


def test_shapes_captions_are_read_back_from_the_pixels(text_run):
    ds = make_shapes(6, seed=1, image_size=32)
    req = request(text_run, prompts=ds.captions[:3], per_row=2)
    name, score = scorer_for(text_run, req, channels=3)
    assert name == "shapes"
    images = ds.images[[0, 0, 1, 1, 2, 2]]  # the real pictures of each prompt, in request order
    assert score(images)["all"] == 1.0
    assert score(ds.images[[3, 3, 4, 4, 5, 5]])["all"] < 0.5  # other captions' pictures


def test_no_scorer_for_other_prompts_or_channels(text_run):
    ds = make_shapes(2, seed=1, image_size=32)
    assert scorer_for(text_run, request(text_run, prompts=["a cat on a mat"], per_row=1), 3) == ("none", None)
    assert scorer_for(text_run, request(text_run, prompts=ds.captions[:1], per_row=1), 4) == ("none", None)
    rows = [{"steps": 4, "cfg_scale": 3.0, "method": "euler", "seconds": 0.5, "n_samples": 1, "scorer": "none"}]
    table = markdown(rows)
    assert table.splitlines()[:3] == ["| steps | CFG | seconds |", "|---:|---:|---:|", "| 4 | 3 | 0.5 |"]
    assert NONE_APPLIES in table


def test_digits_by_class_get_the_classifier():
    cfg = override(preset_config("digits-smoke"), ["data.context=random"])
    s = Sampler(cfg, None, None, None, np.zeros((10, 640), np.float32), 5)
    assert scorer_for(s, request(s, classes=[1], per_row=1), 1)[0] == "digits"
