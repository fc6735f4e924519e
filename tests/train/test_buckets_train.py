"""Multi-aspect training end to end through the commands a user types: images of three aspects
-> `ouro data from-images --buckets auto` -> `ouro train data.path=DS` with the XUT of the
own-data preset (shrunk) -> one compile per bucket (a recompile per step is the bug this
catches), single-bucket steps in proportion, preview grids at the most common bucket, a
resume that continues the bucket sequence, sampling at another bucket, and `ouro plan`
compiling the largest bucket."""

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from ouro.cli import main as ouro
from ouro.data.buckets import read_buckets

TINY = ["model.dim=32", "model.mlp_dim=64", "model.head_dim=16", "model.depth=1", "model.pre_blocks=0",
        "model.post_blocks=0", "sample.steps=2", "sample.per_class=1", "sample.prompts=2", "log_every=3",
        "ckpt_every=3", "progress=false", "batch_size=4", "data.holdout=2", "warmup_steps=0", "sample_every=3"]


def fake_embed(texts):
    return np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], np.uint8) / 255.0
                     for t in texts]).astype(np.float32)


@pytest.fixture
def bucketed(tmp_path, monkeypatch):
    """14 images of aspect 5:3 (-> the 20x12 bucket at --size 16, W x H), 8 square, 8 of 3:5."""
    monkeypatch.setattr("ouro.data.convert.images.default_embed", fake_embed)
    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i, ((w, h), n) in enumerate([((40, 24), 14), ((32, 32), 8), ((24, 40), 8)]):
        for j in range(n):
            Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(d / f"{i}_{j:02d}.png")
            (d / f"{i}_{j:02d}.txt").write_text(f"picture {i} {j}")
    assert ouro(["data", "from-images", str(d), "--out", str(tmp_path / "ds"), "--size", "16", "--buckets",
                 "auto", "--no-progress"]) == 0
    return tmp_path / "ds"


def test_xut_trains_on_aspect_buckets_with_one_compile_per_bucket(bucketed, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    # 20x12: 14 - 2 held out = 12 rows -> 3 steps an epoch; 16x16 and 12x20: 2 each -> 7 steps
    assert ouro(["train", f"data.path={bucketed}", f"out_dir={run}", "steps=6", *TINY]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and np.isfinite(float(metrics["final_loss"]))
    assert set(metrics["steps_per_size"]) <= {"20x12", "16x16", "12x20"}
    assert sum(metrics["steps_per_size"].values()) == 6
    # one trace (= one XLA compile) of the train step per bucket drawn, never one per step
    assert metrics["compiles"] == {size: 1 for size in metrics["steps_per_size"]}
    saved = json.loads((run / "config.json").read_text())
    _flops_counted_per_bucket(run, metrics, saved, bucketed)
    data = saved["train"]["data"]
    assert (data["buckets"], data["image_size"]) == ("20x12,16x16,12x20", 16)
    assert saved["train"]["model"]["patch_size"] == 2  # own-data: 16 px -> patch 2 divides every bucket
    assert saved["dataset"]["buckets"] == [[12, 20, 14], [16, 16, 8], [20, 12, 8]]
    from ouro.report.runs import RunDir

    assert RunDir("run", run).dataset == "ds 16×16×3 in 3 aspect buckets"  # how the report groups it
    # previews: held-out captions of the most common bucket, drawn at its 20x12 size
    prompts = json.loads((run / "train_samples" / "prompts.json").read_text())
    assert prompts["prompts"] == ["picture 0 12", "picture 0 13"] and prompts["held_out"]
    with Image.open(run / "samples.png") as im:
        assert im.width > 20

    # the resumed run continues the same bucket sequence: 6 + 4 steps = one uninterrupted 10
    assert ouro(["train", f"data.path={bucketed}", f"out_dir={run}", "steps=10", *TINY]) == 0
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["resumed_from"] == 6 and sum(resumed["steps_per_size"].values()) == 4
    assert resumed["compiles"] == {size: 1 for size in resumed["steps_per_size"]}
    from ouro.data import sharded_loader

    order = sharded_loader(str(bucketed), 4, seed=saved["train"]["seed"], holdout=2).order
    labels = [b.label for b in read_buckets(str(bucketed)).buckets]
    assert resumed["steps_per_size"] == dict(Counter(labels[order.bucket_step(s)[0]] for s in range(6, 10)))

    # sampling at any bucket (data space = pixels here), e.g. the tall one, from the stored
    # conditioning of a training row (the fake 16-wide text embeddings cannot encode a prompt)
    from ouro.data.source import ShardedSource
    from ouro.train.sample import load_for_sampling, sample_images

    s = load_for_sampling(run)
    ctx = ShardedSource(str(bucketed / "b12x20"), ("embeddings",)).read(np.arange(2))["embeddings"][:, None]
    tall = sample_images(s, ctx, steps=2, size=(20, 12))
    assert tall.shape == (2, 20, 12, 3) and np.isfinite(tall).all()

    # the command a user types: `ouro sample --prompt ... --size WxH` at the tall bucket, the
    # prompt embedded as the dataset's captions were (the converter's fake embedding here)
    monkeypatch.setattr("ouro.text.embed", lambda texts, progress=False: fake_embed(texts))
    out = tmp_path / "tall"
    assert ouro(["sample", "--ckpt", str(run), "--prompt", "picture 2 01", "--per-class", "1", "--steps", "2",
                 "--size", "12x20", "--seed", "3", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    png = out / manifest["images"][0]["file"]
    with Image.open(png) as im:
        assert im.size == (12, 20)  # W x H: the 12x20 bucket
        cli = np.asarray(im)
    want = sample_images(s, fake_embed(["picture 2 01"])[:, None], steps=2, size=(20, 12), seed=3)
    assert np.abs(cli.astype(int) - np.round((want[0] + 1) * 127.5).clip(0, 255)).max() <= 1  # same draw
    assert ouro(["sample", "--ckpt", str(run), "--prompt", "x", "--size", "13x20", "--out", str(out)]) == 2


def test_plan_compiles_the_largest_bucket(bucketed, tmp_path):
    from ouro.plan.compile import largest_size, main

    from ouro.train.config import DataConfig

    assert largest_size(DataConfig(buckets="20x12,16x16,12x20")) == (16, 16)
    assert largest_size(DataConfig(buckets="40x24,32x32,24x40")) == (32, 32)
    assert largest_size(DataConfig(buckets="8x8,12x6")) == (6, 12)  # (H, W)
    out = tmp_path / "plan.json"
    assert main(["--preset", "own-data", "--topology", "cpu:1", "--out", str(out), f"data.path={bucketed}",
                 "batch_size=4", *TINY[:5]]) == 0
    row = json.loads(out.read_text())
    assert row["size"] == "16x16" and row["fits"]


def _flops_counted_per_bucket(run, metrics, saved, bucketed):
    """FLOPs and MFU of a bucketed run: each step at its bucket's size, not the square size."""
    from ouro.data import sharded_loader
    from ouro.model.registry import flops_per_image
    from ouro.train.config import from_dict
    from ouro.train.metrics import read_csv

    cfg = from_dict(saved["train"])
    per_size = {f"{w}x{h}": 3.0 * flops_per_image(cfg.model, h, w, ctx_len=1, tread_rate=cfg.tread_rate)
                for h, w in [(12, 20), (16, 16), (20, 12)]}
    assert per_size["20x12"] == per_size["12x20"] < per_size["16x16"]  # 60 vs 64 image tokens
    assert metrics["train_flops_per_size"] == {k: per_size[k] for k in metrics["steps_per_size"]}
    steps = metrics["steps_per_size"]
    assert metrics["train_flops_per_image"] == pytest.approx(
        sum(n * per_size[k] for k, n in steps.items()) / sum(steps.values()))
    # every logged window: model FLOP/s / images/s = the mean cost of that window's steps
    order = sharded_loader(str(bucketed), 4, seed=saved["train"]["seed"], holdout=2).order
    labels = [b.label for b in read_buckets(str(bucketed)).buckets]
    rows = read_csv(run / "loss.csv")
    assert [int(r["global_step"]) for r in rows] == [3, 6]
    for r in rows:
        g = int(r["global_step"])
        want = np.mean([per_size[labels[order.bucket_step(s)[0]]] for s in range(g - 3, g)])
        assert float(r["model_flops_per_s"]) / float(r["images_per_s"]) == pytest.approx(want, rel=2e-3)
        assert float(r["mfu"]) == pytest.approx(float(r["model_flops_per_s"]) / metrics["peak_flops_per_s"], rel=2e-3)
