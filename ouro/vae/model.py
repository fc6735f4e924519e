"""AutoencoderKL (the SDXL VAE layout of diffusers) in Flax NNX, NHWC.

    vae = init_model(vae_preset("sdxl"), seed=0)     # or AutoencoderKL(cfg, rngs=...)
    mean, logvar = vae.encode_moments(images)   # images (B, H, W, 3) in [-1, 1]
    images = vae.decode(z)                       # z (B, H/8, W/8, 4), unscaled

Scaling (latent = (z - shift) * scaling_factor) and batching live in ouro/vae/codec.py.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.vae.config import VAEConfig, validate
from ouro.vae.layers import Attention, Downsample, GroupNorm, ResnetBlock, Upsample, conv


class MidBlock(nnx.Module):
    """ResNet -> self-attention -> ResNet at the lowest resolution."""

    def __init__(self, c: int, cfg: VAEConfig, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        kw = dict(groups=cfg.norm_num_groups, eps=cfg.norm_eps, rngs=rngs, dtype=dtype,
                  param_dtype=param_dtype)
        self.resnets = nnx.List([ResnetBlock(c, c, **kw), ResnetBlock(c, c, **kw)])
        self.attentions = nnx.List([Attention(c, **kw)] if cfg.mid_block_add_attention else [])

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.resnets[0](x)
        for attn in self.attentions:
            x = attn(x)
        return self.resnets[1](x)


class Level(nnx.Module):
    """One resolution level: `resnets`, then an optional down/upsampler."""

    def __init__(self, c_in: int, c_out: int, n: int, resample: type | None, cfg: VAEConfig, *,
                 rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        self.resnets = nnx.List([ResnetBlock(c_in if i == 0 else c_out, c_out, groups=cfg.norm_num_groups,
                                             eps=cfg.norm_eps, **kw) for i in range(n)])
        self.resample = resample(c_out, **kw) if resample is not None else None

    def __call__(self, x: jax.Array) -> jax.Array:
        for r in self.resnets:
            x = r(x)
        return self.resample(x) if self.resample is not None else x


class Encoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        ch = cfg.block_out_channels
        self.conv_in = conv(cfg.in_channels, ch[0], 3, **kw)
        self.down_blocks = nnx.List([
            Level(ch[max(i - 1, 0)], c, cfg.layers_per_block, Downsample if i < len(ch) - 1 else None,
                  cfg, **kw) for i, c in enumerate(ch)])
        self.mid_block = MidBlock(ch[-1], cfg, **kw)
        self.conv_norm_out = GroupNorm(cfg.norm_num_groups, ch[-1], eps=cfg.norm_eps, param_dtype=param_dtype)
        self.conv_out = conv(ch[-1], 2 * cfg.latent_channels, 3, **kw)  # mean and log-variance

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.conv_in(x)
        for level in self.down_blocks:
            x = level(x)
        x = self.mid_block(x)
        return self.conv_out(nnx.silu(self.conv_norm_out(x)))


class Decoder(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        ch = tuple(reversed(cfg.block_out_channels))
        self.conv_in = conv(cfg.latent_channels, ch[0], 3, **kw)
        self.mid_block = MidBlock(ch[0], cfg, **kw)
        self.up_blocks = nnx.List([
            Level(ch[max(i - 1, 0)], c, cfg.layers_per_block + 1, Upsample if i < len(ch) - 1 else None,
                  cfg, **kw) for i, c in enumerate(ch)])
        self.conv_norm_out = GroupNorm(cfg.norm_num_groups, ch[-1], eps=cfg.norm_eps, param_dtype=param_dtype)
        self.conv_out = conv(ch[-1], cfg.out_channels, 3, **kw)

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.mid_block(self.conv_in(z))
        for level in self.up_blocks:
            x = level(x)
        return self.conv_out(nnx.silu(self.conv_norm_out(x)))


class AutoencoderKL(nnx.Module):
    def __init__(self, cfg: VAEConfig, *, rngs: nnx.Rngs, dtype=None, param_dtype=jnp.float32):
        validate(cfg)
        self.cfg = cfg
        kw = dict(rngs=rngs, dtype=dtype, param_dtype=param_dtype)
        z2, z = 2 * cfg.latent_channels, cfg.latent_channels
        self.encoder = Encoder(cfg, **kw)
        self.decoder = Decoder(cfg, **kw)
        self.quant_conv = conv(z2, z2, 1, **kw) if cfg.use_quant_conv else None
        self.post_quant_conv = conv(z, z, 1, **kw) if cfg.use_post_quant_conv else None

    def encode_moments(self, x_bhwc: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Images in [-1, 1] -> posterior mean and log-variance, each (B, H/f, W/f, latent)."""
        m = self.encoder(x_bhwc)
        if self.quant_conv is not None:
            m = self.quant_conv(m)
        mean, logvar = jnp.split(m.astype(jnp.float32), 2, axis=-1)
        return mean, jnp.clip(logvar, -30.0, 20.0)  # the DiagonalGaussian clamp of diffusers

    def decode(self, z_bhwc: jax.Array) -> jax.Array:
        """Unscaled latents -> images (about [-1, 1])."""
        if self.post_quant_conv is not None:
            z_bhwc = self.post_quant_conv(z_bhwc)
        return self.decoder(z_bhwc).astype(jnp.float32)

    def __call__(self, x: jax.Array, rng: jax.Array | None = None):
        """Reconstruct: (images, mean, logvar); samples the posterior when rng is given."""
        mean, logvar = self.encode_moments(x)
        z = mean if rng is None else sample_posterior(mean, logvar, rng)
        return self.decode(z), mean, logvar


def sample_posterior(mean: jax.Array, logvar: jax.Array, rng: jax.Array) -> jax.Array:
    """z = mean + std * eps: the diagonal Gaussian posterior's reparameterised sample."""
    return mean + jnp.exp(0.5 * logvar) * jax.random.normal(rng, mean.shape, mean.dtype)


def kl_to_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mean, exp(logvar)) || N(0, 1)) summed over latent elements, per example (B,)."""
    kl = 0.5 * (jnp.square(mean) + jnp.exp(logvar) - 1.0 - logvar)
    return kl.reshape(kl.shape[0], -1).sum(-1)


def init_model(cfg: VAEConfig, seed: int = 0, *, dtype=None) -> AutoencoderKL:
    """A freshly initialised model, drawn with NumPy into an abstract (eval_shape) module.

    torch's default init (kernels uniform(+-1/sqrt(fan_in)), GroupNorm (1, 0)); biases 0.
    Eager NNX construction dispatches a small XLA program per parameter (~1 min for this
    net on a loaded CPU); filling from NumPy takes milliseconds.
    """
    from ouro.vae.weights import assign

    model = nnx.eval_shape(lambda: AutoencoderKL(cfg, rngs=nnx.Rngs(0), dtype=dtype))
    rng = np.random.default_rng(seed)
    flat = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        if path[-1] == "kernel":
            fan_in = int(np.prod(var.shape[:-1]))
            flat[path] = rng.uniform(-1, 1, var.shape).astype(np.float32) / np.sqrt(fan_in)
        else:
            flat[path] = np.full(var.shape, 1.0 if path[-1] == "scale" else 0.0, np.float32)
    assign(model, flat)
    return model


def param_count(cfg: VAEConfig) -> int:
    """Parameters of the layout, without materialising them (jax.eval_shape)."""
    state = nnx.state(nnx.eval_shape(lambda: AutoencoderKL(cfg, rngs=nnx.Rngs(0))), nnx.Param)
    return int(sum(x.size for x in jax.tree.leaves(state)))
