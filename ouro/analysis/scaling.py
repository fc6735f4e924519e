"""Scaling-law fits of loss curves: L(x) = a·x^(−b) + c and richer forms, x = step or FLOPs.

    ouro fit outputs/runs/*/loss.csv outputs/demo/loss.csv --out outputs/scaling

How the fit stays robust on real training logs:
- points are grouped into log-spaced bins of x (median loss per bin), so every decade of
  training weighs the same — a log written every step would otherwise be fit almost only
  on its last decade — and single spikes do not move the fit;
- residuals are taken in log-loss space (noise in training loss is roughly
  multiplicative) with a soft-L1 penalty (scipy least_squares), so outlier bins count
  linearly, not quadratically;
- the start point comes from profiling c: for each c on a grid, log(L − c) against log x
  is a straight line, solved exactly; the best c seeds the non-linear fit.
Uncertainty: case-resampling bootstrap of the binned points (percentile intervals for
every parameter); extrapolation bands are quantiles of the bootstrap curves, optionally
widened by the residual scatter (a prediction rather than a confidence band).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ouro.analysis.powerlaw import (  # noqa: F401 - re-exported: scaling is the public entry point
    FORMS, Curve, FitError, Form, ScalingFit, binned, compare_forms, fit_curve, make_curve,
)


# --------------------------------------------------------------------------- loss logs


_X_COLUMNS = ("global_step", "step", "iteration", "iter", "x")
_Y_COLUMNS = ("loss", "train_loss", "y")


def read_loss_csv(path: str | Path, *, name: str | None = None) -> Curve:
    """A loss log as a Curve. SPEC columns (global_step preferred over per-epoch step) or
    any CSV with a step-like and a loss column."""
    path = Path(path)
    if not path.is_file():
        raise FitError(f"{path}: no such file")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    cols = list(rows[0]) if rows else []
    xc = next((c for c in _X_COLUMNS if c in cols), None)
    yc = next((c for c in _Y_COLUMNS if c in cols), None)
    if xc is None or yc is None:
        raise FitError(f"{path}: needs a step column ({'/'.join(_X_COLUMNS)}) and a loss column "
                       f"({'/'.join(_Y_COLUMNS)}); found columns {cols}")

    def num(row, col, i):
        try:
            return float(row[col])
        except (TypeError, ValueError):
            raise FitError(f"{path}: row {i + 1}, column {col!r}: not a number: {row[col]!r}") from None

    x = np.array([num(r, xc, i) for i, r in enumerate(rows)])
    y = np.array([num(r, yc, i) for i, r in enumerate(rows)])
    return make_curve(name or run_name_for(path), x, y, source=str(path))


def run_name_for(path: Path) -> str:
    """outputs/runs/<name>/loss.csv -> <name>; outputs/demo/loss.csv -> demo."""
    return path.parent.name if path.name == "loss.csv" else path.stem


def forms_table(paths: Sequence[str | Path], *, bins=64, min_step=None) -> str:
    """Markdown: every form on every CSV, ranked by ΔAIC (unreadable files say why)."""
    lines = ["| run | form | ΔAIC | rmse (log) | params |", "|---|---|---|---|---|"]
    for path in paths:
        try:
            rows = compare_forms(read_loss_csv(path), bins=bins, min_x=min_step)
        except FitError as e:
            lines.append(f"| {run_name_for(Path(path))} | — | — | — | {e} |")
            continue
        for r in rows:
            if "error" in r:
                lines.append(f"| {run_name_for(Path(path))} | {r['form']} | — | — | {r['error']} |")
            else:
                ps = ", ".join(f"{k}={v:.4g}" for k, v in r["params"].items())
                lines.append(f"| {run_name_for(Path(path))} | {r['form']} | {r['delta_aic']:.1f} | {r['rmse_log']:.3g} | {ps} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- loss vs compute


def compute_curve(curve: Curve, *, train_flops_per_image: float, batch_size: int) -> Curve:
    """x = training FLOPs so far = step × batch × (3 × forward FLOPs per image)."""
    if train_flops_per_image <= 0 or batch_size <= 0:
        raise FitError(f"curve {curve.name!r}: FLOPs per image and batch size must be > 0")
    return Curve(curve.name, curve.x * batch_size * train_flops_per_image, curve.y, "flops", curve.source)


def infer_compute(csv_path: Path, batch_size: int | None = None, train_flops_per_image: float | None = None):
    """(train FLOPs/image, batch) for a run's loss.csv: FLOPs/image from the logged
    model_flops_per_s / images_per_s ratio, batch from the run's config.json. None if unknown."""
    import json

    if train_flops_per_image is None:
        with csv_path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        ratios = []
        for r in rows:
            try:
                fl, im = float(r.get("model_flops_per_s") or "nan"), float(r.get("images_per_s") or "nan")
            except ValueError:
                continue
            if np.isfinite(fl) and np.isfinite(im) and fl > 0 and im > 0:
                ratios.append(fl / im)
        train_flops_per_image = float(np.median(ratios)) if ratios else None
    if batch_size is None and (csv_path.parent / "config.json").is_file():
        batch_size = _find_key(json.loads((csv_path.parent / "config.json").read_text()),
                               ("global_batch_size", "global_batch", "batch_size", "batch"))
    if train_flops_per_image and batch_size:
        return float(train_flops_per_image), int(batch_size)
    return None


def _find_key(obj, names):
    if isinstance(obj, dict):
        for n in names:
            if isinstance(obj.get(n), (int, float)) and not isinstance(obj.get(n), bool):
                return obj[n]
        for v in obj.values():
            found = _find_key(v, names)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------- many runs


def synthetic_curve(path: str | Path, *, a=4.0, b=0.45, c=0.35, steps=2000, every=10, noise=0.03, seed=0) -> Path:
    """Write a loss.csv following a·step^-b + c with multiplicative noise (smoke runs, tests)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    step = np.arange(every, steps + 1, every)
    loss = (a * step ** (-b) + c) * np.exp(noise * rng.standard_normal(step.size))
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "loss"])
        w.writerows(zip(step.tolist(), loss.tolist()))
    tmp.replace(path)
    return path


def find_loss_csvs(paths: Sequence[str | Path] = (), root: Path | None = None) -> list[Path]:
    """The given CSVs, or by default every outputs/runs/*/loss.csv and outputs/demo/loss.csv."""
    from ouro.paths import project_path, project_root

    if paths:
        from ouro.data.storage import is_url, local_copy

        return [local_copy(str(p)) if is_url(p) else Path(project_path(p)) for p in paths]  # gs://: a local copy
    out = (root or project_root()) / "outputs"
    return sorted(out.glob("runs/*/loss.csv")) + sorted(out.glob("demo/loss.csv"))


def fit_files(paths: Sequence[str | Path], form: str = "power", *, bins=64, min_step=None, n_boot=200, level=0.95,
              extrapolate=10.0, seed=0, batch_size=None, train_flops_per_image=None, progress=True):
    """Fit every CSV against step and, where FLOPs are known, against compute.
    Returns (json_dict, step_fits, compute_fits); unreadable/unfittable files are listed
    under "skipped" with the reason instead of aborting the others."""
    from tqdm.auto import tqdm

    doc = {"generated_by": "ouro.analysis.scaling", "form": form, "formula": FORMS[form].formula if form in FORMS else None,
           "level": level, "bins": bins, "min_step": min_step, "n_boot": n_boot, "runs": [], "compute": [], "skipped": []}
    if form not in FORMS:
        raise FitError(f"unknown form {form!r}; choose one of {sorted(FORMS)}")
    step_fits, compute_fits, seen = [], [], {}
    for path in tqdm([Path(p) for p in paths], desc="fit", disable=not progress):
        try:
            curve = read_loss_csv(path)
            k = seen[curve.name] = seen.get(curve.name, 0) + 1
            if k > 1:
                curve = Curve(f"{curve.name}#{k}", curve.x, curve.y, curve.x_label, curve.source)
            fit = fit_curve(curve, form, bins=bins, min_x=min_step, n_boot=n_boot, level=level, seed=seed)
        except FitError as e:
            doc["skipped"].append({"source": str(path), "reason": str(e)})
            continue
        step_fits.append(fit)
        doc["runs"].append(fit.to_json(extrapolate))
        known = infer_compute(path, batch_size, train_flops_per_image)
        if known:
            cc = compute_curve(curve, train_flops_per_image=known[0], batch_size=known[1])
            cfit = fit_curve(cc, form, bins=bins, min_x=None if min_step is None else min_step * known[0] * known[1],
                             n_boot=n_boot, level=level, seed=seed)
            cfit.extra = {"train_flops_per_image": known[0], "batch_size": known[1]}
            compute_fits.append(cfit)
            doc["compute"].append(cfit.to_json(extrapolate))
    return doc, step_fits, compute_fits


def write_fits(out_dir: str | Path, doc: dict, step_fits, compute_fits, *, extrapolate=10.0) -> list[Path]:
    """scaling_fits.json + scaling_fits.png (+ scaling_compute.png) into out_dir."""
    import json

    from ouro.analysis.scaling_plot import plot_fits

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if step_fits:
        written.append(plot_fits(step_fits, out / "scaling_fits.png", extrapolate=extrapolate))
    if compute_fits:
        written.append(plot_fits(compute_fits, out / "scaling_compute.png", extrapolate=extrapolate))
    tmp = out / ".scaling_fits.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(out / "scaling_fits.json")
    return [out / "scaling_fits.json", *written]


def summary_table(doc: dict) -> str:
    """Markdown table of fitted parameters with their intervals (notebook + report)."""
    from ouro.analysis.frontier import on_bound

    rows = []
    for section in ("runs", "compute"):
        for r in doc.get(section, []):
            # a parameter the fit drove onto its bound was not identified: say so rather than
            # print the optimiser's leftovers (c = 9e-16 [9e-28, 4e-13])
            pinned = on_bound(r["params"], min((r.get("extrapolation") or {}).get("median") or [1.0]))
            cells = [f"{0 if p == 'c' else r['params'][p]:.4g} (on its bound: not identified)" if p in pinned else
                     f"{r['params'][p]:.4g} [{r['intervals'][p][0]:.3g}, {r['intervals'][p][1]:.3g}]"
                     for p in ("a", "b", "c") if p in r["params"]]
            rows.append(f"| {r['name']} | {r['x']} | {' | '.join(cells)} | {r['n_points']} | {r['rmse_log']:.3g} |")
    level = int(round(100 * doc.get("level", 0.95)))
    head = f"| run | x | a [{level}% CI] | b | c | points | rmse (log) |\n|---|---|---|---|---|---|---|"
    return "\n".join([head, *rows]) if rows else "(no curve could be fit)"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro fit", description="Fit L = a*step^-b + c (and vs compute) to loss CSVs.")
    p.add_argument("csv", nargs="*", help="loss CSVs (default: outputs/runs/*/loss.csv and outputs/demo/loss.csv)")
    p.add_argument("--out", required=True, type=Path, help="directory for scaling_fits.json and PNGs")
    p.add_argument("--form", default="power", choices=sorted(FORMS))
    p.add_argument("--bins", type=int, default=64, help="log-spaced bins (0: fit every point)")
    p.add_argument("--min-step", type=float, help="ignore steps below this (warm-up transient)")
    p.add_argument("--n-boot", type=int, default=200)
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument("--extrapolate", type=float, default=10.0, help="extrapolate to this multiple of the last step")
    p.add_argument("--batch-size", type=int, help="for loss vs compute, if not in the run's config.json")
    p.add_argument("--train-flops-per-image", type=float, help="3 x forward FLOPs; default from the CSV's columns")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = find_loss_csvs(args.csv)
    if not paths:
        print("ouro fit: no loss CSVs given or found under outputs/", file=sys.stderr)
        return 2
    try:
        doc, sf, cf = fit_files(paths, args.form, bins=args.bins or None, min_step=args.min_step, n_boot=args.n_boot,
                                level=args.level, extrapolate=args.extrapolate, seed=args.seed,
                                batch_size=args.batch_size, train_flops_per_image=args.train_flops_per_image)
    except FitError as e:
        print(f"ouro fit: {e}", file=sys.stderr)
        return 2
    for s in doc["skipped"]:
        print(f"ouro fit: skipped {s['source']}: {s['reason']}", file=sys.stderr)
    written = write_fits(args.out, doc, sf, cf, extrapolate=args.extrapolate)
    print(summary_table(doc))
    print("wrote " + ", ".join(str(w) for w in written))
    return 0 if sf else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
