"""Per-token text in the sharded format: converters store ctx_tokens + ctx_mask, the index and
`ouro data check` validate them, and the loader yields them exactly as stored (RAM preload,
streaming, two hosts); a model reading them from a dataset without them fails in one line."""

import hashlib
import json

import numpy as np
import pytest

from ouro.data import ShardedSource, read_index, sharded_loader, write_shards
from ouro.data.check import check_dataset
from ouro.data.convert import convert_images
from ouro.errors import UserError

N, T, E = 12, 5, 16


def token_dataset(path, t=T, e=E):
    """Row i: latents filled with i, a mask of 1 + i % t real tokens, states i + token/10."""
    ids = np.arange(N)
    mask = np.arange(t)[None, :] < (1 + ids % t)[:, None]
    tokens = (ids[:, None, None] + np.arange(t)[None, :, None] / 10 + np.zeros((1, 1, e))) * mask[..., None]
    write_shards(path, np.broadcast_to(ids[:, None, None, None], (N, 4, 4, 2)).astype(np.float16),
                 np.ones((N, E), np.float32), shard_size=5,
                 extra={"ctx_tokens": tokens.astype(np.float16), "ctx_mask": mask},
                 text_tokens={"encoder": "custom", "max_tokens": t})
    return tokens.astype(np.float16), mask


@pytest.fixture(scope="module")
def tokens_ds(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokens")
    return path, *token_dataset(path)


@pytest.mark.parametrize("mode,hosts", [("preload", 1), ("stream", 1), ("preload", 2), ("stream", 2)])
def test_loader_yields_tokens_and_masks_as_stored(tokens_ds, mode, hosts):
    path, tokens, mask = tokens_ds
    seen = []
    for pid in range(hosts):
        it = sharded_loader(str(path), 4, mode=mode, workers=0, embed_dim=E, condition="ctx_tokens",
                            process_index=pid, process_count=hosts)
        for _ in range(it.steps_per_epoch):
            b = next(it)
            assert b["ctx_tokens"].dtype == np.float16 and b["ctx_mask"].dtype == bool
            assert b["ctx_tokens"].shape == (4 // hosts, T, E) and b["ctx"].shape == (4 // hosts, 1, E)
            rows = b["x"][:, 0, 0, 0].astype(int)  # latents carry their row id
            np.testing.assert_array_equal(b["ctx_mask"], mask[rows])
            np.testing.assert_array_equal(b["ctx_tokens"], tokens[rows])
            seen += rows.tolist()
    assert sorted(seen) == list(range(N - N % 4))  # one epoch, hosts disjoint (sharding unchanged)
    # a pooled-text model does not read the (large) per-token fields at all
    plain = next(sharded_loader(str(path), 4, mode=mode, workers=0))
    assert sorted(plain) == ["ctx", "x"]


def test_index_and_check_validate_token_fields(tokens_ds, tmp_path):
    path, _, _ = tokens_ds
    index = read_index(str(path))
    assert index.fields["ctx_tokens"].shape == (T, E) and index.fields["ctx_mask"].dtype == "bool"
    assert index.text_tokens == {"encoder": "custom", "max_tokens": T}
    summary = check_dataset(str(path), progress=False)
    assert summary["fields"]["ctx_mask"] == {"dtype": "bool", "shape": [T]}
    assert summary["text_tokens"]["max_tokens"] == T
    token_dataset(tmp_path / "narrow", e=8)  # pooled embeddings E = 16 wide, tokens 8
    with pytest.raises(UserError, match=r"field 'ctx_tokens' is 8 wide \(per token\) but the model expects 16"):
        sharded_loader(str(tmp_path / "narrow"), 4, workers=0, embed_dim=E, condition="ctx_tokens")

    tokens, mask = token_dataset(tmp_path / "stray")
    bad = mask.copy()
    bad[7, -1] = False  # row 7 has 3 real tokens: the last one now claims to be padding
    bad[7, 2] = False
    write_shards(tmp_path / "stray", np.zeros((N, 4, 4, 2)), np.ones((N, E)), shard_size=5,
                 extra={"ctx_tokens": tokens, "ctx_mask": bad})
    with pytest.raises(UserError, match=r"shard-00001\.ctx_tokens\.npy: row 2 of field 'ctx_tokens' has "
                                        r"non-zero states where ctx_mask says padding"):
        check_dataset(str(tmp_path / "stray"), progress=False)
    bad[7] = False
    write_shards(tmp_path / "stray", np.zeros((N, 4, 4, 2)), np.ones((N, E)), shard_size=5,
                 extra={"ctx_tokens": tokens * 0, "ctx_mask": bad})
    with pytest.raises(UserError, match=r"shard-00001\.ctx_mask\.npy: row 2 of field 'ctx_mask' has no real token"):
        check_dataset(str(tmp_path / "stray"), progress=False)
    with pytest.raises(UserError, match=r"field 'ctx_tokens' without 'ctx_mask'"):
        write_shards(tmp_path / "half", np.zeros((N, 4, 4, 2)), np.ones((N, E)), extra={"ctx_tokens": tokens})
    with pytest.raises(UserError, match=r"'ctx_mask' is float32 \[5\], expected bool or uint8 \[5\]"):
        write_shards(tmp_path / "half", np.zeros((N, 4, 4, 2)), np.ones((N, E)),
                     extra={"ctx_tokens": tokens, "ctx_mask": mask.astype(np.float32)})


def test_model_reading_tokens_on_a_dataset_without_them_fails_in_one_line(dataset, tmp_path):
    from ouro.config import override
    from ouro.train import preset_config, train

    path, _, _ = dataset  # tests/data/conftest.py: latents + pooled embeddings only
    with pytest.raises(UserError) as e:
        sharded_loader(str(path), 4, condition="ctx_tokens", model="model 'm'")
    msg = str(e.value)
    assert msg.startswith(f"{path}/index.json: dataset has no field 'ctx_tokens', which model 'm' reads")
    assert "--text-tokens T" in msg and "\n" not in msg
    labelled = next(sharded_loader(str(path), 4, workers=0, condition="label"))  # DiT cond=class
    assert labelled["label"].dtype == np.int32 and labelled["label"].shape == (4,)
    # through train(): refused by the input stage, before the model is built or compiled
    tokens_mmdit = ["model=mmdit-tiny", "model.text_input=tokens", "model.in_channels=4", "tread_rate=0"]
    cfg = override(preset_config("latents-smoke"), [f"data.path={path}", f"out_dir={tmp_path / 'run'}", *tokens_mmdit])
    with pytest.raises(UserError, match=r"dataset has no field 'ctx_tokens', which model 'mmdit-tiny' reads"):
        train(cfg)
    assert not (tmp_path / "run" / "config.json").exists() and not (tmp_path / "run" / "checkpoints").exists()
    digits = override(preset_config("digits-smoke-mmdit"), ["model.text_input=tokens", f"out_dir={tmp_path / 'd'}"])
    with pytest.raises(UserError, match=r"data.kind=digits: dataset has no field 'ctx_tokens'"):
        train(digits)


def fake_tokens(texts, t=3, e=8):
    """Stand-in for Gemma per-token states: one token per word (cut at t), hash-valued."""
    states, mask = np.zeros((len(texts), t, e), np.float32), np.zeros((len(texts), t), bool)
    for i, text in enumerate(texts):
        for j, w in enumerate(text.split()[:t]):
            states[i, j] = np.frombuffer(hashlib.sha256(w.encode()).digest()[:e], np.uint8) / 255.0
            mask[i, j] = True
    return states, mask


def test_from_images_stores_per_token_text(tmp_path):
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    captions = ["red", "a green one", "a big blue square here"]
    for i, c in enumerate(captions):
        Image.new("RGB", (6, 6), (40 * i, 0, 0)).save(d / f"{i}.png")
        (d / f"{i}.txt").write_text(c)
    pooled = lambda texts: np.ones((len(texts), 8), np.float32)  # noqa: E731
    convert_images(d, str(tmp_path / "ds"), size=4, embed=pooled, shard_size=2, progress=False,
                   text_tokens=3, embed_tokens=fake_tokens)
    got = ShardedSource(str(tmp_path / "ds"), fields=("ctx_tokens", "ctx_mask")).read(np.arange(3))
    want, want_mask = fake_tokens(captions)
    np.testing.assert_array_equal(got["ctx_mask"], want_mask)
    np.testing.assert_array_equal(got["ctx_tokens"], want.astype(np.float16))
    assert got["ctx_tokens"].dtype == np.float16
    index = json.loads((tmp_path / "ds" / "index.json").read_text())
    assert index["text_tokens"] == {"encoder": "custom", "max_tokens": 3, "include_bos": False}
    with pytest.raises(ValueError, match=r"expected \(N, 5, E\) and \(N, 5\)"):  # T is the dataset's
        convert_images(d, str(tmp_path / "bad"), size=4, embed=pooled, progress=False,
                       text_tokens=5, embed_tokens=fake_tokens)


def test_from_parquet_labels_get_their_class_names_tokens(tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from ouro.data.convert import convert_parquet

    def png(v):
        bio = io.BytesIO()
        Image.new("RGB", (4, 4), (v, v, v)).save(bio, format="PNG")
        return bio.getvalue()

    labels = [2, 0, 1, 2]
    pq.write_table(pa.table({"image": [png(10 * k) for k in labels], "label": labels}), tmp_path / "a.parquet")
    names = ["zero", "one thing", "two more things"]
    convert_parquet(tmp_path / "a.parquet", str(tmp_path / "ds"), label_column="label", class_names=names,
                    size=4, embed=lambda t: np.ones((len(t), 8), np.float32), progress=False,
                    text_tokens=3, embed_tokens=fake_tokens)
    got = ShardedSource(str(tmp_path / "ds"), fields=("ctx_tokens", "ctx_mask", "labels")).read(np.arange(4))
    want, want_mask = fake_tokens([names[k] for k in labels])
    np.testing.assert_array_equal(got["labels"], labels)
    np.testing.assert_array_equal(got["ctx_mask"], want_mask)
    np.testing.assert_array_equal(got["ctx_tokens"], want.astype(np.float16))
