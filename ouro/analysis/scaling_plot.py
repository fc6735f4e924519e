"""Figures for scaling-law fits: every run on one log–log figure, with fit, extrapolation
and prediction band. Kept apart from the fitting so the maths imports no matplotlib."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np


def plot_fits(fits: Sequence, path: str | Path, *, extrapolate: float = 10.0, title: str | None = None) -> Path:
    """One figure, one colour per run: binned points (markers), the fit over the data
    (solid), its extrapolation to `extrapolate` × the last x (dashed), and the bootstrap
    prediction band (shaded). Written to a temp name then renamed."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, fit in enumerate(fits):
        color = f"C{i % 10}"
        lo_x, hi_x = float(fit.x_data.min()), float(fit.x_data.max())
        inside = np.geomspace(lo_x, hi_x, 100)
        beyond = np.geomspace(hi_x, hi_x * max(extrapolate, 1.0), 60)
        both = np.concatenate([inside, beyond[1:]])
        band_lo, band_hi = fit.band(both, prediction=True)
        ax.fill_between(both, band_lo, band_hi, color=color, alpha=0.15, linewidth=0)
        ax.plot(fit.x_data, fit.y_data, "o", ms=3, color=color, alpha=0.7)
        p = fit.params
        label = f"{fit.name}: a={p['a']:.3g}, b={p['b']:.3f}" + (f", c={p['c']:.3g}" if "c" in p else "")
        ax.plot(inside, fit.predict(inside), "-", color=color, label=label)
        if extrapolate > 1:
            ax.plot(beyond, fit.predict(beyond), "--", color=color)
    ax.set_xscale("log")
    ax.set_yscale("log")
    x_label = fits[0].x_label if fits else "step"
    ax.set_xlabel("training FLOPs" if x_label == "flops" else x_label)
    ax.set_ylabel("loss")
    level = int(round(100 * fits[0].level)) if fits else 95
    formula = re.sub(r"\bx\b", "FLOPs" if x_label == "flops" else x_label, fits[0].form.formula) if fits else ""
    ax.set_title(title or f"{formula}  (band: {level}% bootstrap prediction)", fontsize=9)
    return _finish(fig, ax, path)


def _finish(fig, ax, path: Path) -> Path:
    """Grid, legend, and an atomic PNG write (no Software stamp: reruns are byte-identical)."""
    import matplotlib.pyplot as plt

    from ouro.report.figures import plain_log_ticks

    ax.grid(True, which="both", alpha=0.3)
    plain_log_ticks(ax)  # "0.5", "2", not "1.9x10^0"
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_loss(csv_paths: Sequence[str | Path], path: str | Path, *, title: str = "") -> Path:
    """Training loss against global step for one or more loss.csv logs (log–log)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ouro.analysis.scaling import read_loss_csv

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    for i, csv_path in enumerate(csv_paths):
        curve = read_loss_csv(csv_path)
        keep = curve.x > 0
        ax.plot(curve.x[keep], curve.y[keep], "-o", ms=2, lw=1, color=f"C{i % 10}", label=curve.name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    return _finish(fig, ax, path)
