"""DiT (Peebles & Xie 2023, "Scalable Diffusion Models with Transformers"), in the form
jax-flow trains with rectified flow: patch embed + fixed 2-D sin-cos positions, timestep
embedding, N adaLN-Zero blocks (LayerNorm without affine, multi-head self-attention with
qkv bias, GELU-tanh MLP of ratio 4), an adaptive final layer. Gates and the final layer
are zero-initialised: every block starts as the identity and the output is exactly 0.

Conditioning (`cond`): "class" = a label table with one extra row, the learned NULL class
(index num_classes), ctx is int (B,) labels; "text" = a pooled text embedding (B, 1, C_ctx)
projected into the conditioning vector, the null condition a learned vector. Either way the
conditioning vector is c = t_emb + y_emb, and `drop` selects the null for CFG.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.denoiser import no_extra_cond, no_routing
from ouro.config import ConfigError, checked
from ouro.nn.adaln_zero import AdaLNZero, layer_norm, modulate
from ouro.nn.embed import PatchEmbed, timestep_features, unpatchify
from ouro.nn.linear import axes, dense
from ouro.nn.mlp import GeluMLP
from ouro.nn.posemb import sincos_2d
from ouro.nn.stack import scan_layers, stacked

FREQ_DIM = 256  # DiT's frequency_embedding_size


def bad_field(cfg, field: str, why: str) -> None:
    """Raise the one-line ConfigError for a cross-field check (`ouro train model.dim=...`
    prints it and exits 2)."""
    raise ConfigError(f"{field}={getattr(cfg, field)!r}: {why}", key=field)


def check_width(cfg) -> None:
    """What every sin-cos patch transformer (DiT, MMDiT) needs of its width."""
    if cfg.dim % cfg.heads:
        bad_field(cfg, "dim", f"must be a multiple of heads={cfg.heads}")
    if cfg.dim % 4:
        bad_field(cfg, "dim", "must be a multiple of 4 (2-D sin-cos positions)")


@checked(in_channels=">=1", out_channels=">=1", patch_size=">=1", dim=">=1", depth=">=1", heads=">=1",
         mlp_ratio=">0", ctx_dim=">=1", num_classes=">=1")
@dataclasses.dataclass(frozen=True)
class DiTConfig:
    name: str = "custom"
    in_channels: int = 4  # SDXL-VAE latents
    out_channels: int | None = None  # None = in_channels (v-prediction; DiT's learn_sigma doubles it)
    patch_size: int = 2  # DiT-*/2
    dim: int = 768  # hidden size D
    depth: int = 12  # number of blocks
    heads: int = 12  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden = mlp_ratio * D (DiT)
    cond: Literal["text", "class"] = "text"  # ouro's datasets carry pooled Gemma-3 embeddings
    ctx_dim: int = 640  # pooled text width (cond="text")
    num_classes: int = 1000  # label table size without the null row (cond="class"; ImageNet)
    dtype: Literal["float32", "bfloat16"] = "float32"  # compute dtype; params stay float32
    scan: bool = True  # stacked blocks via scan (False: Python loop, same weights)

    def __post_init__(self):  # after @checked's per-field types, Literals and ranges
        check_width(self)

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def mlp_dim(self) -> int:
        return int(self.dim * self.mlp_ratio)

    @property
    def out_ch(self) -> int:
        return self.in_channels if self.out_channels is None else self.out_channels

    @property
    def condition_input(self) -> str:
        """The batch field this model reads as ctx (ouro.denoiser)."""
        return "label" if self.cond == "class" else "ctx"


# jax-flow's sizes (debug, big = DiT-B, semilarge, large = DiT-L, xlarge = DiT-XL), mlp ratio 4
PRESETS: dict[str, DiTConfig] = {
    "dit-debug": DiTConfig(name="dit-debug", dim=64, depth=2, heads=2),
    "dit-big": DiTConfig(name="dit-big", dim=768, depth=12, heads=12),
    "dit-semilarge": DiTConfig(name="dit-semilarge", dim=1024, depth=22, heads=16),
    "dit-large": DiTConfig(name="dit-large", dim=1024, depth=24, heads=16),
    "dit-xlarge": DiTConfig(name="dit-xlarge", dim=1152, depth=28, heads=16),
}


class Attention(nnx.Module):
    """timm Attention as DiT uses it: fused qkv with bias, scale 1/sqrt(head_dim), out proj."""

    def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32):
        self.heads, self.dtype = heads, dtype
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.qkv = dense(dim, 3 * dim, ("embed", "heads"), **kw)
        self.proj = dense(dim, dim, ("heads", "embed"), **kw)

    def __call__(self, x_bld: jax.Array) -> jax.Array:
        b, l, d = x_bld.shape
        qkv = self.qkv(x_bld.astype(self.dtype)).reshape(b, l, 3, self.heads, d // self.heads)  # (B, L, 3, N, H)
        o = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2])  # (B, L, N, H)
        return self.proj(o.reshape(b, l, d))


class DiTBlock(nnx.Module):
    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs, dtype, param_dtype):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.attn = Attention(cfg.dim, cfg.heads, **kw)
        self.mlp = GeluMLP(cfg.dim, cfg.mlp_dim, **kw)
        self.adaLN_modulation = AdaLNZero(cfg.dim, 6, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, x_bld: jax.Array, c_bd: jax.Array) -> jax.Array:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c_bd)
        x = x_bld + gate_a[:, None] * self.attn(modulate(layer_norm(x_bld), shift_a, scale_a)).astype(jnp.float32)
        return x + gate_m[:, None] * self.mlp(modulate(layer_norm(x), shift_m, scale_m)).astype(jnp.float32)


class FinalLayer(nnx.Module):
    """LayerNorm -> adaLN (shift, scale; zero-init) -> Linear(D, p*p*C_out), zero-init."""

    def __init__(self, dim: int, patch_out: int, *, rngs: nnx.Rngs, dtype, param_dtype):
        self.adaLN_modulation = AdaLNZero(dim, 2, rngs=rngs, param_dtype=param_dtype)
        self.linear = dense(dim, patch_out, ("embed", "patch"), kernel_init=nnx.initializers.zeros_init(),
                            rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, x_bld: jax.Array, c_bd: jax.Array) -> jax.Array:
        shift, scale = self.adaLN_modulation(c_bd)
        return self.linear(modulate(layer_norm(x_bld), shift, scale)).astype(jnp.float32)


class TimestepEmbedder(nnx.Module):
    """t in [0, 1] -> 256 sinusoidal features of 1000 t -> Linear -> SiLU -> Linear (DiT)."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        self.fc1 = dense(FREQ_DIM, dim, (None, "embed"), rngs=rngs, param_dtype=param_dtype)
        self.fc2 = dense(dim, dim, ("embed", None), rngs=rngs, param_dtype=param_dtype)

    def __call__(self, t_b: jax.Array) -> jax.Array:
        return self.fc2(jax.nn.silu(self.fc1(timestep_features(t_b, FREQ_DIM))))


class DiT(nnx.Module):
    def __init__(self, cfg: DiTConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        if not isinstance(cfg, DiTConfig):
            raise TypeError(f"DiT: cfg must be a DiTConfig, got {type(cfg).__name__}")
        self.config = cfg
        dtype = jnp.dtype(cfg.dtype)
        d, p = cfg.dim, cfg.patch_size
        self.x_embedder = PatchEmbed(p, cfg.in_channels, d, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.t_embedder = TimestepEmbedder(d, rngs=rngs, param_dtype=param_dtype)
        emb_init = nnx.initializers.normal(stddev=0.02)  # DiT's label-table init
        if cfg.cond == "class":  # row num_classes is the learned null class
            self.y_embedder = nnx.Embed(cfg.num_classes + 1, d, embedding_init=emb_init,
                                        param_dtype=param_dtype, embedding_metadata=axes(None, "embed"), rngs=rngs)
        else:
            self.y_embedder = dense(cfg.ctx_dim, d, ("ctx", "embed"), rngs=rngs, param_dtype=param_dtype)
            self.null_y = nnx.Param(emb_init(rngs.params(), (d,), param_dtype), **axes("embed"))
        self.blocks = stacked(cfg.depth, lambda r: DiTBlock(cfg, rngs=r, dtype=dtype, param_dtype=param_dtype), rngs)
        self.final_layer = FinalLayer(d, p * p * cfg.out_ch, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def _label_embedding(self, ctx: jax.Array, drop: jax.Array | None, b: int) -> jax.Array:
        cfg = self.config
        if cfg.cond == "class":
            if ctx.shape != (b,) or not jnp.issubdtype(ctx.dtype, jnp.integer):
                raise ValueError(f"DiT(cond='class'): ctx must be int labels of shape ({b},), got "
                                 f"{ctx.dtype}{tuple(ctx.shape)}")
            labels = ctx if drop is None else jnp.where(drop, cfg.num_classes, ctx)
            return self.y_embedder(labels).astype(jnp.float32)
        if ctx.ndim == 3:  # (B, 1, C) pooled embedding as one context token
            if ctx.shape[1] != 1:
                raise ValueError(f"DiT(cond='text'): takes one pooled embedding, got {ctx.shape[1]} tokens")
            ctx = ctx[:, 0]
        if ctx.shape != (b, cfg.ctx_dim):
            raise ValueError(f"DiT(cond='text'): ctx must be (B={b}, 1, ctx_dim={cfg.ctx_dim}), got {ctx.shape}")
        y = self.y_embedder(ctx.astype(jnp.float32))
        if drop is not None:
            y = jnp.where(drop[:, None], self.null_y[...][None, :], y)
        return y

    def __call__(self, x: jax.Array, t: jax.Array, ctx: jax.Array, *, ctx_mask: jax.Array | None = None,
                 drop: jax.Array | None = None, cond: Mapping[str, jax.Array] | None = None,
                 tread_rate: float = 0.0, rng: jax.Array | None = None) -> jax.Array:
        """x (B, H, W, C_in), t (B,), ctx (B,) int labels or (B, 1, ctx_dim) -> v (B, H, W, C_out)."""
        cfg = self.config
        no_routing("DiT", tread_rate)
        no_extra_cond("DiT", cond)
        if ctx_mask is not None:
            raise ValueError("DiT: ctx_mask is not supported (one pooled condition per image)")
        if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
            raise ValueError(f"DiT: x must be (B, H, W, {cfg.in_channels}), got {x.shape}")
        b, height, width, _ = x.shape
        p = cfg.patch_size
        if height % p or width % p:
            raise ValueError(f"DiT: H, W = {height}, {width} must be multiples of patch_size={p}")
        if t.shape != (b,):
            raise ValueError(f"DiT: t must have shape ({b},), got {t.shape}")
        h, w = height // p, width // p
        pos = jnp.asarray(sincos_2d(h, w, cfg.dim))
        x_bld = self.x_embedder(x) + pos[None]  # (B, L, D)
        c_bd = self.t_embedder(t) + self._label_embedding(ctx, drop, b)  # (B, D)
        x_bld = scan_layers(self.blocks, x_bld, lambda blk, x_, _: blk(x_, c_bd), unrolled=not cfg.scan)
        return unpatchify(self.final_layer(x_bld, c_bd), p, h, w)  # (B, H, W, C_out)


# -- the model's own accounting ------------------------------------------------------------

def _linear(d_in: int, d_out: int) -> int:
    return d_in * d_out + d_out  # every DiT Linear has a bias


def param_count(cfg: DiTConfig) -> int:
    d, m, p = cfg.dim, cfg.mlp_dim, cfg.patch_size
    block = _linear(d, 3 * d) + _linear(d, d) + _linear(d, m) + _linear(m, d) + _linear(d, 6 * d)
    cond = (cfg.num_classes + 1) * d if cfg.cond == "class" else _linear(cfg.ctx_dim, d) + d
    embeds = _linear(p * p * cfg.in_channels, d) + _linear(FREQ_DIM, d) + _linear(d, d) + cond
    final = _linear(d, 2 * d) + _linear(d, p * p * cfg.out_ch)
    return cfg.depth * block + embeds + final


def flops_per_image(cfg: DiTConfig, height: int, width: int, ctx_len: int = 1, tread_rate: float = 0.0) -> int:
    """Forward FLOPs (2 per multiply-add, attention scores and values included) for one
    image; the conditioning MLPs run once per image. ctx_len is ignored (one pooled condition)."""
    p, d, m = cfg.patch_size, cfg.dim, cfg.mlp_dim
    if height % p or width % p:
        raise ValueError(f"flops_per_image: {height}x{width} is not a multiple of patch_size={p}")
    if tread_rate:
        raise ValueError("flops_per_image: DiT has no token routing (tread_rate must be 0)")
    n = (height // p) * (width // p)
    block = 2 * n * d * 3 * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * n * d * m * 2 + 2 * d * 6 * d
    cond = 2 * (FREQ_DIM * d + d * d) + (0 if cfg.cond == "class" else 2 * cfg.ctx_dim * d)
    io = 2 * n * p * p * cfg.in_channels * d + 2 * d * 2 * d + 2 * n * d * p * p * cfg.out_ch
    return int(cfg.depth * block + cond + io)
