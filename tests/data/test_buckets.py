"""Aspect buckets: `ouro data from-images --buckets` keeps each image's aspect in the nearest
bucket (pixels and latents), `ouro data check` reads the bucketed layout, and the bucketed
loader yields single-bucket global batches, in proportion to the buckets' sizes, the same for 1
and 2 hosts and after a resume."""

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from ouro.cli import main as ouro
from ouro.data import sharded_loader
from ouro.data.buckets import Bucket, BucketedIndex, auto_sizes, make_buckets, nearest, read_buckets, write_buckets
from ouro.data.format import read_index
from ouro.data.writer import write_shards
from ouro.errors import UserError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def fake_embed(texts):
    """Deterministic stand-in for Gemma: 16 floats from the text's hash."""
    return np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], np.uint8) / 255.0
                     for t in texts]).astype(np.float32)


def test_auto_buckets_share_one_area_budget_and_images_go_to_the_nearest_aspect():
    assert auto_sizes(32, 8) == [(24, 40), (32, 32), (40, 24)]  # (H, W), widest first
    assert auto_sizes(16, 4) == [(12, 20), (16, 16), (20, 12)]
    sdxl = auto_sizes(1024, 64)
    assert (1024, 1024) in sdxl and (832, 1216) in sdxl and (768, 1344) in sdxl
    assert len(sdxl) == 11 and sdxl[0] == (704, 1408) and sdxl[-1] == (1344, 768)  # (H, W), as the README says
    assert all(h * w <= 1024 ** 2 and max(h, w) / min(h, w) <= 2 and h % 64 == w % 64 == 0 for h, w in sdxl)
    buckets = make_buckets("auto", size=32, step=8, max_aspect=2.0, downsample=1)
    assert [nearest(h, w, buckets) for h, w in [(100, 200), (90, 100), (300, 100), (30, 45)]] == [0, 1, 2, 0]
    latent = make_buckets("40x24,32x32", size=32, step=8, max_aspect=2.0, downsample=8)
    assert [b.latents for b in latent] == [(3, 5), (4, 4)] and latent[0].name == "b40x24" and latent[0].label == "5x3"  # W x H
    with pytest.raises(UserError, match=r"--buckets 40x24,3x: '3x' is not WxH"):
        make_buckets("40x24,3x", size=32, step=8, max_aspect=2.0, downsample=1)
    with pytest.raises(UserError, match="not a multiple of the autoencoder's downsampling \\(8\\)"):
        make_buckets("40x20", size=32, step=8, max_aspect=2.0, downsample=8)


def _image(path, w, h, left=0.15):
    """Green with a red band over the left `left` of the width and a blue one on the right."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = GREEN
    a[:, :int(w * left)] = RED
    a[:, w - int(w * left):] = BLUE
    Image.fromarray(a).save(path)


@pytest.fixture
def photos(tmp_path, monkeypatch):
    """Images of three aspects (W x H): wide 40x24 (-> the 20x12 bucket at --size 16), tall 24x40,
    square 30x30, and a 36x24 (3:2, nearest the wide bucket); captions beside them."""
    monkeypatch.setattr("ouro.data.convert.images.default_embed", fake_embed)  # no Gemma in this test
    d = tmp_path / "photos"
    d.mkdir()
    sizes = {"a_wide": (40, 24), "b_tall": (24, 40), "c_square": (30, 30), "d_three_two": (36, 24)}
    for name, (w, h) in sizes.items():
        _image(d / f"{name}.png", w, h)
        (d / f"{name}.txt").write_text(f"a {name} picture")
    return d


def test_from_images_buckets_cli_keeps_each_aspect(photos, tmp_path, capsys):
    out = tmp_path / "ds"
    assert ouro(["data", "from-images", str(photos), "--out", str(out), "--size", "16", "--buckets", "auto",
                 "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "wrote 4 rows in 3 aspect buckets" in said and "20x12 px (2)" in said
    index = read_buckets(str(out))
    assert [(b.pixels, b.rows) for b in index.buckets] == [((12, 20), 2), ((16, 16), 1), ((20, 12), 1)]
    wide = read_index(str(out / "b20x12"))
    assert wide.fields["latents"].shape == (12, 20, 3)
    from ouro.data.source import ShardedSource

    rows = ShardedSource(str(out / "b20x12"), ("latents", "captions")).read(np.arange(2))
    assert [c.decode() for c in rows["captions"]] == ["a a_wide picture", "a d_three_two picture"]
    x = rows["latents"].astype(np.float32)
    # the 40x24 image has exactly the bucket's aspect: nothing cropped, both bands at the edges
    np.testing.assert_allclose(x[0, :, 0], np.broadcast_to(np.array(RED) / 127.5 - 1, (12, 3)), atol=0.05)
    np.testing.assert_allclose(x[0, :, -1], np.broadcast_to(np.array(BLUE) / 127.5 - 1, (12, 3)), atol=0.05)
    # the square bucket would have cropped the bands away: a plain --size 16 conversion shows it
    assert ouro(["data", "from-images", str(photos), "--out", str(tmp_path / "sq"), "--size", "16",
                 "--no-progress"]) == 0
    sq = ShardedSource(str(tmp_path / "sq"), ("latents",)).read(np.arange(1))["latents"].astype(np.float32)
    np.testing.assert_allclose(sq[0, :, 0], np.broadcast_to(np.array(GREEN) / 127.5 - 1, (16, 3)), atol=0.05)
    tall = ShardedSource(str(out / "b12x20"), ("latents",)).read(np.arange(1))["latents"]
    assert tall.shape == (1, 20, 12, 3)

    capsys.readouterr()
    assert ouro(["data", "check", str(out), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 4 and [b["latents"] for b in report["buckets"]] == [[12, 20], [16, 16], [20, 12]]
    from ouro.data.describe import describe

    info = describe(str(out))
    assert (info.image_size, info.bucket_sizes, info.rows) == (16, "20x12,16x16,12x20", 4)
    with pytest.raises(UserError, match="a bucketed dataset \\(3 aspect buckets\\)"):
        read_index(str(out))
    # a bucket that disagrees with the list is named
    top = json.loads((out / "index.json").read_text())
    top["buckets"][1]["rows"] = 5
    (out / "index.json").write_text(json.dumps(top))
    with pytest.raises(UserError, match=r"b16x16/index.json: 1 rows of latents \[16, 16, 3\], but .* 5 rows"):
        read_buckets(str(out))


def test_from_parquet_buckets_cli_matches_from_images(photos, tmp_path, monkeypatch, capsys):
    """The same images as parquet cells (two files) -> the same buckets, rows and pixels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr("ouro.data.convert.parquet.default_embed", fake_embed)
    names = sorted(p.stem for p in photos.glob("*.png"))  # from-images' order
    src = tmp_path / "pq"
    src.mkdir()
    for i, part in enumerate((names[:2], names[2:])):
        pq.write_table(pa.table({"image": [{"bytes": (photos / f"{n}.png").read_bytes(), "path": None} for n in part],
                                 "text": [f"a {n} picture" for n in part]}), src / f"train-{i:05d}.parquet")
    ref, out = tmp_path / "ref", tmp_path / "ds"
    assert ouro(["data", "from-images", str(photos), "--out", str(ref), "--size", "16", "--buckets", "auto",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert ouro(["data", "from-parquet", str(src), "--caption-column", "text", "--out", str(out), "--size", "16",
                 "--buckets", "auto", "--no-progress"]) == 0
    assert "wrote 4 rows in 3 aspect buckets" in capsys.readouterr().out
    from ouro.data.source import ShardedSource

    index = read_buckets(str(out))
    assert [(b.pixels, b.rows) for b in index.buckets] == [(b.pixels, b.rows) for b in read_buckets(str(ref)).buckets]
    for b in index.buckets:
        got, want = (ShardedSource(str(d / b.name), ("latents", "captions", "embeddings")).read(np.arange(b.rows))
                     for d in (out, ref))
        assert got["captions"].tolist() == want["captions"].tolist()
        np.testing.assert_array_equal(got["latents"], want["latents"])
        np.testing.assert_array_equal(got["embeddings"], want["embeddings"])
    assert ouro(["data", "check", str(out), "--no-progress"]) == 0
    assert ouro(["data", "from-parquet", str(src), "--caption-column", "text", "--out", str(tmp_path / "x"),
                 "--bucket-step", "8", "--no-progress"]) == 2  # only with --buckets


def test_from_images_buckets_through_an_autoencoder_are_pixel_buckets_over_its_downsampling(photos, tmp_path):
    from pathlib import Path

    from ouro.vae.config import from_diffusers_config
    from ouro.vae.model import init_model
    from ouro.vae.weights import load_state_dict, save_diffusers

    fix = Path(__file__).parents[1] / "fixtures"  # the committed tiny AutoencoderKL: 4x downsampling
    model = init_model(from_diffusers_config(json.loads((fix / "vae_tiny.json").read_text())["config"]))
    with np.load(fix / "vae_tiny.npz") as z:
        load_state_dict(model, {k[2:]: z[k] for k in z.files if k.startswith("w/")}, "vae_tiny.npz")
    ae = save_diffusers(model, tmp_path / "vae")
    out = tmp_path / "lat"
    assert ouro(["data", "from-images", str(photos), "--out", str(out), "--size", "16", "--buckets",
                 "16x16,20x12", "--autoencoder", str(ae), "--no-progress"]) == 0
    index = read_buckets(str(out))
    assert [(b.pixels, b.latents, b.rows) for b in index.buckets] == [((16, 16), (4, 4), 2), ((12, 20), (3, 5), 2)]
    assert read_index(str(out / "b20x12")).fields["latents"].shape == (3, 5, 4)
    assert index.meta["encoder"]["kind"] == "autoencoder" and index.bucketing["downsample"] == 4  # the tall image: square


# -- the loader ------------------------------------------------------------------------------
SIZES = {(8, 8): 21, (4, 12): 13, (12, 4): 5}  # (H, W): rows; 5 rows < a batch of 6: never trained on


def make_bucketed(path, sizes=SIZES, width=8):
    """A bucketed dataset whose latents hold their global row number (every value of row r is r)."""
    buckets, indexes, start = [], [], 0
    for (h, w), n in sizes.items():
        b = Bucket((h, w), (h, w), n)
        ids = np.arange(start, start + n)
        write_shards(path / b.name, np.broadcast_to(ids[:, None, None, None], (n, h, w, 2)).astype(np.float16),
                     np.repeat(ids[:, None], width, 1).astype(np.float32), shard_size=8)
        buckets.append(b)
        indexes.append(read_index(str(path / b.name)))
        start += n
    write_buckets(BucketedIndex(str(path), buckets, indexes, {"name": "synthetic"}, {"spec": "test"}))
    return path


def rows_of(batch):
    x = batch["x"]
    assert (x == x[:, :1, :1, :1]).all()
    return x[:, 0, 0, 0].astype(int)


def test_bucketed_loader_single_bucket_batches_in_proportion_and_host_independent(tmp_path):
    ds = make_bucketed(tmp_path / "ds")
    one = sharded_loader(str(ds), 6, seed=3, holdout=3)  # holdout: the last 3 rows of the 8x8 bucket
    # an epoch: 8x8 has 21 - 3 = 18 rows -> 3 steps, 12x4 (W x H) 13 -> 2 steps (1 row left over), 4x12 none
    assert one.steps_per_epoch == 5 and one.order.skipped == ["4x12"]
    seen = [next(one) for _ in range(15)]
    shapes = [b["x"].shape[1:3] for b in seen]
    for e in range(3):
        epoch = shapes[5 * e:5 * e + 5]
        assert sorted(epoch) == [(4, 12)] * 2 + [(8, 8)] * 3  # in proportion, exactly, every epoch
    assert len(set(map(tuple, shapes))) == 2 and shapes[:5] != shapes[5:10]  # the order is reshuffled
    for b in seen:
        r = rows_of(b)
        lo, hi = (0, 18) if b["x"].shape[1] == 8 else (21, 34)
        assert len(r) == 6 and (lo <= r).all() and (r < hi).all()  # one bucket, never held-out rows
        np.testing.assert_array_equal(b["ctx"][:, 0, 0], r)  # embeddings travel with their latents
    # each epoch visits 18 distinct 8x8 rows and 12 of the 13 12x4 rows
    first = np.concatenate([rows_of(b) for b in seen[:5]])
    assert len(set(first)) == 30

    # two hosts: each reads its half of the same global batch
    hosts = [sharded_loader(str(ds), 6, seed=3, holdout=3, process_index=p, process_count=2) for p in (0, 1)]
    for b in seen:
        halves = [next(h) for h in hosts]
        np.testing.assert_array_equal(np.concatenate([rows_of(h) for h in halves]), rows_of(b))

    # a resume from a checkpointed position sees the same batches
    again = sharded_loader(str(ds), 6, seed=3, holdout=3)
    for _ in range(7):
        next(again)
    state = again.state()
    assert state["buckets"] == "8x8:18,12x4:13,4x12:5"
    resumed = sharded_loader(str(ds), 6, seed=3, holdout=3)
    resumed.restore(json.loads(json.dumps(state)))
    for b in seen[7:]:
        np.testing.assert_array_equal(rows_of(next(resumed)), rows_of(b))
    other = sharded_loader(str(ds), 6, seed=3, holdout=4)
    with pytest.raises(UserError, match="saved with rows=36, this run has rows=35"):
        other.restore(state)

    with pytest.raises(UserError, match="no aspect bucket has that many rows"):
        sharded_loader(str(ds), 24, seed=0)
