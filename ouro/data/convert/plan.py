"""Run a converter's shard plan: skip shards already written, build and write the rest."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ouro.data.format import Index
from ouro.data.writer import ShardWriter
from ouro.errors import UserError

Encode = Callable[[np.ndarray], np.ndarray]  # (N, H, W, 3) float32 in [-1, 1] -> (N, h, w, c) NHWC
Embed = Callable[[list[str]], np.ndarray]  # texts -> (N, E) float32
# texts -> (states (N, T, E) float, mask (N, T) bool) with T = the dataset's max_tokens
EmbedTokens = Callable[[list[str]], tuple[np.ndarray, np.ndarray]]


def run_plan(out_dir: str, plan: Sequence[tuple[str, Callable[[], dict[str, np.ndarray]]]], *,
             source: Any, desc: str, progress: bool = True,
             text_tokens: dict[str, Any] | None = None, meta: dict[str, Any] | None = None) -> Index:
    """plan: (shard name, build) pairs in dataset order; build() returns the shard's arrays.
    `text_tokens`: the per-token encoder settings recorded in index.json (with ctx_tokens);
    `meta`: the dataset's self-description (name, encoder, source; ouro.data.describe)."""
    writer = ShardWriter(out_dir, source=source)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(plan), initial=sum(writer.done(n) for n, _ in plan), desc=desc, unit="shard")
    for name, build in plan:
        if writer.done(name):
            continue
        writer.write(name, build())
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return writer.finish(text_tokens=text_tokens, meta=meta)


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def default_embed(texts: list[str]) -> np.ndarray:
    from ouro.text import embed

    return embed(texts, progress=False)


def text_tokens_setup(max_tokens: int, embed_tokens: EmbedTokens | None,
                      encoder_name: str | None = None) -> tuple[EmbedTokens | None, dict[str, Any] | None]:
    """(per-token embedder, its settings for index.json) for `--text-tokens T`; (None, None)
    when T = 0 (pooled embeddings only). The default is Gemma-3 (ouro.text.embed_tokens)
    padded to exactly T tokens, BOS left out: `ouro sample` encodes prompts the same way."""
    if max_tokens < 0:
        raise UserError(f"--text-tokens {max_tokens}: must be >= 0 (0 = pooled embeddings only)")
    if not max_tokens:
        return None, None
    settings = {"max_tokens": int(max_tokens), "include_bos": False}
    if embed_tokens is not None:  # a custom encoder: prompts cannot be encoded alike by ouro
        return embed_tokens, {"encoder": encoder_name or "custom", **settings}
    from ouro.text import embed_tokens as gemma_tokens, get_encoder

    enc = get_encoder(progress=False)
    return (lambda texts: gemma_tokens(texts, max_tokens=max_tokens, encoder=enc, pad_to_max=True),
            {"encoder": "gemma3-270m", "weights_id": enc.weights_id, **settings})


def token_fields(texts: list[str], embed_tokens: EmbedTokens, max_tokens: int) -> dict[str, np.ndarray]:
    """{"ctx_tokens": (N, T, E) float16, "ctx_mask": (N, T) bool} for one shard's texts."""
    states, mask = embed_tokens(texts)
    states, mask = np.asarray(states), np.asarray(mask, bool)
    if states.ndim != 3 or mask.shape != (len(texts), max_tokens) or states.shape[:2] != mask.shape:
        raise ValueError(f"embed_tokens returned {states.shape} / {mask.shape}; expected (N, {max_tokens}, E) "
                         f"and (N, {max_tokens}) for N={len(texts)}")
    # float16 halves the largest field; padded states are stored as exact zeros
    return {"ctx_tokens": np.where(mask[..., None], states, 0).astype(np.float16), "ctx_mask": mask}


def encoder_record(encode: Encode | None, encoder: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """index.json's "encoder" for a converter called from Python: the record given, else
    pixels (no encode) or an external encoder known only by `name`."""
    if encoder is not None:
        return encoder
    return {"kind": "pixels"} if encode is None else {"kind": "external", "by": name}


def to_latents(pixels: np.ndarray, encode: Encode | None) -> np.ndarray:
    """Pixel batch -> float16 NHWC latents (pixel space itself when there is no encoder)."""
    out = pixels if encode is None else np.asarray(encode(pixels))
    if out.ndim != 4 or len(out) != len(pixels):
        raise ValueError(f"encode returned shape {out.shape}; expected (N, h, w, c) NHWC for N={len(pixels)}")
    return out.astype(np.float16)


def load_encoder(spec: str | None) -> Encode | None:
    """--autoencoder DIR or "package.module:function" -> the encode callable; None: pixels."""
    return encoder_from_spec(spec)[0]


def encoder_from_spec(spec: str | None) -> tuple[Encode | None, dict[str, Any]]:
    """(encode, the record index.json keeps under "encoder") for --autoencoder SPEC.

    SPEC is an AutoencoderKL directory (what `ouro vae train` writes, or a diffusers VAE):
    its scaled posterior means, and runs on the dataset decode with the same directory; or
    "package.module:function" mapping (N, H, W, 3) float32 in [-1, 1] to NHWC latents (kind
    "external": no decoder known, runs need data.autoencoder=DIR to write images). None: pixels."""
    if not spec:
        return None, {"kind": "pixels"}
    from pathlib import Path

    if Path(spec).is_dir():
        if not (Path(spec) / "config.json").is_file():
            raise UserError(f"--autoencoder {spec}: not an autoencoder directory (no config.json; "
                            f"expected what `ouro vae train` writes, or a diffusers AutoencoderKL)")
        from ouro.vae import load_autoencoder

        ae = load_autoencoder(spec)
        return ae.encode, {"kind": "autoencoder", "path": str(Path(spec).resolve()),
                           "latent_channels": int(ae.cfg.latent_channels), "downsample": int(ae.downsample),
                           "scaling_factor": float(ae.cfg.scaling_factor),
                           "shift_factor": float(ae.cfg.shift_factor)}
    if ":" not in spec:
        raise UserError(f"--autoencoder {spec}: neither a directory nor 'package.module:function'")
    return _import_encoder(spec), {"kind": "external", "by": spec}


def _import_encoder(spec: str) -> Encode:
    import importlib

    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"--autoencoder {spec}: cannot import ({e}); expected an autoencoder directory "
                        f"or 'package.module:function'") from None
    return fn
