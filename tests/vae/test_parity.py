"""ouro's AutoencoderKL against diffusers (fixture from tools/make_vae_fixture.py)."""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ouro.errors import UserError
from ouro.vae import from_diffusers_config, init_model, param_count, vae_preset
from ouro.vae.weights import load_diffusers, load_state_dict, save_diffusers, state_dict

FIX = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def fixture():
    meta = json.loads((FIX / "vae_tiny.json").read_text())
    with np.load(FIX / "vae_tiny.npz") as z:
        arrays = {k: z[k] for k in z.files}
    weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w/")}
    return meta, weights, arrays


@pytest.fixture(scope="module")
def model(fixture):
    meta, weights, _ = fixture
    m = init_model(from_diffusers_config(meta["config"]))
    load_state_dict(m, weights, "vae_tiny.npz")
    return m


def nhwc(x):
    return jnp.asarray(x.transpose(0, 2, 3, 1))


def test_encode_matches_diffusers(model, fixture):
    _, _, a = fixture
    mean, logvar = model.encode_moments(nhwc(a["images"]))
    np.testing.assert_allclose(np.asarray(mean), a["mean"].transpose(0, 2, 3, 1), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(logvar), a["logvar"].transpose(0, 2, 3, 1), atol=2e-5, rtol=1e-4)


def test_decode_matches_diffusers(model, fixture):
    _, _, a = fixture
    out = np.asarray(model.decode(nhwc(a["latents"])))
    np.testing.assert_allclose(out, a["decoded"].transpose(0, 2, 3, 1), atol=2e-5, rtol=1e-4)


def test_sdxl_param_count_matches_diffusers(fixture):
    meta, _, _ = fixture
    assert param_count(vae_preset("sdxl")) == meta["sdxl_param_count"] == 83_653_863
    assert param_count(from_diffusers_config(meta["config"])) == meta["tiny_param_count"]


def test_checkpoint_round_trip_and_named_errors(model, fixture, tmp_path):
    meta, weights, a = fixture
    save_diffusers(model, tmp_path / "ok")
    again = load_diffusers(tmp_path / "ok")
    x = nhwc(a["images"])
    np.testing.assert_array_equal(np.asarray(again.encode_moments(x)[0]), np.asarray(model.encode_moments(x)[0]))
    assert set(state_dict(model)) == set(weights)  # the names diffusers uses, both ways

    key = "decoder.up_blocks.1.resnets.2.conv1.weight"
    bad = dict(weights)
    bad[key] = bad[key][:, :-1]
    with pytest.raises(UserError, match=f"{key}.*shape"):
        load_state_dict(model, bad, "bad.safetensors")
    bad = {k: v for k, v in weights.items() if k != key}
    with pytest.raises(UserError, match=f"missing key '{key}'"):
        load_state_dict(model, bad, "bad.safetensors")
    bad = {**weights, "encoder.extra.weight": np.zeros(3, np.float32)}
    with pytest.raises(UserError, match="unexpected key 'encoder.extra.weight'"):
        load_state_dict(model, bad, "bad.safetensors")
    cfg = json.loads((tmp_path / "ok" / "config.json").read_text())
    (tmp_path / "ok" / "config.json").write_text(json.dumps({**cfg, "latent_channels": 8}))
    with pytest.raises(UserError, match=r"key 'decoder.conv_in.weight' has shape \(16, 4, 3, 3\), expected \(16, 8, 3, 3\)"):
        load_diffusers(tmp_path / "ok")
    with pytest.raises(UserError, match="config.json: not found"):
        load_diffusers(tmp_path / "nothing")


def test_legacy_attention_names_load(model, fixture):
    _, weights, _ = fixture
    legacy = {}
    for k, v in weights.items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            if ".attentions.0." in k and f".{new}." in k:
                k, v = k.replace(f".{new}.", f".{old}."), (v[:, :, None, None] if v.ndim == 2 else v)
        legacy[k] = v
    m = init_model(model.cfg, 1)
    load_state_dict(m, legacy, "legacy")
    jax.tree.map(np.testing.assert_array_equal, nnx.state(m, nnx.Param), nnx.state(model, nnx.Param))


def test_codec_scales_chunks_and_runs_in_bf16(model, fixture):
    _, _, a = fixture
    from ouro.vae import Autoencoder

    x = a["images"].transpose(0, 2, 3, 1)
    x3 = np.concatenate([x, x[:1]])  # 3 images in chunks of 2: the last chunk is padded
    z = Autoencoder.from_model(model, chunk=2).encode(x3)
    np.testing.assert_allclose(z[:2], a["mean"].transpose(0, 2, 3, 1) * 0.13025, atol=1e-6)
    np.testing.assert_array_equal(z[2], z[0])
    shifted = Autoencoder.from_model(model, chunk=2)
    shifted.cfg = dataclasses.replace(model.cfg, shift_factor=0.5)
    np.testing.assert_allclose(shifted.encode(x), (a["mean"].transpose(0, 2, 3, 1) - 0.5) * 0.13025, atol=1e-6)
    z16 = Autoencoder.from_model(model, chunk=2, dtype="bfloat16").encode(x)
    assert np.abs(z16 - z[:2]).max() < 0.05 * np.abs(z).max()  # measured 2.3%
