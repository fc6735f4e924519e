"""The embedded text-to-image dataset: coloured shapes with compositional captions.

    ds = make_shapes(4096, seed=0)     # images (N, 32, 32, 3) in [-1, 1], captions, attributes
    ds.captions[0]                     # 'a large red circle above a small blue square'

The offline stand-in for COYO: every caption names two objects' colour, shape and size
and their relative position, so a model must read the whole sentence (not a class id) to
draw it, and `ouro.eval.shapes_score` reads every attribute back from the pixels.
Deterministic per (n, seed, image_size); nothing is downloaded.

Layout: object A lies in the half of the image its relation names (top half for "above",
left half for "to the left of"), object B in the other half; along the other axis the two
centres differ by at most 10% of the image, so the relation is never ambiguous. The two
colours always differ (the scorer finds objects by colour).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0),
           "magenta": (1, 0, 1), "cyan": (0, 1, 1)}  # RGB corners: far apart, none is black
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.25, "large": 0.44}  # bounding-box side as a fraction of the image
RELATIONS = ("above", "below", "to the left of", "to the right of")
BACKGROUND = (0, 0, 0)
COLOUR_NAMES = tuple(COLOURS)
SIZE_NAMES = tuple(SIZES)
ATTR_KEYS = ("colour_a", "colour_b", "shape_a", "shape_b", "size_a", "size_b", "relation")


@dataclasses.dataclass
class Shapes:
    images: np.ndarray  # (N, H, W, 3) float32 in [-1, 1]
    captions: list[str]
    attrs: dict[str, np.ndarray]  # colour_a/b, shape_a/b, size_a/b, relation: int indices (N,)

    def __len__(self) -> int:
        return len(self.images)


def caption(colour_a: int, shape_a: int, size_a: int, relation: int, colour_b: int, shape_b: int,
            size_b: int) -> str:
    a = f"{SIZE_NAMES[size_a]} {COLOUR_NAMES[colour_a]} {SHAPES[shape_a]}"
    b = f"{SIZE_NAMES[size_b]} {COLOUR_NAMES[colour_b]} {SHAPES[shape_b]}"
    return f"a {a} {RELATIONS[relation]} a {b}"


def parse_caption(text: str) -> dict[str, int] | None:
    """caption()'s inverse: the attribute indices of a shapes caption, or None if `text` is
    not one (so a scorer knows whether the shapes reader applies to a prompt)."""
    m = _CAPTION.fullmatch(" ".join(text.strip().lower().split()))
    if m is None:
        return None
    size_a, colour_a, shape_a, rel, size_b, colour_b, shape_b = m.groups()
    return {"colour_a": COLOUR_NAMES.index(colour_a), "shape_a": SHAPES.index(shape_a),
            "size_a": SIZE_NAMES.index(size_a), "relation": RELATIONS.index(rel),
            "colour_b": COLOUR_NAMES.index(colour_b), "shape_b": SHAPES.index(shape_b),
            "size_b": SIZE_NAMES.index(size_b)}


def _alt(names) -> str:
    return "(" + "|".join(names) + ")"


_OBJECT = f"{_alt(SIZE_NAMES)} {_alt(COLOUR_NAMES)} {_alt(SHAPES)}"
_CAPTION = re.compile(f"a {_OBJECT} {_alt(RELATIONS)} a {_OBJECT}")


def shape_mask(shape: str, side: int, image_size: int, top: int, left: int) -> np.ndarray:
    """(H, W) bool mask of one shape whose bounding box is side x side at (top, left)."""
    yy, xx = np.mgrid[0:image_size, 0:image_size] + 0.5  # pixel centres
    u, v = (xx - left) / side, (yy - top) / side  # bounding box -> [0, 1]^2
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    if shape == "square":
        return inside
    if shape == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    # upright isosceles triangle: apex at the top centre, base along the bottom edge
    return inside & (np.abs(u - 0.5) <= 0.5 * v)


def _place(rng: np.random.Generator, side: tuple[int, int], relation: int, n: int) -> list[tuple[int, int]]:
    """(top, left) for A and B: A in its relation's half, B in the other, aligned across."""
    half = n // 2
    vertical = relation < 2
    a_first = relation in (0, 2)  # above / left of: A takes the first half
    along = [int(rng.integers(0, half - s + 1)) + (0 if (i == 0) == a_first else half)
             for i, s in enumerate(side)]
    centre = rng.uniform(max(side) / 2, n - max(side) / 2)
    jitter = 0.1 * n
    across = [int(np.clip(round(centre + rng.uniform(-jitter, jitter) / 2 - s / 2), 0, n - s)) for s in side]
    return [(al, ac) if vertical else (ac, al) for al, ac in zip(along, across)]


def make_shapes(n: int, *, seed: int = 0, image_size: int = 32,
                attrs: dict[str, np.ndarray] | None = None) -> Shapes:
    """n images with two objects each, uniformly random attributes; deterministic per seed.
    `attrs` (each (n,) int, Shapes.attrs' keys) fixes the attributes: only the placement is
    drawn, so the same captions get new images per seed (a closed caption set)."""
    if image_size < 16 or image_size % 2:
        raise ValueError(f"image_size={image_size}: need an even size >= 16")
    rng = np.random.default_rng(seed)
    if attrs is None:
        nc = len(COLOURS)
        colour_a = rng.integers(0, nc, n)
        colour_b = (colour_a + rng.integers(1, nc, n)) % nc  # always a different colour
        attrs = {"colour_a": colour_a, "colour_b": colour_b, "shape_a": rng.integers(0, 3, n),
                 "shape_b": rng.integers(0, 3, n), "size_a": rng.integers(0, 2, n),
                 "size_b": rng.integers(0, 2, n), "relation": rng.integers(0, 4, n)}
    elif sorted(attrs) != sorted(ATTR_KEYS) or any(len(v) != n for v in attrs.values()):
        raise ValueError(f"attrs: need {n} values for each of {', '.join(ATTR_KEYS)}")
    palette = np.asarray(list(COLOURS.values()), np.float32)
    images = np.empty((n, image_size, image_size, 3), np.float32)
    images[:] = BACKGROUND
    captions = []
    for i in range(n):
        a = {k: int(v[i]) for k, v in attrs.items()}
        sides = tuple(int(round(SIZES[SIZE_NAMES[a[f"size_{o}"]]] * image_size)) for o in "ab")
        for o, (top, left), side in zip("ab", _place(rng, sides, a["relation"], image_size), sides):
            mask = shape_mask(SHAPES[a[f"shape_{o}"]], side, image_size, top, left)
            images[i][mask] = palette[a[f"colour_{o}"]]
        captions.append(caption(a["colour_a"], a["shape_a"], a["size_a"], a["relation"],
                                a["colour_b"], a["shape_b"], a["size_b"]))
    return Shapes(images * 2.0 - 1.0, captions, {k: np.asarray(v, np.int32) for k, v in attrs.items()})
