"""Run provenance: the code commit and package versions a run records (run.json, plan rows,
metrics), so two runs can be told comparable or not."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import subprocess
from pathlib import Path
from typing import Any

from ouro.paths import project_root

# Versions recorded in run.json: what decides whether two runs are comparable.
RECORDED_PACKAGES = (
    "ouro", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "scipy",
    "papermill", "jupytext", "nbclient", "ipykernel",
)


def git_commit(root: Path | None = None) -> dict[str, Any]:
    """{'commit': sha or None, 'dirty': bool or None} of the project checkout."""
    root = root or project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, check=True).stdout
        return {"commit": sha, "dirty": bool(status.strip())}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def config_hash(cfg: Any) -> str:
    """A short content hash of a config dataclass: two records with the same hash describe the
    same run setup. Where the data lives (data.path) and where outputs go (out_dir, ckpt_dir,
    name) are left out: they do not change what is computed."""
    import hashlib
    import json

    from ouro.config import to_dict

    d = to_dict(cfg)
    for key in ("name", "out_dir", "ckpt_dir"):
        d.pop(key, None)
    if isinstance(d.get("data"), dict):
        d["data"].pop("path", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]
