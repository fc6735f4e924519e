"""A run's config is its identity: resuming with other settings is refused, except for keys
that cannot change what the finished run means (cadence, logging, where files live).

    changes = resume_changes(out_dir, cfg)  # {} | {"steps": (800, 1600)}; raises ConfigChanged
    record_resume(config_json, previous, step, changes)  # config.json keeps the history

`config.json` always holds the config the run trains with now; each accepted change is
appended to its `history` (`{"step": 151, "time": ..., "changes": {"steps": [800, 1600]}}`),
so the config of any stretch of the run can be read back. A key older config.json files
lack (a field added since) is not compared: the run used what is now its default.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ouro.errors import UserError

# key (dotted, or a prefix ending in ".") -> why changing it on resume is safe
SAFE_ON_RESUME: dict[str, str] = {
    "steps": "lengthens or shortens the run; the cosine schedule is stretched from the resume step",
    "name": "a label in logs, W&B and reports",
    "out_dir": "the run directory may be moved or renamed",
    "ckpt_dir": "checkpoints may be moved; restore still checks every array's name and shape",
    "log_every": "how often loss.csv rows are written (windows are averaged either way)",
    "ckpt_every": "how often checkpoints are saved",
    "keep_ckpts": "how many step checkpoints are kept",
    "keep_every_steps": "which epoch-end checkpoints are kept for good",
    "stop_check_every": "how often pod hosts agree on a stop",
    "host_timeout_s": "how long a silent pod host is waited for",
    "join_timeout_s": "how long pod hosts wait for each other at start-up",
    "lock_ttl_s": "how long a gs:// run lock without a heartbeat is honoured",
    "progress": "the progress bar",
    "tensorboard": "event files: logging only",
    "wandb": "W&B logging only",
    "wandb_project": "W&B logging only",
    "wandb_mode": "W&B logging only",
    "eval_samples": "the end-of-run sample grid and score; training is unaffected",
    "sample.": "the end-of-run sampler (steps, method, CFG, grid size, seed); training is unaffected",
    "mesh.": "restore reshards into the new mesh; the losses on 1 and 8 devices are the same (tested)",
    "microbatches": "the same global batch in k slices: the same update up to float rounding",
    "data.mode": "preload or stream: the same batches in the same order (tested)",
    "data.workers": "reader threads: the same batches, read faster or slower",
    "data.prefetch": "batches read ahead: the same batches",
    "model.remat": "what is recomputed in the backward pass: memory, not math",
}


class ConfigChanged(UserError):
    """A resume whose config differs from the run's in keys that define it."""


def is_safe(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in SAFE_ON_RESUME)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    """As config.json stores it (tuples -> lists, NaN -> null): equal configs compare equal."""
    from ouro.fileio import strict

    return json.loads(json.dumps(strict(d), default=str))


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (old, new)} for keys both configs have and that differ."""
    a, b = _flat(_plain(old)), _flat(_plain(new))
    return {k: (a[k], b[k]) for k in sorted(a.keys() & b.keys()) if a[k] != b[k]}


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str) else str(v)


def describe(changes: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{k}: {_show(o)} \u2192 {_show(n)}" for k, (o, n) in changes.items())


def previous_config(out_dir: str | Path) -> dict[str, Any] | None:
    """The run's config.json, or None when out_dir holds no run yet (or an unreadable one)."""
    path = Path(out_dir) / "config.json"
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return old if isinstance(old, dict) and isinstance(old.get("train"), dict) else None


def resume_changes(previous: dict[str, Any] | None, new_train: dict[str, Any], out_dir: str | Path
                   ) -> dict[str, tuple[Any, Any]]:
    """The accepted changes of a resume against the run's recorded config; raises
    ConfigChanged naming every key that may not change (with old -> new) in one line."""
    if previous is None:
        return {}
    changes = diff(previous["train"], new_train)
    refused = {k: v for k, v in changes.items() if not is_safe(k)}
    if refused:
        raise ConfigChanged(
            f"{out_dir} holds a run trained with another config ({describe(refused)}); a run's "
            f"config is its identity: resume it with the recorded values (config.json) or train "
            f"into a new out_dir. Keys that may change on resume: {', '.join(SAFE_ON_RESUME)}")
    return changes


def with_history(config_json: dict[str, Any], previous: dict[str, Any] | None, step: int | None,
                 changes: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    """config.json for this call: the new config, the earlier history, and this resume's
    changes (if any) at the step it resumed from."""
    history = list((previous or {}).get("history", [])) if step is not None else []
    if step is not None and changes:
        history.append({"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "changes": {k: [o, n] for k, (o, n) in changes.items()}})
    return {**config_json, "history": history} if history else config_json


def has_checkpoints(ckpt_dir: str | Path) -> bool:
    """Whether a checkpoint directory holds any step (Orbax names steps by number)."""
    if "://" in str(ckpt_dir):
        from etils import epath

        path: Any = epath.Path(str(ckpt_dir))
    else:
        path = Path(ckpt_dir)
    try:
        return any(p.name.isdigit() for p in path.iterdir())
    except OSError:  # no such directory yet
        return False
