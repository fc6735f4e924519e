"""Official Gemma-3 checkpoints (the `gemma` library / Kaggle Orbax layout) -> Gemma3.

The official tree (bf16) is keyed like
  transformer/embedder/input_embedding            (V, D)
  transformer/final_norm/scale                    (D,)
  transformer/layer_{i}/attn/q_einsum/w           (N, D, H)
  transformer/layer_{i}/attn/kv_einsum/w          (2, K, D, H)
  transformer/layer_{i}/attn/attn_vec_einsum/w    (N, H, D)
  transformer/layer_{i}/attn/_query_norm/scale    (H,)   (and _key_norm)
  transformer/layer_{i}/{pre,post}_attention_norm/scale, {pre,post}_ffw_norm/scale  (D,)
  transformer/layer_{i}/mlp/gating_einsum/w       (2, F, D)   [gate, up]
  transformer/layer_{i}/mlp/linear/w              (F, D)
either nested or with "/"-joined keys, with or without the "transformer" level (the gemma
library's `gm.ckpts.save_params` writes the tree of `gm.nn.Gemma3_*` without it, and with
the MLP einsums as bare leaves: `mlp/gating_einsum`, `mlp/linear`). ouro's Gemma3 uses the same names and layouts,
with layers stacked on axis 0 and the leading "_" of the q/k norms dropped, so the
mapping is a rename plus a stack; scales keep the official offset convention.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ouro.text.config import GemmaConfig
from ouro.text.weights import check_shapes

# ouro per-layer name -> official name inside transformer/layer_{i}/
_LAYER_NAMES = {
    "layers/attn/q_einsum": "attn/q_einsum/w",
    "layers/attn/kv_einsum": "attn/kv_einsum/w",
    "layers/attn/attn_vec_einsum": "attn/attn_vec_einsum/w",
    "layers/attn/query_norm/scale": "attn/_query_norm/scale",
    "layers/attn/key_norm/scale": "attn/_key_norm/scale",
    "layers/pre_attention_norm/scale": "pre_attention_norm/scale",
    "layers/post_attention_norm/scale": "post_attention_norm/scale",
    "layers/pre_ffw_norm/scale": "pre_ffw_norm/scale",
    "layers/post_ffw_norm/scale": "post_ffw_norm/scale",
    "layers/mlp/gating_einsum": "mlp/gating_einsum/w",
    "layers/mlp/linear": "mlp/linear/w",
}
_TOP_NAMES = {"input_embedding": "transformer/embedder/input_embedding", "final_norm/scale": "transformer/final_norm/scale"}


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b/c": x}} -> {"a/b/c": x}: nested and "/"-joined keys give the same paths."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def official_to_params(tree: Mapping[str, Any], cfg: GemmaConfig = GemmaConfig(), source: str = "checkpoint") -> dict[str, np.ndarray]:
    flat = flatten(tree)
    if flat and all(k.startswith("params/") for k in flat):  # some savers wrap everything in "params"
        flat = {k[len("params/"):]: v for k, v in flat.items()}
    if flat and not any(k.startswith("transformer/") for k in flat):
        # the gemma library's own tree (gm.ckpts.save_params of gm.nn.Gemma3_*): no "transformer" level
        flat = {f"transformer/{k}": v for k, v in flat.items()}
    # the library's MLP einsums are bare leaves (mlp/gating_einsum), older trees end in /w
    flat = {f"{k}/w" if k.endswith(("mlp/gating_einsum", "mlp/linear")) else k: v for k, v in flat.items()}

    def get(name: str) -> np.ndarray:
        if name not in flat:
            near = sorted(k for k in flat if k.split("/")[-1] == name.split("/")[-1])[:3]
            raise KeyError(f"{source}: no parameter {name!r} (similar: {near})")
        return np.asarray(flat[name], dtype=np.float32)

    params = {ours: get(theirs) for ours, theirs in _TOP_NAMES.items()}
    for ours, theirs in _LAYER_NAMES.items():
        params[ours] = np.stack([get(f"transformer/layer_{i}/{theirs}") for i in range(cfg.depth)])
    extra_layers = [k for k in flat if k.startswith(f"transformer/layer_{cfg.depth}/")]
    if extra_layers:
        raise ValueError(f"{source}: has more than cfg.depth={cfg.depth} layers ({extra_layers[0]})")
    check_shapes(params, cfg, source)
    return params


def params_to_official(params: Mapping[str, np.ndarray], cfg: GemmaConfig = GemmaConfig()) -> dict[str, Any]:
    """Inverse of `official_to_params`, as the nested tree the gemma library uses."""
    flat = {theirs: np.asarray(params[ours]) for ours, theirs in _TOP_NAMES.items()}
    for ours, theirs in _LAYER_NAMES.items():
        for i in range(cfg.depth):
            flat[f"transformer/layer_{i}/{theirs}"] = np.asarray(params[ours][i])
    nested: dict[str, Any] = {}
    for path, value in flat.items():
        node = nested
        *parents, leaf = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def load_official_checkpoint(path: str | os.PathLike, cfg: GemmaConfig = GemmaConfig()) -> dict[str, np.ndarray]:
    """Read an Orbax checkpoint directory in the official layout into Gemma3 params."""
    import orbax.checkpoint as ocp

    path = Path(path).resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: official Gemma checkpoint directory not found")
    try:
        tree = ocp.PyTreeCheckpointer().restore(path)
    except Exception as e:  # orbax raises many types on unreadable directories
        raise ValueError(f"{path}: cannot restore as an Orbax checkpoint ({type(e).__name__}: {e})") from e
    return official_to_params(tree, cfg, str(path))


def checkpoint_id(path: str | os.PathLike) -> str:
    """A cache key for a checkpoint directory: its path, file names and sizes."""
    path = Path(path).resolve()
    digest = hashlib.sha256(str(path).encode())
    for f in sorted(path.rglob("*")):
        if f.is_file():
            digest.update(f"{f.relative_to(path)}:{f.stat().st_size}".encode())
    return f"official-{digest.hexdigest()[:16]}"
