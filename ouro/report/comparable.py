"""The report's sections that put runs side by side: loss curves and the compute frontier.

Only comparable runs share a panel or a fit. Loss curves are grouped by dataset (the data a
run trained on and its shape: digits, RGB pixels and autoencoder latents never share axes);
an autoencoder's reconstruction loss is drawn apart, since it is not a denoising loss; a
compute frontier is fit per dataset and model family, without smoke runs
(ouro.report.runs.SMOKE_STEPS), and a group that cannot support a fit says why.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from ouro.report.markdown import table
from ouro.report.runs import SMOKE_STEPS, RunDir

NO_DATASET = "dataset not recorded"


def _names(runs: Iterable[RunDir]) -> str:
    return ", ".join(f"`{r.name}`" for r in runs)


def by_dataset(runs: Iterable[RunDir]) -> dict[str, list[RunDir]]:
    """Denoiser runs with a loss.csv, grouped by dataset label in order of first appearance."""
    groups: dict[str, list[RunDir]] = {}
    for r in runs:
        if r.loss is not None and r.loss_kind == "denoiser":
            groups.setdefault(r.dataset or NO_DATASET, []).append(r)
    return groups


def slug(text: str) -> str:
    """A file-name-safe form of a group label (stable across reruns)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "runs"


def section_curves(ctx: Any) -> str:
    """(ctx: ouro.report.detail.Context) -> Markdown: one row of panels per dataset, the
    autoencoders' losses in a figure of their own, other loss logs named."""
    from ouro.report.detail import not_yet
    from ouro.report.figures import autoencoder_panel, loss_panels, save_figure

    head = "## Loss curves\n\n"
    groups = by_dataset(ctx.runs)
    vae = [r for r in ctx.runs if r.loss is not None and r.loss_kind == "autoencoder"]
    other = [r for r in ctx.runs if r.loss is not None and r.loss_kind == "unknown"]
    if not groups and not vae and not other:
        return head + not_yet("no loss.csv under outputs/", "make demo")
    parts = []
    if groups:
        def name(r: RunDir, runs: list[RunDir]) -> str:  # the family, where a panel mixes them
            return r.name + (f" [{r.family}]" if len({x.family for x in runs}) > 1 else "")

        panels = [(label, [{"label": name(r, runs), "step": r.loss["step"], "loss": r.loss["loss"], "flops": r.flops,
                            "smoke": r.smoke is not None} for r in runs]) for label, runs in groups.items()]
        lines = []
        for label, runs in groups.items():
            smoke = [r for r in runs if r.smoke]
            lines.append(f"- **{label}**: {_names(r for r in runs if not r.smoke) or 'no full-length run'}"
                         + (f"; smoke (dotted): {', '.join(f'`{r.name}` ({r.smoke})' for r in smoke)}" if smoke else ""))
        parts.append(
            "Denoising (flow-matching) loss, one row of panels per dataset: runs on different data or at "
            "a different resolution or channel count are never drawn on the same axes. Smoke runs "
            f"(fewer than {SMOKE_STEPS} steps, or notebooks run with `smoke=True`) are dotted. "
            "FLOPs = step × batch × training FLOPs per image (3 × forward, from the model's own "
            "accounting).\n\n" + "\n".join(lines) + "\n\n"
            + ctx.figs.draw("loss_curves.png", lambda p: save_figure(loss_panels(panels), p),
                            "denoising loss per dataset, against step and training FLOPs"))
    if vae:
        curves = [{"label": r.name, "step": r.loss["step"],
                   "columns": {k: r.loss[k] for k in ("loss", "rec_mse", "kl") if k in r.loss}} for r in vae]
        parts.append(
            "### Autoencoders\n\nThe reconstruction + KL loss of `ouro vae train` measures the autoencoder, "
            "not a denoiser, so it has its own figure: " + _names(vae) + ".\n\n"
            + ctx.figs.draw("autoencoder_loss.png", lambda p: save_figure(autoencoder_panel(curves), p),
                            "autoencoder training loss"))
    if other:
        parts.append(f"Not drawn (a loss.csv without a training config saying what it measures): {_names(other)}.")
    return head + "\n\n".join(parts)


def _fit_cell(front: dict) -> str:
    fit = front.get("fit")
    if fit is None:
        return f"not fit: {front['reason']}"
    cells = ", ".join(f"{p} = {v:.4g} [{fit['intervals'][p][0]:.3g}, {fit['intervals'][p][1]:.3g}]"
                      for p, v in fit["params"].items())
    flags = front.get("on_bound") or []
    return (f"`{fit['formula']}`: {cells} ({fit['level']:.0%} bootstrap)"
            + (f"; {front['no_floor']}" if front.get("no_floor") else "")
            + (f"; **on a bound: {', '.join(flags)}** (its interval means nothing)" if flags else ""))


def section_frontier(ctx: Any) -> str:
    """(ctx) -> Markdown: a compute frontier per dataset and model family."""
    from ouro.analysis.frontier import SizedCurve, fit_frontier
    from ouro.report.figures import frontier_plot

    parts = ["### Compute frontier (across runs of one dataset and model family)"]
    groups: dict[tuple[str, str], list[RunDir]] = {}
    left_out = []
    for label, runs in by_dataset(ctx.runs).items():
        for r in runs:
            if r.smoke:
                left_out.append(f"`{r.name}` (smoke: {r.smoke})")
            elif r.flops is None or not r.params:
                left_out.append(f"`{r.name}` (no FLOP count or model size)")
            else:
                groups.setdefault((label, r.family or "?"), []).append(r)
    vae = [r for r in ctx.runs if r.loss is not None and r.loss_kind != "denoiser"]
    left_out += [f"`{r.name}` ({r.loss_kind} loss)" for r in vae]
    if not groups:
        parts.append("> **Not fit:** no full-length denoiser run with a FLOP count. Train the same preset at "
                     "other `model.dim` / `model.depth` (e.g. `ouro train --preset digits model.dim=64 "
                     "out_dir=outputs/d64`).")
    rows, figs = [], []
    for (label, family), runs in groups.items():
        curves = [SizedCurve(r.name, r.params, r.flops, r.loss["loss"]) for r in runs]
        front = fit_frontier(curves, n_boot=50)
        rows.append([label, f"`{family}`", _names(runs), str(len(front["sizes"])), _fit_cell(front)])
        if len(front["sizes"]) >= 2:
            name = f"compute_frontier--{slug(label)}--{slug(family)}.png"
            figs.append(ctx.figs.draw(name, lambda p, c=curves, f=front, t=f"{label}, {family}": frontier_plot(c, f, p, t),
                                      f"compute frontier: {label}, {family}"))
    if rows:
        parts.append("Each fit uses the lowest loss any run of the group reached by each FLOP budget (the lower "
                     "envelope), only runs of one dataset and one model family, and needs runs of at least two "
                     "model sizes.\n\n" + table(["dataset", "family", "runs", "sizes", "fit"], rows))
    if left_out:
        parts.append("Left out of every fit: " + ", ".join(left_out) + ".")
    return "\n\n".join(parts + figs)
