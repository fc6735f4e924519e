"""`ouro fid --weights FILE IMAGES... [--ref stats.npz] [--save-stats out.npz]`: FID of images.

IMAGES are directories (searched recursively for .png/.jpg, grids `*_grid.png` skipped; e.g.
a run directory after `ouro sample`) or image files. The FID Inception weights come from the
user (pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or its state dict as .safetensors).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ouro.errors import UserError


def image_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg")
                            and not f.stem.endswith("_grid"))
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: no such file or directory")
    if len(files) < 2:
        raise UserError(f"{' '.join(paths)}: found {len(files)} images; FID needs at least 2")
    return files


def read_images(files: list[Path]) -> np.ndarray:
    """(N, H, W, 3) in [-1, 1]; every image must have the first one's size (resize is the net's)."""
    from PIL import Image

    out = []
    for f in files:
        im = np.asarray(Image.open(f).convert("RGB"), np.float32) / 127.5 - 1.0
        if out and im.shape != out[0].shape:
            raise UserError(f"{f}: size {im.shape[:2]} differs from {files[0]}'s {out[0].shape[:2]}")
        out.append(im)
    return np.stack(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro fid", description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", help="image directories (e.g. a run dir) or files")
    p.add_argument("--weights", required=True, help="FID Inception weights (.pth / .safetensors / .npz)")
    p.add_argument("--ref", help="reference statistics .npz (mu, sigma)")
    p.add_argument("--save-stats", help="write these images' statistics (mu, sigma) here")
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    if not args.ref and not args.save_stats:
        raise UserError("--ref or --save-stats: give at least one (compare to, or write, statistics)")

    from ouro.eval.fid import feature_stats, frechet_from_stats, inception_features, load_stats, save_stats
    from ouro.eval.inception import load_inception

    ref = load_stats(args.ref) if args.ref else None  # fail on a bad file before the slow part
    files = image_files(args.images)
    net = load_inception(args.weights)
    mu, sigma = feature_stats(inception_features(net, read_images(files), batch_size=args.batch_size))
    if args.save_stats:
        print(f"wrote {save_stats(args.save_stats, mu, sigma)} ({len(files)} images)")
    if ref is not None:
        print(f"FID {frechet_from_stats(mu, sigma, *ref):.3f} over {len(files)} images vs {args.ref}")
    return 0
