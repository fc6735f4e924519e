"""Architecture comparison at matched training compute (the question a researcher picking
an architecture asks): each model family trains on the same data, with the same schedule,
sampler and batch, for as many steps as its OWN accounting allows within one budget of
training FLOPs (3 x forward FLOPs per image x images seen). Loss curves are compared
against FLOPs, the final models by the sample metric (ouro.train.evaluate on the digits).

    rows = compare({"XUT": "digits", "DiT": "digits-dit", "MMDiT": "digits-mmdit"},
                   budget_flops=2e13, out_dir="outputs/arch")

Every run is an ordinary resumable training run under out_dir/<label>/: rerunning
continues where it stopped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from ouro.fileio import atomic_path, write_json, write_text
from ouro.report.markdown import table


def plan(presets: Mapping[str, str], budget_flops: float, *, batch_size: int | None = None,
         overrides: Sequence[str] = ()) -> dict[str, Any]:
    """label -> TrainConfig with steps = budget / (train FLOPs per image x batch)."""
    from ouro.config import override
    from ouro.train import preset_config
    from ouro.train.loop import model_train_flops

    cfgs = {}
    for label, name in presets.items():
        cfg = override(preset_config(name), list(overrides))
        if batch_size:
            cfg = dataclasses.replace(cfg, batch_size=batch_size)
        per_step = model_train_flops(cfg.model, cfg) * cfg.batch_size
        steps = max(2, round(budget_flops / per_step))
        log_every = max(1, steps // 20)  # ~20 loss rows per curve
        cfgs[label] = dataclasses.replace(cfg, steps=steps, warmup_steps=max(1, steps // 10), log_every=log_every,
                                          ckpt_every=max(log_every, steps // 4), name=label)
    return cfgs


def _tail_loss(rows: list[dict[str, Any]], frac: float = 0.2) -> float:
    """Mean loss over the last `frac` of the logged rows: one row is too noisy (random t)."""
    losses = [float(r["loss"]) for r in rows]
    k = max(1, int(len(losses) * frac))
    return sum(losses[-k:]) / k


def compare(presets: Mapping[str, str], *, budget_flops: float, out_dir: str | Path,
            batch_size: int | None = None, overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Train each preset to the budget (resumable), then tabulate and plot; returns the rows."""
    from ouro.model import family_of, param_count
    from ouro.train import train
    from ouro.train.metrics import read_csv

    out = Path(out_dir)
    rows, curves = [], {}
    for label, cfg in plan(presets, budget_flops, batch_size=batch_size, overrides=overrides).items():
        cfg = dataclasses.replace(cfg, out_dir=str(out / label))
        summary = train(cfg)
        log = read_csv(out / label / "loss.csv")
        flops_img = summary["train_flops_per_image"]
        curves[label] = ([r["global_step"] * cfg.batch_size * flops_img for r in log], [float(r["loss"]) for r in log])
        ev = summary.get("eval") or {}
        rows.append({"label": label, "preset": presets[label], "family": family_of(cfg.model).name,
                     "params": param_count(cfg.model), "train_gflops_per_image": flops_img / 1e9,
                     "steps": cfg.steps, "images_seen": cfg.steps * cfg.batch_size,
                     "train_pflops": cfg.steps * cfg.batch_size * flops_img / 1e15,
                     "final_loss": _tail_loss(log), "accuracy": ev.get("accuracy"), "frechet": ev.get("frechet"),
                     "wall_s": summary.get("wall_s_total")})
    write_json(out / "comparison.json", {"budget_flops": budget_flops, "rows": rows})
    write_text(out / "comparison.md", markdown(rows, budget_flops))
    plot(curves, out / "loss_vs_flops.png", budget_flops)
    return rows


def markdown(rows: list[dict[str, Any]], budget_flops: float) -> str:
    def opt(v, f):
        return "n/a" if v is None else format(v, f)

    body = table(["model", "family", "params", "train GFLOPs/img", "steps", "images", "train TFLOPs",
                  "loss (last 20%)", "accuracy", "Frechet", "wall s"],
                 [[r["label"], r["family"], f"{r['params']:,}", f"{r['train_gflops_per_image']:.4f}", str(r["steps"]),
                   f"{r['images_seen']:,}", f"{r['train_pflops'] * 1e3:.3g}", f"{r['final_loss']:.4f}",
                   opt(r["accuracy"], ".3f"), opt(r["frechet"], ".2f"), opt(r["wall_s"], ".0f")] for r in rows])
    return (f"Training budget {budget_flops:.3g} FLOPs per model (3 x forward FLOPs per image x images seen, "
            f"each family's own accounting).\n\n{body}\n")


def plot(curves: Mapping[str, tuple[list[float], list[float]]], path: Path, budget_flops: float) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    for i, (label, (x, y)) in enumerate(curves.items()):
        ax.plot(x, y, "-o", ms=2, lw=1, color=f"C{i % 10}", label=label)
    ax.axvline(budget_flops, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def report_section(dirs: Sequence[Path], root: Path) -> str:
    """`ouro report`'s hook: the comparison.md of each directory, or a 'not yet run' line."""
    if not dirs:
        return ("### Architecture comparison\n\nNot yet run: `ouro run notebooks/architecture_comparison.py` "
                "writes comparison.md.")
    parts = []
    for d in dirs:
        shown = d.relative_to(root) if d.is_relative_to(root) else d.name
        parts.append(f"### Architecture comparison (`{shown}`)\n\n{(d / 'comparison.md').read_text().strip()}")
    return "\n\n".join(parts)
