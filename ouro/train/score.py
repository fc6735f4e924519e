"""Which scorer applies to a run's samples, so a sweep scores what can be scored:

- a digits run sampled by class: the reference digit classifier (accuracy, Fréchet distance
  in its feature space; the real test split gives the floor) — ouro.train.evaluate;
- RGB samples of shapes captions (any run, pixels or decoded latents): the analytic shapes
  reader (colour, shape, size, position read back from the pixels) — ouro.eval.shapes_score;
- anything else: no score; the grids are still written, and the reason is said.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

# scorer -> the table's (result key, column header); Frechet is lower-is-better, the rest higher
COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "digits": (("accuracy", "accuracy"), ("frechet", "Frechet")),
    "shapes": (("all", "all correct"), ("colour", "colour"), ("shape", "shape"), ("size", "size"),
               ("position", "position")),
}
NONE_APPLIES = ("no scorer applies: the digits classifier scores a digits run sampled by class, the shapes "
                "reader RGB samples of shapes captions; the grids are written unscored")


def scorer_for(s: Any, req: Any, channels: int) -> tuple[str, Callable[[np.ndarray], dict[str, Any]] | None]:
    """(name, score) for run `s` asked `req` (conditions.Request) whose decoded samples have
    `channels` channels; score maps (N, H, W, C) pixels in request order to a dict.
    ("none", None) when no scorer applies."""
    if s.cfg.data.kind == "digits" and req.kind == "class":
        from ouro.train.evaluate import evaluate_samples

        labels = np.asarray(req.values, np.int32)[req.rows]
        keep = ("accuracy", "frechet", "n_samples", "floor_test_accuracy", "floor_test_frechet", "accuracy_per_class")

        def digits(images: np.ndarray) -> dict[str, Any]:
            m = evaluate_samples(images, labels)
            return {k: m[k] for k in keep}

        return "digits", digits
    if req.kind == "prompt" and channels == 3:
        from ouro.data.shapes import parse_caption
        from ouro.eval.shapes_score import score_shapes

        attrs = [parse_caption(p) for p in req.values]
        if all(a is not None for a in attrs):
            table = {k: np.asarray([a[k] for a in attrs], np.int32)[req.rows] for k in attrs[0]}
            return "shapes", lambda images: score_shapes(images, table)
    return "none", None


def reference(name: str, result: dict[str, Any]) -> tuple[str, dict[str, float]] | None:
    """The row a result compares with: the real test split's scores (digits) or chance (shapes)."""
    if name == "digits":
        return "real test split", {"accuracy": result["floor_test_accuracy"], "frechet": result["floor_test_frechet"]}
    if name == "shapes":
        from ouro.eval.shapes_score import CHANCE

        return "chance", dict(CHANCE)
    return None
