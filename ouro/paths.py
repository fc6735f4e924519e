"""Where things live: the project root, the runs directory, and path parameters as a
notebook or CLI means them (relative to the project root; URLs such as gs:// untouched)."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository root: $OURO_ROOT, else the nearest ancestor of the working directory
    holding pyproject.toml and ouro/, else the checkout this package was imported from.
    Notebooks resolve their default paths against it, so they behave the same whether
    JupyterLab starts them in notebooks/ or papermill starts them elsewhere."""
    if os.environ.get("OURO_ROOT"):
        return Path(os.environ["OURO_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "ouro").is_dir():
            return d
    return Path(__file__).resolve().parents[1]


def runs_dir() -> Path:
    return project_root() / "outputs" / "runs"


def project_path(path: str | os.PathLike | None) -> str | None:
    """A path parameter as the notebook means it: relative paths from the project root
    (the kernel runs in notebooks/), URLs such as gs://bucket/x untouched, empty -> None."""
    if path is None or str(path) == "":
        return None
    if "://" in str(path):
        return str(path)
    p = Path(path).expanduser()
    return str(p if p.is_absolute() else project_root() / p)


def resolve_out_dir(out_dir: str | os.PathLike | None, default_name: str) -> Path:
    """A notebook's `out_dir` parameter as a created directory. Empty → outputs/runs/
    <default_name>; relative paths are taken from the project root, not the kernel's cwd."""
    path = Path(out_dir) if out_dir else runs_dir() / default_name
    if not path.is_absolute():
        path = project_root() / path
    path.mkdir(parents=True, exist_ok=True)
    return path
