"""A notebook's `parameters` cell: names, defaults and declared types, and value checks.

`ouro run -p NAME VALUE` is checked against this before a kernel starts: names must exist,
values must fit the annotation (`steps: int | None = None`) or, without one, the type of a
literal default. Nothing in the cell is executed; annotations are read with a fixed set of
names (int, float, str, bool, list, tuple, dict, None, Any, Literal).
"""

from __future__ import annotations

import ast
import types
import typing
from typing import Any

from ouro.errors import UserError


class ParameterError(UserError):
    """The parameters cell, or a value given for it, is wrong."""


def _parameter_nodes(nb) -> list[ast.stmt]:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) > 1:
        raise ParameterError(f"notebook has {len(cells)} cells tagged 'parameters'; papermill needs one")
    return ast.parse(cells[0].source).body if cells else []


def notebook_parameters(nb) -> dict[str, Any]:
    """Names and default values of the cell tagged `parameters` ({} if there is none).
    Defaults that are not literals are reported as their source text."""
    params: dict[str, Any] = {}
    for node in _parameter_nodes(nb):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in targets:
            if isinstance(t, ast.Name) and node.value is not None:
                try:
                    params[t.id] = ast.literal_eval(node.value)
                except ValueError:
                    params[t.id] = ast.unparse(node.value)
    return params


# Names a parameters-cell annotation may use (`steps: int | None = None`); nothing is imported.
_ANNOTATION_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "tuple": tuple,
                     "dict": dict, "None": None, "Any": Any, "Literal": typing.Literal}


def notebook_parameter_types(nb) -> dict[str, Any]:
    """{name: type} for annotated parameters (`lr: float | None = None`), else the type of a
    literal default (`x = 1` -> int); parameters defaulting to None without an annotation
    accept anything."""
    out: dict[str, Any] = {}
    for node in _parameter_nodes(nb):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            try:
                out[node.target.id] = eval(compile(ast.Expression(node.annotation), "<parameters>", "eval"),
                                           {"__builtins__": {}}, dict(_ANNOTATION_NAMES))
            except Exception as e:  # noqa: BLE001 - an annotation we cannot read is the notebook's bug
                raise ParameterError(f"parameter {node.target.id}: cannot read its annotation "
                               f"{ast.unparse(node.annotation)!r} ({e})") from None
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                if isinstance(t, ast.Name) and value is not None:
                    out[t.id] = type(value)
    return out


def matches(value: Any, annotation: Any) -> bool:
    """Whether a parameter value fits its declared type (ints are floats; bools are not ints)."""
    if annotation is Any:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple):
        return isinstance(value, (list, tuple)) and (not args or all(matches(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (list, tuple):
        return isinstance(value, (list, tuple))  # papermill passes JSON: tuples arrive as lists
    return isinstance(value, annotation)


def type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def parse_value(text: str) -> Any:
    """A `-p name value` value: Python/JSON literals (1, 0.5, true, None, [2, 4], "x"),
    anything else as a plain string (so `-p preset xut-tiny` needs no quotes)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
