"""Analytic scorer for the shapes dataset: read colour, shape, size and position back
from pixels and compare them with the caption's attributes (accuracy per attribute).

    scores = score_shapes(images, ds.attrs)   # {"colour": .., "shape": .., "size": ..,
                                              #  "position": .., "all": .., "n": ..}

Reading: each pixel takes the nearest palette colour if it is within `tol` of it (else it is
background); a caption object is found when its colour's largest connected component has
at least `min_fraction` of the smallest object's area. Its shape follows from how much of
its bounding box it fills (square 1, circle pi/4, triangle 1/2), its size from the box side,
and the relation from the two box centres (the axis of larger separation, then its sign).
An object that is not found counts as wrong for every attribute, so pure noise scores at
or below chance (colour 1/6, shape 1/3, size 1/2, position 1/4).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ouro.data.shapes import COLOURS, SIZES

CHANCE = {"colour": 1 / len(COLOURS), "shape": 1 / 3, "size": 1 / 2, "position": 1 / 4}


def _blob(mask: np.ndarray, min_px: float) -> tuple[float, float, float, float, float] | None:
    """(fill, side, cy, cx, area) of the largest connected component, or None if too small."""
    labels, k = ndimage.label(mask)
    if k == 0:
        return None
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, k + 1))
    biggest = int(np.argmax(sizes)) + 1
    if sizes[biggest - 1] < min_px:
        return None
    ys, xs = np.nonzero(labels == biggest)
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    area = float(len(ys))
    return area / (h * w), float(max(h, w)), (ys.max() + ys.min()) / 2, (xs.max() + xs.min()) / 2, area


def read_image(image: np.ndarray, colours: tuple[int, int], *, tol: float = 0.35,
               min_fraction: float = 0.4) -> list[dict | None]:
    """The two caption objects (by colour index) as read from one (H, W, 3) image in [-1, 1]."""
    n = image.shape[0]
    rgb = (np.clip(image, -1, 1) + 1) / 2  # (H, W, 3) in [0, 1]
    palette = np.asarray(list(COLOURS.values()), np.float32)
    dist = np.linalg.norm(rgb[:, :, None, :] - palette[None, None], axis=-1)  # (H, W, K)
    nearest = np.where(dist.min(-1) <= tol, dist.argmin(-1), -1)
    small = min(SIZES.values()) * n
    min_px = min_fraction * 0.5 * small * small  # the small triangle's area
    threshold = n * (SIZES["small"] + SIZES["large"]) / 2
    out = []
    for c in colours:
        b = _blob(nearest == c, min_px)
        if b is None:
            out.append(None)
            continue
        fill, side, cy, cx, _ = b
        shape = 1 if fill > 0.9 else 0 if fill > 0.64 else 2  # square / circle / triangle
        out.append({"shape": shape, "size": int(side > threshold), "cy": cy, "cx": cx})
    return out


def _relation(a: dict, b: dict) -> int:
    dy, dx = a["cy"] - b["cy"], a["cx"] - b["cx"]
    if abs(dy) >= abs(dx):
        return 0 if dy < 0 else 1  # above / below
    return 2 if dx < 0 else 3  # to the left of / to the right of


def score_shapes(images: np.ndarray, attrs: dict[str, np.ndarray], **read_kw) -> dict[str, float]:
    """Accuracy per attribute over the caption objects (position: over images)."""
    hits = {k: [] for k in ("colour", "shape", "size", "position", "all")}
    for i, image in enumerate(images):
        objs = read_image(image, (int(attrs["colour_a"][i]), int(attrs["colour_b"][i])), **read_kw)
        ok_all = True
        for o, obj in zip("ab", objs):
            found = obj is not None
            shape = found and obj["shape"] == attrs[f"shape_{o}"][i]
            size = found and obj["size"] == attrs[f"size_{o}"][i]
            hits["colour"].append(found)
            hits["shape"].append(shape)
            hits["size"].append(size)
            ok_all &= bool(found and shape and size)
        pos = all(o is not None for o in objs) and _relation(*objs) == attrs["relation"][i]
        hits["position"].append(pos)
        hits["all"].append(ok_all and pos)
    out = {k: float(np.mean(v)) if v else float("nan") for k, v in hits.items()}
    return {**out, "n": int(len(images))}
