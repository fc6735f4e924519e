"""Sample-quality sweep over sampler steps x CFG scale for any trained run.

    ouro sweep --ckpt outputs/demo --steps 4,8,16,32 --cfg 1,2,3,5          # digits: every class
    ouro sweep --ckpt outputs/myshapes --prompts prompts.txt --cfg 1,3,5    # a text run: prompts

Each setting's labelled grid goes into RUN/sweep/<step-weights-sampler-seed-hash>/ with that
sweep's sweep.json and sweep.md (another prompt set or setting gets another directory);
RUN/sweep.json and RUN/sweep.md hold the latest sweep (the report shows it). Scored with
what applies (ouro.train.score): the digits classifier for a digits run sampled by class,
the shapes reader for shapes captions; otherwise the grids are written and the table says
that no scorer applies.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

from ouro.fileio import write_json, write_text


def sweep(sampler: Any, steps: Sequence[int], cfg_scales: Sequence[float], *, per_class: int = 20,
          method: str = "euler", seed: int = 0, progress: bool = True, req: Any = None,
          guidance_rate: float = 0.0, out_dir: str | Path | None = None, run_name: str = "",
          **extra: Any) -> list[dict[str, Any]]:
    """One row per (steps, cfg_scale): seconds, the applicable scores (`scorer` names which),
    and with out_dir the labelled grid `steps<n>_cfg<c>.png` written there. `req`: a
    conditions.Request (default: every class of the run, per_class each). `extra`: draw's
    guidance / neg_ctx / neg_mask for every setting (ouro.train.sampler_flags)."""
    from tqdm.auto import tqdm

    from ouro.train.conditions import request
    from ouro.train.grid import save_grid
    from ouro.train.sample import draw
    from ouro.train.sample_files import grid_columns
    from ouro.train.score import scorer_for

    req = req if req is not None else request(sampler, per_row=per_class)
    weights = "EMA" if getattr(sampler, "use_ema", True) else "raw weights"
    rows = []
    for n, scale in tqdm([(s, c) for s in steps for c in cfg_scales], desc="sweep", disable=not progress):
        t0 = time.perf_counter()
        images = draw(sampler, req, steps=n, method=method, cfg_scale=scale, seed=seed, guidance_rate=guidance_rate,
                      **extra)
        seconds = time.perf_counter() - t0  # includes one compile per setting
        name, score = scorer_for(sampler, req, images.shape[-1])
        row = {"steps": n, "cfg_scale": scale, "method": method, "seconds": seconds, "n_samples": len(images),
               "scorer": name, **(score(images) if score else {})}
        if out_dir is not None:
            grid = Path(out_dir) / f"steps{n}_cfg{scale:g}.png"
            save_grid(images, req.rows, grid, per_row=grid_columns(req.per_row), wrap_rows=True, row_names=req.names,
                      title=f"{run_name or sampler.cfg.name} · step {sampler.step} ({weights}) · {method} {n} steps"
                            f" · CFG {scale:g} · seed {seed}", text={"prompts": "\n".join(req.names)})
            row["grid"] = grid.name
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The sweep as a table: the scorer's columns (none: settings and seconds, and why)."""
    from ouro.train.score import COLUMNS, NONE_APPLIES, reference

    name = rows[0].get("scorer", "digits" if "accuracy" in rows[0] else "none") if rows else "none"
    cols = COLUMNS.get(name, ())
    lines = [_row(["steps", "CFG", *(h for _, h in cols), "seconds"]), "|" + "---:|" * (3 + len(cols))]
    lines += [_row([str(r["steps"]), f"{r['cfg_scale']:g}", *(_fmt(k, r.get(k)) for k, _ in cols),
                    f"{r['seconds']:.1f}" if "seconds" in r else ""]) for r in rows]
    ref = reference(name, rows[0]) if rows else None
    if ref:
        label, values = ref
        lines.append(_row([label, "", *(_fmt(k, values.get(k)) for k, _ in cols), ""]))
    if not cols:
        lines += ["", NONE_APPLIES + "."]
    return "\n".join(lines) + "\n"


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.2f}" if key == "frechet" else f"{v:.3f}"


def main(argv: list[str]) -> int:
    from ouro.train import sample_args as sa
    from ouro.train.sample_cli import HelpFormatter, load_run
    from ouro.train.sample_files import slug

    p = argparse.ArgumentParser(prog="ouro sweep", description=__doc__, formatter_class=HelpFormatter)
    sa.add_run_args(p)
    sa.add_request_args(p, per_class=20)
    sa.add_sampler_args(p, sweep=True)
    from ouro.train.sampler_flags import add_guidance_flags, describe, sample_kwargs

    add_guidance_flags(p, img2img=False, size=False)  # --cfg-interval --cfg-rescale --negative-prompt --shift
    args = p.parse_args(argv)
    steps = sa.numbers(args.steps, "--steps", int)
    scales = sa.numbers(args.cfg, "--cfg")

    sa.check_request(args)
    sampler = load_run(args.ckpt, args.step, use_ema=args.ema)
    req = sa.build_request(args, sampler)
    settings = {**sa.settings(args, sampler, steps=steps, cfg_scale=scales), **describe(args)}
    out = Path(args.ckpt) / "sweep" / slug(settings, req.describe())
    rows = sweep(sampler, steps, scales, req=req, method=args.method, seed=args.seed,
                 guidance_rate=args.autoguidance, out_dir=out, run_name=Path(args.ckpt).resolve().name,
                 **sample_kwargs(sampler, args, len(req.rows)))
    result = {**settings, **req.describe(), "directory": str(out), "rows": rows}
    table = markdown(rows)
    for d in (out, Path(args.ckpt)):  # this sweep's own copy, and the run's latest (the report reads it)
        write_json(d / "sweep.json", result)
        write_text(d / "sweep.md", table)
    print(table + f"\ngrids in {out}/")
    return 0
