"""MMDiT (SD3 / SD3.5 style, as mmdit_jax describes it): two modalities — image patches and
text tokens — each with its own weights (qkv, QK RMSNorm, output, SwiGLU MLP, adaLN-Zero
modulation), attending jointly over the concatenation of both modalities' tokens under a
boolean mask (ouro.nn.masks: per-modality causal or full, joint or blocked between
modalities, text padding). Several scalar conditioning variables (`cond_vars`, e.g. t and
r) are each embedded (sinusoidal -> MLP) and SUMMED into the conditioning vector c; a
variable absent from a call contributes nothing. Gates and the final layer are
zero-initialised: every block starts as the identity, the output is exactly 0.

Text: ctx (B, T, C_ctx) per-token states with ctx_mask (B, T) (True = real token); a pooled
embedding is a 1-token text. The null condition (drop=True) is the EMPTY text: every text key
masked, so no image token sees the text.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.denoiser import no_routing
from ouro.model.dit import FREQ_DIM, FinalLayer, TimestepEmbedder, bad_field, check_width
from ouro.config import checked
from ouro.nn.adaln_zero import AdaLNZero, layer_norm, modulate
from ouro.nn.embed import PatchEmbed, unpatchify
from ouro.nn.joint_attention import JointAttention
from ouro.nn.linear import dense
from ouro.nn.masks import joint_mask
from ouro.nn.mlp import SwiGLU
from ouro.nn.posemb import sincos_2d
from ouro.nn.stack import scan_layers, stacked


@checked(in_channels=">=1", out_channels=">=1", patch_size=">=1", dim=">=1", depth=">=1", heads=">=1",
         mlp_dim=">=1", ctx_dim=">=1")
@dataclasses.dataclass(frozen=True)
class MMDiTConfig:
    name: str = "custom"
    in_channels: int = 4  # SDXL-VAE latents
    out_channels: int | None = None  # None = in_channels (v-prediction)
    patch_size: int = 2  # p=2 on latents (SD3)
    dim: int = 768  # width D of both modalities
    depth: int = 12  # joint blocks
    heads: int = 12  # attention heads
    mlp_dim: int = 2048  # SwiGLU hidden (~8/3 D keeps the MLP's parameters at DiT's 4D GELU)
    ctx_dim: int = 640  # text token width (Gemma-3 270M hidden size)
    cond_vars: tuple[str, ...] = ("t",)  # scalar conditioning variables, embedded and summed
    causal: tuple[bool, bool] = (False, False)  # (image, text) causal within the modality
    cross_modal: bool = True  # False blocks attention between the modalities (ablations)
    # which batch field is the text: "pooled" = "ctx" (B, 1, C) as a 1-token text (what the
    # digits and today's shards carry); "tokens" = "ctx_tokens" (B, T, C) + "ctx_mask" (B, T)
    # from ouro.text.embed_tokens
    text_input: Literal["pooled", "tokens"] = "pooled"
    dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype; params stay float32
    scan: bool = True  # stacked blocks via scan (False: Python loop, same weights)

    def __post_init__(self):  # after @checked's per-field types, Literals and ranges
        check_width(self)
        if not self.cond_vars or self.cond_vars[0] != "t" or len(set(self.cond_vars)) != len(self.cond_vars):
            bad_field(self, "cond_vars", "must start with 't' and name each variable once")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def out_ch(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def condition_input(self) -> str:
        """The batch field this model reads as ctx (ouro.denoiser)."""
        return "ctx_tokens" if self.text_input == "tokens" else "ctx"


PRESETS: dict[str, MMDiTConfig] = {
    "mmdit-tiny": MMDiTConfig(name="mmdit-tiny", dim=64, depth=2, heads=2, mlp_dim=176),
    "mmdit-small": MMDiTConfig(name="mmdit-small", dim=384, depth=12, heads=6, mlp_dim=1024),
    "mmdit-base": MMDiTConfig(name="mmdit-base", dim=768, depth=12, heads=12, mlp_dim=2048),
    "mmdit-large": MMDiTConfig(name="mmdit-large", dim=1024, depth=24, heads=16, mlp_dim=2816),
}


def check_inputs(name: str, cfg, x, t, ctx, ctx_mask):
    """Shared argument checks of the joint-attention families; returns (ctx, ctx_mask)."""
    if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
        raise ValueError(f"{name}: x must be (B, H, W, {cfg.in_channels}), got {x.shape}")
    b, height, width, _ = x.shape
    if height % cfg.patch_size or width % cfg.patch_size:
        raise ValueError(f"{name}: H, W = {height}, {width} must be multiples of patch_size={cfg.patch_size}")
    if t.shape != (b,):
        raise ValueError(f"{name}: t must have shape ({b},), got {t.shape}")
    if ctx.ndim == 2:
        ctx = ctx[:, None, :]  # a pooled embedding is a one-token text
    if ctx.ndim != 3 or ctx.shape[0] != b or ctx.shape[2] != cfg.ctx_dim:
        raise ValueError(f"{name}: ctx must be (B={b}, T, ctx_dim={cfg.ctx_dim}), got {ctx.shape}")
    if ctx_mask is None:
        ctx_mask = jnp.ones(ctx.shape[:2], bool)
    if ctx_mask.shape != ctx.shape[:2]:
        raise ValueError(f"{name}: ctx_mask must be (B, T) = {ctx.shape[:2]}, got {ctx_mask.shape}")
    return ctx, ctx_mask.astype(bool)


def text_keys(ctx_mask, drop):
    """(B, T) valid text keys: padding removed, and every text key of a dropped sample (CFG's
    empty text)."""
    return ctx_mask if drop is None else ctx_mask & ~drop[:, None]


class CondEmbedding(nnx.Module):
    """One sinusoidal->MLP embedder per conditioning variable, summed (absent ones add 0)."""

    def __init__(self, dim: int, names: tuple[str, ...], *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.names = names
        self.embed = nnx.Dict({n: TimestepEmbedder(dim, rngs=rngs, param_dtype=param_dtype) for n in names})

    def values(self, t: jax.Array, cond: Mapping[str, jax.Array] | None, where: str) -> dict[str, jax.Array]:
        extra = dict(cond or {})
        unknown = sorted(set(extra) - set(self.names[1:]))
        if unknown:
            raise ValueError(f"{where}: unknown conditioning variable(s) {unknown}; configured cond_vars={self.names}")
        return {"t": t, **extra}

    def __call__(self, t: jax.Array, cond: Mapping[str, jax.Array] | None, where: str) -> jax.Array:
        vals = self.values(t, cond, where)
        return sum(self.embed[n](vals[n]) for n in self.names if n in vals)  # (B, D)


class MMDiTBlock(nnx.Module):
    def __init__(self, cfg: MMDiTConfig, *, rngs: nnx.Rngs, dtype, param_dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.attn = JointAttention(cfg.dim, cfg.heads, 2, **kw)
        self.mlp = nnx.List([SwiGLU(cfg.dim, cfg.mlp_dim, **kw) for _ in range(2)])
        self.adaLN_modulation = nnx.List([AdaLNZero(cfg.dim, 6, rngs=rngs, param_dtype=param_dtype) for _ in range(2)])

    def __call__(self, xs: tuple[jax.Array, jax.Array], c_bd: jax.Array, mask_bnn: jax.Array):
        mods = [ada(c_bd) for ada in self.adaLN_modulation]  # per modality: 6 x (B, D)
        hs = [modulate(layer_norm(x), m[0], m[1]) for x, m in zip(xs, mods)]
        attn = self.attn(hs, mask_bnn)
        out = []
        for x, a, m, mlp in zip(xs, attn, mods, self.mlp):
            x = x + m[2][:, None] * a
            x = x + m[5][:, None] * mlp(modulate(layer_norm(x), m[3], m[4])).astype(jnp.float32)
            out.append(x)
        return tuple(out)


class MMDiT(nnx.Module):
    def __init__(self, cfg: MMDiTConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        if not isinstance(cfg, MMDiTConfig):
            raise TypeError(f"MMDiT: cfg must be an MMDiTConfig, got {type(cfg).__name__}")
        self.config = cfg
        dtype = jnp.dtype(cfg.dtype)
        d, p = cfg.dim, cfg.patch_size
        self.x_embedder = PatchEmbed(p, cfg.in_channels, d, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.ctx_embedder = dense(cfg.ctx_dim, d, ("ctx", "embed"), rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.cond_embedder = CondEmbedding(d, cfg.cond_vars, rngs=rngs, param_dtype=param_dtype)
        self.blocks = stacked(cfg.depth, lambda r: MMDiTBlock(cfg, rngs=r, dtype=dtype, param_dtype=param_dtype), rngs)
        self.final_layer = FinalLayer(d, p * p * cfg.out_ch, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, x: jax.Array, t: jax.Array, ctx: jax.Array, *, ctx_mask: jax.Array | None = None,
                 drop: jax.Array | None = None, cond: Mapping[str, jax.Array] | None = None,
                 tread_rate: float = 0.0, rng: jax.Array | None = None) -> jax.Array:
        """x (B, H, W, C_in), t (B,), ctx (B, T, ctx_dim) [+ ctx_mask (B, T)] -> v (B, H, W, C_out)."""
        cfg = self.config
        no_routing("MMDiT", tread_rate)
        ctx, ctx_mask = check_inputs("MMDiT", cfg, x, t, ctx, ctx_mask)
        p = cfg.patch_size
        h, w = x.shape[1] // p, x.shape[2] // p
        img = self.x_embedder(x) + jnp.asarray(sincos_2d(h, w, cfg.dim))[None]  # (B, L, D)
        txt = self.ctx_embedder(ctx.astype(jnp.float32)).astype(jnp.float32)  # (B, T, D)
        c_bd = self.cond_embedder(t, cond, "MMDiT")  # (B, D)
        keys = jnp.concatenate([jnp.ones(img.shape[:2], bool), text_keys(ctx_mask, drop)], axis=1)
        mask = joint_mask((h * w, ctx.shape[1]), causal=cfg.causal, cross=cfg.cross_modal, key_valid=keys)
        img, txt = scan_layers(self.blocks, (img, txt), lambda blk, xs, _: blk(xs, c_bd, mask), unrolled=not cfg.scan)
        return unpatchify(self.final_layer(img, c_bd), p, h, w)  # (B, H, W, C_out)


# -- the model's own accounting ------------------------------------------------------------

def _linear(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out


def _modality_params(d: int, m: int, head_dim: int, adaln: bool) -> int:
    n = _linear(d, 3 * d) + 2 * head_dim + _linear(d, d) + _linear(d, 2 * m) + _linear(m, d)
    return n + (_linear(d, 6 * d) if adaln else 2 * d)  # adaLN-Zero, or two RMSNorm weights


def cond_params(d: int, n_vars: int) -> int:
    return n_vars * (_linear(FREQ_DIM, d) + _linear(d, d))


def param_count(cfg: MMDiTConfig) -> int:
    d, p = cfg.dim, cfg.patch_size
    blocks = cfg.depth * 2 * _modality_params(d, cfg.mlp_dim, cfg.head_dim, adaln=True)
    embeds = _linear(p * p * cfg.in_channels, d) + _linear(cfg.ctx_dim, d) + cond_params(d, len(cfg.cond_vars))
    final = _linear(d, 2 * d) + _linear(d, p * p * cfg.out_ch)
    return blocks + embeds + final


def joint_block_flops(d: int, m: int, lengths: tuple[int, ...], adaln: bool) -> int:
    """One joint block: per-modality projections + MLP, attention over all tokens."""
    n = sum(lengths)
    f = sum(2 * l * d * 3 * d + 2 * l * d * d + 2 * l * d * 2 * m + 2 * l * m * d for l in lengths)
    f += 2 * 2 * n * n * d  # scores and values over the joint sequence
    return f + (len(lengths) * 2 * d * 6 * d if adaln else 0)


def flops_per_image(cfg: MMDiTConfig, height: int, width: int, ctx_len: int = 1, tread_rate: float = 0.0) -> int:
    """Forward FLOPs for one image with ctx_len text tokens (2 per multiply-add)."""
    p, d = cfg.patch_size, cfg.dim
    if height % p or width % p:
        raise ValueError(f"flops_per_image: {height}x{width} is not a multiple of patch_size={p}")
    if tread_rate:
        raise ValueError("flops_per_image: MMDiT has no token routing (tread_rate must be 0)")
    n = (height // p) * (width // p)
    f = cfg.depth * joint_block_flops(d, cfg.mlp_dim, (n, ctx_len), adaln=True)
    f += 2 * n * p * p * cfg.in_channels * d + 2 * ctx_len * cfg.ctx_dim * d  # embed image, text
    f += len(cfg.cond_vars) * 2 * (FREQ_DIM * d + d * d) + 2 * d * 2 * d + 2 * n * d * p * p * cfg.out_ch
    return int(f)
