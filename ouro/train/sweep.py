"""Sample-quality sweep over sampler steps x CFG scale for one trained digits run.

    ouro sweep --ckpt outputs/demo --steps 4,8,16,32 --cfg 1,2,3,5
writes <run>/sweep.json and a Markdown table <run>/sweep.md (accuracy, Frechet distance).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

from ouro.fileio import write_json, write_text


def sweep(sampler: Any, steps: Sequence[int], cfg_scales: Sequence[float], *, per_class: int = 20,
          method: str = "euler", seed: int = 0, progress: bool = True,
          **extra: Any) -> list[dict[str, Any]]:
    """One row per (steps, cfg_scale): accuracy, Frechet distance, seconds. `extra`:
    sample_images' guidance / neg_ctx / neg_mask for every setting."""
    from tqdm.auto import tqdm

    from ouro.train.evaluate import evaluate_samples
    from ouro.train.sample import sample_grid

    grid = [(s, c) for s in steps for c in cfg_scales]
    rows = []
    for n, scale in tqdm(grid, desc="sweep", disable=not progress):
        t0 = time.perf_counter()
        images, labels = sample_grid(sampler, per_class=per_class, steps=n, method=method,
                                     cfg_scale=scale, seed=seed, **extra)
        seconds = time.perf_counter() - t0  # includes one compile per setting
        m = evaluate_samples(images, labels)
        rows.append({"steps": n, "cfg_scale": scale, "method": method, "accuracy": m["accuracy"],
                     "frechet": m["frechet"], "n_samples": m["n_samples"], "seconds": seconds,
                     "floor_test_accuracy": m["floor_test_accuracy"],
                     "floor_test_frechet": m["floor_test_frechet"]})
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| steps | CFG | accuracy | Frechet |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['steps']} | {r['cfg_scale']:g} | {r['accuracy']:.3f} | {r['frechet']:.2f} |" for r in rows]
    if rows:
        lines.append(f"| real test split | | {rows[0]['floor_test_accuracy']:.3f} | "
                     f"{rows[0]['floor_test_frechet']:.2f} |")
    return "\n".join(lines) + "\n"


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def main(argv: list[str]) -> int:
    from ouro.train.sample_cli import HelpFormatter, load_run

    p = argparse.ArgumentParser(prog="ouro sweep", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--ckpt", required=True, help="run directory (with config.json, checkpoints/)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--steps", default="4,8,16,32", help="sampler step counts, comma-separated")
    p.add_argument("--cfg", default="1,2,3,5", help="CFG scales, comma-separated")
    p.add_argument("--per-class", type=int, default=20, help="samples per class and setting")
    p.add_argument("--method", default="euler", choices=["euler", "heun"], help="ODE sampler")
    from ouro.train.sampler_flags import add_guidance_flags, describe, sample_kwargs

    add_guidance_flags(p, img2img=False, size=False)  # --cfg-interval --cfg-rescale --negative-prompt --shift
    args = p.parse_args(argv)

    sampler = load_run(args.ckpt, args.step)
    extra = sample_kwargs(sampler, args, 10 * args.per_class)  # the sweep's grid: 10 classes
    rows = sweep(sampler, [int(s) for s in _floats(args.steps)], _floats(args.cfg),
                 per_class=args.per_class, method=args.method, **extra)
    for r in rows:
        r.update(describe(args))
    out = Path(args.ckpt)
    write_json(out / "sweep.json", {"checkpoint_step": sampler.step, "rows": rows})
    write_text(out / "sweep.md", markdown(rows))
    print(markdown(rows))
    return 0
