"""The guidance / image-to-image / size flags `ouro sample` and `ouro sweep` share, in one place.

    --cfg-interval 0.1,0.7    CFG only while t is in [lo, hi] (t = 1 is noise)
    --cfg-rescale 0.7         guidance rescale phi (0 = plain CFG)
    --negative-prompt TEXT    the weak CFG branch reads TEXT instead of the null condition
    --init IMAGE.png --strength 0.6    image-to-image from IMAGE noised to t0 = strength
    --shift S                 the sampler's time-grid shift (default: the run's own)
    --size WxH                sample at W x H pixels (any aspect; default: the run's size)

Each flag maps onto ouro.train.sample.Guidance / sample_images keywords; the math is in
ouro/flow (guidance.py, samplers.py).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from ouro.errors import UserError


def _interval(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI (two numbers)") from None
    if not 0.0 <= lo <= hi <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LO <= HI <= 1")
    return lo, hi


def _unit(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be in [0, 1]")
    return v


def _strength(text: str) -> float:
    v = float(text)
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be in (0, 1]")
    return v


def _positive(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0")
    return v


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WxH, e.g. 48x32") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: both sides must be positive")
    return w, h


def add_guidance_flags(p: argparse.ArgumentParser, *, img2img: bool = True, size: bool = True) -> None:
    g = p.add_argument_group("guidance, image-to-image and size")
    g.add_argument("--cfg-interval", type=_interval, default=(0.0, 1.0), metavar="LO,HI",
                   help="apply CFG only for t in [LO, HI] (Kynkaanniemi et al. 2024); outside, conditional only")
    g.add_argument("--cfg-rescale", type=_unit, default=0.0, metavar="PHI",
                   help="guidance rescale to the conditional prediction's std (Lin et al. 2024); 0 = off")
    g.add_argument("--negative-prompt", default=None, metavar="TEXT",
                   help="the unconditional branch reads this text ('' = the null condition: plain CFG)")
    g.add_argument("--shift", type=_positive, default=None,
                   help="sampler time-grid shift t' = s t / (1 + (s-1) t) (default: the run's flow.shift)")
    if size:
        g.add_argument("--size", type=_size, default=None, metavar="WxH",
                       help="sample at W x H pixels (a latent run: divided by its autoencoder's downsampling); "
                            "default: the run's square size")
    if img2img:
        g.add_argument("--init", default=None, metavar="IMAGE",
                       help="image-to-image: start from this picture (resized to the run's size)")
        g.add_argument("--strength", type=_strength, default=0.6,
                       help="with --init: noise level t0 to start from (1 = ignore the picture)")


def guidance_of(args: argparse.Namespace) -> Any:
    from ouro.train.sample import Guidance

    strength = args.strength if getattr(args, "init", None) else 1.0
    return Guidance(interval=tuple(args.cfg_interval), rescale=float(args.cfg_rescale),
                    strength=float(strength), shift=args.shift)


def negative_condition(s: Any, text: str | None, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(neg_ctx, neg_mask) for n samples, encoded as the run's prompts are; None for no (or an
    empty) negative prompt: the empty text IS every family's null condition."""
    if not text:
        return None, None
    kind = getattr(s.cfg.model, "condition_input", "ctx")
    if kind == "label":
        raise UserError("--negative-prompt: this run is conditioned on class labels, not text")
    if kind == "ctx_tokens":
        from ouro.train.sample import encode_prompts

        tokens, mask = encode_prompts(s, [text])  # (1, T, E), (1, T)
        return np.repeat(tokens, n, 0), np.repeat(mask, n, 0)
    from ouro.text import embed

    return np.repeat(np.asarray(embed([text], progress=False), np.float32)[:, None, :], n, 0), None  # (n, 1, E)


def _downsample(s: Any) -> int:
    """Pixels per model-space pixel: the autoencoder's factor for a latent run, else 1."""
    ae_dir = getattr(s.cfg.data, "autoencoder", "")
    if not ae_dir:
        return 1
    from ouro.vae import load_autoencoder

    return load_autoencoder(ae_dir).downsample


def model_size(s: Any, size_wh: tuple[int, int] | None) -> tuple[int, int] | None:
    """--size W x H pixels -> (H, W) in the model's data space, checked against the patch."""
    if size_wh is None:
        return None
    f, p = _downsample(s), int(getattr(s.cfg.model, "patch_size", 1) or 1)
    w, h = size_wh
    if w % (f * p) or h % (f * p):
        raise UserError(f"--size {w}x{h}: both sides must be multiples of {f * p} "
                        f"(patch size {p} x {f} pixels per model pixel)")
    return h // f, w // f


def init_images(s: Any, path: str | None, n: int, size_hw: tuple[int, int] | None = None) -> np.ndarray | None:
    """(n, H, W, C) starting images in the model's data space: the picture resized to the
    sample size (pixels in [-1, 1]), or, for a latent run, encoded by its autoencoder."""
    if not path:
        return None
    from pathlib import Path

    from PIL import Image

    if not Path(path).is_file():
        raise UserError(f"--init {path}: no such image file")
    h, w = size_hw or (s.cfg.data.image_size,) * 2
    ch = s.cfg.data.channels
    ae_dir = getattr(s.cfg.data, "autoencoder", "")
    ae = None
    if ae_dir:
        from ouro.vae import load_autoencoder

        ae = load_autoencoder(ae_dir)
        f, mode = ae.downsample, "RGB"
    else:
        f, mode = 1, ("L" if ch == 1 else "RGB")
    img = Image.open(path).convert(mode).resize((w * f, h * f), Image.BICUBIC)
    x = np.asarray(img, np.float32) / 127.5 - 1.0  # the inverse of ouro.train.png.to_uint8
    x = x.reshape(h * f, w * f, -1)[None]  # (1, H, W, C)
    if ae is not None:
        x = ae.encode(x)
    if x.shape[1:] != (h, w, ch):
        raise UserError(f"--init {path}: gives {x.shape[1:]}, the run samples {(h, w, ch)}")
    return np.repeat(x, n, 0)


def sample_kwargs(s: Any, args: argparse.Namespace, n: int) -> dict[str, Any]:
    """sample_images keywords for n samples from the parsed flags."""
    neg_ctx, neg_mask = negative_condition(s, args.negative_prompt, n)
    size = model_size(s, getattr(args, "size", None))
    return {"guidance": guidance_of(args), "neg_ctx": neg_ctx, "neg_mask": neg_mask,
            "init": init_images(s, getattr(args, "init", None), n, size), "size": size}


def describe(args: argparse.Namespace) -> dict[str, str]:
    """The non-default settings, for PNG metadata and file names."""
    out = {}
    if tuple(args.cfg_interval) != (0.0, 1.0):
        out["cfg_interval"] = "{:g},{:g}".format(*args.cfg_interval)
    if args.cfg_rescale:
        out["cfg_rescale"] = f"{args.cfg_rescale:g}"
    if args.negative_prompt:
        out["negative_prompt"] = args.negative_prompt
    if args.shift is not None:
        out["shift"] = f"{args.shift:g}"
    if getattr(args, "size", None) is not None:
        out["size"] = "{}x{}".format(*args.size)
    if getattr(args, "init", None):
        out.update(init=str(args.init), strength=f"{args.strength:g}")
    return out
