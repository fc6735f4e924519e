"""Semantic groups of the 1000 ImageNet classes (shipped data; derived by groups_build.py)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

GROUPS_FILE = Path(__file__).with_name("imagenet_groups.json")
DOG_CLASSES = range(151, 269)  # the 118 dog breeds


@lru_cache(maxsize=1)
def _load() -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        payload = json.loads(GROUPS_FILE.read_text(encoding="utf-8"))
        order, groups = tuple(payload["order"]), tuple(payload["groups"])
    except (OSError, ValueError, KeyError) as e:
        raise RuntimeError(f"{GROUPS_FILE}: unreadable ({e}); re-derive it with `python -m ouro.analysis.groups_build`") from e
    if len(groups) != 1000 or not set(groups) <= set(order):
        raise RuntimeError(f"{GROUPS_FILE}: expected 1000 groups from {order}")
    return order, groups


def group_order() -> list[str]:
    """Group names in display order ("dogs" first, "other" last)."""
    return list(_load()[0])


def imagenet_groups() -> list[str]:
    """groups[i] = semantic group of ImageNet class i."""
    return list(_load()[1])
