"""Write tests/fixtures/vae_tiny.{npz,json}: diffusers' AutoencoderKL on seeded random weights.

Run by hand (NOT by `make test`) in a separate venv that has the reference implementation;
diffusers is not a dependency of ouro:

    python3.11 -m venv /work/venvs/ref
    /work/venvs/ref/bin/pip install torch==2.13.0 diffusers safetensors   # CPU torch
    /work/venvs/ref/bin/python tools/make_vae_fixture.py

The fixture holds the tiny model's weights (diffusers names, torch layout), fixed inputs,
and diffusers' outputs on them: posterior mean/logvar of `encode` and `decode` of fixed
latents; the JSON holds the tiny config and the parameter count diffusers reports for the
full SDXL VAE config. tests/vae/test_parity.py compares ouro's NNX port against it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures"

# Three levels (two downsamples), width change with a 1x1 shortcut, mid attention,
# layers_per_block 2 (the decoder then has 3 ResNets per level): every code path of SDXL's.
TINY = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 3,
            up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[8, 16, 16],
            layers_per_block=2, latent_channels=4, norm_num_groups=4, act_fn="silu",
            sample_size=32, scaling_factor=0.13025)

# stabilityai/sdxl-vae config.json (the fields that shape the network)
SDXL = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
            layers_per_block=2, latent_channels=4, norm_num_groups=32, act_fn="silu",
            sample_size=1024, scaling_factor=0.13025)


def main() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(**TINY).eval()
    # default init leaves GroupNorm at (1, 0) and biases at torch's uniform; perturb every
    # tensor so a transposed or swapped weight cannot go unnoticed
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)  # NCHW
    latents = rng.normal(size=(2, 4, 8, 8)).astype(np.float32)
    with torch.no_grad():
        post = vae.encode(torch.from_numpy(images)).latent_dist
        decoded = vae.decode(torch.from_numpy(latents)).sample
    arrays = {f"w/{k}": v.numpy() for k, v in vae.state_dict().items()}
    arrays.update(images=images, latents=latents, mean=post.mean.numpy(), logvar=post.logvar.numpy(),
                  decoded=decoded.numpy())
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT / "vae_tiny.npz", **arrays)
    with torch.device("meta"):
        sdxl = AutoencoderKL(**SDXL)
    meta = {"config": TINY, "sdxl_config": SDXL, "sdxl_param_count": int(sum(p.numel() for p in sdxl.parameters())),
            "tiny_param_count": int(sum(p.numel() for p in vae.parameters())),
            "torch": torch.__version__, "diffusers": __import__("diffusers").__version__}
    (OUT / "vae_tiny.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = (OUT / "vae_tiny.npz").stat().st_size
    print(f"wrote {OUT / 'vae_tiny.npz'} ({size / 1e3:.0f} kB), SDXL params {meta['sdxl_param_count']:,}")


if __name__ == "__main__":
    main()
