"""Converters: each round-trips its source exactly, resumes after an interruption to the same
bytes as an uninterrupted run, and `ouro data check` accepts what they write."""

import hashlib
import io
import json
import sys

import numpy as np
import pytest

from ouro.cli import main as ouro
from ouro.data import ShardedSource, read_index
from ouro.data.convert import convert_images, convert_parquet, convert_pt
from ouro.data.writer import ShardWriter
from ouro.errors import UserError


def fake_embed(texts):
    """Deterministic stand-in for Gemma: 16 floats from the text's hash."""
    return np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], np.uint8) / 255.0
                     for t in texts]).astype(np.float32)


def read_all(path, fields):
    src = ShardedSource(str(path), fields=fields)
    return src.read(np.arange(src.rows))


def dataset_bytes(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def interrupted_equals_uninterrupted(convert, tmp_path, monkeypatch):
    """Run `convert(out)` once whole and once killed after 2 shards then rerun: same files."""
    convert(tmp_path / "whole")
    calls = {"n": 0}
    write = ShardWriter.write

    def dying(self, name, arrays):
        calls["n"] += 1
        if calls["n"] == 3:
            (self.out / f"{name}.latents.npy").write_bytes(b"half a shard")  # torn leftover
            raise KeyboardInterrupt
        return write(self, name, arrays)

    monkeypatch.setattr(ShardWriter, "write", dying)
    with pytest.raises(KeyboardInterrupt):
        convert(tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "index.json").exists()  # visibly unfinished
    monkeypatch.setattr(ShardWriter, "write", write)
    convert(tmp_path / "resumed")
    assert dataset_bytes(tmp_path / "whole") == dataset_bytes(tmp_path / "resumed")
    assert calls["n"] == 3


# -- PT files ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pt_files(tmp_path_factory):
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("pt")
    files, parts = [], []
    for i, n in enumerate((7, 5)):
        g = torch.Generator().manual_seed(i)
        part = {"keys": torch.arange(100 * i, 100 * i + n, dtype=torch.int64),
                "latents": torch.randn(n, 4, 6, 6, generator=g).half(),  # NCHW float16
                "embeddings": torch.randn(n, 640, generator=g)}
        torch.save(part, d / f"part{i}.pt")
        files.append(str(d / f"part{i}.pt"))
        parts.append({k: v.numpy() for k, v in part.items()})
    return files, parts


def test_from_pt_round_trip_nchw_to_nhwc(pt_files, tmp_path, capsys):
    files, parts = pt_files
    assert ouro(["data", "from-pt", *files, "--out", str(tmp_path / "ds"), "--shard-size", "3",
                 "--no-progress"]) == 0
    assert "wrote 12 rows in 5 shards" in capsys.readouterr().out
    index = read_index(str(tmp_path / "ds"))
    assert [s.count for s in index.shards] == [3, 3, 1, 3, 2]  # shards never span files
    got = read_all(tmp_path / "ds", ("keys", "latents", "embeddings"))
    want_lat = np.concatenate([p["latents"] for p in parts])
    np.testing.assert_array_equal(got["latents"], want_lat.transpose(0, 2, 3, 1))  # element-wise
    assert got["latents"].dtype == np.float16 and got["latents"].shape == (12, 6, 6, 4)
    np.testing.assert_array_equal(got["embeddings"], np.concatenate([p["embeddings"] for p in parts]))
    np.testing.assert_array_equal(got["keys"], np.concatenate([p["keys"] for p in parts]))
    assert ouro(["data", "check", str(tmp_path / "ds"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 12 and summary["fields"]["latents"]["shape"] == [6, 6, 4]


def test_from_pt_resumes(pt_files, tmp_path, monkeypatch):
    files, _ = pt_files
    interrupted_equals_uninterrupted(
        lambda out: convert_pt(files, str(out), shard_size=3, progress=False), tmp_path, monkeypatch)


def test_from_pt_errors(pt_files, tmp_path, monkeypatch):
    import torch

    torch.save({"keys": torch.arange(3), "latents": torch.zeros(3, 4, 2, 2)}, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=r"bad\.pt: key 'embeddings' missing"):
        convert_pt([str(tmp_path / "bad.pt")], str(tmp_path / "o1"), progress=False)
    (tmp_path / "evil.pt").write_bytes(b"not a zip")
    with pytest.raises(UserError, match=r"evil\.pt: not a readable PT file"):
        convert_pt([str(tmp_path / "evil.pt")], str(tmp_path / "o2"), progress=False)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(UserError, match=r"pip install 'ouro\[torch\]'"):
        convert_pt(pt_files[0], str(tmp_path / "o3"), progress=False)


# -- image folders -------------------------------------------------------------------------
def _stripes(w, h, colors):
    """An image of vertical stripes; center crop of a 3-stripe wide image = the middle one."""
    from PIL import Image

    a = np.zeros((h, w, 3), np.uint8)
    for i, c in enumerate(colors):
        a[:, i * w // len(colors):(i + 1) * w // len(colors)] = c
    return Image.fromarray(a)


@pytest.fixture
def image_dir(tmp_path):
    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]
    for i, c in enumerate(colors):
        name = f"sub/img{i}.png" if i % 2 else f"img{i}.jpg" if i == 4 else f"img{i}.png"
        _stripes(30, 10, [(9, 9, 9), c, (9, 9, 9)]).save(d / name, quality=100)
        (d / name).with_suffix(".txt").write_text(f"  a photo of colour {i}\n")
    return d, colors


def test_from_images_crops_resizes_embeds(image_dir, tmp_path):
    d, colors = image_dir
    index = convert_images(d, str(tmp_path / "ds"), size=8, embed=fake_embed, shard_size=2, progress=False)
    assert [s.count for s in index.shards] == [2, 2, 1]
    got = read_all(tmp_path / "ds", ("latents", "embeddings"))
    names = ["img0.png", "img2.png", "img4.jpg", "sub/img1.png", "sub/img3.png"]  # sorted paths
    order = [0, 2, 4, 1, 3]
    assert got["latents"].shape == (5, 8, 8, 3) and got["latents"].dtype == np.float16
    want = np.array([colors[i] for i in order], np.float32)[:, None, None, :] / 127.5 - 1
    np.testing.assert_allclose(got["latents"], np.broadcast_to(want, (5, 8, 8, 3)), atol=0.02)  # jpg
    np.testing.assert_array_equal(got["embeddings"], fake_embed([f"a photo of colour {i}" for i in order]))
    assert len(names) == 5
    # an autoencoder plugs in as `encode`: (N, H, W, 3) in [-1, 1] -> NHWC latents
    convert_images(d, str(tmp_path / "enc"), size=8, embed=fake_embed, progress=False,
                   encode=lambda x: x[:, ::2, ::2, :1] * 0.5)
    enc = read_all(tmp_path / "enc", ("latents",))["latents"]
    np.testing.assert_allclose(enc, got["latents"][:, ::2, ::2, :1] * 0.5, atol=1e-3)


def test_from_images_metadata_file_and_errors(image_dir, tmp_path, monkeypatch):
    d, _ = image_dir
    for p in d.rglob("*.txt"):
        p.unlink()
    with pytest.raises(UserError, match=r"img0\.png: no caption \(5 images lack one"):
        convert_images(d, str(tmp_path / "x"), size=8, embed=fake_embed, progress=False)
    rows = [{"file_name": n, "text": f"caption {n}"} for n in
            ["img0.png", "img2.png", "img4.jpg", "sub/img1.png", "sub/img3.png"]]
    (d / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    convert_images(d, str(tmp_path / "ok"), size=8, embed=fake_embed, progress=False)
    got = read_all(tmp_path / "ok", ("embeddings",))["embeddings"]
    np.testing.assert_array_equal(got, fake_embed([r["text"] for r in rows]))
    interrupted_equals_uninterrupted(
        lambda out: convert_images(d, str(out), size=8, embed=fake_embed, shard_size=1, progress=False),
        tmp_path, monkeypatch)


# -- parquet / HF save_to_disk -------------------------------------------------------------
def _png(color):
    bio = io.BytesIO()
    _stripes(12, 12, [color]).save(bio, format="PNG")
    return bio.getvalue()


CLASSES = ["airplane", "automobile", "bird"]


def _table(labels):
    import pyarrow as pa

    images = [{"bytes": _png((40 * lab, 0, 0)), "path": None} for lab in labels]
    return pa.table({"image": images, "label": pa.array(labels, pa.int64()),
                     "caption": [f"a {CLASSES[lab]}" for lab in labels]})


def test_from_parquet_labels_become_class_name_embeddings(tmp_path):
    import pyarrow.parquet as pq

    d = tmp_path / "pq"
    d.mkdir()
    hf = {"info": {"features": {"label": {"names": CLASSES, "_type": "ClassLabel"}}}}
    for i, labels in enumerate([[0, 2, 1, 1], [2, 0]]):
        t = _table(labels)
        t = t.replace_schema_metadata({"huggingface": json.dumps(hf)})
        pq.write_table(t, d / f"train-{i:05d}.parquet")
    convert_parquet(d, str(tmp_path / "ds"), label_column="label", size=4, embed=fake_embed,
                    shard_size=3, progress=False)
    got = read_all(tmp_path / "ds", ("latents", "embeddings", "labels"))
    labels = np.array([0, 2, 1, 1, 2, 0])
    np.testing.assert_array_equal(got["labels"], labels)
    np.testing.assert_array_equal(got["embeddings"], fake_embed(CLASSES)[labels])
    np.testing.assert_allclose(got["latents"][:, 0, 0, 0], 40 * labels / 127.5 - 1, atol=1e-3)
    with pytest.raises(UserError, match=r"no column 'lbl'"):
        convert_parquet(d, str(tmp_path / "x"), label_column="lbl", embed=fake_embed, progress=False)


def test_from_hf_save_to_disk_captions(tmp_path, monkeypatch):
    import pyarrow as pa

    d = tmp_path / "hf"
    d.mkdir()
    t = _table([1, 0, 2])
    with pa.OSFile(str(d / "data-00000-of-00001.arrow"), "wb") as f:  # save_to_disk's layout
        with pa.ipc.new_stream(f, t.schema) as w:
            w.write_table(t)
    (d / "dataset_info.json").write_text(json.dumps({"features": {"label": {"names": CLASSES}}}))
    convert = lambda out: convert_parquet(d, str(out), caption_column="caption", size=4,  # noqa: E731
                                          embed=fake_embed, shard_size=1, progress=False)
    convert(tmp_path / "ds")
    got = read_all(tmp_path / "ds", ("embeddings",))["embeddings"]
    np.testing.assert_array_equal(got, fake_embed(["a automobile", "a airplane", "a bird"]))
    interrupted_equals_uninterrupted(convert, tmp_path / "r", monkeypatch)


@pytest.mark.gemma
def test_from_images_cli_embeds_captions_with_gemma(tmp_path, capsys):
    from ouro.text import embed

    d = tmp_path / "imgs"
    d.mkdir()
    captions = ["a red square", "a green square"]
    for i, (c, text) in enumerate(zip([(255, 0, 0), (0, 255, 0)], captions)):
        _stripes(8, 8, [c]).save(d / f"{i}.png")
        (d / f"{i}.txt").write_text(text)
    assert ouro(["data", "from-images", str(d), "--out", str(tmp_path / "ds"), "--size", "4",
                 "--no-progress"]) == 0
    assert "wrote 2 rows in 1 shards" in capsys.readouterr().out
    got = read_all(tmp_path / "ds", ("latents", "embeddings"))
    np.testing.assert_allclose(got["embeddings"], embed(captions, progress=False), rtol=1e-6)
    assert got["latents"].shape == (2, 4, 4, 3)
