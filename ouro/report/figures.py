"""Figures `ouro report` draws itself: loss curves of every run overlaid, the compute frontier.

Log axes get plain tick labels ("2", "0.5", "1e+06"), never matplotlib's "1.9×10⁰". PNGs are
written atomically without a Software stamp, so reruns on the same data are byte-identical.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ouro.fileio import atomic_path


def plain_log_ticks(ax) -> None:
    """Readable labels on both log axes, majors and minors ("0.3", "2", "1e+15")."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    label = FuncFormatter(lambda v, _: f"{v:.3g}" if v > 0 else "")
    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale != "log":
            continue
        lo, hi = sorted(ax.get_xlim() if axis is ax.xaxis else ax.get_ylim())
        axis.set_major_formatter(label)
        # under one decade the majors alone are too few: label the 2..9 minors too
        few = hi / max(lo, 1e-300) < 30
        subs = np.array([1.2, 1.5, 2, 3, 4, 5, 6, 7, 8, 9]) if few else np.arange(2, 10)
        axis.set_minor_locator(LogLocator(base=10, subs=subs))
        axis.set_minor_formatter(label if few else NullFormatter())


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, metadata={"Software": None})
    plt.close(fig)
    return path


def overlay(curves: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]], path: str | Path) -> Path:
    """curves: (run, step, loss, flops or None). Two panels: loss vs step, loss vs FLOPs."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, (a_step, a_flops) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    for i, (name, step, loss, flops) in enumerate(curves):
        keep = (step > 0) & np.isfinite(loss) & (loss > 0)
        style = dict(lw=1.2, color=f"C{i % 10}", label=name)
        a_step.plot(step[keep], loss[keep], **style)
        if flops is not None:
            a_flops.plot(flops[keep], loss[keep], **style)
    for ax, xlabel in ((a_step, "step"), (a_flops, "training FLOPs")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss")
        ax.grid(True, which="both", alpha=0.3)
        plain_log_ticks(ax)
    a_step.legend(fontsize=7)
    a_flops.set_title("runs without a FLOP count are left out" if any(c[3] is None for c in curves) else "", fontsize=8)
    return _save(fig, Path(path))


def frontier_plot(curves, front: dict, path: str | Path) -> Path:
    """Every run's loss vs FLOPs (colour = model size), the frontier points and its fit."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    sizes = sorted({c.params for c in curves})
    for c in curves:
        keep = (c.flops > 0) & (c.loss > 0)
        ax.plot(c.flops[keep], c.loss[keep], lw=1, alpha=0.7, color=f"C{sizes.index(c.params) % 10}",
                label=f"{c.name} ({c.params / 1e6:.3g} M)")
    if front["points"]:
        x, y = np.array([p[0] for p in front["points"]]), np.array([p[1] for p in front["points"]])
        ax.plot(x, y, "k.", ms=4, label="frontier (lowest loss so far)")
    fit = front.get("fit")
    if fit:
        ext = fit["extrapolation"]
        ax.plot(ext["x"], ext["median"], "k--", lw=1, label=f"fit: b = {fit['params']['b']:.3g}")
        ax.fill_between(ext["x"], ext["lo"], ext["hi"], color="k", alpha=0.1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    plain_log_ticks(ax)
    ax.legend(fontsize=7)
    return _save(fig, Path(path))
