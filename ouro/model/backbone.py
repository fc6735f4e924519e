"""TBackBone (plain stack of blocks) and XUTBackBone (cross-U encoder/decoder), HDM naming.

XUTBackBone: the encoder is `depth` groups of `enc_blocks` plain blocks, each group's output
kept; the decoder is `depth` groups of `dec_blocks` blocks whose FIRST block cross-attends
to the encoder: to its final output (skip="last", HDM code) or, for decoder group i, to
encoder group d-1-i's output (skip="per_level", the tech report's U-shaped drawing).
No weights are shared across depth. Groups are stacked (params (depth, blocks, ...)) and
scanned; see ouro/nn/stack.py. `remat` applies to the outermost scan only (a block of
TBackBone, a whole encoder/decoder group of XUTBackBone): nested checkpoints would
recompute the inner blocks twice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ouro.nn.adaln import Modulation
from ouro.nn.block import TransformerBlock
from ouro.nn.stack import UNROLL_MAX, scan_layers, stacked


def _block_maker(dim, head_dim, mlp_dim, cross, dtype, param_dtype):
    return lambda r: TransformerBlock(dim, head_dim, mlp_dim, cross=cross, rngs=r, dtype=dtype, param_dtype=param_dtype)


class TBackBone(nnx.Module):
    """`depth` plain blocks (no cross-attention); depth 0 is the identity."""

    def __init__(
        self, dim: int, head_dim: int, mlp_dim: int, depth: int, *,
        rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32, unrolled: bool = False,
        remat: str = "none", unroll_max: int = UNROLL_MAX,
    ):
        self.depth, self.unrolled, self.remat, self.unroll_max = depth, unrolled, remat, unroll_max
        self.blocks = (
            stacked(depth, _block_maker(dim, head_dim, mlp_dim, False, dtype, param_dtype), rngs) if depth else None
        )

    def __call__(self, x_bld: jax.Array, pos_bl2: jax.Array, mod: Modulation, key_valid=None) -> jax.Array:
        if not self.depth:
            return x_bld
        return scan_layers(self.blocks, x_bld, lambda blk, x, _: blk(x, pos_bl2, mod, key_valid=key_valid),
                           unrolled=self.unrolled, remat=self.remat, unroll_max=self.unroll_max)


class DecoderGroup(nnx.Module):
    """One decoder level: a cross-attention block then dec_blocks-1 plain blocks."""

    def __init__(self, dim, head_dim, mlp_dim, blocks, *, rngs, dtype=jnp.float32, param_dtype=jnp.float32, unrolled=False,
                 unroll_max=UNROLL_MAX):
        self.first = TransformerBlock(dim, head_dim, mlp_dim, cross=True, rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.rest = TBackBone(dim, head_dim, mlp_dim, blocks - 1, rngs=rngs, dtype=dtype, param_dtype=param_dtype,
                              unrolled=unrolled, unroll_max=unroll_max)

    def __call__(self, x_bld, pos_bl2, mod: Modulation, ctx_bsd, key_valid=None):
        # the context is the encoder's output over the same token set: it shares x's positions
        # and its padding
        x = self.first(x_bld, pos_bl2, mod, ctx_bsd, key_valid=key_valid)
        return self.rest(x, pos_bl2, mod, key_valid)


class XUTBackBone(nnx.Module):
    def __init__(
        self, dim: int, head_dim: int, mlp_dim: int, depth: int, enc_blocks: int, dec_blocks: int, *,
        skip: str = "last", rngs: nnx.Rngs, dtype=jnp.float32, param_dtype=jnp.float32, unrolled: bool = False,
        remat: str = "none", unroll_max: int = UNROLL_MAX,
    ):
        if skip not in ("last", "per_level"):
            raise ValueError(f"XUTBackBone: skip must be 'last' or 'per_level', got {skip!r}")
        self.skip, self.unrolled, self.remat, self.unroll_max = skip, unrolled, remat, unroll_max
        kw = dict(dtype=dtype, param_dtype=param_dtype, unrolled=unrolled, unroll_max=unroll_max)
        self.enc_blocks = stacked(depth, lambda r: TBackBone(dim, head_dim, mlp_dim, enc_blocks, rngs=r, **kw), rngs)
        self.dec_blocks = stacked(depth, lambda r: DecoderGroup(dim, head_dim, mlp_dim, dec_blocks, rngs=r, **kw), rngs)

    def __call__(self, x_bld: jax.Array, pos_bl2: jax.Array, mod: Modulation, key_valid=None) -> jax.Array:
        """key_valid (B, L) bool or None: tokens no attention may read (text padding)."""
        per_level = self.skip == "per_level"
        kv = key_valid
        enc = scan_layers(
            self.enc_blocks, x_bld, lambda grp, x, _: grp(x, pos_bl2, mod, kv), collect=per_level,
            unrolled=self.unrolled, remat=self.remat, unroll_max=self.unroll_max,
        )
        if per_level:
            enc_out, levels_gbld = enc  # (depth, B, L, D): output of every encoder group
            # decoder group i reads encoder group d-1-i
            return scan_layers(
                self.dec_blocks, enc_out, lambda grp, x, ctx: grp(x, pos_bl2, mod, ctx, kv),
                xs=levels_gbld[::-1], unrolled=self.unrolled, remat=self.remat, unroll_max=self.unroll_max,
            )
        return scan_layers(
            self.dec_blocks, enc, lambda grp, x, _: grp(x, pos_bl2, mod, enc, kv), unrolled=self.unrolled,
            remat=self.remat, unroll_max=self.unroll_max,
        )
