"""Plan rows as Markdown: the `ouro plan` / `--fit` table and the report's "Pod plan"
section, where a row measured at another commit is marked stale rather than shown as
current (a model or compiler change moves memory and FLOPs: e4a654a's unrolled short
stacks turned "remat none: does not fit" into 32% headroom)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GIB = 2**30


def _gib(x: Any) -> str:
    return "—" if x is None else f"{x / GIB:.3g}"


def _tflops(x: Any) -> str:
    return "—" if x is None else f"{x / 1e12:.2f}"


def _memory(r: dict) -> tuple[str, str, str]:
    """(temporaries, peak, headroom) cells. A row XLA refused has only the temporaries its
    error message names, which leave out the state: say so, and give peak as at least both."""
    if "headroom" in r:
        return _gib(r.get("temp_bytes")), _gib(r.get("peak_bytes")), f"{100 * r['headroom']:.0f}%"
    temp = r.get("temp_bytes")
    if temp is None:
        return "—", "—", "does not fit"
    return (f"{_gib(temp)} (without state)", f"≥ {_gib(temp + r['state_bytes'])}",
            "does not fit")


def _verdict(r: dict) -> str:
    margin = r.get("margin", 0.0)
    if r.get("fits"):
        return "fits" if not margin else f"fits (≥ {100 * margin:.0f}% headroom)"
    if "headroom" in r and r["headroom"] >= 0:
        return f"too tight (< {100 * margin:.0f}% headroom)"
    return "does not fit"


def pod_plan_table(rows: list[dict[str, Any]], *, current_commit: str | None = None) -> str:
    """Markdown table of plan() rows (for `ouro plan`, `ouro report` and notebooks).
    With current_commit, a row recorded at another commit (or none) is marked stale."""
    head = ("| config | topology | mesh (data×fsdp) | batch (per chip) | micro | remat | dtype "
            "| params+EMA+opt GiB | temporaries GiB | peak GiB | HBM GiB | headroom | verdict "
            "| model TFLOP/step/chip | executed TFLOP/step/chip | executed / model "
            "| step time ≥ (lower bound) | commit |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        temp, peak, headroom = _memory(r)
        ratio = r.get("executed_over_model")
        lb = r.get("step_time_lower_bound_s")
        commit = (r.get("commit") or "?")[:7] + ("+dirty" if r.get("dirty") else "")
        if current_commit and r.get("commit") != current_commit:
            commit = f"**stale** ({commit})"
        lines.append(
            f"| {r['name']} | {r['topology']} | {r['mesh']['data']}×{r['mesh']['fsdp']} "
            f"| {r['global_batch']} ({r['per_chip_batch']:g}) | {r['microbatches']} | {r['remat']} | {r['dtype']} "
            f"| {_gib(r['state_bytes'])} | {temp} | {peak} | {r['hbm_bytes'] / GIB:.2f} | {headroom} "
            f"| {_verdict(r)} | {_tflops(r.get('model_flops_per_step_per_chip'))} "
            f"| {_tflops(r.get('executed_flops_per_chip'))} | {'—' if ratio is None else f'{ratio:.3f}'} "
            f"| {'—' if lb is None else f'{lb * 1e3:.1f} ms'} | {commit} |")
    return "\n".join(lines)


def section_pod_plan(outputs: Path) -> str:
    """The report's "Pod plan" section from outputs/plan/*.json (empty string if none)."""
    from ouro.provenance import git_commit

    files = sorted((outputs / "plan").glob("*.json")) if (outputs / "plan").is_dir() else []
    rows = [r for r in (json.loads(f.read_text()) for f in files) if "topology" in r]
    if not rows:
        return ""
    current = git_commit()["commit"]
    stale = sum(r.get("commit") != current for r in rows)
    note = (f" {stale} of {len(rows)} rows were measured at another commit (**stale**): rerun "
            "`ouro plan` with their overrides before trusting them." if stale and current else "")
    return ("## Pod plan\n\nPer chip, from `ouro plan` (compiled train step). Executed FLOPs are "
            "counted from the compiled program (remat's recompute included); step time is a lower "
            "bound: executed FLOPs at the chip's peak bf16 FLOP/s." + note + "\n\n"
            + pod_plan_table(rows, current_commit=current))
