"""Metric sinks: loss.csv always (resumable), Weights & Biases only when enabled."""

from __future__ import annotations

import csv
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

COLUMNS = ("timestamp", "epoch", "step", "global_step", "loss", "lr", "grad_norm",
           "images_per_s", "model_flops_per_s")


def write_json(path: str | Path, payload: Any) -> None:
    """Atomic JSON write (temp name, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


class CSVLog:
    """Appends rows to loss.csv. On resume, rows past the restored step are dropped so the
    file always describes exactly one history (the one the checkpoints continue)."""

    def __init__(self, path: str | Path, *, resume_step: int = 0, extra: tuple[str, ...] = ()):
        self.path = Path(path)
        self.columns = COLUMNS + tuple(extra)
        rows = []
        if self.path.exists() and resume_step > 0:
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["global_step"]) <= resume_step]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, self.path)

    def write(self, row: dict[str, Any]) -> None:
        row = {"timestamp": f"{time.time():.3f}", **row}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)


def read_csv(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


class WandB:
    """Optional W&B run; offline unless the config says otherwise (no network here)."""

    def __init__(self, cfg: Any, out_dir: Path, config: dict):
        self.run = None
        if not cfg.wandb or cfg.wandb_mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        # one W&B run per ouro run: the id lives beside the checkpoints, so a resumed
        # (preempted) run appends to the same W&B history instead of starting a new one
        id_file = Path(out_dir) / "wandb_id.txt"
        if id_file.exists():
            run_id = id_file.read_text().strip()
        else:
            run_id = uuid.uuid4().hex[:12]
            tmp = id_file.with_name(id_file.name + ".tmp")
            tmp.write_text(run_id)
            os.replace(tmp, id_file)
        self.run_id = run_id
        self.run = wandb.init(project=cfg.wandb_project, name=cfg.name, dir=str(out_dir), id=run_id,
                              mode=cfg.wandb_mode, config=config, resume="allow")

    def log(self, row: dict[str, Any], step: int) -> None:
        if self.run is not None:
            self.run.log(row, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
