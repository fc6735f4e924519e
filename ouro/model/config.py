"""XUTConfig: one frozen dataclass for every XUDiT size, and the preset table.

Sizes follow the HDM tech report table (docs/xut.md); `param_count` derives the
parameter count from these fields (the ~237M/343M/555M of the table are a consequence).
Experiments are small deltas: `preset("xut-small", dtype="bfloat16")` or key=value
overrides through `ouro.config.override`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from ouro.config import ConfigError, checked


@checked(in_channels=">=1", out_channels=">=1", patch_size=">=1", dim=">=1", mlp_dim=">=1",
         head_dim=">=1", depth=">=1", enc_blocks=">=1", dec_blocks=">=1", pre_blocks=">=0",
         post_blocks=">=0", ctx_dim=">=1", scan_unroll=">=0")
@dataclasses.dataclass(frozen=True)
class XUTConfig:
    name: str = "custom"
    in_channels: int = 4  # SDXL-VAE latents
    out_channels: int | None = None  # None = in_channels (v-prediction has the input's shape)
    patch_size: int = 2  # p=2 on latents (HDM)
    dim: int = 896  # model width D
    mlp_dim: int = 3072  # SwiGLU hidden M
    head_dim: int = 64  # heads = dim // head_dim
    depth: int = 4  # encoder/decoder groups d
    enc_blocks: int = 1  # blocks per encoder group e
    dec_blocks: int = 2  # blocks per decoder group k (the first has cross-attention)
    pre_blocks: int = 1  # full-sequence blocks before TREAD routing
    post_blocks: int = 3  # full-sequence blocks after TREAD merge
    ctx_dim: int = 640  # context embedding width (Gemma-3 270M hidden size)
    skip: Literal["last", "per_level"] = "last"  # decoder cross-attn context (HDM code: last)
    # which batch field is the text: "pooled" = "ctx" (B, 1, C), one context token (HDM's
    # released setup); "tokens" = "ctx_tokens" (B, T, C) + "ctx_mask" (B, T): every Gemma
    # state concatenated to the image tokens, padding masked out of attention
    text_input: Literal["pooled", "tokens"] = "pooled"
    dtype: Literal["float32", "bfloat16"] = "float32"  # THE compute dtype (training reads it here too); params stay float32
    # remat (ouro/nn/remat.py, by recompute): none < matmuls < attn = offload < block; block
    # keeps each scanned layer's input and recomputes the rest in the backward pass
    remat: Literal["none", "matmuls", "attn", "offload", "block"] = "none"  # none: keep all activations (fastest; small runs)
    scan: bool = True  # stacked layers via nnx.scan (False: Python loop, same weights)
    # ~1.5x faster cmp-tiny train step than a rolled loop (no stacked loop buffers; ouro/nn/stack.py)
    scan_unroll: int = 4  # stacks of <= n layers scan unrolled when remat is none; 0: always a loop

    def __post_init__(self):  # after @checked's per-field types and ranges
        def bad(field: str, why: str):
            raise ConfigError(f"{field}={getattr(self, field)!r}: {why}", key=field)

        if self.dim % self.head_dim:
            bad("dim", f"must be a multiple of head_dim={self.head_dim}")
        if self.head_dim % 4:
            bad("head_dim", "must be a multiple of 4 (axial RoPE rotates y/x pairs)")
        if self.dim % 2:
            bad("dim", "must be even (sinusoidal timestep features)")

    @property
    def heads(self) -> int:
        return self.dim // self.head_dim

    @property
    def condition_input(self) -> str:
        """The batch field this model reads as ctx (ouro.denoiser)."""
        return "ctx_tokens" if self.text_input == "tokens" else "ctx"

    @property
    def out_ch(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels


PRESETS: dict[str, XUTConfig] = {
    # CPU-sized: width 128 with 4 heads of 32 and xut-small's layout at depth 2 keeps every
    # code path (pre/post blocks, two U levels, cross-attention then plain decoder blocks,
    # TREAD) while a training step on 8x8 latent tokens takes tens of milliseconds; ctx 640
    # so it consumes the same Gemma-3 embeddings.
    "xut-tiny": XUTConfig(
        name="xut-tiny", dim=128, mlp_dim=384, head_dim=32, depth=2, enc_blocks=1, dec_blocks=2,
        pre_blocks=1, post_blocks=1, ctx_dim=640,
    ),
    # The configuration measured side by side with HDM's own PyTorch XUDiT on a 2-core CPU
    # (issue 11): big enough (4.46 GFLOP/img forward at 32x32x4, batch 8) that matmuls, not
    # dispatch, dominate a step, small enough to benchmark in seconds; TREAD off there.
    "cmp-tiny": XUTConfig(
        name="cmp-tiny", dim=256, mlp_dim=768, head_dim=64, depth=2, enc_blocks=1, dec_blocks=2,
        pre_blocks=1, post_blocks=1, ctx_dim=640,
    ),
    "xut-small": XUTConfig(name="xut-small", dim=896, mlp_dim=3072, head_dim=64, depth=4, enc_blocks=1, dec_blocks=2, ctx_dim=640),
    "xut-base": XUTConfig(name="xut-base", dim=1024, mlp_dim=3072, head_dim=64, depth=4, enc_blocks=1, dec_blocks=3, ctx_dim=1024),
    "xut-large": XUTConfig(name="xut-large", dim=1280, mlp_dim=4096, head_dim=128, depth=4, enc_blocks=1, dec_blocks=3, ctx_dim=1152),
}

# resolution each preset is quoted at by `ouro models` (latent H, W)
QUOTE_LATENT_HW: dict[str, tuple[int, int]] = {
    "xut-tiny": (16, 16),
    "cmp-tiny": (32, 32),
    "xut-small": (32, 32),
    "xut-base": (32, 32),
    "xut-large": (32, 32),
}


def preset(name: str, **overrides) -> XUTConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown XUT preset {name!r}; known: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(XUTConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"preset({name!r}): unknown XUTConfig field(s) {unknown}")
    return dataclasses.replace(PRESETS[name], **overrides)
