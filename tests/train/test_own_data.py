"""Own data, end to end through the commands a user types: a folder of captioned images ->
`ouro data from-images` -> `ouro train data.path=DS` -> samples.png of its held-out captions
-> `ouro sample --prompt` -> `ouro report` lists the run with its dataset; in pixel space
and in latent space (`--autoencoder DIR`, an AutoencoderKL directory as `ouro vae train`
writes it). The model is shrunk by overrides to keep the test fast; the own-data preset's
own size is checked in test_fit_data.py."""

import json

import numpy as np
from PIL import Image

from ouro.cli import main as ouro
from ouro.data.format import decode_captions, read_index
from ouro.data.shapes import make_shapes
from ouro.data.source import ShardedSource

N = 20  # images; the own-data preset holds out a tenth: rows 18 and 19 are the sample prompts
TINY = ["model.dim=32", "model.mlp_dim=64", "model.head_dim=16", "model.depth=1", "model.pre_blocks=0",
        "model.post_blocks=0", "steps=4", "sample_every=2", "sample.steps=2", "sample.per_class=2",
        "log_every=2", "ckpt_every=4", "progress=false"]


def make_folder(root, size=16):
    """N shapes images with captions in metadata.csv (Hugging Face imagefolder's layout)."""
    shapes = make_shapes(N, seed=0, image_size=size)
    root.mkdir()
    rows = ["file_name,text"]
    for i, (im, caption) in enumerate(zip(shapes.images, shapes.captions)):
        Image.fromarray(np.round((im + 1) * 127.5).astype(np.uint8)).save(root / f"img{i:02d}.png")
        rows.append(f'img{i:02d}.png,"{caption}"')
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return shapes.captions


def tiny_autoencoder(path):
    """The committed tiny AutoencoderKL fixture (widths 8/16/16: 16 px -> 4x4x4) as a
    diffusers directory, i.e. what `ouro vae train` writes."""
    from pathlib import Path

    from ouro.vae.config import from_diffusers_config
    from ouro.vae.model import init_model
    from ouro.vae.weights import load_state_dict, save_diffusers

    fix = Path(__file__).parents[1] / "fixtures"
    model = init_model(from_diffusers_config(json.loads((fix / "vae_tiny.json").read_text())["config"]))
    with np.load(fix / "vae_tiny.npz") as z:
        load_state_dict(model, {k[2:]: z[k] for k in z.files if k.startswith("w/")}, "vae_tiny.npz")
    return save_diffusers(model, path)


def run_own_data(tmp_path, capsys, *, autoencoder=None):
    captions = make_folder(tmp_path / "photos")
    ds = tmp_path / "shapes16"
    convert = ["data", "from-images", str(tmp_path / "photos"), "--out", str(ds), "--size", "16", "--no-progress"]
    assert ouro(convert + (["--autoencoder", str(autoencoder)] if autoencoder else [])) == 0
    index = read_index(str(ds))
    assert index.meta["source"]["converter"] == "from-images"
    # the captions are kept in the shards, in image order
    stored = ShardedSource(str(ds), ("captions",)).read(np.arange(N))["captions"]
    assert decode_captions(stored) == captions

    run = tmp_path / "outputs" / "mine"
    capsys.readouterr()
    assert ouro(["train", f"data.path={ds}", f"out_dir={run}", *TINY]) == 0  # no preset, no shapes
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and np.isfinite(float(metrics["final_loss"]))
    assert metrics["dataset"]["name"] == "shapes16" and "warnings" not in metrics
    saved = json.loads((run / "config.json").read_text())
    assert saved["dataset"]["name"] == "shapes16" and saved["train"]["name"] == "shapes16"  # never "digits"
    # held-out captions, drawn from the EMA weights at steps 2 and 4 (the last is samples.png)
    prompts = json.loads((run / "train_samples" / "prompts.json").read_text())
    assert prompts == {"prompts": captions[N - 2:], "held_out": True, "per_prompt": 2}
    assert (run / "train_samples" / "step_0000002_grid.png").is_file()
    assert (run / "samples.png").read_bytes() == (run / "train_samples" / "step_0000004_grid.png").read_bytes()
    with Image.open(run / "samples.png") as im:
        assert im.mode in ("RGB", "RGBA") and im.width > 50
    from ouro.train.metrics import read_events

    tags = {v.tag for e in read_events(run / "tensorboard") for v in e.summary.value}
    assert "samples" in tags

    assert ouro(["sample", "--ckpt", str(run), "--prompt", captions[0], "--per-class", "1", "--steps", "2",
                 "--out", str(run / "one.png")]) == 0
    with Image.open(run / "one" / "sample_0000.png") as im:
        native = np.asarray(im)
    assert native.shape == (16, 16, 3)  # RGB pixels at native resolution (a latent run's decoded)

    assert ouro(["report", "--outputs", str(tmp_path / "outputs"), "--reports", str(tmp_path / "rep")]) == 0
    table = (tmp_path / "rep" / "Detail.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| `mine`"))
    assert "shapes16" in row
    return ds, run, saved


def test_own_data_pixels(tmp_path, capsys):
    ds, run, saved = run_own_data(tmp_path, capsys)
    data = saved["train"]["data"]
    assert (data["kind"], data["image_size"], data["channels"], data["space"]) == ("sharded", 16, 3, "pixels")
    assert saved["train"]["model"]["in_channels"] == 3 and saved["train"]["model"]["patch_size"] == 2


def test_own_data_latents(tmp_path, capsys):
    ae = tiny_autoencoder(tmp_path / "vae")
    ds, run, saved = run_own_data(tmp_path, capsys, autoencoder=ae)
    enc = read_index(str(ds)).meta["encoder"]
    assert enc["kind"] == "autoencoder" and enc["path"] == str(ae.resolve())
    data = saved["train"]["data"]
    # 16 px through a 4x autoencoder: 4x4x4 latents, decoded by the recorded directory
    assert (data["image_size"], data["channels"], data["space"]) == (4, 4, "latents")
    assert data["autoencoder"] == str(ae.resolve())
    assert saved["train"]["model"]["patch_size"] == 1

    # a latent run whose autoencoder is unknown is refused before sampling, never written raw
    cfg = json.loads((run / "config.json").read_text())
    cfg["train"]["data"]["autoencoder"] = ""
    (run / "config.json").write_text(json.dumps(cfg))
    capsys.readouterr()
    assert ouro(["sample", "--ckpt", str(run), "--prompt", "x", "--per-class", "1", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "latents" in err and "data.autoencoder=DIR" in err

