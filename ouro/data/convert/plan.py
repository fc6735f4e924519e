"""Run a converter's shard plan: skip shards already written, build and write the rest."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ouro.data.format import Index
from ouro.data.writer import ShardWriter

Encode = Callable[[np.ndarray], np.ndarray]  # (N, H, W, 3) float32 in [-1, 1] -> (N, h, w, c) NHWC
Embed = Callable[[list[str]], np.ndarray]  # texts -> (N, E) float32


def run_plan(out_dir: str, plan: Sequence[tuple[str, Callable[[], dict[str, np.ndarray]]]], *,
             source: Any, desc: str, progress: bool = True) -> Index:
    """plan: (shard name, build) pairs in dataset order; build() returns the shard's arrays."""
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
    return writer.finish()


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def default_embed(texts: list[str]) -> np.ndarray:
    from ouro.text import embed

    return embed(texts, progress=False)


def to_latents(pixels: np.ndarray, encode: Encode | None) -> np.ndarray:
    """Pixel batch -> float16 NHWC latents (pixel space itself when there is no encoder)."""
    out = pixels if encode is None else np.asarray(encode(pixels))
    if out.ndim != 4 or len(out) != len(pixels):
        raise ValueError(f"encode returned shape {out.shape}; expected (N, h, w, c) NHWC for N={len(pixels)}")
    return out.astype(np.float16)


def load_encoder(spec: str | None) -> Encode | None:
    """--autoencoder "package.module:function": a callable mapping (N, H, W, 3) float32 in
    [-1, 1] to NHWC latents (how a trained autoencoder plugs in); None: pixel space."""
    if not spec:
        return None
    import importlib

    from ouro.errors import UserError

    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise UserError(f"--autoencoder {spec}: cannot import ({e}); expected 'package.module:function'") from None
    return fn
