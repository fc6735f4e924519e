"""Metric sinks: loss.csv always (resumable); TensorBoard and Weights & Biases when enabled.

`Sinks` fans one call out to every enabled sink: scalars (loss, lr, grad norm, images/s,
per-t-bin losses, eval scores) and images (sample grids).

W&B mode, in order of precedence: `wandb=false` -> no W&B at all; else the WANDB_MODE
environment variable (set per machine or job: `WANDB_MODE=disabled` writes nothing, not even
an offline run); else the config's `wandb_mode` (default "offline": no network).
The W&B run is named after the run (out_dir's folder, e.g. `outputs/runs/big` -> "big") and
grouped by the config name (the preset), so reruns of one preset stay apart.
"""

from __future__ import annotations

import csv
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

from ouro.fileio import write_json, write_text  # noqa: F401 - write_json re-exported for the loop


COLUMNS = ("timestamp", "epoch", "step", "global_step", "loss", "lr", "grad_norm",
           "images_per_s", "model_flops_per_s", "mfu")
WANDB_MODES = ("offline", "online", "disabled")


class CSVLog:
    """Appends rows to loss.csv. On resume, rows past the restored step are dropped so the
    file always describes exactly one history (the one the checkpoints continue)."""

    def __init__(self, path: str | Path, *, resume_step: int = 0, extra: tuple[str, ...] = ()):
        self.path = Path(path)
        self.columns = COLUMNS + tuple(extra)
        rows = []
        if self.path.exists() and resume_step > 0:
            with open(self.path, newline="") as f:  # a row cut short by a crash is dropped
                rows = [r for r in csv.DictReader(f) if None not in r.values()
                        and r["global_step"].isdigit() and int(r["global_step"]) <= resume_step]
        import io

        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, self.columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        write_text(self.path, buf.getvalue())

    def write(self, row: dict[str, Any]) -> None:
        row = {"timestamp": f"{time.time():.3f}", **row}
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns, extrasaction="ignore").writerow(row)


def read_csv(path: str | Path) -> list[dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def run_name(cfg: Any) -> str:
    """The run's own name: its out_dir's folder (the preset is cfg.name)."""
    return Path(str(cfg.out_dir).rstrip("/")).name or cfg.name


def wandb_mode(cfg: Any, environ: Mapping[str, str] = os.environ) -> str | None:
    """The W&B mode this run uses, or None for no W&B (see the module docstring)."""
    if not cfg.wandb:
        return None
    env = environ.get("WANDB_MODE", "").strip().lower()
    if env == "dryrun":  # W&B's old name for offline
        env = "offline"
    mode = env if env in WANDB_MODES else cfg.wandb_mode
    return None if mode == "disabled" else mode


def _png(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))  # (H, W, 3) uint8


class WandB:
    """One W&B run per ouro run; a resumed (preempted) run appends to the same history."""

    def __init__(self, cfg: Any, out_dir: Path, config: dict, mode: str):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        id_file = Path(out_dir) / "wandb_id.txt"  # beside the checkpoints
        run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
        write_text(id_file, run_id)
        self.run_id = run_id
        self.run = wandb.init(project=cfg.wandb_project, name=run_name(cfg), group=cfg.name, dir=str(out_dir),
                              id=run_id, mode=mode, config=config, resume="allow")

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def image(self, tag: str, path: Path, step: int) -> None:
        import wandb

        self.run.log({tag: wandb.Image(str(path))}, step=step)

    def finish(self) -> None:
        self.run.finish()


def _tensorboardx():
    """tensorboardX, imported without torch: where torch is installed tensorboardX imports it
    (1 s, 2 CPU-s per training process) only so that torch tensors pass as values; ouro logs
    floats and numpy images. A process that has torch already keeps it."""
    import sys

    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        import tensorboardX
        return tensorboardX
    sys.modules["torch"] = None  # `import torch` raises ImportError while tensorboardX loads
    try:
        import tensorboardX
    finally:
        del sys.modules["torch"]
    return tensorboardX


class TensorBoard:
    """Event files in out_dir/tensorboard/ (tensorboardX): `tensorboard --logdir outputs/`."""

    def __init__(self, out_dir: Path):
        self.writer = _tensorboardx().SummaryWriter(logdir=str(Path(out_dir) / "tensorboard"), flush_secs=30)

    def log(self, scalars: dict[str, float], step: int) -> None:
        for k, v in scalars.items():
            if math.isfinite(v):  # e.g. a t-bin no sample fell into this window: no point
                self.writer.add_scalar(k, v, step)

    def image(self, tag: str, path: Path, step: int) -> None:
        self.writer.add_image(tag, _png(path), step, dataformats="HWC")

    def finish(self) -> None:
        self.writer.close()


def read_events(logdir: str | Path) -> list:
    """Every Event in the TensorBoard files under logdir, in order (no TensorBoard needed):
    TFRecord framing is (u64 length, u32 crc, payload, u32 crc)."""
    import struct

    _tensorboardx()
    from tensorboardX.proto import event_pb2

    events = []
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i + 12 <= len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            ev = event_pb2.Event()
            ev.ParseFromString(data[i + 12:i + 12 + n])
            events.append(ev)
            i += 12 + n + 4
    return events


class Sinks:
    """Every enabled sink behind one interface (none enabled: calls are no-ops)."""

    def __init__(self, cfg: Any, out_dir: Path, config: dict, environ: Mapping[str, str] = os.environ):
        self.sinks: list[Any] = []
        if getattr(cfg, "tensorboard", False):
            self.sinks.append(TensorBoard(out_dir))
        mode = wandb_mode(cfg, environ)
        if mode is not None:
            self.sinks.append(WandB(cfg, out_dir, config, mode))

    def log(self, scalars: dict[str, float], step: int) -> None:
        for s in self.sinks:
            s.log(scalars, step)

    def image(self, tag: str, path: Path, step: int) -> None:
        if Path(path).exists():
            for s in self.sinks:
                s.image(tag, Path(path), step)

    def finish(self) -> None:
        for s in self.sinks:
            s.finish()
