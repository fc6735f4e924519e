"""The one override channel: `key=value` strings applied to frozen config dataclasses.

Used by the CLI (`ouro train model.depth=2 lr=1e-3`) and by papermill parameters alike.
Unknown keys and values that do not parse as the field's type are rejected *before*
anything compiles, with the offending key named.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Iterable, Mapping

from ouro.errors import UserError


class ConfigError(UserError):
    """A config key or value is wrong; the message names the field."""


def _parse(text: str, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _parse(text, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}={text!r}: expected {annotation}")
    if origin is typing.Literal:
        for choice in args:
            if str(choice) == text:
                return choice
        raise ConfigError(f"{key}={text!r}: expected one of {list(args)}")
    if origin is tuple:
        parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_parse(p.strip(), args[0], key) for p in parts)
        if len(parts) != len(args):
            raise ConfigError(f"{key}={text!r}: expected {len(args)} comma-separated values")
        return tuple(_parse(p.strip(), a, key) for p, a in zip(parts, args))
    if annotation is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={text!r}: expected a boolean (true/false)")
    if annotation in (int, float):
        try:
            value = float(text) if annotation is float else int(float(text))
            if annotation is int and float(text) != int(float(text)):
                raise ValueError
            return value
        except ValueError:
            raise ConfigError(f"{key}={text!r}: expected {annotation.__name__}") from None
    if annotation is str:
        return text
    raise ConfigError(f"{key}: cannot parse values of type {annotation} from the command line")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def override(cfg: Any, items: Iterable[str] | Mapping[str, Any], *, prefix: str = "") -> Any:
    """Return `cfg` with overrides applied. `items` are "a.b=value" strings or a mapping.

    Nested dataclass fields are addressed with dots. Mapping values that are not strings
    are taken as already typed (papermill passes Python values).
    """
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        for item in items:
            if "=" not in item:
                raise ConfigError(f"override {item!r}: expected key=value")
            k, v = item.split("=", 1)
            pairs.append((k.strip(), v.strip()))
    for key, value in pairs:
        cfg = _set(cfg, key.split("."), value, prefix)
    return cfg


def _set(cfg: Any, path: list[str], value: Any, prefix: str) -> Any:
    types_ = _field_types(type(cfg))
    name, full = path[0], prefix + ".".join(path)
    if name not in types_:
        known = ", ".join(sorted(types_))
        raise ConfigError(f"unknown config key {full!r}; known keys here: {known}")
    current = getattr(cfg, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config key {full!r}: {name!r} has no sub-fields")
        new = _set(current, path[1:], value, prefix + name + ".")
    elif isinstance(value, str):
        new = _parse(value, types_[name], full)
    else:
        new = value
    try:
        return dataclasses.replace(cfg, **{name: new})
    except (TypeError, ValueError) as e:  # a config's own __post_init__ check, e.g. XUTConfig
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{full}={new!r}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (JSON-friendly) of a config dataclass."""
    return dataclasses.asdict(cfg)
