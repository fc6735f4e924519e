"""Every model family through the one trainer: `ouro train`-style presets train a few steps,
an interrupted run resumes to the uninterrupted run's losses, the checkpoint is rebuilt from
config.json by family (load_for_sampling) and samples with CFG through the family's own
null condition."""

import json

import numpy as np
import pytest

from ouro.config import ConfigError, override, to_dict
from ouro.model import family_of
from ouro.train import from_dict, preset_config, train, validate
from ouro.train.metrics import read_csv
from ouro.train.conditions import request
from ouro.train.sample import draw, load_for_sampling, sample_grid

CASES = {  # training preset + overrides
    "dit": ("digits-smoke-dit", []),
    "dit-class": ("digits-smoke-dit", ["model.cond=class", "model.num_classes=10"]),
    "mmdit": ("digits-smoke-mmdit", []),
    "icmmdit": ("digits-smoke-icmmdit", []),
}


def _cfg(case, out_dir):
    name, extra = CASES[case]
    return override(preset_config(name), [*extra, "data.context=random", "steps=3", "warmup_steps=1",
                                          "log_every=1", "ckpt_every=2", "eval_samples=false",
                                          f"out_dir={out_dir}"])


@pytest.mark.parametrize("case", list(CASES))
def test_family_trains_resumes_exactly_and_samples_with_cfg(case, tmp_path):
    full = train(_cfg(case, tmp_path / "full"))
    part = train(_cfg(case, tmp_path / "resumed"), stop_after=2)
    assert not part["finished"]
    rest = train(_cfg(case, tmp_path / "resumed"))
    assert rest["resumed_from"] == 2 and rest["finished"]
    a, b = read_csv(tmp_path / "full" / "loss.csv"), read_csv(tmp_path / "resumed" / "loss.csv")
    assert [r["global_step"] for r in b] == [1, 2, 3]
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-6)
    assert full["train_flops_per_image"] > 0  # the family's own accounting, never a silent 0

    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert saved["model_family"] == family_of(_cfg(case, "x").model).name
    s = load_for_sampling(tmp_path / "full")
    assert type(s.cfg.model) is type(_cfg(case, "x").model) and s.cfg.model == _cfg(case, "x").model
    images, labels = sample_grid(s, classes=[1, 7], per_class=2, steps=2, cfg_scale=3.0)
    assert images.shape == (4, 16, 16, 1) and np.isfinite(images).all()
    # the path `ouro sample --class` takes (conditions.request -> draw): the same pictures
    again = draw(s, request(s, classes=[1, 7], per_row=2), steps=2, cfg_scale=3.0)
    np.testing.assert_array_equal(again, images)


def test_model_preset_override_and_validation():
    cfg = override(preset_config("digits-smoke"), ["model=dit-debug", "model.in_channels=1", "model.patch_size=4"])
    assert family_of(cfg.model).name == "dit" and cfg.model.dim == 64
    with pytest.raises(ConfigError, match="tread_rate"):
        validate(cfg)  # digits-smoke routes tokens; DiT cannot
    validate(override(cfg, ["tread_rate=0"]))
    with pytest.raises(ConfigError, match="unknown model preset"):
        override(preset_config("digits-smoke"), ["model=dit-huge"])
    for name in ("digits-dit", "digits-mmdit", "digits-icmmdit"):  # config.json round trip by family
        c = preset_config(name)
        back = from_dict(to_dict(c), family=family_of(c.model).name)
        assert back == c and type(back.model) is type(c.model)


def test_each_model_reads_its_declared_batch_field():
    from ouro.model import preset
    from ouro.train.step import condition_of

    batch = {"x": 0, "ctx": "pooled", "label": "ids", "ctx_tokens": "states", "ctx_mask": "mask"}
    assert condition_of(preset("xut-tiny"), batch) == ("pooled", None)
    assert condition_of(preset("dit-debug", cond="class"), batch) == ("ids", None)
    assert condition_of(preset("mmdit-tiny"), batch) == ("pooled", None)
    assert condition_of(preset("mmdit-tiny", text_input="tokens"), batch) == ("states", "mask")
    with pytest.raises(KeyError, match="ctx_tokens"):
        condition_of(preset("mmdit-tiny", text_input="tokens"), {"x": 0, "ctx": 1})
