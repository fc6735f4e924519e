"""What a run is asked to draw, for every model family and data kind: the condition takes
the form the model declares (pooled text, per-token text, class ids, a digits caption table),
and a request the run cannot serve is a one-line error. No network is built here: the text
encoder is replaced by a recorder, so this runs in milliseconds."""

import numpy as np
import pytest

from ouro.config import override
from ouro.errors import UserError
from ouro.train import preset_config
from ouro.train.conditions import request
from ouro.train.sample import Sampler, decode
from ouro.train.sample_files import slug

TABLE = np.arange(10 * 640, dtype=np.float32).reshape(10, 640)


def _sampler(preset, extra=(), table=TABLE, text_tokens=None):
    cfg = override(preset_config(preset), list(extra))
    return Sampler(cfg, None, None, None, table if cfg.data.kind == "digits" else None, 7, text_tokens)


@pytest.fixture
def fake_text(monkeypatch):
    """Pooled prompts -> rows [i, i, ...]; per-token prompts -> (P, 3, 640) with P masks."""
    calls = []

    def embed(texts, **kw):
        calls.append(list(texts))
        return np.repeat(np.arange(len(texts), dtype=np.float32)[:, None], 640, 1)

    def encode_prompts(s, prompts):
        calls.append(list(prompts))
        mask = np.array([[True] * (i + 1) + [False] * (2 - i) for i in range(len(prompts))])
        return np.ones((len(prompts), 3, 640), np.float32) * np.arange(len(prompts))[:, None, None], mask

    monkeypatch.setattr("ouro.text.embed", embed)
    monkeypatch.setattr("ouro.train.sample.encode_prompts", encode_prompts)
    return calls


@pytest.mark.parametrize("preset", ["digits-smoke", "digits-smoke-dit", "digits-smoke-mmdit", "digits-smoke-icmmdit"])
def test_digits_classes_index_the_caption_table_for_every_family(preset):
    req = request(_sampler(preset), classes=[3, 7], per_row=2)
    assert req.kind == "class" and req.names == ("3", "7") and list(req.rows) == [0, 0, 1, 1]
    np.testing.assert_array_equal(req.ctx[:, 0], TABLE[[3, 3, 7, 7]])  # (N, 1, 640)
    assert req.ctx.shape == (4, 1, 640) and req.ctx_mask is None
    every = request(_sampler(preset), per_row=1)  # no request: every class
    assert every.values == tuple(range(10))


def test_class_labelled_model_takes_ids_not_text(fake_text):
    s = _sampler("digits-smoke-dit", ["model.cond=class", "model.num_classes=10"])
    req = request(s, classes=[1, 9], per_row=3)
    assert req.ctx.dtype == np.int32 and list(req.ctx) == [1, 1, 1, 9, 9, 9]
    with pytest.raises(UserError, match="reads class ids, not text: give classes"):
        request(s, prompts=["a seven"])
    with pytest.raises(UserError, match="class 10: this run has classes 0..9"):
        request(s, classes=[10])
    assert fake_text == []


@pytest.mark.parametrize("preset, extra", [("latents-smoke", []),
                                           ("latents-smoke", ["model=mmdit-tiny", "model.in_channels=4",
                                                              "tread_rate=0"])])
def test_pooled_text_runs_take_prompts_and_ask_for_them(preset, extra, fake_text):
    s = _sampler(preset, extra)
    req = request(s, prompts=["a red circle", "a blue square"], per_row=2)
    assert fake_text == [["a red circle", "a blue square"]]  # each prompt embedded once
    assert req.ctx.shape == (4, 1, 640) and list(req.ctx[:, 0, 0]) == [0, 0, 1, 1]
    assert req.names == ("a red circle", "a blue square")
    assert req.label(3) == {"prompt": "a blue square"}
    with pytest.raises(UserError, match=r"has no class table: give prompts \(ouro sample/sweep --prompt"):
        request(s)
    with pytest.raises(UserError, match="expected non-empty text"):
        request(s, prompts=["ok", "  "])


def test_per_token_text_runs_encode_prompts_as_their_dataset(fake_text):
    s = _sampler("latents-smoke", ["model=mmdit-tiny", "model.text_input=tokens", "model.in_channels=4",
                                   "tread_rate=0"], text_tokens={"max_tokens": 3})
    req = request(s, prompts=["a", "b"], per_row=2)
    assert req.ctx.shape == (4, 3, 640) and req.ctx_mask.shape == (4, 3)
    assert req.ctx_mask.sum(1).tolist() == [1, 1, 2, 2]  # each sample keeps its own prompt's mask


def test_digits_prompts_need_caption_embeddings(fake_text):
    gemma = _sampler("digits-smoke")
    assert request(gemma, prompts=["a handwritten digit seven"], per_row=1).ctx.shape == (1, 1, 640)
    with pytest.raises(UserError, match="data.context=random"):
        request(_sampler("digits-smoke", ["data.context=random"]), prompts=["a handwritten digit seven"])
    with pytest.raises(UserError, match="not both"):
        request(gemma, prompts=["x"], classes=[1])


def test_latent_runs_are_decoded_with_their_autoencoder(monkeypatch):
    seen = {}

    class AE:
        def decode(self, z):
            return np.repeat(z[..., :1], 3, -1) * 0.5  # (N, h, w, 4) -> (N, h, w, 3)

    def load(path):
        seen["path"] = path
        return AE()

    monkeypatch.setattr("ouro.vae.load_autoencoder", load)
    z = np.ones((2, 8, 8, 4), np.float32)
    assert decode(_sampler("digits-smoke"), z) is z  # pixel space: untouched
    with pytest.raises(UserError, match="autoencoder is not recorded"):  # latents, no decoder: refused
        decode(_sampler("latents-smoke"), z)
    out = decode(_sampler("latents-smoke", ["data.autoencoder=/ae"]), z)
    assert out.shape == (2, 8, 8, 3) and seen["path"] == "/ae"


def test_output_names_change_with_everything_that_changes_the_pictures():
    base = {"run": "outputs/a", "checkpoint_step": 400, "ema": True, "method": "euler", "seed": 0,
            "autoguidance": 0.0, "steps": 32, "cfg_scale": 3.0}
    req = {"prompts": ["a red circle"], "per_prompt": 4}
    name = slug(base, req)
    assert name.startswith("step400-ema-euler32-cfg3-seed0-") and len(name.rsplit("-", 1)[1]) == 8
    assert slug({**base, "run": "elsewhere/a"}, req) == name  # a moved run keeps its names
    changed = [slug({**base, k: v}, req) for k, v in [("checkpoint_step", 401), ("ema", False), ("method", "heun"),
                                                       ("seed", 1), ("autoguidance", 0.5), ("steps", 16),
                                                       ("cfg_scale", 5.0)]]
    changed += [slug(base, {"prompts": ["a blue circle"], "per_prompt": 4}),
                slug(base, {"prompts": ["a red circle"], "per_prompt": 8}),
                slug(base, {"classes": [1], "per_prompt": 4})]
    assert len({name, *changed}) == len(changed) + 1
