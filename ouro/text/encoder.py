"""TextEncoder: tokenizer + Gemma3 + pooling, jitted once per batch shape.

Batches come from `ouro.text.packing`: short texts packed into rows of 128 tokens (one
shape, one compilation), long ones padded to bucket lengths (one compilation per bucket;
XLA recompiles per shape otherwise). Neither packing nor padding changes a text's
result: attention never crosses segments or reaches padding, positions restart per text,
and pooling only counts the text's own tokens.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.text.config import GemmaConfig
from ouro.text.model import Gemma3
from ouro.text.tokenizer import Tokenizer

# Default cap on tokens per text (BOS included). Longer texts are truncated with a warning:
# class names and captions are far shorter, and attention cost grows with the square.
MAX_TOKENS = 512
POOLINGS = ("mean", "mean_bos")  # mean over real tokens without / with the BOS token


def model_from_params(params: dict[str, np.ndarray], cfg: GemmaConfig, *, dtype=jnp.float32) -> Gemma3:
    """A Gemma3 whose parameters are `params` (flat "a/b/c" names), without a random init."""
    model = nnx.eval_shape(lambda: Gemma3(cfg, rngs=nnx.Rngs(0), dtype=dtype))
    for key, value in params.items():
        obj = model
        for part in key.split("/"):
            obj = getattr(obj, part)
        want = tuple(obj.get_value().shape)
        if want != tuple(value.shape):
            raise ValueError(f"parameter {key}: shape {tuple(value.shape)}, model expects {want}")
        obj.set_value(jnp.asarray(value, jnp.float32))
    return model


def _pooled(graphdef, state, tokens_bt, mask_bt, segments_bt, pool_bt, max_segments: int):
    """(B, S, D) L2-normalised mean of the pooled tokens of each segment of each row."""
    hidden_btd = nnx.merge(graphdef, state)(tokens_bt, mask_bt, segments_bt).astype(jnp.float32)
    ids_s = jnp.arange(1, max_segments + 1)
    weight_bst = ((segments_bt[:, None, :] == ids_s[None, :, None]) & pool_bt[:, None, :]).astype(jnp.float32)
    count_bs = jnp.maximum(weight_bst.sum(axis=-1, keepdims=True), 1.0)
    mean_bsd = jnp.einsum("bst,btd->bsd", weight_bst, hidden_btd) / count_bs
    return mean_bsd / jnp.maximum(jnp.linalg.norm(mean_bsd, axis=-1, keepdims=True), 1e-12)


def _hidden(graphdef, state, tokens_bt, mask_bt):
    return nnx.merge(graphdef, state)(tokens_bt, mask_bt)


class TextEncoder:
    def __init__(
        self,
        params: dict[str, np.ndarray],
        tokenizer: Tokenizer,
        cfg: GemmaConfig = GemmaConfig(),
        *,
        weights_id: str,
        dtype=jnp.float32,
        max_tokens: int = MAX_TOKENS,
    ):
        if not 2 <= max_tokens <= cfg.context_length:
            raise ValueError(f"max_tokens={max_tokens} must be in [2, {cfg.context_length}]")
        self.cfg, self.tokenizer, self.weights_id, self.max_tokens = cfg, tokenizer, weights_id, max_tokens
        self.model = model_from_params(params, cfg, dtype=dtype)
        self.graphdef, self.state = nnx.split(self.model)
        self._pooled = jax.jit(partial(_pooled, self.graphdef), static_argnames=("max_segments",))
        self._hidden = jax.jit(partial(_hidden, self.graphdef))

    @classmethod
    def from_cache(cls, cache_dir=None, *, progress: bool = True, **kwargs) -> "TextEncoder":
        """The GGUF weights, converted into the cache on first use."""
        from ouro.text.weights import ensure_converted, load_params

        cfg = kwargs.pop("cfg", GemmaConfig())
        meta = ensure_converted(cache_dir, cfg, progress=progress)
        params = load_params(meta["weights_path"], cfg)
        return cls(params, Tokenizer(meta["tokenizer_path"]), cfg, weights_id=meta["weights_id"], **kwargs)

    @classmethod
    def from_official(cls, checkpoint: str, tokenizer_model: str, **kwargs) -> "TextEncoder":
        """An official gemma Orbax checkpoint + its SentencePiece tokenizer.model."""
        from ouro.text.official import checkpoint_id, load_official_checkpoint

        cfg = kwargs.pop("cfg", GemmaConfig())
        params = load_official_checkpoint(checkpoint, cfg)
        return cls(params, Tokenizer(tokenizer_model), cfg, weights_id=checkpoint_id(checkpoint), **kwargs)

    def params(self) -> dict[str, np.ndarray]:
        """The model's parameters as a flat {"a/b": float32 array} dict (the cache layout)."""
        from ouro.text.weights import expected_shapes

        out = {}
        for key in expected_shapes(self.cfg):
            obj = self.model
            for part in key.split("/"):
                obj = getattr(obj, part)
            out[key] = np.asarray(obj.get_value())
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, not one string")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
            if not text:
                raise ValueError(f"texts[{i}] is empty; an empty text has no tokens to pool")
        ids = self.tokenizer.encode_batch(list(texts))
        long = [i for i, row in enumerate(ids) if len(row) > self.max_tokens]
        if long:
            warnings.warn(
                f"{len(long)} text(s) (first: index {long[0]}, {len(ids[long[0]])} tokens) exceed "
                f"max_tokens={self.max_tokens} and are truncated to their first {self.max_tokens} tokens",
                stacklevel=3,
            )
        return [row[: self.max_tokens] for row in ids]

    def embed(self, texts: Sequence[str], *, pooling: str = "mean", batch_size: int = 64, progress: bool = True) -> np.ndarray:
        """(N, D) float32, L2-normalised pooled last hidden states (after the final norm).

        batch_size: texts per forward call, as packed rows: batch_size // 8 rows of 128
        tokens (64 -> 1024 tokens, ~160 ImageNet names).
        """
        from ouro.progress import progress_bar as tqdm

        from ouro.text.packing import pack

        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}; choose one of {POOLINGS}")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        ids = self.tokenize(texts)
        out = np.zeros((len(ids), self.cfg.dim), np.float32)
        batches = pack(ids, rows_per_batch=max(1, batch_size // 8), include_bos=pooling == "mean_bos", pad_id=self.cfg.pad_id)
        with tqdm(total=len(ids), desc="embedding", unit="text", disable=not progress) as bar:
            for b in batches:
                vecs = np.asarray(self._pooled(self.state, b.tokens, b.mask, b.segments, b.pool, max_segments=b.max_segments))
                for i, row, seg in b.slots:
                    out[i] = vecs[row, seg]
                bar.update(len(b.slots))
        return out

    def hidden_states(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Final-norm hidden states per text, (n_tokens, D) each, one text at a time (tests, analysis)."""
        out = []
        for row in self.tokenize(texts):
            tokens = np.asarray([row], np.int32)
            out.append(np.asarray(self._hidden(self.state, tokens, np.ones_like(tokens, bool)))[0])
        return out

    def greedy(self, prompt: str, steps: int = 4) -> str:
        """Greedy continuation of `prompt` (no KV cache: re-runs the prefix; for smoke tests only)."""
        row = self.tokenize([prompt])[0]
        start = len(row)
        for _ in range(steps):
            tokens = np.asarray([row], np.int32)
            hidden = self._hidden(self.state, tokens, np.ones_like(tokens, bool))
            logits = self.model.logits(hidden[:, -1:])
            row.append(int(jnp.argmax(logits[0, -1])))
            if row[-1] == self.cfg.eos_id:
                break
        return self.tokenizer.decode(row[start:])
