"""Figures `ouro report` draws itself: loss curves (one row of panels per dataset), the
autoencoders' losses apart, the compute frontier of each comparable group.

Legibility rules: every curve in a panel has its own colour (`distinct_colours`), legends sit
outside the axes (right of the row), smoke runs are dotted and say so in the legend.

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


def distinct_colours(n: int) -> list:
    """n colours, no two alike: tab10 up to 10, tab20 up to 20, then evenly spaced hues."""
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["hsv"](i / n) for i in range(n)]


def _log_axes(ax, xlabel: str, ylabel: str = "loss") -> None:
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    plain_log_ticks(ax)


def loss_panels(groups: Sequence[tuple[str, Sequence[dict]]]):
    """groups: (title, curves), curves as dicts {label, step, loss, flops or None, smoke}.
    One row per group: loss vs step | loss vs training FLOPs, legend right of the row.
    Returns the (unsaved) matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.2 * len(groups)), dpi=100, squeeze=False)
    for (title, curves), (a_step, a_flops) in zip(groups, axes):
        for c, colour in zip(curves, distinct_colours(len(curves))):
            keep = (c["step"] > 0) & np.isfinite(c["loss"]) & (c["loss"] > 0)
            style = dict(lw=1.2, color=colour, ls=":" if c.get("smoke") else "-",
                         label=c["label"] + (" (smoke)" if c.get("smoke") else ""))
            a_step.plot(c["step"][keep], c["loss"][keep], **style)
            if c.get("flops") is not None:
                a_flops.plot(c["flops"][keep], c["loss"][keep], **style)
        _log_axes(a_step, "step")
        _log_axes(a_flops, "training FLOPs")
        a_step.set_title(title, fontsize=9, loc="left")
        missing = [c["label"] for c in curves if c.get("flops") is None]
        a_flops.set_title(f"no FLOP count: {', '.join(missing)}" if missing else "", fontsize=7, loc="left")
    # fixed margins, not tight_layout: each layout pass redraws every log tick (seconds per
    # figure); the right fifth holds the legends, savefig's tight bounding box trims the rest
    fig.subplots_adjust(left=0.07, right=0.8, bottom=0.6 / (3.2 * len(groups)) + 0.05,
                        top=1 - 0.4 / (3.2 * len(groups)), wspace=0.25, hspace=0.45)
    for a_step, a_flops in axes:  # every run is on the step panel (not all have FLOPs)
        if a_step.lines:
            a_flops.legend(*a_step.get_legend_handles_labels(), fontsize=7, loc="upper left",
                           bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    return fig


def autoencoder_panel(curves: Sequence[dict]):
    """curves: {label, step, columns: {name: values}} of autoencoder runs; one panel per
    logged quantity (loss, rec_mse, kl) against step, legend outside. Unsaved figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = [n for n in ("loss", "rec_mse", "kl") if any(n in c["columns"] for c in curves)]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names) + 2.2, 3.2), dpi=100, squeeze=False)
    for ax, name in zip(axes[0], names):
        for c, colour in zip(curves, distinct_colours(len(curves))):
            y = c["columns"].get(name)
            if y is None:
                continue
            keep = (c["step"] > 0) & np.isfinite(y) & (y > 0)
            ax.plot(c["step"][keep], y[keep], lw=1.2, color=colour, label=c["label"])
        _log_axes(ax, "step", name)
    fig.tight_layout()
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure whose legends may sit outside the axes (tight bounding box)."""
    import matplotlib.pyplot as plt

    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def frontier_plot(curves, front: dict, path: str | Path, title: str = "") -> Path:
    """Every comparable run's loss vs FLOPs, the frontier points and its fit."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    for c, colour in zip(curves, distinct_colours(len(curves))):
        keep = (c.flops > 0) & (c.loss > 0)
        ax.plot(c.flops[keep], c.loss[keep], lw=1, alpha=0.8, color=colour, label=f"{c.name} ({c.params / 1e6:.3g} M)")
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
    fig.tight_layout()
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0, frameon=False)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    return save_figure(fig, path)
