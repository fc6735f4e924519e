"""The compute frontier across runs of different sizes: lowest loss reached at each FLOP budget.

A single run's loss-vs-FLOPs fit is its loss-vs-step fit rescaled (same exponent): it says
nothing about compute. Across runs of different model sizes, the lower envelope of their
(FLOPs, loss) points is what the Chinchilla-style question asks about; `fit_frontier`
fits L(C) = a*C^-b + c to it. `on_bound` flags fitted parameters pinned at the optimiser's
bounds (b in [0, 4], c >= 0), whose intervals mean little.

Only comparable curves belong on one frontier: the same data and the same loss (the report
groups runs by dataset and model family and leaves smoke runs out before calling this).
Too few points, or a floor c the data cannot identify (the fit drives it to its bound 0,
where it used to be reported as c = 1e-28), are said in words: the first is not fit, the
second is refit without a floor (L = a*C^-b) and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ouro.analysis.powerlaw import Curve, FitError, fit_curve


MIN_POINTS = 8  # frontier points a 3-parameter fit needs before its intervals mean anything


@dataclass(frozen=True)
class SizedCurve:
    """One run's loss against training FLOPs, with the model size that produced it."""

    name: str
    params: int  # model parameters (the size axis of the frontier)
    flops: np.ndarray  # cumulative training FLOPs at each logged step
    loss: np.ndarray


def frontier(curves: Sequence[SizedCurve], bins: int = 32) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(FLOPs, loss, owning run) of the lower envelope, on log-spaced FLOP bins: in each bin
    the lowest loss any run reached by then (a running minimum, so it never rises)."""
    pts = [(f, l, c.name) for c in curves for f, l in zip(c.flops, c.loss) if f > 0 and np.isfinite(l) and l > 0]
    if not pts:
        return np.zeros(0), np.zeros(0), []
    f_all = np.array([p[0] for p in pts])
    edges = np.geomspace(f_all.min(), f_all.max() * (1 + 1e-9), bins + 1)
    xs, ys, who = [], [], []
    best, best_name = np.inf, ""
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = [p for p in pts if lo <= p[0] < hi]
        if not inside:
            continue
        f, l, name = min(inside, key=lambda p: p[1])
        if l < best:
            best, best_name = l, name
        xs.append(float(np.sqrt(lo * hi)))
        ys.append(float(best))
        who.append(best_name)
    return np.array(xs), np.array(ys), who


def fit_frontier(curves: Sequence[SizedCurve], *, n_boot: int = 100) -> dict:
    """{'fit': ScalingFit JSON or None, 'sizes': distinct model sizes, 'reason': why not fit,
    'points': frontier (flops, loss, run), 'on_bound', 'no_floor': why c was dropped}.
    Needs runs of at least two model sizes and MIN_POINTS frontier points."""
    sizes = sorted({c.params for c in curves})
    x, y, who = frontier(curves)
    out = {"sizes": sizes, "points": [[float(a), float(b), n] for a, b, n in zip(x, y, who)], "fit": None,
           "reason": "", "no_floor": ""}
    if len(sizes) < 2:
        out["reason"] = (f"a compute frontier needs runs of at least two model sizes; found "
                         f"{len(sizes)} size(s) among {len(curves)} comparable run(s) with a FLOP count")
        return out
    if len(x) < MIN_POINTS:
        out["reason"] = (f"only {len(x)} frontier point(s) from {len(curves)} run(s); a fit of a, b and c "
                         f"needs at least {MIN_POINTS}")
        return out
    try:
        fit = fit_curve(Curve("frontier", x, y, "flops", "runs under outputs/"), "power", bins=None, n_boot=n_boot)
        if "c" in on_bound(fit.params, float(np.min(y))):
            out["no_floor"] = (f"the floor c went to its bound 0 (c = {fit.params['c']:.2g}): these runs do not "
                               "identify one, so the frontier is fit without it")
            fit = fit_curve(Curve("frontier", x, y, "flops", "runs under outputs/"), "power_zero", bins=None,
                            n_boot=n_boot)
    except FitError as e:
        out["reason"] = str(e)
        return out
    out["fit"] = fit.to_json(extrapolate=10.0)
    out["on_bound"] = on_bound(out["fit"]["params"], float(np.min(y)))
    out["runs_on_frontier"] = sorted(set(who))
    return out


def on_bound(params: dict[str, float], y_min: float) -> list[str]:
    """Names of fitted parameters that sit on the fit's bounds: b at 0 or 4, c or x0 at 0
    (c below 1e-6 of the lowest loss is "zero": the fit wanted a negative floor)."""
    flags = []
    b = params.get("b")
    if b is not None and (b < 1e-6 or b > 4.0 - 1e-6):
        flags.append("b")
    if "c" in params and params["c"] < 1e-6 * max(y_min, 1e-30):
        flags.append("c")
    if "x0" in params and params["x0"] <= 0.0:
        flags.append("x0")
    return flags
