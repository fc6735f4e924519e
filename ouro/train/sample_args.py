"""The command-line arguments `ouro sample` and `ouro sweep` share, defined in one place: the
run and its weights, what to draw (prompts or classes), and the sampler's settings.

A new sampler option is one `add_argument` in `add_sampler_args` plus one key in `settings`
(which also names the output directory and fills the manifest).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ouro.errors import UserError


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", required=True, help="run directory (config.json + checkpoints/)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (None: the latest)")
    p.add_argument("--no-ema", dest="ema", action="store_false",
                   help="sample the raw training weights instead of their EMA%(default).0s")  # no "(default: True)"


def add_request_args(p: argparse.ArgumentParser, *, per_class: int) -> None:
    p.add_argument("--prompt", action="append", default=[], help="text prompt, one grid row (repeatable)")
    p.add_argument("--prompts", metavar="FILE", default=None,
                   help="text file of prompts, one per line (blank lines and # comments skipped)")
    p.add_argument("--class", dest="classes", type=int, action="append", default=[],
                   help="class id, one grid row (repeatable; digits / class-labelled runs; none: every class)")
    p.add_argument("--per-class", type=int, default=per_class, help="samples per class / prompt")


def add_sampler_args(p: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    if sweep:
        p.add_argument("--steps", default="4,8,16,32", help="sampler step counts, comma-separated")
        p.add_argument("--cfg", default="1,2,3,5", help="CFG scales, comma-separated")
    else:
        p.add_argument("--steps", type=int, default=32, help="sampler steps")
        p.add_argument("--cfg", type=float, default=3.0, help="classifier-free guidance scale")
    p.add_argument("--method", default="euler", choices=["euler", "heun"], help="ODE sampler")
    p.add_argument("--autoguidance", type=float, default=0.0,
                   help="TREAD rate of the weak (unconditional) branch; 0 = plain CFG")
    p.add_argument("--seed", type=int, default=0, help="noise seed (sample i draws noise row i)")


def read_prompts(args: argparse.Namespace) -> list[str]:
    """--prompt values, then the --prompts file's lines."""
    prompts = list(args.prompt or [])
    if args.prompts:
        path = Path(args.prompts)
        if not path.is_file():
            raise UserError(f"--prompts {path}: no such file (expected a text file, one prompt per line)")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        found = [ln for ln in lines if ln and not ln.startswith("#")]
        if not found:
            raise UserError(f"--prompts {path}: holds no prompts (one per line; blank and # lines are skipped)")
        prompts += found
    return prompts


def check_request(args: argparse.Namespace) -> None:
    """What can be checked before a checkpoint is restored (seconds saved per typo)."""
    if args.per_class < 1:
        raise UserError(f"--per-class {args.per_class}: expected at least 1")
    if (args.prompt or args.prompts) and args.classes:
        raise UserError("give --prompt/--prompts or --class, not both (one grid is one kind of condition)")
    read_prompts(args)


def build_request(args: argparse.Namespace, s: Any):
    """The conditions.Request these arguments ask of run `s`."""
    from ouro.train.conditions import request

    check_request(args)
    return request(s, prompts=read_prompts(args), classes=args.classes, per_row=args.per_class)


def settings(args: argparse.Namespace, s: Any, **sampler: Any) -> dict[str, Any]:
    """What the pictures depend on besides the request (steps / cfg_scale given by the caller:
    one value for `ouro sample`, lists for `ouro sweep`)."""
    return {"run": str(args.ckpt), "checkpoint_step": s.step, "ema": bool(s.use_ema), "method": args.method,
            "seed": args.seed, "autoguidance": args.autoguidance, **sampler}


def numbers(text: str, option: str, kind: type = float) -> list:
    """`--cfg 1,2,3` -> [1.0, 2.0, 3.0] (kind=int: whole numbers only), or a one-line error."""
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise UserError(f"{option} {text!r}: expected comma-separated {what}, e.g. 4,8,16") from None
    if not values:
        raise UserError(f"{option} {text!r}: expected at least one number")
    return values
