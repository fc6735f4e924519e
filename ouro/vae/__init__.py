"""Autoencoders: the SDXL-VAE layout (AutoencoderKL, diffusers checkpoints) and ouro's own."""

from ouro.vae.codec import Autoencoder, load_autoencoder
from ouro.vae.config import VAEConfig, from_diffusers_config, vae_preset
from ouro.vae.model import AutoencoderKL, init_model, kl_to_standard_normal, param_count, sample_posterior

__all__ = ["Autoencoder", "AutoencoderKL", "VAEConfig", "from_diffusers_config", "init_model", "kl_to_standard_normal",
           "load_autoencoder", "param_count", "sample_posterior", "vae_preset"]
