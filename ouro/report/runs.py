"""What `ouro report` knows about one run directory: discovery, provenance, config, curves.

A run is any directory under outputs/ holding a marker artefact, whatever started it:
`ouro train` (config.json + loss.csv + metrics.json), `ouro demo` (the same in outputs/demo),
`ouro run` (run.json + the executed notebook + whatever the notebook wrote).

What makes two runs comparable is read here too: the dataset a run trained on
(`dataset`), what its loss measures (`loss_kind`: a denoiser's flow-matching loss or an
autoencoder's reconstruction loss), whether it is a smoke run (`smoke`), and its status in
the one vocabulary of ouro/runs/status.py.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

# Fewer optimizer steps than this and a run is a smoke run: its loss is still mostly warm-up
# (the digits preset warms up for 50 steps, the smoke presets run 8-20), so it says how a run
# starts, not where a model size or a compute budget leads. Smoke runs are drawn dotted and
# left out of every fit. A notebook run with `smoke=True` is a smoke run whatever its length.
SMOKE_STEPS = 100

# A directory is a run if it holds one of these (checkpoint trees and the like are not).
MARKERS = ("run.json", "loss.csv", "metrics.json", "config.json", "scaling_fits.json", "embedding_stats.json")
SKIP = ("report", "bench")  # outputs/report is the report itself; benchmarks have their own JSON


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclasses.dataclass
class RunDir:
    name: str
    path: Path
    record: dict[str, Any] = dataclasses.field(default_factory=dict)  # run.json, if any
    shown: str = ""  # path relative to the project: reports never print /home/...
    parent: dict[str, Any] = dataclasses.field(default_factory=dict)  # the enclosing run's run.json

    @property
    def commit(self) -> str:
        git = self.record.get("git") or (self.metrics or {}).get("git") or self.parent.get("git") or {}
        sha = git.get("commit") if isinstance(git, dict) else None
        if not sha:
            return "commit not recorded"
        return f"commit `{sha[:10]}`" + (" (uncommitted changes)" if git.get("dirty") else "")

    @property
    def started_by(self) -> str:
        if self.record.get("notebook"):
            return f"notebook `{Path(self.record['notebook']).name}`"
        if self.name == "demo":
            return "`ouro demo`"
        inside = f"notebook `{Path(self.parent['notebook']).name}`" if self.parent.get("notebook") else ""
        if self.config:
            return "`ouro train`" + (f" in {inside}" if inside else "")
        return inside or "?"

    @property
    def provenance(self) -> str:
        return f"run `{self.name}` (`{self.shown}`, {self.started_by}, {self.commit})"

    @functools.cached_property
    def metrics(self) -> dict | None:
        m = read_json(self.path / "metrics.json")
        return m if isinstance(m, dict) else None

    @functools.cached_property
    def config(self) -> dict | None:
        """config.json's training config (as `ouro train` writes it), or None."""
        c = self.saved_config.get("train")
        return c if isinstance(c, dict) else None

    @functools.cached_property
    def loss(self) -> dict[str, np.ndarray] | None:
        """loss.csv as columns (global_step, loss, lr, images_per_s, ...), or None."""
        try:
            with (self.path / "loss.csv").open(newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError:
            return None
        if not rows:
            return None

        def col(name: str) -> np.ndarray:
            return np.array([_float(r.get(name)) for r in rows])

        step = col("global_step") if "global_step" in rows[0] else col("step")
        return {"step": step, **{k: col(k) for k in rows[0] if k not in ("global_step", "step")}}

    @functools.cached_property
    def saved_config(self) -> dict:
        """config.json as written (a training config under "train", an autoencoder's
        diffusers config, ...); {} if there is none."""
        c = read_json(self.path / "config.json")
        return c if isinstance(c, dict) else {}

    @property
    def family(self) -> str | None:
        """The model family of a training run (config.json's model_family, else inferred)."""
        model = (self.config or {}).get("model")
        if not isinstance(model, dict):
            return None
        if self.saved_config.get("model_family"):
            return str(self.saved_config["model_family"])
        try:
            from ouro.model.registry import infer_family

            return infer_family(model)
        except Exception:  # noqa: BLE001 - a config from another version of ouro
            return None

    @property
    def loss_kind(self) -> str:
        """What loss.csv measures: "denoiser" (the flow-matching loss of `ouro train`),
        "autoencoder" (`ouro vae train`'s reconstruction + KL loss) or "unknown"."""
        cols = self.loss or {}
        if "rec_mse" in cols or (self.path / "vae_train.json").is_file() or \
                "autoencoder" in str(self.saved_config.get("_class_name", "")).lower():
            return "autoencoder"
        return "denoiser" if self.config else "unknown"

    @property
    def steps_done(self) -> int | None:
        """Optimizer steps taken: metrics.json's global_step, else loss.csv's last step."""
        step = (self.metrics or {}).get("global_step")
        if isinstance(step, (int, float)) and not isinstance(step, bool):
            return int(step)
        if self.loss is not None:
            s = self.loss["step"][np.isfinite(self.loss["step"])]
            return int(s.max()) if len(s) else None
        return None

    @property
    def smoke(self) -> str | None:
        """Why this is a smoke run (see SMOKE_STEPS), or None when it is not one."""
        params = self.record.get("parameters") or self.parent.get("parameters") or {}
        if params.get("smoke") is True:
            return "a notebook smoke run (smoke=True)"
        steps = self.steps_done
        if steps is not None and steps < SMOKE_STEPS:
            return f"{steps} step{'s' if steps != 1 else ''}, under {SMOKE_STEPS}"
        return None

    @property
    def dataset(self) -> str | None:
        """What the run trained on, as a label under which runs compare: the recorded dataset
        name (or data.path, or data.kind) with the image shape, and the autoencoder for latents.
        None when the run records no training data (notebook runs, autoencoders)."""
        data = (self.config or {}).get("data")
        if not isinstance(data, dict):
            return None
        named = next((v for v in ((self.metrics or {}).get("dataset"), self.record.get("dataset"),
                                  self.saved_config.get("dataset"), data.get("name")) if v), None)
        if isinstance(named, dict):
            named = named.get("name") or named.get("path")
        name = str(named) if named else shown_path(str(data["path"])) if data.get("path") else str(data.get("kind", "?"))
        shape = "×".join(str(data[k]) for k in ("image_size", "image_size", "channels") if k in data)
        label = f"{name} {shape}".strip()
        if data.get("buckets"):  # multi-aspect: image_size is the area budget's side
            label += f" in {len(str(data['buckets']).split(','))} aspect buckets"
        if data.get("autoencoder"):
            label += f", latents of {shown_path(str(data['autoencoder']))}"
        return label

    @property
    def status(self) -> tuple[str, str]:
        """(one word of ouro.runs.status.STATUSES, where it comes from or why it is unknown)."""
        from ouro.runs import status as st

        own = st.normalise(self.record.get("status"))
        if own is not None:
            return own, "run.json"
        for name, doc in (("metrics.json", self.metrics), ("vae_train.json", read_json(self.path / "vae_train.json"))):
            word = st.of_summary(doc) if isinstance(doc, dict) else None
            if word is not None:
                return word, name
        return st.UNKNOWN, "no run.json, metrics.json or vae_train.json records one"

    @property
    def train_flops_per_image(self) -> float | None:
        v = (self.metrics or {}).get("train_flops_per_image")
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
        ratio = self.loss["model_flops_per_s"] / self.loss["images_per_s"] if self.loss and "images_per_s" in self.loss else []
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)] if len(ratio) else ratio
        return float(np.median(ratio)) if len(ratio) else None

    @property
    def flops(self) -> np.ndarray | None:
        """Cumulative training FLOPs at each loss.csv row (step x batch x FLOPs/image)."""
        per_image, batch = self.train_flops_per_image, (self.config or {}).get("batch_size")
        if self.loss is None or not per_image or not batch:
            return None
        return self.loss["step"] * batch * per_image

    @functools.cached_property
    def params(self) -> int | None:
        """Model parameter count of config.json's model, through its family's accounting."""
        model = (self.config or {}).get("model")
        if not isinstance(model, dict) or self.family is None:
            return None
        try:
            from ouro.model.registry import config_from_dict, param_count

            return int(param_count(config_from_dict(self.family, model)))
        except Exception:  # noqa: BLE001 - a family not registered in this checkout: size unknown
            return None


def shown_path(path: str) -> str:
    """A path as a report may print it: URLs (gs://...) and relative paths as they are; an
    absolute path relative to the project when inside it, else its last two parts after
    "…/" (never the /home/... of the machine that ran it)."""
    if "://" in path or not Path(path).is_absolute():
        return path
    from ouro.paths import project_root

    p = Path(path)
    try:
        return p.relative_to(project_root()).as_posix()
    except ValueError:
        return "…/" + "/".join(p.parts[-2:])


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def local_outputs(outputs: str | Path) -> Path:
    """The runs root as a local directory: a gs:// root (gs://bucket/outputs, holding
    runs/<name>/...) is read through a local copy of its records, checkpoints left behind."""
    from ouro.data.storage import is_url, local_copy

    return local_copy(str(outputs)) if is_url(outputs) else Path(outputs)


def discover(outputs: Path) -> list[RunDir]:
    """outputs/demo first, then other outputs/<name>/ runs, then outputs/runs/<name> and
    per-host outputs/runs/<name>/<host>; each group sorted by name."""
    def has_marker(d: Path) -> bool:
        return any((d / m).is_file() for m in MARKERS)

    runs = []
    if (outputs / "demo").is_dir() and has_marker(outputs / "demo"):
        runs.append(RunDir("demo", outputs / "demo", read_json(outputs / "demo" / "run.json") or {}, "outputs/demo"))
    if outputs.is_dir():
        for d in sorted(p for p in outputs.iterdir() if p.is_dir() and p.name not in ("demo", "runs", *SKIP) and has_marker(p)):
            runs.append(RunDir(d.name, d, read_json(d / "run.json") or {}, f"outputs/{d.name}"))
    base = outputs / "runs"
    if base.is_dir():
        dirs = sorted({p.parent for m in MARKERS for p in [*base.glob(f"*/{m}"), *base.glob(f"*/*/{m}")]})
        for d in dirs:
            name = d.relative_to(base).as_posix()
            # a nested directory (a host's part of a pod run, a model a notebook trained on the
            # way) was made inside its parent's run: the parent's record names who started it
            parent = (read_json(d.parent / "run.json") or {}) if "/" in name else {}
            runs.append(RunDir(name, d, read_json(d / "run.json") or {}, f"outputs/runs/{name}", parent))
    # `ouro run -p out_dir X` leaves run.json in outputs/runs/<name> and the artefacts in X:
    # give X the record, so its sections still name the notebook and commit.
    by_out = {}
    for r in runs:
        out_dir = (r.record.get("parameters") or {}).get("out_dir")
        if out_dir:
            p = Path(out_dir)
            by_out[(p if p.is_absolute() else outputs.parent / p).resolve()] = r.record
    for r in runs:
        if not r.record and r.path.resolve() in by_out:
            r.record = by_out[r.path.resolve()]
    return runs


def closest_preset(train: dict) -> tuple[str | None, list[str]]:
    """The training preset this config differs least from, and the differing keys as
    `key=value` (the deltas that matter; paths and the name are left out)."""
    from ouro.config_doc import fields
    from ouro.train.config import PRESETS, from_dict, preset_config

    try:
        cfg = from_dict(train)
    except Exception:  # noqa: BLE001 - a config from another version of ouro
        return None, []
    mine = {k: v for k, _, v, _ in fields(cfg)}
    best: tuple[str | None, list[str]] = (None, [])
    for name in PRESETS:
        ref = {k: v for k, _, v, _ in fields(preset_config(name))}
        delta = [f"{k}={v.strip(chr(39))}" for k, v in mine.items()  # as typed on the CLI: no quotes
                 if ref.get(k) != v and k not in ("name", "out_dir", "ckpt_dir", "model.name")]
        if best[0] is None or len(delta) < len(best[1]):
            best = (name, delta)
    return best
