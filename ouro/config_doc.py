"""Every config key with its type, value and the one-line reason written beside the field.

    print(listing(preset_config("digits")))     # `ouro train --help` / `--print-config`

The reasons are read from the dataclass source (the `# ...` comment on the field's line),
so the help can never drift from the code: a field without a comment shows none.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import textwrap
import tokenize
import typing
from typing import Any, Iterator


@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """{field name: trailing comment text} from the class body's source ({} if unavailable)."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}  # line number -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out = {}
    for node in ast.parse(src).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            # the comment sits on the statement's last line (multi-line defaults)
            text = comments.get(node.end_lineno or node.lineno) or comments.get(node.lineno)
            if text:
                out[node.target.id] = text
    return out


def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if isinstance(annotation, type) and not args:
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def fields(cfg: Any, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """(dotted key, type, value, reason) for every leaf field, nested dataclasses expanded."""
    hints = typing.get_type_hints(type(cfg))
    reasons = field_comments(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from fields(value, prefix + f.name + ".")
        else:
            yield prefix + f.name, _type_name(hints.get(f.name, Any)), _show(value), reasons.get(f.name, "")


def listing(cfg: Any, *, width: int = 100) -> str:
    """Aligned text: `key  type  = value  # reason`, one key per line."""
    rows = list(fields(cfg))
    kw = max(len(r[0]) for r in rows)
    tw = max(len(r[1]) for r in rows)
    vw = min(max(len(r[2]) for r in rows), 24)
    lines = []
    for key, typ, value, reason in rows:
        line = f"  {key:<{kw}}  {typ:<{tw}}  = {value:<{vw}}"
        lines.append((line + ("  # " + reason if reason else "")).rstrip())
    return "\n".join(lines)
