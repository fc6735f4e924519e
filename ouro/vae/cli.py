"""`ouro vae train|eval`: ouro's own autoencoder on the embedded shapes images.

    ouro vae train [--preset shapes] [key=value ...]   # resumable; writes OUT_DIR (diffusers format)
    ouro vae eval DIR [--n 256] [--image-size 32]       # held-out PSNR of any AutoencoderKL directory
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro vae", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the small KL autoencoder (key=value overrides)")
    t.add_argument("--preset", default="shapes")
    t.add_argument("overrides", nargs="*", help="key=value, e.g. steps=2000 out_dir=outputs/vae vae.latent_channels=8")
    e = sub.add_parser("eval", help="encode -> decode held-out shapes images, print PSNR")
    e.add_argument("dir", help="AutoencoderKL directory (config.json + diffusion_pytorch_model.safetensors)")
    e.add_argument("--n", type=int, default=256)
    e.add_argument("--image-size", type=int, default=32)
    e.add_argument("--seed", type=int, default=1, help="shapes seed (training used 0)")
    args = p.parse_args(argv)

    if args.cmd == "train":
        from ouro.config import override
        from ouro.vae.train import train_vae, vae_train_preset

        cfg = override(vae_train_preset(args.preset), args.overrides)
        summary = train_vae(cfg)
        print(json.dumps({k: v for k, v in summary.items() if k != "config"}, indent=1))
        return 0
    from ouro.data.shapes import make_shapes
    from ouro.vae import load_autoencoder
    from ouro.vae.train import psnr

    ae = load_autoencoder(args.dir)
    images = make_shapes(args.n, seed=args.seed, image_size=args.image_size).images
    print(f"{args.dir}: held-out PSNR {psnr(ae.decode(ae.encode(images)), images):.2f} dB "
          f"over {args.n} shapes images ({args.image_size} px)")
    return 0
