"""`ouro sample --ckpt RUN_DIR [--class K ...|--prompt TEXT ...]`: sample images + a grid.

Uses the EMA weights of the latest (or --step) checkpoint. Class labels index the run's
caption table (digits); prompts are embedded with Gemma-3 (ouro.text.embed; per token, as
the run's dataset, for MMDiT with model.text_input=tokens). A run trained
on latents (config data.autoencoder) is decoded with its autoencoder. Writes each image as
its own PNG (prompt and sampler settings in the PNG metadata, nothing drawn on the image)
into a directory named like the grid, plus the grid (RGB for colour images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ouro.errors import UserError


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the docstring's layout and appends every option's default."""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro sample", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--ckpt", required=True, help="run directory (config.json + checkpoints/)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (None: the latest)")
    p.add_argument("--class", dest="classes", type=int, action="append", help="class index (repeatable; None: every class)")
    p.add_argument("--prompt", action="append", help="text prompt (repeatable)")
    p.add_argument("--per-class", type=int, default=10, help="samples per class / prompt")
    p.add_argument("--steps", type=int, default=32, help="sampler steps")
    p.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--method", default="euler", choices=["euler", "heun"], help="ODE sampler")
    p.add_argument("--autoguidance", type=float, default=0.0,
                   help="TREAD rate of the weak (unconditional) branch; 0 = plain CFG")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--out", default=None, help="grid PNG path (default RUN_DIR/samples_<...>.png); the images "
                   "go into the directory of the same name without .png")
    args = p.parse_args(argv)

    import numpy as np

    from ouro.train.sample import encode_prompts, sample_grid, sample_images, save_grid

    s = load_run(args.ckpt, args.step)
    from ouro.train.to_pixels import require_decoder, to_pixels

    require_decoder(s.cfg.data, f"--ckpt {args.ckpt}")  # latents without a decoder: refused up front
    if args.prompt:
        labels = np.repeat(np.arange(len(args.prompt)), args.per_class)
        if getattr(s.cfg.model, "condition_input", "ctx") == "ctx_tokens":
            tokens, mask = encode_prompts(s, args.prompt)  # (P, T, E), (P, T): as the dataset
            ctx, ctx_mask = tokens[labels], mask[labels]
        else:
            from ouro.text import embed

            ctx, ctx_mask = np.asarray(embed(args.prompt), np.float32)[labels][:, None, :], None  # (B, 1, 640)
        images = sample_images(s, ctx, steps=args.steps, method=args.method, cfg_scale=args.cfg,
                               seed=args.seed, guidance_rate=args.autoguidance, ctx_mask=ctx_mask)
        names = args.prompt
    else:
        if s.class_ctx is None and getattr(s.cfg.model, "condition_input", "ctx") != "label":
            raise UserError(f"--ckpt {args.ckpt}: this run ({s.cfg.data.kind} data) has no class table; "
                            f"give --prompt TEXT")
        classes = args.classes if args.classes else list(range(10))
        images, labels = sample_grid(s, classes=classes, per_class=args.per_class, steps=args.steps,
                                     method=args.method, cfg_scale=args.cfg, seed=args.seed,
                                     guidance_rate=args.autoguidance)
        names = [str(c) for c in classes]
    # a latent run decodes with the autoencoder its dataset recorded; raw latents are refused
    images = to_pixels(s.cfg.data, images, what=f"--ckpt {args.ckpt}")
    out = Path(args.out) if args.out else Path(args.ckpt) / f"samples_step{s.step}_cfg{args.cfg:g}_{args.method}{args.steps}.png"
    meta = {"train_step": str(s.step), "sampler": f"{args.method} {args.steps} steps", "cfg_scale": f"{args.cfg:g}",
            "seed": str(args.seed), "run": str(args.ckpt)}
    prompts = [args.prompt[k] if args.prompt else f"class {k}" for k in labels.tolist()]
    from ouro.fileio import write_bytes
    from ouro.train.png import save_images

    paths = save_images(images, out.with_suffix(""), prompts, prefix="sample", text=meta,
                        per_row=min(args.per_class, 16), upscale=4 if images.shape[1] < 128 else 1)
    if images.shape[-1] == 1:  # greyscale: the labelled grid (row names beside the pictures)
        save_grid(images, labels, out, per_row=min(args.per_class, 16), row_names=names,
                  title=f"step {s.step}, {args.method} {args.steps} steps, CFG {args.cfg:g}")
    else:  # colour: the RGB grid (prompts in its metadata) also at the grid path
        write_bytes(out, paths[-1].read_bytes())
    print(f"wrote {out} and {len(images)} images in {out.with_suffix('')}/")
    return 0


def load_run(run_dir: str, step: int | None):
    """load_for_sampling, with a missing run or checkpoint reported as one line."""
    from ouro.train.sample import load_for_sampling

    if not (Path(run_dir) / "config.json").is_file():
        raise UserError(f"--ckpt {run_dir}: not a training run directory (no config.json)")
    try:
        return load_for_sampling(run_dir, step=step)
    except FileNotFoundError as e:  # no checkpoint (yet), or the requested --step is gone
        raise UserError(f"--ckpt {run_dir}: {e}") from None
