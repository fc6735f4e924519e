"""The training and sampling knobs end to end with the real XUT at tiny size:

- XUT with per-token text (model.text_input=tokens) and the flow knobs (mode sampling, a
  resolution-dependent shift, min-SNR weighting, TREAD on) trains on a per-token dataset;
  its sampler honours guidance interval / rescale / negative text / image-to-image by their
  definitions through `sample_images` (the jitted path `ouro sample` runs).
- `ouro sample` and `ouro sweep` take the guidance flags on a digits run (PNG metadata
  records them; a bad flag is one line and exit 2); `ouro sample --size WxH` samples any aspect.
"""

import hashlib
import json

import numpy as np
import pytest

from ouro.cli import main as ouro
from ouro.config import override
from ouro.train import preset_config, train
from ouro.train.sample import Guidance, load_for_sampling, run_shift, sample_images

T, E = 4, 640


def hashed_tokens(texts):
    """Stand-in for Gemma's per-token states (no encoder download): one token per word."""
    states, mask = np.zeros((len(texts), T, E), np.float32), np.zeros((len(texts), T), bool)
    for i, text in enumerate(texts):
        for j, w in enumerate(text.split()[:T]):
            seed = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
            states[i, j], mask[i, j] = np.random.default_rng(seed).normal(size=E), True
    return states, mask


def test_xut_per_token_text_with_flow_knobs_trains_and_samples(tmp_path):
    from PIL import Image

    from ouro.data.convert.images import convert_images
    from ouro.data.shapes import make_shapes

    shapes = make_shapes(8, seed=0, image_size=16)
    src = tmp_path / "imgs"
    src.mkdir()
    for i, (im, caption) in enumerate(zip(shapes.images, shapes.captions)):
        Image.fromarray(np.round((im + 1) * 127.5).astype(np.uint8)).save(src / f"{i}.png")
        (src / f"{i}.txt").write_text(caption)
    convert_images(src, str(tmp_path / "ds"), size=8, embed=lambda t: np.ones((len(t), E), np.float32),
                   shard_size=4, progress=False, text_tokens=T, embed_tokens=hashed_tokens)
    knobs = ["model.text_input=tokens", "model.in_channels=3", "data.channels=3", "flow.t_dist=mode",
             "flow.shift_mode=resolution", "flow.shift_tokens=4,64", "flow.loss_weight=min_snr", "steps=3"]
    cfg = override(preset_config("latents-smoke"), [f"data.path={tmp_path / 'ds'}", f"out_dir={tmp_path / 'run'}", *knobs])
    assert cfg.tread_rate > 0  # routed text keys keep their padding
    done = train(cfg)
    assert done["finished"] and np.isfinite(done["final_loss"])
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["flow"]["t_dist"] == "mode" and saved["flow"]["loss_weight"] == "min_snr"

    s = load_for_sampling(tmp_path / "run")
    assert s.cfg.flow.shift_mode == "resolution" and s.cfg.model.text_input == "tokens"
    # 16 image tokens with anchors (4 -> 0.5, 64 -> 1.15): the sampler's shift is exp(0.63)
    assert run_shift(s.cfg, 8, 8) == pytest.approx(np.exp(0.5 + 0.65 * 12 / 60))
    ctx, mask = hashed_tokens(["a red circle", "a blue square above"])
    kw = dict(steps=3, seed=1, ctx_mask=mask)
    plain = sample_images(s, ctx, cfg_scale=1.0, **kw)
    # guidance interval that never opens: the conditional prediction alone
    np.testing.assert_allclose(sample_images(s, ctx, cfg_scale=4.0, guidance=Guidance(interval=(0.0, 0.0)), **kw),
                               plain, rtol=1e-5, atol=1e-5)
    cfg4 = sample_images(s, ctx, cfg_scale=4.0, **kw)
    assert not np.allclose(cfg4, plain, atol=1e-4)
    # a negative prompt that is the empty text is plain CFG; a real one is not
    np.testing.assert_allclose(sample_images(s, ctx, cfg_scale=4.0, neg_ctx=ctx[::-1], neg_mask=np.zeros_like(mask), **kw),
                               cfg4, rtol=1e-5, atol=1e-5)
    assert not np.allclose(sample_images(s, ctx, cfg_scale=4.0, neg_ctx=ctx[::-1], neg_mask=mask[::-1], **kw), cfg4,
                           atol=1e-4)
    # image-to-image at strength 1 is text-to-image from the same noise
    init = np.ones((2, 8, 8, 3), np.float32)
    np.testing.assert_allclose(sample_images(s, ctx, cfg_scale=4.0, init=init, **kw), cfg4, rtol=1e-5, atol=1e-5)


def test_sample_and_sweep_cli_guidance_flags(tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "run"
    assert ouro(["train", "--preset", "digits-smoke", "steps=2", "warmup_steps=1", "eval_samples=false",
                 f"out_dir={run}"]) == 0
    Image.new("L", (16, 16), 200).save(tmp_path / "init.png")
    out = tmp_path / "g.png"
    flags = ["--cfg-interval", "0.2,0.8", "--cfg-rescale", "0.5", "--shift", "3"]
    assert ouro(["sample", "--ckpt", str(run), "--class", "3", "--per-class", "2", "--steps", "2", *flags,
                 "--init", str(tmp_path / "init.png"), "--strength", "0.5", "--out", str(out)]) == 0
    meta = Image.open(tmp_path / "g" / "sample_0000.png").text
    assert meta["cfg_interval"] == "0.2,0.8" and meta["cfg_rescale"] == "0.5" and meta["strength"] == "0.5"
    # any aspect: a 24 x 16 sample of the 16 x 16 run (XUT's RoPE and aspect embedding read the shape)
    assert ouro(["sample", "--ckpt", str(run), "--class", "3", "--per-class", "1", "--steps", "2", "--size", "24x16",
                 "--out", str(tmp_path / "wide.png")]) == 0
    assert Image.open(tmp_path / "wide" / "sample_0000.png").size == (24, 16)  # native resolution
    capsys.readouterr()
    assert ouro(["sample", "--ckpt", str(run), "--size", "18x16"]) == 2
    assert "--size 18x16: both sides must be multiples of 4" in capsys.readouterr().err
    assert ouro(["sweep", "--ckpt", str(run), "--steps", "2", "--cfg", "3", "--per-class", "1", *flags]) == 0
    result = json.loads((run / "sweep.json").read_text())
    assert result["cfg_interval"] == "0.2,0.8" and result["shift"] == "3" and len(result["rows"]) == 1
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        ouro(["sample", "--ckpt", str(run), "--cfg-interval", "0.8,0.2"])
    assert e.value.code == 2 and "need 0 <= LO <= HI <= 1" in capsys.readouterr().err
