"""The one override channel: `key=value` strings applied to frozen config dataclasses.

Used by the CLI (`ouro train model.depth=2 lr=1e-3`) and by papermill parameters alike.
Unknown keys and values that do not parse as the field's type are rejected *before*
anything compiles, with the offending key named. `@checked` gives the Python API the same
guarantee: a config dataclass so decorated checks every field's type and range when it is
constructed (`TrainConfig(steps=1.5)` fails like `steps=1.5` on the command line does).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from typing import Any, Callable, Iterable, Mapping

from ouro.errors import UserError


class ConfigError(UserError):
    """A config key or value is wrong; the message starts with the field's (dotted) name.

    `key` is that name, so `override` can prefix the path of a nested field ("model.dim").
    """

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


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
    parsers = {f.name: f.metadata.get("parse") for f in dataclasses.fields(cfg)}
    name, full = path[0], prefix + ".".join(path)
    if name not in types_:
        raise ConfigError(f"unknown config key {full!r}; {suggest(name, types_, prefix)}")
    current = getattr(cfg, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"config key {full!r}: {name!r} has no sub-fields")
        new = _set(current, path[1:], value, prefix + name + ".")
    elif isinstance(value, str) and parsers.get(name) is not None:
        new = parsers[name](value, full)  # a field with its own parser (e.g. model=<preset name>)
    elif isinstance(value, str):
        new = _parse(value, types_[name], full)
    else:
        new = value
    try:
        return dataclasses.replace(cfg, **{name: new})
    except ConfigError as e:  # raised by a @checked nested config: name it by its full path
        if e.key is None or not prefix:
            raise
        raise ConfigError(prefix + str(e), key=prefix + e.key) from None
    except (TypeError, ValueError) as e:  # a config's own unchecked __post_init__ test
        raise ConfigError(f"{full}={new!r}: {e}") from None


def suggest(word: str, known: Iterable[str], prefix: str = "") -> str:
    """'did you mean 'lr'?' for a near miss (difflib), else the known names: one line."""
    import difflib

    known = sorted(known)
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(prefix + c) for c in close) + "?"
    if len(known) > 12:  # a wall of names helps nobody: the help lists them with their meaning
        return f"none is close among the {len(known)} keys here (`--help` lists them)"
    return f"known keys here: {', '.join(known)}"


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (JSON-friendly) of a config dataclass."""
    return dataclasses.asdict(cfg)


# -- construction-time checks (@checked) ----------------------------------------------

_TYPES: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _TYPES:  # resolved lazily: forward references exist by first construction
        _TYPES[cls] = _field_types(cls)
    return _TYPES[cls]


def _range_test(spec: str) -> Callable[[float], bool]:
    """'>0', '>=1', '[0,1)', '(0,1]': the range mini-language of @checked."""
    for op, test in ((">=", float.__ge__), (">", float.__gt__), ("<=", float.__le__), ("<", float.__lt__)):
        if spec.startswith(op):
            bound = float(spec[len(op):])
            return lambda v: test(float(v), bound)
    lo, hi = (float(x) for x in spec[1:-1].split(","))
    if spec[0] not in "[(" or spec[-1] not in ")]":
        raise ValueError(f"range {spec!r}: expected '>0', '>=1', '[0,1)' ...")
    return lambda v: ((lo <= v) if spec[0] == "[" else (lo < v)) and ((v <= hi) if spec[-1] == "]" else (v < hi))


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """`value` if it has the annotated type (int widens to float, list to tuple), else ConfigError."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{key}={value!r}: expected {expected}", key=key)

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _coerce(value, arg, key)
                except ConfigError:
                    pass
        raise bad(" or ".join("None" if a is type(None) else getattr(a, "__name__", str(a)) for a in args))
    if origin is typing.Literal:
        if any(value == c and type(value) is type(c) for c in args):
            return value
        raise bad(f"one of {list(args)}")
    if origin is tuple:
        if isinstance(value, (tuple, list)):
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(v, args[0], key) for v in value)
            if len(value) == len(args):
                return tuple(_coerce(v, a, key) for v, a in zip(value, args))
        raise bad(f"a tuple of {len(args)} values" if args and args[-1] is not Ellipsis else "a tuple")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise bad("a boolean (true/false)")
    if annotation is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise bad("int")
    if annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise bad("a finite float")
            return float(value)
        raise bad("float")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise bad(annotation.__name__)
    return value


def checked(**ranges: str) -> Callable[[type], type]:
    """Class decorator for a frozen config dataclass (put it above @dataclass): construction
    rejects unknown keyword arguments, checks every field against its annotation and the
    given ranges (`steps=">0"`, `ema_decay="[0,1)"`; None skips), then runs the class's own
    `__post_init__` - each failure a ConfigError naming the field, as `override` gives."""
    def wrap(cls: type) -> type:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = set(ranges) - set(names)
        if unknown:
            raise TypeError(f"@checked on {cls.__name__}: no fields {sorted(unknown)}")
        tests = {k: _range_test(spec) for k, spec in ranges.items()}
        init, own_post_init = cls.__init__, getattr(cls, "__post_init__", None)

        @functools.wraps(init)  # keeps the signature for help listings
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            for k in kwargs:
                if k not in names:
                    raise ConfigError(f"unknown config key {k!r} for {cls.__name__}; {suggest(k, names)}", key=k)
            init(self, *args, **kwargs)
            if own_post_init is None:  # @dataclass only calls a __post_init__ it saw at creation
                __post_init__(self)

        def __post_init__(self) -> None:
            hints = _hints(cls)
            for name in names:
                value = getattr(self, name)
                new = _coerce(value, hints[name], name)
                if new is not value:
                    object.__setattr__(self, name, new)  # frozen: widen int -> float once, here
                if name in tests and new is not None and not tests[name](new):
                    spec = ranges[name]
                    raise ConfigError(f"{name}={new!r}: must be {'in ' * (spec[0] in '[(')}{spec}", key=name)
            if own_post_init is not None:
                own_post_init(self)

        cls.__init__, cls.__post_init__ = __init__, __post_init__
        return cls

    return wrap
