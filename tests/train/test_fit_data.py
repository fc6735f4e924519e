"""A dataset describes itself and a run believes it: `data.path=DIR` alone selects the
sharded loader and takes shapes, latent space and autoencoder from index.json; contradicting
overrides are one-line errors; older index.json files read with documented defaults; the
own-data preset is laptop-sized; a short run adapts the preset's warm-up."""

import json

import jax
import numpy as np
import pytest

from ouro.cli import main as ouro
from ouro.config import override
from ouro.data import write_shards
from ouro.data.describe import describe
from ouro.errors import UserError
from ouro.train.config import preset_config
from ouro.train.fit_data import fit_to_dataset, own_patch


def dataset(path, *, size=32, channels=3, n=40, **kw):
    rng = np.random.default_rng(0)
    write_shards(path, rng.standard_normal((n, size, size, channels)).astype(np.float16),
                 rng.standard_normal((n, 640)).astype(np.float32), shard_size=16,
                 captions=[f"caption {i}" for i in range(n)], **kw)
    return path


def resolved(capsys, *args):
    capsys.readouterr()
    assert ouro(["train", *args, "--print-config"]) == 0
    return json.loads(capsys.readouterr().out)


def one_line_error(capsys, *args):
    capsys.readouterr()
    assert ouro(["train", *args, "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_data_path_alone_selects_sharded_and_takes_the_index(tmp_path, capsys):
    ds = dataset(tmp_path / "px32", encoder={"kind": "pixels"})
    cfg = resolved(capsys, f"data.path={ds}")
    # on the old code: data.kind stayed "digits" (16 px, 1 channel) and data.path went unused
    assert cfg["data"]["kind"] == "sharded" and cfg["data"]["path"] == str(ds)
    assert (cfg["data"]["image_size"], cfg["data"]["channels"], cfg["data"]["space"]) == (32, 3, "pixels")
    assert cfg["model"]["in_channels"] == 3 and cfg["model"]["ctx_dim"] == 640
    assert cfg["model"]["patch_size"] == 4  # own-data: 8x8 = 64 tokens
    assert (cfg["name"], cfg["out_dir"], cfg["data"]["holdout"]) == ("px32", "outputs/px32", 4)
    # another preset keeps its model but follows the dataset's shapes
    cfg = resolved(capsys, "--preset", "latents-smoke", f"data.path={ds}")
    assert (cfg["data"]["image_size"], cfg["model"]["in_channels"], cfg["model"]["patch_size"]) == (32, 3, 2)


def test_contradicting_overrides_name_key_index_value_and_file(tmp_path, capsys):
    ds = dataset(tmp_path / "px32")
    err = one_line_error(capsys, f"data.path={ds}", "data.channels=1")
    assert "data.channels=1" in err and "says 3" in err and f"{ds}/index.json" in err
    err = one_line_error(capsys, f"data.path={ds}", "data.image_size=64")
    assert "data.image_size=64" in err and "says 32" in err
    err = one_line_error(capsys, f"data.path={ds}", "data.kind=digits")
    assert "data.kind=digits" in err and "data.path" in err
    # a config built in Python keeps its shapes (the loader names the field that disagrees)
    # and gets the descriptive keys
    cfg = fit_to_dataset(override(preset_config("latents-smoke"), [f"data.path={ds}"]))  # 8 px, 4 channels
    assert (cfg.data.image_size, cfg.data.channels, cfg.data.space) == (8, 4, "pixels")


def test_latent_dataset_brings_its_autoencoder(tmp_path, capsys):
    vae = tmp_path / "vae"
    vae.mkdir()
    ds = dataset(tmp_path / "lat", size=8, channels=4, encoder={"kind": "autoencoder", "path": str(vae)})
    cfg = resolved(capsys, f"data.path={ds}")
    assert (cfg["data"]["space"], cfg["data"]["autoencoder"], cfg["model"]["patch_size"]) == ("latents", str(vae), 1)
    err = one_line_error(capsys, f"data.path={ds}", f"data.autoencoder={tmp_path}")
    assert "data.autoencoder=" in err and str(vae) in err


def test_older_index_json_reads_with_documented_defaults(tmp_path):
    for channels, space in ((3, "pixels"), (4, "latents")):
        ds = dataset(tmp_path / f"old{channels}", size=8, channels=channels)
        raw = json.loads((ds / "index.json").read_text())
        for key in ("name", "encoder", "source"):
            raw.pop(key, None)
        (ds / "index.json").write_text(json.dumps(raw))
        info = describe(str(ds))
        assert (info.name, info.space, info.autoencoder, info.captions) == (f"old{channels}", space, "", True)
        assert info.encoder["kind"] == ("pixels" if channels == 3 else "external")


def test_image_folder_as_data_path_suggests_from_images(tmp_path, capsys):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "a.png")
    err = one_line_error(capsys, f"data.path={tmp_path / 'photos'}")
    assert "ouro data from-images" in err and "from-pt" not in err


def test_short_run_adapts_the_preset_warmup(capsys):
    cfg = resolved(capsys, "steps=10")  # failed before: warmup_steps 50 > steps 10
    assert cfg["warmup_steps"] == 1
    err = one_line_error(capsys, "steps=10", "warmup_steps=20")  # the user's own warm-up is checked
    assert "warmup_steps" in err


def test_own_data_preset_is_laptop_sized(tmp_path):
    """The default model for own data: a few M parameters, not the 237 M pod preset; builds
    at the dataset's shapes (jax.eval_shape, nothing allocated)."""
    from flax import nnx

    from ouro.model import param_count
    from ouro.train.step import default_model_factory

    ds = dataset(tmp_path / "px32")
    cfg = fit_to_dataset(override(preset_config("own-data"), {"data.path": str(ds)}), {"data.path"},
                         preset="own-data")
    assert param_count(cfg.model) < 3e6 and cfg.batch_size == 36 and cfg.mesh.data == 1
    model = nnx.eval_shape(lambda: default_model_factory(cfg.model, nnx.Rngs(0)))
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), np.float32)
    out = jax.eval_shape(lambda m, x: m(x, np.zeros(2, np.float32), np.zeros((2, 1, 640), np.float32)), model, x)
    assert out.shape == (2, 32, 32, 3)
    assert [own_patch(s) for s in (32, 16, 8, 4, 28, 64)] == [4, 2, 1, 1, 2, 8]


def test_dataset_without_index_in_python_train_is_one_line(tmp_path):
    cfg = override(preset_config("digits-smoke"), {"data.path": str(tmp_path)})
    with pytest.raises(UserError, match="index.json: not found"):
        fit_to_dataset(cfg)
