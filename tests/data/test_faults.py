"""Data faults (issue 14's table): each is one UserError naming the dataset, the shard file
and the field, raised before any model is built (the model factory below must never run)."""

import json
import os

import numpy as np
import pytest

from ouro.cli import main as ouro
from ouro.config import override
from ouro.data import ShardWriter
from ouro.errors import UserError
from ouro.train import preset_config, train


def _never(cfg, rngs):
    raise AssertionError("the model was built before the data was checked")


def _fails(path, match, capsys=None):
    cfg = override(preset_config("latents-smoke"), [f"data.path={path}", f"out_dir={path}/run"])
    with pytest.raises(UserError, match=match) as e:
        train(cfg, make_model=_never)
    assert str(path) in str(e.value)  # names the dataset
    return str(e.value)


def _edit_index(path, fn):
    index = json.loads((path / "index.json").read_text())
    fn(index)
    (path / "index.json").write_text(json.dumps(index))


def test_truncated_shard(tmp_path, write_dataset):
    write_dataset(tmp_path)
    f = tmp_path / "shard-00001.latents.npy"
    os.truncate(f, f.stat().st_size - 100)
    _fails(tmp_path, r"shard-00001\.latents\.npy: .*field 'latents': truncated")


def test_shard_with_a_different_latent_shape(tmp_path, write_dataset):
    write_dataset(tmp_path)
    np.save(tmp_path / "shard-00002.latents.npy", np.zeros((9, 4, 4, 4), np.float16))
    _fails(tmp_path, r"shard-00002\.latents\.npy: field 'latents' is float16 \(9, 4, 4, 4\) but index.json says")


def test_index_row_count_wrong(tmp_path, write_dataset):
    write_dataset(tmp_path)
    _edit_index(tmp_path, lambda ix: ix["shards"][0].update(count=99))
    _fails(tmp_path, r"shard-00000\.latents\.npy: field 'latents' is float16 \(10, 8, 8, 4\).*\(99, 8, 8, 4\)")


def test_index_latent_shape_disagrees_with_files(tmp_path, write_dataset):
    write_dataset(tmp_path)
    _edit_index(tmp_path, lambda ix: ix["fields"]["latents"].update(shape=[16, 16, 4]))
    _fails(tmp_path, r"shard-00000\.latents\.npy: field 'latents' is .* index.json says float16 \(10, 16, 16, 4\)")


def test_index_dtype_disagrees_with_files(tmp_path, write_dataset):
    write_dataset(tmp_path)
    _edit_index(tmp_path, lambda ix: ix["fields"]["embeddings"].update(dtype="float16"))
    _fails(tmp_path, r"shard-00000\.embeddings\.npy: field 'embeddings' is float32 .* says float16")


def test_nan_in_one_latent(tmp_path):
    lat = np.zeros((16, 8, 8, 4), np.float16)
    lat[12, 3, 1, 2] = np.nan
    w = ShardWriter(tmp_path, source="nan")
    for i in range(2):
        w.write(f"shard-{i:05d}", {"latents": lat[8 * i:8 * i + 8], "embeddings": np.ones((8, 640), np.float32)})
    w.finish()
    _fails(tmp_path, r"shard-00001\.latents\.npy: row 4 of field 'latents' has NaN/Inf")
    assert ouro(["data", "check", str(tmp_path), "--no-progress"]) == 2


def test_embeddings_512_wide_for_a_640_model(tmp_path, write_dataset):
    write_dataset(tmp_path, width=512)
    _fails(tmp_path, r"index.json: field 'embeddings' is 512 wide but the model expects 640")


def test_latents_of_another_resolution_than_the_model(tmp_path, write_dataset):
    write_dataset(tmp_path, shape=(16, 16, 4))
    _fails(tmp_path, r"index.json: field 'latents' is \[16, 16, 4\].*expects \[8, 8, 4\]")


def test_shard_without_embeddings(tmp_path, write_dataset):
    write_dataset(tmp_path)
    (tmp_path / "shard-00003.embeddings.npy").unlink()
    _fails(tmp_path, r"shard-00003\.embeddings\.npy: missing .*shard shard-00003, field 'embeddings'")


def test_missing_files(tmp_path, write_dataset):
    write_dataset(tmp_path)
    (tmp_path / "shard-00000.latents.npy").unlink()
    _fails(tmp_path, r"shard-00000\.latents\.npy: missing")
    (tmp_path / "index.json").unlink()
    _fails(tmp_path, r"index\.json: not found")


def test_extra_shard_file(tmp_path, write_dataset):
    write_dataset(tmp_path)
    (tmp_path / "shard-00004.latents.npy").write_bytes((tmp_path / "shard-00000.latents.npy").read_bytes())
    _fails(tmp_path, r"shard-00004\.latents\.npy: shard file not listed in index.json")


def test_swapped_shards_fail_their_checksum(tmp_path, write_dataset):
    write_dataset(tmp_path, counts=(8, 8, 8, 8))
    a, b = tmp_path / "shard-00001.latents.npy", tmp_path / "shard-00002.latents.npy"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    _fails(tmp_path, r"shard-00001\.latents\.npy: crc32 .* \(field 'latents'\): corrupt or swapped")


def test_missing_index_keys(tmp_path, write_dataset):
    write_dataset(tmp_path)
    _edit_index(tmp_path, lambda ix: ix.pop("shards"))
    _fails(tmp_path, r"index\.json: missing key 'shards'")
    write_dataset(tmp_path / "b")
    _edit_index(tmp_path / "b", lambda ix: ix["fields"].pop("embeddings"))
    _fails(tmp_path / "b", r"index\.json: fields lacks 'embeddings'")


def test_non_utf8_caption_file(tmp_path):
    from PIL import Image

    from ouro.data.convert import convert_images

    Image.new("RGB", (12, 10), (200, 10, 10)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_bytes("un café".encode("latin-1"))
    with pytest.raises(UserError, match=r"a\.txt: not UTF-8 text"):
        convert_images(tmp_path, str(tmp_path / "out"), size=8, embed=lambda t: np.zeros((len(t), 4)))


def test_cli_names_the_fault_in_one_line(tmp_path, write_dataset, capsys):
    write_dataset(tmp_path)
    os.truncate(tmp_path / "shard-00002.embeddings.npy", 200)
    assert ouro(["train", "--preset", "latents-smoke", f"data.path={tmp_path}",
                 f"out_dir={tmp_path}/run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ouro train: error: ") and "shard-00002.embeddings.npy" in err[0]
    assert ouro(["data", "check", str(tmp_path), "--no-progress"]) == 2
    assert "shard-00002.embeddings.npy" in capsys.readouterr().err


def test_shard_deleted_while_streaming_past_the_open_file_limit(tmp_path, write_dataset):
    """More shards than open memmaps (256): a shard closed by the LRU and deleted meanwhile is
    reopened later; that is one UserError naming the shard, not Grain's FileNotFoundError."""
    from ouro.data.sharded import sharded_loader

    write_dataset(tmp_path, counts=(1,) * 300)  # 300 one-row shards, 600 files
    loader = sharded_loader(str(tmp_path), 20, mode="stream", workers=2, prefetch=1)
    for _ in range(loader.steps_per_epoch):  # one epoch opens all 600 files: the first are closed
        next(loader)
    (tmp_path / "shard-00007.latents.npy").unlink()
    with pytest.raises(UserError) as e:
        for _ in range(2 * loader.steps_per_epoch):
            next(loader)
    msg = str(e.value)
    assert "shard-00007.latents.npy" in msg and "shard 'shard-00007'" in msg and str(tmp_path) in msg
    assert "\n" not in msg and "rerun to resume" in msg
