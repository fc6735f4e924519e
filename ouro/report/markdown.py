"""Markdown tables from JSON-like data: what reports and notebooks show for artefacts
whose schema the reader does not own (embedding stats, metrics, sampler scores)."""

from __future__ import annotations

import json
from typing import Any


def fmt(v: Any) -> str:
    """One value for a table cell: thousands separators, 4 significant digits, short."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) <= 4 and all(isinstance(x, (int, float)) for x in v):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    text = json.dumps(v) if isinstance(v, (dict, list)) else str(v)
    return (text[:77] + "...") if len(text) > 80 else text.replace("|", "\\|")


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, (dict, list)) or (isinstance(v, list) and len(v) <= 4 and all(isinstance(x, (int, float)) for x in v))


def _is_records(v: Any) -> bool:
    """{row: {column: scalar}} — renders as one table."""
    return isinstance(v, dict) and bool(v) and all(isinstance(r, dict) and r and all(map(_is_scalar, r.values())) for r in v.values())


def _records_table(rows: dict, first: str = "") -> str:
    cols = list(dict.fromkeys(c for r in rows.values() for c in r))[:10]
    return table([first, *cols], [[k, *(r.get(c, "") for c in cols)] for k, r in rows.items()])


def _short_list(v: list, n: int = 6) -> str:
    """[["dalmatian", 0.74], ...] -> "dalmatian (0.74), ..."; other lists comma-joined."""
    items = [f"{x[0]} ({fmt(x[1])})" if isinstance(x, (list, tuple)) and len(x) == 2 else fmt(x) for x in v[:n]]
    return ", ".join(items).replace("|", "\\|") + (", ..." if len(v) > n else "")


def render_json_table(data: Any, depth: int = 0, path: str = "") -> str:
    """A readable rendering of a JSON artefact whose schema this module does not own:
    scalars as a key/value table, {row: {col: scalar}} and lists of records as tables,
    {key: list} as a key/list table, deeper nesting recursively under a bold path."""
    if _is_records(data):
        return _records_table(data)
    if not isinstance(data, dict):
        return fmt(data)
    parts = []
    scalars = [[k, v] for k, v in data.items() if _is_scalar(v)]
    if scalars:
        parts.append(table(["key", "value"], scalars))
    for k, v in data.items():
        if _is_scalar(v):
            continue
        title = f"**{path}{k}**"
        if _is_records(v):
            parts.append(f"{title}\n\n" + _records_table(v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = list(dict.fromkeys(c for x in v for c in x))[:10]
            parts.append(f"{title}\n\n" + table(cols, [[x.get(c, "") for c in cols] for x in v[:30]]))
        elif isinstance(v, dict) and v and all(isinstance(x, list) for x in v.values()):
            parts.append(f"{title}\n\n" + table(["", "values"], [[key, _short_list(x)] for key, x in v.items()]))
        elif isinstance(v, dict) and depth < 4:
            # a title only over the sub-dict's own scalars; nested parts carry their path
            own = any(_is_scalar(x) for x in v.values())
            parts.append((f"{title}\n\n" if own else "") + render_json_table(v, depth + 1, f"{path}{k} › "))
        else:
            parts.append(f"{title}: {_short_list(v) if isinstance(v, list) else fmt(v)}")
    return "\n\n".join(parts)
