"""InContextMMDiT (mmdit_jax): MMDiT's joint attention without internal conditioning — per
modality RMSNorm (learned weight) before attention and MLP, plain residuals (no adaLN), a
simple final layer (RMSNorm -> Linear, zero-initialised). The conditioning variables (t,
and e.g. r) enter as TOKENS: each is embedded (sinusoidal -> MLP) to one D-wide token and
prepended to the text modality, so "time" is just more context. The null condition
(drop=True) masks the text tokens (the time tokens stay)."""

from __future__ import annotations

import dataclasses
from typing import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.config import checked
from ouro.denoiser import no_routing
from ouro.model.dit import FREQ_DIM
from ouro.model.mmdit import (CondEmbedding, MMDiTConfig, _linear, _modality_params, check_inputs, cond_params,
                              joint_block_flops, text_keys)
from ouro.nn.embed import PatchEmbed, unpatchify
from ouro.nn.joint_attention import JointAttention
from ouro.nn.linear import dense
from ouro.nn.masks import joint_mask
from ouro.nn.mlp import SwiGLU
from ouro.nn.norm import RMSNorm
from ouro.nn.posemb import sincos_2d
from ouro.nn.stack import scan_layers, stacked


@checked()  # its own field list: unknown keys and types checked as for MMDiTConfig
@dataclasses.dataclass(frozen=True)
class InContextConfig(MMDiTConfig):
    """MMDiTConfig's fields; cond_vars become prepended tokens instead of adaLN inputs."""


PRESETS: dict[str, InContextConfig] = {
    "icmmdit-tiny": InContextConfig(name="icmmdit-tiny", dim=64, depth=2, heads=2, mlp_dim=176),
    "icmmdit-base": InContextConfig(name="icmmdit-base", dim=768, depth=12, heads=12, mlp_dim=2048),
}


class InContextBlock(nnx.Module):
    def __init__(self, cfg: InContextConfig, *, rngs: nnx.Rngs, dtype, param_dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.attn = JointAttention(cfg.dim, cfg.heads, 2, **kw)
        self.attn_norm = nnx.List([RMSNorm(cfg.dim, param_dtype=param_dtype) for _ in range(2)])
        self.mlp_norm = nnx.List([RMSNorm(cfg.dim, param_dtype=param_dtype) for _ in range(2)])
        self.mlp = nnx.List([SwiGLU(cfg.dim, cfg.mlp_dim, **kw) for _ in range(2)])

    def __call__(self, xs: tuple[jax.Array, jax.Array], mask_bnn: jax.Array):
        attn = self.attn([norm(x) for x, norm in zip(xs, self.attn_norm)], mask_bnn)
        xs = [x + a for x, a in zip(xs, attn)]
        return tuple(x + mlp(norm(x)).astype(jnp.float32) for x, norm, mlp in zip(xs, self.mlp_norm, self.mlp))


class InContextMMDiT(nnx.Module):
    def __init__(self, cfg: InContextConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        if not isinstance(cfg, InContextConfig):
            raise TypeError(f"InContextMMDiT: cfg must be an InContextConfig, got {type(cfg).__name__}")
        self.config = cfg
        dtype = jnp.dtype(cfg.dtype)
        d, p = cfg.dim, cfg.patch_size
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.x_embedder = PatchEmbed(p, cfg.in_channels, d, **kw)
        self.ctx_embedder = dense(cfg.ctx_dim, d, ("ctx", "embed"), **kw)
        self.cond_embedder = CondEmbedding(d, cfg.cond_vars, rngs=rngs, param_dtype=param_dtype)
        self.blocks = stacked(cfg.depth, lambda r: InContextBlock(cfg, rngs=r, dtype=dtype, param_dtype=param_dtype),
                              rngs)
        self.final_norm = RMSNorm(d, param_dtype=param_dtype)
        self.final_linear = dense(d, p * p * cfg.out_ch, ("embed", "patch"), kernel_init=nnx.initializers.zeros_init(),
                                  **kw)

    def __call__(self, x: jax.Array, t: jax.Array, ctx: jax.Array, *, ctx_mask: jax.Array | None = None,
                 drop: jax.Array | None = None, cond: Mapping[str, jax.Array] | None = None,
                 tread_rate: float = 0.0, rng: jax.Array | None = None) -> jax.Array:
        cfg = self.config
        no_routing("InContextMMDiT", tread_rate)
        ctx, ctx_mask = check_inputs("InContextMMDiT", cfg, x, t, ctx, ctx_mask)
        b, p = x.shape[0], cfg.patch_size
        h, w = x.shape[1] // p, x.shape[2] // p
        img = self.x_embedder(x) + jnp.asarray(sincos_2d(h, w, cfg.dim))[None]  # (B, L, D)
        vals = self.cond_embedder.values(t, cond, "InContextMMDiT")
        # one token per conditioning variable present, prepended to the text: (B, V, D)
        tok = jnp.stack([self.cond_embedder.embed[n](vals[n]) for n in cfg.cond_vars if n in vals], axis=1)
        txt = jnp.concatenate([tok, self.ctx_embedder(ctx.astype(jnp.float32)).astype(jnp.float32)], axis=1)
        txt_keys = jnp.concatenate([jnp.ones(tok.shape[:2], bool), text_keys(ctx_mask, drop)], axis=1)
        keys = jnp.concatenate([jnp.ones(img.shape[:2], bool), txt_keys], axis=1)
        mask = joint_mask((h * w, txt.shape[1]), causal=cfg.causal, cross=cfg.cross_modal, key_valid=keys)
        img, txt = scan_layers(self.blocks, (img, txt), lambda blk, xs, _: blk(xs, mask), unrolled=not cfg.scan)
        return unpatchify(self.final_linear(self.final_norm(img)).astype(jnp.float32), p, h, w)


def param_count(cfg: InContextConfig) -> int:
    d, p = cfg.dim, cfg.patch_size
    blocks = cfg.depth * 2 * _modality_params(d, cfg.mlp_dim, cfg.head_dim, adaln=False)
    embeds = _linear(p * p * cfg.in_channels, d) + _linear(cfg.ctx_dim, d) + cond_params(d, len(cfg.cond_vars))
    return blocks + embeds + d + _linear(d, p * p * cfg.out_ch)


def flops_per_image(cfg: InContextConfig, height: int, width: int, ctx_len: int = 1, tread_rate: float = 0.0) -> int:
    """Forward FLOPs with ctx_len text tokens plus one token per conditioning variable."""
    p, d = cfg.patch_size, cfg.dim
    if height % p or width % p:
        raise ValueError(f"flops_per_image: {height}x{width} is not a multiple of patch_size={p}")
    if tread_rate:
        raise ValueError("flops_per_image: InContextMMDiT has no token routing (tread_rate must be 0)")
    n, v = (height // p) * (width // p), len(cfg.cond_vars)
    f = cfg.depth * joint_block_flops(d, cfg.mlp_dim, (n, ctx_len + v), adaln=False)
    f += 2 * n * p * p * cfg.in_channels * d + 2 * ctx_len * cfg.ctx_dim * d
    return int(f + v * 2 * (FREQ_DIM * d + d * d) + 2 * n * d * p * p * cfg.out_ch)
