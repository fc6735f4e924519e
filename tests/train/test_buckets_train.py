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


def test_xut_trains_on_aspect_buckets_with_one_compile_per_bucket(bucketed, tmp_path, capsys):
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
