"""`ouro sample --ckpt RUN [--prompt TEXT ... | --prompts FILE | --class K ...]`: images + a grid.

Any run: prompts are embedded as the run's dataset's captions were (pooled Gemma-3, or per
token for MMDiT text_input=tokens); classes index a digits run's caption table or a
class-labelled model's ids (no --prompt/--class: every class, if the run has them). A run
trained on latents is decoded with its autoencoder (config data.autoencoder).

Writes into RUN/samples/<step-weights-sampler-cfg-seed-hash>/ (another prompt set or
setting gets another directory): every image as its own native-resolution PNG (prompt and
settings in the PNG metadata), `sample_grid.png` (enlarged, labelled by prompt/class, title
line with run, step, CFG, steps, seed) and `manifest.json` (every image with its prompt or
class, seed, CFG, steps, checkpoint step, EMA flag). `--out DIR` writes the same into DIR;
`--out FILE.png` puts the grid there and the rest into FILE/ beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ouro.errors import UserError


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the docstring's layout and appends every option's default."""


def main(argv: list[str]) -> int:
    from ouro.train import sample_args as sa

    p = argparse.ArgumentParser(prog="ouro sample", description=__doc__, formatter_class=HelpFormatter)
    sa.add_run_args(p)
    sa.add_request_args(p, per_class=10)
    sa.add_sampler_args(p)
    from ouro.train.sampler_flags import add_guidance_flags, describe, sample_kwargs

    add_guidance_flags(p)  # --cfg-interval --cfg-rescale --negative-prompt --shift --size --init --strength
    p.add_argument("--out", default=None, help="a directory (no .png), or the grid's path (.png; images go "
                   "into the directory of that name); default RUN/samples/<settings>/")
    args = p.parse_args(argv)

    from ouro.train import sample_files as sf
    from ouro.train.sample import draw

    sa.check_request(args)
    if args.out:  # a bad --out is reported before the checkpoint is restored
        sf.target(args.ckpt, args.out, "")
    s = load_run(args.ckpt, args.step, use_ema=args.ema)
    from ouro.train.to_pixels import require_decoder

    require_decoder(s.cfg.data, f"--ckpt {args.ckpt}")  # latents without a decoder: refused before sampling
    req = sa.build_request(args, s)
    settings = {**sa.settings(args, s, steps=args.steps, cfg_scale=args.cfg), **describe(args)}
    from ouro.train.run_record import RunRecord

    # a gs:// run: the samples are staged locally, then uploaded into the run (whole objects)
    record = RunRecord(args.ckpt) if "://" in args.ckpt and not args.out else None
    where = sf.target(record.local if record else args.ckpt, args.out, sf.slug(settings, req.describe()))
    images = draw(s, req, steps=args.steps, method=args.method, cfg_scale=args.cfg, seed=args.seed,
                  guidance_rate=args.autoguidance, **sample_kwargs(s, args, len(req.rows)))
    if images.shape[-1] not in (1, 3):
        print(f"ouro sample: warning: the samples have {images.shape[-1]} channels and the run's config names "
              f"no data.autoencoder to decode them; the PNGs show the first three channels", file=sys.stderr)
    run_name = args.ckpt.rstrip("/").rsplit("/", 1)[-1] if record else Path(args.ckpt).resolve().name
    sf.write_samples(images, req, settings, where, run_name=run_name)
    if record is not None:
        record.sync()
        rel = where.directory.relative_to(record.local).as_posix()
        print(f"wrote {record.url}/{rel}/{where.grid.name} and {len(images)} images + {sf.MANIFEST} in {record.url}/{rel}/")
        return 0
    print(f"wrote {where.grid} and {len(images)} images + {sf.MANIFEST} in {where.directory}/")
    return 0


def load_run(run_dir: str, step: int | None, *, use_ema: bool = True):
    """load_for_sampling, with a missing run or checkpoint reported as one line (the one
    place `ouro sample` and `ouro sweep` restore a checkpoint)."""
    from ouro.train.sample import load_for_sampling

    from ouro.data import storage

    storage.check_reachable(run_dir)  # gs://: bucket, endpoint, credentials - one line
    if not storage.exists(storage.join(run_dir, "config.json")):
        raise UserError(f"--ckpt {run_dir}: not a training run directory (no config.json)")
    try:
        return load_for_sampling(run_dir, step=step, use_ema=use_ema)
    except FileNotFoundError as e:  # no checkpoint (yet), or the requested --step is gone
        raise UserError(f"--ckpt {run_dir}: {e}") from None
