"""Where samples go, so that no call overwrites another's, and what is written there.

    RUN/samples/step400-ema-euler32-cfg3-seed0-1a2b3c4d/
        sample_grid.png     the labelled grid (enlarged for viewing, labels in a margin column)
        sample_0000.png ... every image at native resolution, prompt/class + settings in its metadata
        manifest.json       every image: file, prompt or class, seed, noise index, CFG, steps,
                            sampler, checkpoint step, EMA flag, run

The name's hash covers everything that changes the pictures (prompts or classes, samples
each, sampler, steps, CFG, seed, guidance, checkpoint step, weights), so another prompt set
or setting gets another directory and the same call rewrites the same files. An explicit
`out` is a directory (no `.png`) or a grid path (`.png`; the images go into the directory
of the same name beside it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ouro.errors import UserError
from ouro.fileio import write_json

GRID = "sample_grid.png"  # `_grid` suffix: `ouro fid DIR` skips grids
MANIFEST = "manifest.json"
MAX_PER_LINE = 16  # images per grid line; a prompt with more samples wraps onto further lines
_IMAGE = re.compile(r"sample_\d{4,}\.png")


@dataclasses.dataclass(frozen=True)
class Target:
    directory: Path  # single images + manifest.json
    grid: Path  # the labelled grid


def short_hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def slug(settings: Mapping[str, Any], request: Mapping[str, Any]) -> str:
    """step400-ema-euler32-cfg3-seed0-<hash of settings + request>: readable, never shared."""
    keyed = {k: v for k, v in settings.items() if k != "run"}  # a moved run keeps its names
    steps = settings.get("steps")
    sampler = f"{settings['method']}{steps}" if not isinstance(steps, (list, tuple)) else settings["method"]
    cfg = settings.get("cfg_scale")
    parts = [f"step{settings['checkpoint_step']}", "ema" if settings["ema"] else "raw", sampler,
             *([f"cfg{cfg:g}"] if isinstance(cfg, (int, float)) else []), f"seed{settings['seed']}"]
    return "-".join(parts + [short_hash({**keyed, **request})])


def target(run_dir: str | Path, out: str | Path | None, name: str, *, option: str = "--out") -> Target:
    """The directory and grid path for one call (see the module docstring)."""
    if out is None or str(out) == "":
        d = Path(run_dir) / "samples" / name
        return Target(d, d / GRID)
    p = Path(out)
    if p.suffix.lower() == ".png":
        if p.is_dir():
            raise UserError(f"{option} {out}: is a directory; a path ending in .png names the grid file "
                            f"(give a path without .png to write everything into a directory)")
        d = p.with_suffix("")
        if d.exists() and not d.is_dir():
            raise UserError(f"{option} {out}: the images go into {d}, which exists and is not a directory")
        return Target(d, p)
    if p.exists() and not p.is_dir():
        raise UserError(f"{option} {out}: exists and is not a directory; give a directory, "
                        f"or a grid path ending in .png")
    return Target(p, p / GRID)


def grid_columns(per_row: int) -> int:
    """Images per grid line: all of a prompt's samples, or equal lines of at most 16."""
    return math.ceil(per_row / math.ceil(per_row / MAX_PER_LINE))


def title(settings: Mapping[str, Any], run_name: str) -> str:
    s = settings
    weights = "EMA" if s["ema"] else "raw weights"
    guide = f" · autoguidance {s['autoguidance']:g}" if s.get("autoguidance") else ""
    return (f"{run_name} · step {s['checkpoint_step']} ({weights}) · {s['method']} {s['steps']} steps · "
            f"CFG {s['cfg_scale']:g}{guide} · seed {s['seed']}")


def _remove_stale(directory: Path, keep: set[str]) -> None:
    """Images an earlier call listed in this directory's manifest and this call does not
    rewrite: removed, so the directory never mixes two calls' samples."""
    try:
        old = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return
    for entry in old.get("images", []):
        f = str(entry.get("file", "")) if isinstance(entry, dict) else ""
        if _IMAGE.fullmatch(f) and f not in keep:
            (directory / f).unlink(missing_ok=True)


def write_samples(images: np.ndarray, req: Any, settings: Mapping[str, Any], where: Target, *,
                  run_name: str) -> dict[str, Any]:
    """Every image as a native-resolution PNG, the labelled grid and manifest.json; returns
    the manifest. `req` is a conditions.Request; `settings` the sampler settings (+ run)."""
    from ouro.train.grid import save_grid
    from ouro.train.png import save_png

    files = [f"sample_{i:04d}.png" for i in range(len(images))]
    where.directory.mkdir(parents=True, exist_ok=True)
    _remove_stale(where.directory, set(files))
    meta = {k: str(v) for k, v in settings.items()}
    entries = []
    for i, (im, f) in enumerate(zip(images, files)):
        entry = {"file": f, **req.label(i), "seed": settings["seed"], "noise_index": i}
        text = {"prompt": entry.get("prompt", f"class {entry.get('class')}"),
                **{k: str(v) for k, v in req.label(i).items()}, **meta, "noise_index": str(i)}
        save_png(im, where.directory / f, text)  # native resolution
        entries.append(entry)
    head = title(settings, run_name)
    save_grid(images, req.rows, where.grid, per_row=grid_columns(req.per_row), wrap_rows=True, row_names=req.names,
              title=head, text={"prompts": "\n".join(req.names), **meta})
    manifest = {**settings, **req.describe(), "title": head, "grid": _relative(where.grid, where.directory),
                "images": entries}
    write_json(where.directory / MANIFEST, manifest)
    return manifest


def _relative(path: Path, base: Path) -> str:
    return os.path.relpath(path.resolve(), base.resolve())  # "sample_grid.png" or "../grid.png"
