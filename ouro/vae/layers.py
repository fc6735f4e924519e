"""AutoencoderKL building blocks in NHWC, named after diffusers' modules so that loading a
checkpoint is a name mapping (ouro/vae/weights.py).

GroupNorm statistics and the attention softmax are computed in float32 whatever the compute
dtype: bf16 variance over 512 channels x 16k pixels loses too much (diffusers upcasts too).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class GroupNorm(nnx.Module):
    """torch.nn.GroupNorm over NHWC: groups of C/G consecutive channels, affine per channel."""

    def __init__(self, groups: int, channels: int, *, eps: float, param_dtype=jnp.float32):
        self.groups, self.eps = groups, eps
        self.scale = nnx.Param(jnp.ones((channels,), param_dtype))
        self.bias = nnx.Param(jnp.zeros((channels,), param_dtype))

    def __call__(self, x_bhwc: jax.Array) -> jax.Array:
        b, h, w, c = x_bhwc.shape
        xg = x_bhwc.astype(jnp.float32).reshape(b, h * w, self.groups, c // self.groups)  # (B, HW, G, C/G)
        mean = xg.mean(axis=(1, 3), keepdims=True)
        var = jnp.square(xg - mean).mean(axis=(1, 3), keepdims=True)  # biased, as torch
        y = ((xg - mean) * jax.lax.rsqrt(var + self.eps)).reshape(b, h, w, c)
        return (y * self.scale[...] + self.bias[...]).astype(x_bhwc.dtype)


# torch's default init for Conv2d / Linear (kaiming_uniform with a = sqrt(5)); a uniform draw
# also compiles to a far smaller program than flax's truncated-normal default, which made
# eager initialisation of this many-layer net take minutes on CPU
default_init = nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def conv(c_in: int, c_out: int, k: int, *, rngs: nnx.Rngs, stride: int = 1, padding=None,
         dtype=None, param_dtype=jnp.float32) -> nnx.Conv:
    pad = ((k // 2, k // 2),) * 2 if padding is None else padding
    return nnx.Conv(c_in, c_out, (k, k), strides=stride, padding=pad, dtype=dtype,
                    param_dtype=param_dtype, kernel_init=default_init, rngs=rngs)


class ResnetBlock(nnx.Module):
    """diffusers ResnetBlock2D without time embedding: GN-SiLU-conv, GN-SiLU-conv, + shortcut."""

    def __init__(self, c_in: int, c_out: int, *, groups: int, eps: float, rngs: nnx.Rngs,
                 dtype=None, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.norm1 = GroupNorm(groups, c_in, eps=eps, param_dtype=param_dtype)
        self.conv1 = conv(c_in, c_out, 3, **kw)
        self.norm2 = GroupNorm(groups, c_out, eps=eps, param_dtype=param_dtype)
        self.conv2 = conv(c_out, c_out, 3, **kw)
        # a 1x1 projection only where the width changes (diffusers' use_in_shortcut)
        self.conv_shortcut = conv(c_in, c_out, 1, **kw) if c_in != c_out else None

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.conv1(nnx.silu(self.norm1(x)))
        h = self.conv2(nnx.silu(self.norm2(h)))  # dropout is 0 in every VAE config
        skip = self.conv_shortcut(x) if self.conv_shortcut is not None else x
        return skip + h


class Attention(nnx.Module):
    """Single-head spatial self-attention with a GroupNorm in front and a residual
    (diffusers Attention with heads = 1, dim_head = C, as the VAE mid block builds it)."""

    def __init__(self, channels: int, *, groups: int, eps: float, rngs: nnx.Rngs, dtype=None,
                 param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype, kernel_init=default_init)
        self.group_norm = GroupNorm(groups, channels, eps=eps, param_dtype=param_dtype)
        self.to_q = nnx.Linear(channels, channels, **kw)
        self.to_k = nnx.Linear(channels, channels, **kw)
        self.to_v = nnx.Linear(channels, channels, **kw)
        self.to_out = nnx.Linear(channels, channels, **kw)

    def __call__(self, x_bhwc: jax.Array) -> jax.Array:
        b, h, w, c = x_bhwc.shape
        y = self.group_norm(x_bhwc).reshape(b, h * w, c)  # (B, L, C)
        q, k, v = self.to_q(y), self.to_k(y), self.to_v(y)
        logits = jnp.einsum("blc,bmc->blm", q, k, preferred_element_type=jnp.float32) * c ** -0.5
        p = jax.nn.softmax(logits, axis=-1).astype(v.dtype)  # (B, L, L): 4096^2 at 512 px
        o = self.to_out(jnp.einsum("blm,bmc->blc", p, v))
        return x_bhwc + o.reshape(b, h, w, c)


class Downsample(nnx.Module):
    """Stride-2 3x3 conv after zero padding right/bottom by one (diffusers padding=0 path)."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        self.conv = conv(channels, channels, 3, stride=2, padding=((0, 1), (0, 1)), rngs=rngs,
                         dtype=dtype, param_dtype=param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(x)


class Upsample(nnx.Module):
    """Nearest-neighbour x2, then a 3x3 conv."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        self.conv = conv(channels, channels, 3, rngs=rngs, dtype=dtype, param_dtype=param_dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # (B, 2H, 2W, C)
        return self.conv(x)
