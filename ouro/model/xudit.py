"""XUDiT: the full XUT denoiser v = model(x_t, t, ctx) (HDM `XUDiT`, docs/xut.md).

patchify -> concat context -> pre-blocks (full sequence) -> TREAD drop -> XUT encoder ->
XUT decoder -> TREAD merge -> post-blocks (full sequence) -> drop context tokens ->
final Linear -> unpatchify. Attribute names follow HDM's state dict (in_patch, time_emb,
shared_adaln_*, ctx_proj, prev_tread_trns, backbone, post_tread_trns, out_patch) so loading
its checkpoints is a name mapping (plus stacking of per-layer weights):

    HDM (torch)                              ouro (stacked on leading "layers" axes)
    backbone.enc_blocks[i][j].*              backbone.enc_blocks.blocks.*[i, j]
    backbone.dec_blocks[i][0].*              backbone.dec_blocks.first.*[i]
    backbone.dec_blocks[i][j>0].*            backbone.dec_blocks.rest.blocks.*[i, j-1]
    {prev,post}_tread_trns.blocks[j].*       {prev,post}_tread_trns.blocks.*[j]
    shared_adaln_{attn,xattn,ffw}.{0,1,3}    shared_adaln.{attn,xattn,ffw}.{norm,fc1,fc2}
    addon_info_embs_proj.{0,2}               aspect_emb.{fc1,fc2}
    Linear weight (out, in)                  kernel (in, out)
    in_patch Conv weight (D, C, p, p)        in_patch.proj.kernel (p*p*C, D): permute (2, 3, 1, 0)
"""

from __future__ import annotations

import math
from typing import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.model.backbone import TBackBone, XUTBackBone
from ouro.denoiser import no_extra_cond
from ouro.model.config import XUTConfig
from ouro.nn import tread
from ouro.nn.adaln import SharedAdaLN
from ouro.nn.embed import AspectEmbedding, PatchEmbed, TimestepEmbedding, UnPatch
from ouro.nn.linear import dense
from ouro.nn.rope import axial_positions


class XUDiT(nnx.Module):
    def __init__(self, cfg: XUTConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        if not isinstance(cfg, XUTConfig):
            raise TypeError(f"XUDiT: cfg must be an XUTConfig, got {type(cfg).__name__}")
        self.config = cfg
        dtype = jnp.dtype(cfg.dtype)
        d, p = cfg.dim, cfg.patch_size
        blk = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype, unrolled=not cfg.scan, unroll_max=cfg.scan_unroll)
        self.in_patch = PatchEmbed(p, cfg.in_channels, d, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.time_emb = TimestepEmbedding(d, rngs=rngs, param_dtype=param_dtype)
        self.aspect_emb = AspectEmbedding(d, rngs=rngs, param_dtype=param_dtype)  # HDM addon_info_embs_proj
        self.shared_adaln = SharedAdaLN(d, rngs=rngs, param_dtype=param_dtype)
        self.ctx_proj = dense(cfg.ctx_dim, d, ("ctx", "embed"), rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        top = dict(blk, remat=cfg.remat)  # remat wraps the outermost scanned layers only
        self.prev_tread_trns = TBackBone(d, cfg.head_dim, cfg.mlp_dim, cfg.pre_blocks, **top)
        self.backbone = XUTBackBone(
            d, cfg.head_dim, cfg.mlp_dim, cfg.depth, cfg.enc_blocks, cfg.dec_blocks, skip=cfg.skip, **top
        )
        self.post_tread_trns = TBackBone(d, cfg.head_dim, cfg.mlp_dim, cfg.post_blocks, **top)
        self.out_patch = UnPatch(p, d, cfg.out_ch, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def _check(self, x, t, ctx):
        cfg = self.config
        if x.ndim != 4:
            raise ValueError(f"XUDiT: x must be (B, H, W, C) NHWC, got shape {x.shape}")
        b, h, w, c = x.shape
        if c != cfg.in_channels:
            raise ValueError(f"XUDiT: x has {c} channels, config in_channels={cfg.in_channels}")
        if h % cfg.patch_size or w % cfg.patch_size:
            raise ValueError(f"XUDiT: H, W = {h}, {w} must be multiples of patch_size={cfg.patch_size}")
        if t.shape != (b,):
            raise ValueError(f"XUDiT: t must have shape (B,) = ({b},), got {t.shape}")
        if ctx.ndim == 2:
            ctx = ctx[:, None, :]  # a pooled embedding is one context token
        if ctx.ndim != 3 or ctx.shape[0] != b or ctx.shape[2] != cfg.ctx_dim or ctx.shape[1] < 1:
            raise ValueError(f"XUDiT: ctx must be (B={b}, T_ctx>=1, ctx_dim={cfg.ctx_dim}), got {ctx.shape}")
        return ctx

    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        ctx: jax.Array,
        *,
        ctx_mask: jax.Array | None = None,
        drop: jax.Array | None = None,
        cond: Mapping[str, jax.Array] | None = None,
        tread_rate: float = 0.0,
        rng: jax.Array | None = None,
        positions: jax.Array | None = None,
    ) -> jax.Array:
        """x (B, H, W, C_in) NHWC, t (B,) in [0, 1] (1 = noise), ctx (B, T_ctx, ctx_dim) or
        (B, ctx_dim) -> v (B, H, W, C_out) float32. tread_rate (static) > 0 routes tokens
        with the PRNG key `rng` (per-sample random subsets). `positions` ((L, 2) or (B, L, 2)
        [y, x] per image token, default: the full-image grid of axial_positions) lets random
        crops keep their place in the uncropped image (rope.cropped_positions).
        `drop` (B,) bool: the null condition for those samples: the all-zero context (HDM's
        CFG convention) for a pooled text, the EMPTY text (every text token masked) for
        per-token text (text_input="tokens", or whenever `ctx_mask` is given).
        `ctx_mask` (B, T) bool, True = a real text token: padding is masked out of every
        attention (self and the decoder's cross), so it cannot change the output."""
        ctx = self._check(x, t, ctx)
        no_extra_cond("XUDiT", cond)
        text_valid = None  # (B, T): None = every context token is attended
        if ctx_mask is not None or self.config.text_input == "tokens":
            text_valid = jnp.ones(ctx.shape[:2], bool) if ctx_mask is None else ctx_mask.astype(bool)
            if text_valid.shape != ctx.shape[:2]:
                raise ValueError(f"XUDiT: ctx_mask must be (B, T) = {ctx.shape[:2]}, got {ctx_mask.shape}")
            if drop is not None:
                text_valid = text_valid & ~drop[:, None]
        elif drop is not None:
            ctx = jnp.where(drop[:, None, None], jnp.zeros_like(ctx), ctx)
        if not 0.0 <= tread_rate < 1.0:
            raise ValueError(f"XUDiT: tread_rate must be in [0, 1), got {tread_rate}")
        if tread_rate and rng is None:
            raise ValueError("XUDiT: tread_rate > 0 needs rng (a jax PRNG key)")
        b, height, width, _ = x.shape
        p = self.config.patch_size
        h, w = height // p, width // p
        num_img, num_ctx = h * w, ctx.shape[1]

        # conditioning vector c (B, D) and the three shared modulations
        log_aspect = jnp.full((b,), math.log(width / height), jnp.float32)
        c_bd = self.time_emb(t) + self.aspect_emb(log_aspect)
        mod = self.shared_adaln(c_bd)

        # tokens: [image (L) | context (T)]; context tokens sit at (0, 0), i.e. unrotated
        img_bld = self.in_patch(x)
        ctx_btd = self.ctx_proj(ctx.astype(self.ctx_proj.dtype)).astype(jnp.float32)
        x_bnd = jnp.concatenate([img_bld, ctx_btd], axis=1)  # (B, L+T, D)
        if positions is None:
            positions = jnp.asarray(axial_positions(h, w))
        if positions.shape[-2:] != (num_img, 2) or positions.ndim not in (2, 3) or (
                positions.ndim == 3 and positions.shape[0] not in (1, b)):
            raise ValueError(f"XUDiT: positions must be (L, 2) or (B, L, 2) with B = {b}, L = {num_img}, "
                             f"got {positions.shape}")
        # positions shared by the batch stay (1, L, 2): RoPE's angles are computed once, not per sample
        img_pos = positions.astype(jnp.float32).reshape((-1, num_img, 2))
        pos_pn2 = jnp.concatenate([img_pos, jnp.zeros((img_pos.shape[0], num_ctx, 2), jnp.float32)], axis=1)

        # (B, L+T) valid keys: image tokens always, text tokens unless padding / dropped
        keys = None if text_valid is None else jnp.concatenate([jnp.ones((b, num_img), bool), text_valid], axis=1)

        x_bnd = self.prev_tread_trns(x_bnd, pos_pn2, mod, keys)
        if tread_rate:
            r = tread.route(rng, b, num_img, tread_rate)
            pos_bn2 = jnp.broadcast_to(pos_pn2, (b,) + pos_pn2.shape[1:])  # routes differ per sample
            core_keys = None if keys is None else tread.drop(keys, r)  # (B, K+T): text keys unrouted
            core = self.backbone(tread.drop(x_bnd, r), tread.drop(pos_bn2, r), mod, core_keys)  # (B, K+T, D)
            x_bnd = tread.merge(x_bnd, core, r)
        else:
            x_bnd = self.backbone(x_bnd, pos_pn2, mod, keys)
        x_bnd = self.post_tread_trns(x_bnd, pos_pn2, mod, keys)
        return self.out_patch(x_bnd[:, :num_img], h, w)  # (B, H, W, C_out)
