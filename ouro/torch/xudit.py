"""XUDiT in PyTorch as a diffusers model: the same network as ouro/model/xudit.py (JAX), with
HDM's parameter names, so its state dict IS HDM's `XUDiT` layout (docs/xut.md).

    model = XUDiTTransformer2DModel(dim=128, mlp_dim=384, head_dim=32, depth=2, ...)
    v = model(x_bchw, t_b, ctx_btc).sample          # t in [0, 1], t = 1 is noise; v = eps - x0

This file imports only torch and diffusers and is self-contained: `ouro export --to diffusers`
copies it into the exported folder (transformer/xudit.py), so the folder loads where ouro is
not installed. Read top to bottom: RoPE -> attention -> block -> backbones -> the model.

HDM state-dict names (what `load_state_dict(strict=True)` of HDM's XUDiT takes):
  in_patch.proj (Conv2d) · time_emb.freqs (buffer) + time_emb.proj.0 · addon_info_embs_proj.{0,2}
  shared_adaln_{attn,xattn,ffw}.{0: LayerNorm, 1, 3} · ctx_proj · out_patch.proj
  prev_tread_trns.blocks.J / post_tread_trns.blocks.J / backbone.enc_blocks.I.J /
  backbone.dec_blocks.I.J, each block: {attn,xattn,mlp}_pre_norm.norm.weight, attn.qkv,
  attn.out, attn.rope.freqs, xattn.q, xattn.kv, xattn.out, xattn.rope.freqs, mlp.w12, mlp.w3.

HDM calling conventions that differ from ouro's are options, default = ouro's:
  positions_at="latent": a `pos_map` is given per latent pixel and downsampled to the token
    grid with antialiased bilinear interpolation (HDM's PatchEmbed; moves the border tokens'
    positions ~0.013 inward). Default "tokens": `pos_map` is per token, as ouro's.
  tread_zero_falls_back=True: `tread_rate=0.0` is falsy and routes at `tread_rate_default`
    (HDM's `tread_rate or dropout_ratio`). Default False: 0 (or None) means no routing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

MIN_FREQ, MAX_FREQ = math.pi, 5 * math.pi  # RoPE log-frequency init range (HDM freqs_pixel_log(10))


def axial_positions(h: int, w: int, device=None) -> torch.Tensor:
    """(h*w, 2) [y, x] bin centres of a row-major grid; the long side spans [-1, 1]."""
    long = max(h, w)

    def centres(n: int, half: float) -> torch.Tensor:
        edges = torch.linspace(-half, half, n + 1, dtype=torch.float64)
        return ((edges[:-1] + edges[1:]) / 2).float()

    ys, xs = centres(h, h / long), centres(w, w / long)
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)  # (h, w, 2)
    return grid.reshape(h * w, 2).to(device)


class AxialRoPE(nn.Module):
    """Learnable log-frequencies (heads, head_dim/4, 2); pair p of a head turns by
    pos[p % 2] * exp(freqs[n, p // 2, p % 2]): the full head_dim is rotated."""

    def __init__(self, heads: int, head_dim: int):
        super().__init__()
        log_f = torch.linspace(math.log(MIN_FREQ), math.log(MAX_FREQ), head_dim // 4)
        self.freqs = nn.Parameter(log_f[None, :, None].repeat(heads, 1, 2))

    def forward(self, x_bnlh: torch.Tensor, pos_bl2: torch.Tensor) -> torch.Tensor:
        b, n, l, h = x_bnlh.shape
        angles = pos_bl2.float()[:, :, None, None, :] * self.freqs.float().exp()  # (B, L, N, H/4, 2)
        angles = angles.reshape(pos_bl2.shape[0], l, n, h // 2).transpose(1, 2)  # (B, N, L, H/2)
        cos, sin = angles.cos(), angles.sin()
        pairs = x_bnlh.float().reshape(b, n, l, h // 2, 2)
        x0, x1 = pairs[..., 0], pairs[..., 1]
        out = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1)
        return out.reshape(b, n, l, h).to(x_bnlh.dtype)


def _heads(x_bld: torch.Tensor, n: int) -> torch.Tensor:
    b, l, d = x_bld.shape
    return x_bld.reshape(b, l, n, d // n).transpose(1, 2)  # (B, N, L, H)


def _merge(o_bnlh: torch.Tensor) -> torch.Tensor:
    b, n, l, h = o_bnlh.shape
    return o_bnlh.transpose(1, 2).reshape(b, l, n * h)  # (B, L, D)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.heads = dim // head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.rope = AxialRoPE(self.heads, head_dim)

    def forward(self, x_bld, pos_bl2):
        q, k, v = (_heads(a, self.heads) for a in self.qkv(x_bld).chunk(3, dim=-1))
        q, k = self.rope(q, pos_bl2), self.rope(k, pos_bl2)
        return self.out(_merge(F.scaled_dot_product_attention(q, k, v)))


class CrossAttention(nn.Module):
    """XUT's decoder cross-attention: keys/values from the encoder output, which shares x's
    token set and positions."""

    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.heads = dim // head_dim
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.rope = AxialRoPE(self.heads, head_dim)

    def forward(self, x_bld, ctx_bld, pos_bl2):
        q = self.rope(_heads(self.q(x_bld), self.heads), pos_bl2)
        k, v = (_heads(a, self.heads) for a in self.kv(ctx_bld).chunk(2, dim=-1))
        k = self.rope(k, pos_bl2)
        return self.out(_merge(F.scaled_dot_product_attention(q, k, v)))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, mlp_dim: int):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * mlp_dim)
        self.w3 = nn.Linear(mlp_dim, dim)

    def forward(self, x):
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class PreNorm(nn.Module):
    """HDM's AdaLN(shared=True): only an RMSNorm weight; the modulation is the model's."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=1e-6)


def _modulated(x, pre: PreNorm, mod, f):
    """h = RMSNorm(x)(1 + scale) + shift; x = h + (1 + gate) f(h)  (shared AdaLN, HDM)."""
    scale, shift, gate = mod  # each (B, 1, D)
    h = pre.norm(x) * (1 + scale) + shift
    return h + (1 + gate) * f(h)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, head_dim: int, mlp_dim: int, cross: bool = False):
        super().__init__()
        self.attn_pre_norm, self.attn = PreNorm(dim), SelfAttention(dim, head_dim)
        if cross:
            self.xattn_pre_norm, self.xattn = PreNorm(dim), CrossAttention(dim, head_dim)
        else:
            self.xattn = None
        self.mlp_pre_norm, self.mlp = PreNorm(dim), SwiGLU(dim, mlp_dim)

    def forward(self, x, pos, mods, ctx=None):
        x = _modulated(x, self.attn_pre_norm, mods[0], lambda h: self.attn(h, pos))
        if self.xattn is not None:
            x = _modulated(x, self.xattn_pre_norm, mods[1], lambda h: self.xattn(h, ctx, pos))
        return _modulated(x, self.mlp_pre_norm, mods[2], self.mlp)


class TBackBone(nn.Module):
    def __init__(self, dim, head_dim, mlp_dim, depth):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, head_dim, mlp_dim) for _ in range(depth))

    def forward(self, x, pos, mods):
        for blk in self.blocks:
            x = blk(x, pos, mods)
        return x


class XUTBackBone(nn.Module):
    """Encoder: depth groups of enc_blocks; decoder: depth groups of dec_blocks whose first
    block cross-attends to the encoder's last output (skip="last", HDM) or, for decoder
    group i, to encoder group depth-1-i (skip="per_level", the tech report's drawing)."""

    def __init__(self, dim, head_dim, mlp_dim, depth, enc_blocks, dec_blocks, skip="last"):
        super().__init__()
        self.skip = skip
        self.enc_blocks = nn.ModuleList(
            nn.ModuleList(TransformerBlock(dim, head_dim, mlp_dim) for _ in range(enc_blocks)) for _ in range(depth))
        self.dec_blocks = nn.ModuleList(
            nn.ModuleList(TransformerBlock(dim, head_dim, mlp_dim, cross=j == 0) for j in range(dec_blocks))
            for _ in range(depth))

    def forward(self, x, pos, mods):
        levels = []
        for group in self.enc_blocks:
            for blk in group:
                x = blk(x, pos, mods)
            levels.append(x)
        for i, group in enumerate(self.dec_blocks):
            ctx = levels[-1] if self.skip == "last" else levels[len(levels) - 1 - i]
            x = group[0](x, pos, mods, ctx)
            for blk in group[1:]:
                x = blk(x, pos, mods)
        return x


def _adaln_mlp(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.Mish(), nn.Linear(4 * dim, 3 * dim))


class TimestepEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        # a persistent buffer because HDM's state dict carries it (time_emb.freqs, (1, D/2))
        self.register_buffer("freqs", torch.exp(-math.log(1e4) * torch.arange(half, dtype=torch.float32) / half)[None])
        self.proj = nn.Sequential(nn.Linear(dim, dim), nn.Mish())

    def forward(self, t_b):
        args = (t_b.float() * 1000.0)[:, None] * self.freqs.float()  # (B, D/2)
        return self.proj(torch.cat([args.cos(), args.sin()], dim=-1))


class XUDiTTransformer2DModel(ModelMixin, ConfigMixin):
    """v = model(x, t, ctx): x (B, C, H, W), t (B,) in [0, 1] (1 = noise), ctx (B, T, ctx_dim)
    or a pooled (B, ctx_dim); returns v (B, C_out, H, W) in `.sample` (or a tuple)."""

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int | None = None,
        patch_size: int = 2,
        dim: int = 896,
        mlp_dim: int = 3072,
        head_dim: int = 64,
        depth: int = 4,
        enc_blocks: int = 1,
        dec_blocks: int = 2,
        pre_blocks: int = 1,
        post_blocks: int = 3,
        ctx_dim: int = 640,
        skip: str = "last",
        positions_at: str = "tokens",  # "latent": HDM's pos_map convention (module docstring)
        tread_rate_default: float = 0.5,  # HDM's tread_config dropout_ratio (only for the fallback)
        tread_zero_falls_back: bool = False,  # True: HDM's falsy tread_rate=0.0
        num_class_embeddings: int = 0,  # >0: a buffer of per-class context vectors (class_labels)
        sample_size: int | None = None,  # training side length of x (pixels or latents); pipelines' default
    ):
        super().__init__()
        if skip not in ("last", "per_level"):
            raise ValueError(f"XUDiTTransformer2DModel: skip must be 'last' or 'per_level', got {skip!r}")
        if positions_at not in ("tokens", "latent"):
            raise ValueError(f"XUDiTTransformer2DModel: positions_at must be 'tokens' or 'latent', got {positions_at!r}")
        out_ch = in_channels if out_channels is None else out_channels
        self.in_patch = nn.Module()
        self.in_patch.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.time_emb = TimestepEmbedding(dim)
        self.addon_info_embs_proj = nn.Sequential(nn.Linear(1, dim), nn.Mish(), nn.Linear(dim, dim))
        self.shared_adaln_attn = _adaln_mlp(dim)
        self.shared_adaln_xattn = _adaln_mlp(dim)
        self.shared_adaln_ffw = _adaln_mlp(dim)
        self.ctx_proj = nn.Linear(ctx_dim, dim)
        self.prev_tread_trns = TBackBone(dim, head_dim, mlp_dim, pre_blocks)
        self.backbone = XUTBackBone(dim, head_dim, mlp_dim, depth, enc_blocks, dec_blocks, skip)
        self.post_tread_trns = TBackBone(dim, head_dim, mlp_dim, post_blocks)
        self.out_patch = nn.Module()
        self.out_patch.proj = nn.Linear(dim, patch_size * patch_size * out_ch)
        if num_class_embeddings:
            # the run's class table (digits: caption embeddings), what class_labels index
            self.register_buffer("class_embeddings", torch.zeros(num_class_embeddings, ctx_dim))

    def _positions(self, pos_map, b, height, width, h, w, device):
        if pos_map is None:
            return axial_positions(h, w, device)[None]  # (1, L, 2): shared by the batch
        pos_map = pos_map.float().to(device)
        if pos_map.ndim == 2:
            pos_map = pos_map[None]
        if self.config.positions_at == "latent":  # HDM: per latent pixel, antialiased downsampling
            grid = pos_map.reshape(pos_map.shape[0], height, width, 2).permute(0, 3, 1, 2)
            pos_map = F.interpolate(grid, (h, w), mode="bilinear", antialias=True).permute(0, 2, 3, 1)
            pos_map = pos_map.reshape(pos_map.shape[0], h * w, 2)
        if pos_map.shape[1:] != (h * w, 2) or pos_map.shape[0] not in (1, b):
            raise ValueError(f"XUDiTTransformer2DModel: pos_map must be (B or 1, {h * w}, 2) "
                             f"(positions_at={self.config.positions_at!r}), got {tuple(pos_map.shape)}")
        return pos_map

    def _route_rate(self, tread_rate) -> float:
        if tread_rate is None:
            return 0.0
        if self.config.tread_zero_falls_back:
            return float(tread_rate or self.config.tread_rate_default)
        return float(tread_rate)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor | None = None,
        class_labels: torch.Tensor | None = None,
        pos_map: torch.Tensor | None = None,
        addon_info: torch.Tensor | None = None,
        tread_rate: float | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ):
        """`class_labels` index `class_embeddings` instead of a context; no context at all is the
        null condition (all-zero context, one token). `addon_info` (B,) overrides log(W/H).
        `tread_rate` > 0 routes a random subset of image tokens around the XUT core (TREAD,
        an inference option; off by default)."""
        cfg = self.config
        b, _, height, width = sample.shape
        p = cfg.patch_size
        h, w = height // p, width // p
        if height % p or width % p:
            raise ValueError(f"XUDiTTransformer2DModel: H, W = {height}, {width} must be multiples of patch_size={p}")
        t = torch.as_tensor(timestep, device=sample.device, dtype=torch.float32).reshape(-1).expand(b)
        if class_labels is not None:
            if not cfg.num_class_embeddings:
                raise ValueError("XUDiTTransformer2DModel: class_labels given but the model has no class_embeddings")
            encoder_hidden_states = self.class_embeddings[class_labels.long()]
        ctx = encoder_hidden_states
        if ctx is None:
            ctx = torch.zeros(b, 1, cfg.ctx_dim, device=sample.device)
        if ctx.ndim == 2:
            ctx = ctx[:, None]  # a pooled embedding is one context token
        if ctx.ndim != 3 or ctx.shape[0] != b or ctx.shape[2] != cfg.ctx_dim:
            raise ValueError(f"XUDiTTransformer2DModel: encoder_hidden_states must be (B={b}, T, {cfg.ctx_dim}), "
                             f"got {tuple(ctx.shape)}")

        log_aspect = torch.full((b,), math.log(width / height), device=sample.device) if addon_info is None \
            else addon_info.reshape(b).float()
        c = self.time_emb(t) + self.addon_info_embs_proj(log_aspect[:, None])  # (B, D)
        mods = [tuple(m[:, None] for m in mlp(c).chunk(3, dim=-1))
                for mlp in (self.shared_adaln_attn, self.shared_adaln_xattn, self.shared_adaln_ffw)]

        x = self.in_patch.proj(sample.to(self.in_patch.proj.weight.dtype)).flatten(2).transpose(1, 2)  # (B, L, D)
        n_img, n_ctx = h * w, ctx.shape[1]
        x = torch.cat([x, self.ctx_proj(ctx.to(x.dtype))], dim=1)  # (B, L+T, D)
        img_pos = self._positions(pos_map, b, height, width, h, w, sample.device)
        pos = torch.cat([img_pos, img_pos.new_zeros(img_pos.shape[0], n_ctx, 2)], dim=1).expand(b, -1, -1)

        x = self.prev_tread_trns(x, pos, mods)
        rate = self._route_rate(tread_rate)
        if rate:
            keep = max(1, int(n_img * (1.0 - rate)))
            scores = torch.rand(b, n_img, generator=generator, device="cpu" if generator is None else generator.device)
            idx = scores.to(sample.device).argsort(dim=-1)[:, :keep].sort(dim=-1).values  # (B, K) ascending
            idx = torch.cat([idx, torch.arange(n_img, n_img + n_ctx, device=sample.device).expand(b, -1)], dim=1)
            gather = lambda a: a.gather(1, idx[..., None].expand(-1, -1, a.shape[-1]))  # noqa: E731
            core = self.backbone(gather(x), gather(pos), mods)
            x = x.scatter(1, idx[..., None].expand(-1, -1, x.shape[-1]), core)
        else:
            x = self.backbone(x, pos, mods)
        x = self.post_tread_trns(x, pos, mods)

        out = self.out_patch.proj(x[:, :n_img])  # (B, L, p*p*C)
        c_out = out.shape[-1] // (p * p)
        out = out.reshape(b, h, w, p, p, c_out).permute(0, 5, 1, 3, 2, 4).reshape(b, c_out, height, width)
        return Transformer2DModelOutput(sample=out) if return_dict else (out,)
