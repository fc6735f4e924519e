"""Tiny trained runs shared by the PyTorch-side tests (trained once per session):
a digits-smoke run (pixel space, class table of caption embeddings) and a latents-smoke run
(8x8x4 latents of a tiny AutoencoderKL, pooled text embeddings)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    from ouro.train import train
    from ouro.train.config import preset_config

    out = tmp_path_factory.mktemp("digits") / "run"
    # random caption vectors: the Gemma weights are not needed for what these tests check
    cfg = preset_config("digits-smoke", out_dir=str(out), steps=4, warmup_steps=1, log_every=2, ckpt_every=4,
                        eval_samples=False)
    from ouro.config import override

    train(override(cfg, ["data.context=random"]))
    return out


@pytest.fixture(scope="session")
def latent_run(tmp_path_factory):
    """A tiny AutoencoderKL (diffusers folder, as `ouro vae train` writes), random latents +
    unit embeddings as the dataset, latents-smoke trained 4 steps with data.autoencoder."""
    from ouro.config import override
    from ouro.data import write_shards
    from ouro.train import train
    from ouro.train.config import preset_config
    from ouro.vae.config import VAEConfig
    from ouro.vae.model import init_model
    from ouro.vae.weights import save_diffusers

    root = tmp_path_factory.mktemp("latent")
    vae_cfg = VAEConfig(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, scaling_factor=0.5,
                        shift_factor=0.1)
    save_diffusers(init_model(vae_cfg, seed=0), root / "vae")
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((64, 640)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    write_shards(root / "data", rng.standard_normal((64, 8, 8, 4)).astype(np.float16), emb, shard_size=32)
    cfg = override(preset_config("latents-smoke", out_dir=str(root / "run"), steps=4, ckpt_every=4),
                   [f"data.path={root / 'data'}", f"data.autoencoder={root / 'vae'}"])
    train(cfg)
    return root / "run", emb
