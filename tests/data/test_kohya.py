"""Kohya-style folders in `ouro data from-images`: `<repeats>_<name>/` folders with same-stem
.txt/.caption captions, repeats honoured (rows repeated), nested folders, every missing or
empty caption named in one error; the caption-file layout is unchanged (tests/data/test_convert.py)."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from ouro import cli
from ouro.data.convert import convert_images
from ouro.data.sharded import ShardedSource
from ouro.errors import UserError


def fake_embed(texts):
    return np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], np.uint8) / 255.0
                     for t in texts]).astype(np.float32)


def solid(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((6, 6, 3), rgb, np.uint8)).save(path)


@pytest.fixture
def kohya(tmp_path):
    d = tmp_path / "train"
    solid(d / "3_cat" / "a.png", (255, 0, 0))
    (d / "3_cat" / "a.txt").write_text("a red cat\n")
    solid(d / "3_cat" / "poses" / "b.png", (0, 255, 0))  # nested: still 3 repeats
    (d / "3_cat" / "poses" / "b.caption").write_text("  a green cat ")
    solid(d / "1_bg" / "c.jpg", (0, 0, 255))
    (d / "1_bg" / "c.txt").write_text("blue background")
    return d


def test_kohya_repeats_nested_and_both_caption_suffixes(kohya, tmp_path):
    index = convert_images(kohya, str(tmp_path / "ds"), size=4, embed=fake_embed, shard_size=4, progress=False)
    src = ShardedSource(str(tmp_path / "ds"), fields=("latents", "embeddings"))
    rows = src.read(np.arange(src.rows))
    assert src.rows == 3 + 3 + 1 == index.rows
    want = ["blue background"] + ["a red cat"] * 3 + ["a green cat"] * 3  # sorted paths: 1_bg, 3_cat/a, 3_cat/poses/b
    np.testing.assert_allclose(rows["embeddings"], fake_embed(want))
    red = np.asarray(rows["latents"][1:4], np.float32)
    assert np.allclose(red[..., 0], 1.0, atol=1e-2) and np.allclose(red[..., 1:], -1.0, atol=1e-2)
    assert np.allclose(np.asarray(rows["latents"][4:7], np.float32)[..., 1], 1.0, atol=1e-2)  # repeats span shards


def test_kohya_missing_and_empty_captions_named(kohya, tmp_path, capsys):
    solid(kohya / "2_dog" / "d.png", (9, 9, 9))
    solid(kohya / "2_dog" / "e.png", (9, 9, 9))
    (kohya / "2_dog" / "e.txt").write_text("   \n")
    with pytest.raises(UserError, match=r"2 image\(s\) have no caption or an empty one .*2_dog/d\.png, .*2_dog/e\.png"):
        convert_images(kohya, str(tmp_path / "x"), size=4, embed=fake_embed, progress=False)
    # the command a user types: one line, exit 2, before any text encoder loads
    assert cli.main(["data", "from-images", str(kohya), "--out", str(tmp_path / "y"), "--size", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ouro data: error: 2 image(s) have no caption") and "d.png" in err[0]


def test_kohya_conflicting_caption_files(kohya, tmp_path):
    (kohya / "3_cat" / "a.caption").write_text("something else")
    with pytest.raises(UserError, match=r"a\.png: a\.txt and a\.caption differ"):
        convert_images(kohya, str(tmp_path / "x"), size=4, embed=fake_embed, progress=False)
