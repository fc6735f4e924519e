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
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from scipy import optimize, stats


class FitError(ValueError):
    """A curve cannot be fit (too few points, non-finite or non-positive values)."""


# --------------------------------------------------------------------------- forms
# Each form is evaluated on u = x / x_ref (x_ref = geometric mid of the data) so that
# the optimiser sees O(1) numbers whether x is steps (1e3) or FLOPs (1e18); `a` and `x0`
# are converted back to the units of x when reported.


@dataclass(frozen=True)
class Form:
    name: str
    formula: str
    params: tuple[str, ...]
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (theta, u) -> loss; theta[0] = log a'


def _power(th, u):
    return np.exp(th[0]) * u ** (-th[1]) + th[2]


def _power_offset(th, u):
    return np.exp(th[0]) * (u + th[3]) ** (-th[1]) + th[2]


def _power_zero(th, u):
    return np.exp(th[0]) * u ** (-th[1])


FORMS: dict[str, Form] = {
    "power": Form("power", "L = a*x^-b + c", ("a", "b", "c"), _power),
    # x0 absorbs the early transient (warm-up) that bends the curve at small x
    "power_offset": Form("power_offset", "L = a*(x + x0)^-b + c", ("a", "b", "c", "x0"), _power_offset),
    "power_zero": Form("power_zero", "L = a*x^-b", ("a", "b"), _power_zero),
}

# Bounds on theta: b in [0, 4] covers every loss curve seen in practice; c >= 0 since
# rectified-flow MSE is non-negative; x0 >= 0 (relative to x_ref).
_LOWER = {"a": -np.inf, "b": 0.0, "c": 0.0, "x0": 0.0}
_UPPER = {"a": np.inf, "b": 4.0, "c": np.inf, "x0": np.inf}


# --------------------------------------------------------------------------- curves


@dataclass(frozen=True)
class Curve:
    name: str
    x: np.ndarray
    y: np.ndarray
    x_label: str = "step"
    source: str = ""


def _validate(name: str, x: np.ndarray, y: np.ndarray) -> None:
    for label, v in (("x", x), ("loss", y)):
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise FitError(f"curve {name!r}: non-finite {label} at row {int(bad[0])} "
                           f"(value {v[bad[0]]!r}; {bad.size} such rows)")
    if np.any(y <= 0):
        raise FitError(f"curve {name!r}: loss must be > 0 to fit in log space (row {int(np.argmax(y <= 0))})")


def make_curve(name: str, x: Sequence[float], y: Sequence[float], *, x_label="step", source="") -> Curve:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise FitError(f"curve {name!r}: x and loss must be 1-D of equal length, got {x.shape} and {y.shape}")
    _validate(name, x, y)
    return Curve(name, x, y, x_label, source)


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


def binned(curve: Curve, bins: int | None = 64, *, min_x: float | None = None, max_x: float | None = None):
    """(x, y, counts): median loss in log-spaced x bins (x = geometric mean of the bin).
    Points with x <= 0 (step 0 has no place on a log axis) or outside [min_x, max_x] go."""
    keep = curve.x > 0
    if min_x is not None:
        keep &= curve.x >= min_x
    if max_x is not None:
        keep &= curve.x <= max_x
    x, y = curve.x[keep], curve.y[keep]
    if not bins or x.size == 0 or np.unique(x).size <= bins:
        ux, inv = np.unique(x, return_inverse=True)
        return ux, np.array([np.median(y[inv == i]) for i in range(ux.size)]), np.bincount(inv)
    edges = np.geomspace(x.min(), x.max() * (1 + 1e-12), bins + 1)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    xs, ys, ns = [], [], []
    for i in range(bins):
        m = idx == i
        if m.any():
            xs.append(np.exp(np.mean(np.log(x[m]))))
            ys.append(np.median(y[m]))
            ns.append(int(m.sum()))
    return np.array(xs), np.array(ys), np.array(ns)


# --------------------------------------------------------------------------- fitting


@dataclass
class ScalingFit:
    name: str
    form: Form
    x_label: str
    params: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    level: float
    x_ref: float
    theta: np.ndarray
    boot: np.ndarray  # (n_ok, P) bootstrap thetas
    x_data: np.ndarray  # the binned points that were fit
    y_data: np.ndarray
    n_raw: int
    rmse_log: float
    sigma_log: float  # robust (MAD) residual scale in log space
    source: str = ""
    extra: dict = field(default_factory=dict)

    def predict(self, x) -> np.ndarray:
        return self.form.fn(self.theta, np.asarray(x, dtype=np.float64) / self.x_ref)

    def band(self, x, level: float | None = None, *, prediction: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Lower/upper curve at x: quantiles of the bootstrap curves; `prediction` adds
        the residual scatter in log space (where a new observation would fall)."""
        level = self.level if level is None else level
        u = np.asarray(x, dtype=np.float64) / self.x_ref
        curves = np.log(np.stack([self.form.fn(th, u) for th in self.boot]) if len(self.boot) else self.predict(x)[None])
        q = (1 - level) / 2
        lo, hi = np.quantile(curves, [q, 1 - q], axis=0)
        if prediction:
            mid, z = np.log(self.predict(x)), stats.norm.ppf(1 - q)
            half_lo = np.sqrt((mid - lo) ** 2 + (z * self.sigma_log) ** 2)
            half_hi = np.sqrt((hi - mid) ** 2 + (z * self.sigma_log) ** 2)
            lo, hi = mid - half_lo, mid + half_hi
        return np.exp(lo), np.exp(hi)

    def to_json(self, extrapolate: float = 10.0, n_grid: int = 50) -> dict:
        x_max = float(self.x_data.max())
        grid = np.geomspace(float(self.x_data.min()), x_max * max(extrapolate, 1.0), n_grid)
        lo, hi = self.band(grid, prediction=True)
        return {
            "name": self.name, "source": self.source, "x": self.x_label, "form": self.form.name,
            "formula": re.sub(r"\bx\b", self.x_label, self.form.formula),
            "params": self.params,
            "intervals": {k: list(v) for k, v in self.intervals.items()},
            "level": self.level, "n_bootstrap": int(len(self.boot)),
            "n_points": int(self.x_data.size), "n_raw": self.n_raw,
            "x_range": [float(self.x_data.min()), x_max],
            "rmse_log": self.rmse_log,
            "extrapolation": {"x": grid.tolist(), "median": self.predict(grid).tolist(),
                              "lo": lo.tolist(), "hi": hi.tolist(), "band": "prediction"},
            **self.extra,
        }


def _to_reported(form: Form, theta: np.ndarray, x_ref: float) -> dict[str, float]:
    out = {"a": float(np.exp(theta[0]) * x_ref ** theta[1]), "b": float(theta[1])}
    if "c" in form.params:
        out["c"] = float(theta[2])
    if "x0" in form.params:
        out["x0"] = float(theta[3] * x_ref)
    return out


def _profile_start(u: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Best (log a', b, c) over a grid of c, each solved as a line in log-log space."""
    best, best_sse = None, np.inf
    for c in np.min(y) * np.concatenate([[0.0], 1 - np.geomspace(1.0, 1e-3, 40)[1:]]):
        slope, intercept = np.polyfit(np.log(u), np.log(y - c), 1)
        th = np.array([intercept, np.clip(-slope, 0.0, 4.0), c])
        sse = np.sum((np.log(y) - np.log(_power(th, u))) ** 2)
        if sse < best_sse:
            best, best_sse = th, sse
    return best


def _solve(form: Form, u, y, start, f_scale) -> np.ndarray:
    lower = [_LOWER[p] for p in form.params]
    upper = [_UPPER[p] for p in form.params]
    start = np.clip(start, np.array(lower) + 1e-12, np.array(upper) - 1e-12)
    res = optimize.least_squares(lambda th: np.log(form.fn(th, u)) - np.log(y), start, bounds=(lower, upper),
                                 loss="soft_l1", f_scale=f_scale, x_scale="jac", max_nfev=2000)
    return res.x


def fit_curve(curve: Curve, form: str = "power", *, bins: int | None = 64, min_x: float | None = None,
              max_x: float | None = None, n_boot: int = 200, level: float = 0.95, seed: int = 0) -> ScalingFit:
    """Fit one curve; see the module docstring for the method."""
    if form not in FORMS:
        raise FitError(f"unknown form {form!r}; choose one of {sorted(FORMS)}")
    f = FORMS[form]
    _validate(curve.name, curve.x, curve.y)
    x, y, _ = binned(curve, bins, min_x=min_x, max_x=max_x)
    need = len(f.params) + 2
    if x.size < need:
        raise FitError(f"curve {curve.name!r}: {x.size} usable points (x > 0, distinct, in range) after binning; "
                       f"the {form!r} fit needs at least {need}")
    x_ref = float(np.exp(np.mean(np.log(x))))
    u = x / x_ref
    start = _profile_start(u, y)
    if form == "power_zero":
        start = np.array([np.polyfit(np.log(u), np.log(y), 1)[1], -np.polyfit(np.log(u), np.log(y), 1)[0]])
    elif form == "power_offset":
        start = np.append(start, 0.0)
    resid0 = np.log(f.fn(start, u)) - np.log(y)
    # soft-L1 switches from quadratic to linear at ~2 robust sigmas of the start residuals
    f_scale = max(2.0 * 1.4826 * np.median(np.abs(resid0 - np.median(resid0))), 1e-4)
    theta = _solve(f, u, y, start, f_scale)
    resid = np.log(f.fn(theta, u)) - np.log(y)

    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, x.size, x.size)
        if np.unique(idx).size < len(f.params) + 1:
            continue
        try:
            boots.append(_solve(f, u[idx], y[idx], theta, f_scale))
        except (ValueError, np.linalg.LinAlgError):
            continue
    boot = np.array(boots).reshape(-1, len(f.params))
    reported = [_to_reported(f, th, x_ref) for th in boot]
    q = (1 - level) / 2
    intervals = {p: (float(np.quantile([r[p] for r in reported], q)), float(np.quantile([r[p] for r in reported], 1 - q)))
                 if reported else (math.nan, math.nan) for p in f.params}
    return ScalingFit(
        name=curve.name, form=f, x_label=curve.x_label, params=_to_reported(f, theta, x_ref), intervals=intervals,
        level=level, x_ref=x_ref, theta=theta, boot=boot, x_data=x, y_data=y, n_raw=int(curve.x.size),
        rmse_log=float(np.sqrt(np.mean(resid**2))), sigma_log=float(1.4826 * np.median(np.abs(resid))),
        source=curve.source,
    )


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
    if paths:
        return [Path(p) for p in paths]
    from ouro.run import project_root

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
    rows = []
    for section in ("runs", "compute"):
        for r in doc.get(section, []):
            cells = [f"{r['params'][p]:.4g} [{r['intervals'][p][0]:.3g}, {r['intervals'][p][1]:.3g}]"
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
