"""PNG writing for samples: one file per image and RGB grids, text in the PNG metadata.

Prompts and sampler settings go into tEXt chunks (`PIL.Image.open(p).text`), never drawn
over the picture. Files are written atomically (ouro.fileio).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from ouro.fileio import atomic_path


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, C) in [-1, 1] -> uint8 RGB (C = 3; more channels: the first three) or greyscale (C = 1,
    -1 black as in the data: the digits are light strokes on black)."""
    x = np.clip((np.asarray(image, np.float32) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return x[..., 0] if x.shape[-1] == 1 else x[..., :3]


def save_png(image: np.ndarray, path: str | Path, text: Mapping[str, str] | None = None, *,
             upscale: int = 1) -> Path:
    from PIL import Image, PngImagePlugin

    img = Image.fromarray(to_uint8(image))
    if upscale > 1:  # nearest: small images stay crisp in viewers
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_itxt(k, str(v))  # iTXt: UTF-8 prompts
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def grid(images: np.ndarray, per_row: int, pad: int = 1) -> np.ndarray:
    """(N, H, W, C) -> one (rows*(H+pad)-pad, per_row*(W+pad)-pad, C) image, white gaps."""
    n, h, w, c = images.shape
    rows = -(-n // per_row)
    out = np.ones((rows * (h + pad) - pad, per_row * (w + pad) - pad, c), np.float32)
    for i, im in enumerate(images):
        r, k = divmod(i, per_row)
        out[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = im
    return out


def save_images(images: np.ndarray, out_dir: str | Path, prompts: list[str], *, prefix: str = "sample",
                text: Mapping[str, str] | None = None, per_row: int = 8, upscale: int = 4) -> list[Path]:
    """Each image as `<prefix>_<i>.png` (+ `<prefix>_grid.png`), the prompt in each file's metadata."""
    out = Path(out_dir)
    paths = [save_png(im, out / f"{prefix}_{i:04d}.png", {"prompt": p, **(text or {})}, upscale=upscale)
             for i, (im, p) in enumerate(zip(images, prompts))]
    prompts_text = "\n".join(f"{i}: {p}" for i, p in enumerate(prompts))
    paths.append(save_png(grid(np.asarray(images), per_row), out / f"{prefix}_grid.png",
                          {"prompts": prompts_text, **(text or {})}, upscale=upscale))
    return paths
