"""`ouro import-hdm` and `ouro export --to hdm` end to end (the commands a user types):
import -> export is bit-identical (float32 and float16 files), the imported run samples and
resumes training, a config that does not match the file fails with one line naming the
parameter, and HDM's key prefixes are accepted."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safetensors.numpy import load_file, save_file  # noqa: E402

from ouro import cli  # noqa: E402

# digits-smoke's model (ouro/train/config.py): the shape the imported HDM file must have
SMOKE = dict(in_channels=1, patch_size=4, dim=32, mlp_dim=64, head_dim=16, depth=1, enc_blocks=1, dec_blocks=1,
             pre_blocks=0, post_blocks=0, ctx_dim=640)


def hdm_file(path, dtype=np.float32, prefix=""):
    """A random HDM state dict of digits-smoke's shape, written as HDM's tools would."""
    from ouro.torch.xudit import XUDiTTransformer2DModel

    torch.manual_seed(0)
    sd = {k: v.numpy() for k, v in XUDiTTransformer2DModel(**SMOKE).state_dict().items()}
    rng = np.random.default_rng(0)
    sd = {prefix + k: (v + 0.01 * rng.standard_normal(v.shape)).astype(dtype) if k != "time_emb.freqs" else v.astype(dtype)
          for k, v in sd.items()}
    save_file(sd, str(path))
    return sd


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    d = tmp_path_factory.mktemp("hdm")
    sd = hdm_file(d / "hdm.safetensors")
    run = d / "run"
    # the run's training config is fixed at import (a run's config is its identity): resuming
    # below changes only keys that may change on resume (steps, cadences, eval_samples)
    assert cli.main(["import-hdm", str(d / "hdm.safetensors"), "--preset", "digits-smoke", "data.context=random",
                     "warmup_steps=1", "--out", str(run)]) == 0
    return d, sd, run


def test_import_export_round_trip_is_bit_identical(imported):
    d, sd, run = imported
    assert cli.main(["export", str(run), "--to", "hdm", str(d / "back.safetensors")]) == 0
    back = load_file(str(d / "back.safetensors"))
    assert sorted(back) == sorted(sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype and back[k].tobytes() == sd[k].tobytes(), k


def test_float16_and_prefixed_files(tmp_path):
    """HDM's released files are float16 with a training checkpoint's key prefix: the weight map
    (the same functions the commands run) strips the prefix and round-trips them exactly."""
    from flax import nnx

    from ouro.model import XUDiT, preset
    from ouro.torch import hdm_weights

    sd = hdm_file(tmp_path / "half.safetensors", np.float16, prefix="unet.model.")
    cfg = preset("xut-tiny", **SMOKE)
    abstract = nnx.to_pure_dict(nnx.state(nnx.eval_shape(lambda: XUDiT(cfg, rngs=nnx.Rngs(0))), nnx.Param))
    template = {k: np.zeros(v.shape, np.float32) for k, v in hdm_weights.flat(abstract).items()}
    params = hdm_weights.from_hdm(load_file(str(tmp_path / "half.safetensors")), cfg, template)
    back = hdm_weights.to_hdm(params, cfg, dtype=np.float16)
    for k, v in sd.items():
        assert back[k.removeprefix("unet.model.")].tobytes() == v.tobytes(), k


def test_imported_run_samples_and_resumes(imported, capsys):
    d, _, run = imported
    assert cli.main(["sample", "--ckpt", str(run), "--class", "3", "--per-class", "2", "--steps", "2",
                     "--out", str(d / "grid.png")]) == 0
    assert (d / "grid.png").is_file()
    assert cli.main(["train", "--preset", "digits-smoke", "data.context=random", f"out_dir={run}", "steps=2", "warmup_steps=1",
                     "log_every=1", "ckpt_every=2", "eval_samples=false"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("\n{") + 1:])  # the summary `ouro train` prints
    assert summary["resumed_from"] == 0 and summary["finished"]


def test_mismatched_config_is_one_clear_line(tmp_path, capsys):
    hdm_file(tmp_path / "hdm.safetensors")
    rc = cli.main(["import-hdm", str(tmp_path / "hdm.safetensors"), "--preset", "digits-smoke", "data.context=random",
                   "model.mlp_dim=48", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "ouro import-hdm: error:" in err[0] and "mlp.w12.weight" in err[0] and "(128, 32)" in err[0]
    save_file({"foo": np.zeros(3, np.float32)}, str(tmp_path / "other.safetensors"))
    assert cli.main(["import-hdm", str(tmp_path / "other.safetensors"), "--preset", "digits-smoke",
                     "--out", str(tmp_path / "x")]) == 2
    assert "not an HDM XUDiT state dict" in capsys.readouterr().err
