"""Power-law fits of one curve: forms, log binning, robust fit, bootstrap, bands.

The method (see also ouro.analysis.scaling, which reads loss logs and drives many runs):
points are grouped into log-spaced bins of x (median loss per bin) so every decade weighs
the same; residuals are in log-loss space with a soft-L1 penalty; the start point comes
from profiling c (for fixed c, log(L − c) against log x is a line); uncertainty is a
case-resampling bootstrap of the binned points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
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


def compare_forms(curve: Curve, forms: Sequence[str] = tuple(FORMS), **fit_kwargs) -> list[dict]:
    """Fit each form to the same binned points; rank by AIC of the log-space residuals
    (Gaussian, n·log(RSS/n) + 2k), so an extra parameter must earn its keep."""
    rows = []
    for name in forms:
        try:
            fit = fit_curve(curve, name, **{"n_boot": 0, **fit_kwargs})
        except FitError as e:
            rows.append({"form": name, "error": str(e)})
            continue
        n, k = fit.x_data.size, len(fit.form.params)
        rows.append({"form": name, "formula": fit.form.formula, "params": fit.params, "rmse_log": fit.rmse_log,
                     "aic": float(n * np.log(max(fit.rmse_log, 1e-12) ** 2) + 2 * k)})
    ok = [r for r in rows if "aic" in r]
    best = min((r["aic"] for r in ok), default=0.0)
    for r in ok:
        r["delta_aic"] = r["aic"] - best
    return sorted(rows, key=lambda r: r.get("aic", np.inf))
