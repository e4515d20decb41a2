"""Build an experiment's config from a preset and ``--set key=value`` overrides."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import math
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from stochgrad.runner.registry import Experiment

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "").replace(" ", "")


def _parse(raw: str, tp: Any) -> Any:
    """Parse ``raw`` as type ``tp``; raises ValueError when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return raw
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and raw.strip().lower() in ("none", "null"):
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _parse(raw, arg)
                except ValueError:
                    pass
        raise ValueError(raw)
    if origin is typing.Literal:
        for arg in args:
            if str(arg) == raw.strip():
                return arg
        raise ValueError(raw)
    if origin in (tuple, list):
        items = [s.strip() for s in raw.split(",")] if raw.strip() else []
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ValueError(raw)
            return tuple(_parse(s, a) for s, a in zip(items, args, strict=True))
        values = [_parse(s, args[0] if args else Any) for s in items]
        return tuple(values) if origin is tuple else values
    if tp is bool:
        if raw.strip().lower() in _TRUE:
            return True
        if raw.strip().lower() in _FALSE:
            return False
        raise ValueError(raw)
    if tp is int:
        return _int_in_range(int(raw))
    if tp is float:
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    if tp is str:
        return raw
    raise ValueError(raw)


INT_LIMIT = 2**63
"""Integers in configs must fit torch's int64: |value| < 2**63."""


def _int_in_range(value: int) -> int:
    if not -INT_LIMIT < value < INT_LIMIT:
        raise OverflowError(value)
    return value


def _expected(tp: Any) -> str:
    if tp is float:
        return "float (finite)"
    if tp is int:
        return "int (|value| < 2**63)"
    return _type_name(tp) + (" (comma-separated)" if typing.get_origin(tp) in (tuple, list) else "")


def parse_value(key: str, raw: str, tp: Any) -> Any:
    """Parse the text of ``--set key=raw`` according to the field type ``tp``."""
    try:
        return _parse(raw, tp)
    except (ValueError, OverflowError):
        raise ValueError(f"--set {key}: expected {_expected(tp)}, got {raw!r}") from None


def _fields(exp: Experiment) -> dict[str, Any]:
    hints = typing.get_type_hints(exp.config)
    return {f.name: hints[f.name] for f in dataclasses.fields(exp.config)}


def _unknown_key(exp: Experiment, key: str) -> ValueError:
    valid = ", ".join(sorted(_fields(exp)))
    return ValueError(
        f"unknown config key {key!r} for experiment {exp.name!r}; valid keys: {valid}"
    )


def make_config(exp: Experiment, preset: str, overrides: Iterable[str] = ()) -> Any:
    """Config of ``exp`` = dataclass defaults, then the preset overlay, then ``key=value`` items."""
    if preset not in exp.presets:
        raise ValueError(
            f"unknown preset {preset!r} for experiment {exp.name!r}; "
            f"available presets: {', '.join(exp.presets)}"
        )
    fields = _fields(exp)
    values = dict(exp.presets[preset])
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key not in fields:
            raise _unknown_key(exp, key)
        values[key] = parse_value(key, raw, fields[key])
    return exp.config(**values)


def _fits(value: Any, tp: Any) -> bool:
    """Whether a value read back from JSON has the field type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_fits, value, args))
        return all(_fits(v, args[0] if args else Any) for v in value)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and -INT_LIMIT < value < INT_LIMIT
        )
    if tp is float:
        return (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def config_from_dict(exp: Experiment, data: Mapping[str, Any], source: str = "config") -> Any:
    """Rebuild a config from ``dataclasses.asdict`` output read back from JSON (lists -> tuples).

    Every value is checked against its field's type; ``source`` names the file in errors.
    """
    if not isinstance(data, Mapping):
        raise ValueError(  # noqa: TRY004 - a damaged file, not a wrong argument type
            f"{source}: 'config' must be a JSON object, got {type(data).__name__}"
        )
    fields = _fields(exp)
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"{source}: {_unknown_key(exp, key)}")
        if not _fits(value, fields[key]):
            raise ValueError(
                f"{source}: config field {key!r} expected {_expected(fields[key])}, got {value!r}"
            )
        if isinstance(value, list) and _wants_tuple(fields[key]):
            value = tuple(value)
        values[key] = value
    return exp.config(**values)


def _wants_tuple(tp: Any) -> bool:
    if typing.get_origin(tp) is tuple:
        return True
    return any(_wants_tuple(a) for a in typing.get_args(tp) if a is not Ellipsis)


def require_positive(cfg: Any, *keys: str) -> None:
    """Raise ValueError naming the first config field among ``keys`` that is not positive:
    an integer below 1 or a float <= 0."""
    for key in keys:
        value = getattr(cfg, key)
        if isinstance(value, float) and not value > 0:
            raise ValueError(f"{key} must be > 0, got {value}")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")


def field_docs(config: type) -> dict[str, str]:
    """Field name -> the docstring written under it in the dataclass source ('' if none)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(config)))
    except (OSError, TypeError, SyntaxError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, after in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe(exp: Experiment) -> list[dict[str, Any]]:
    """One row per config field: name, type, default, value in each preset, docstring."""
    docs = field_docs(exp.config)
    rows = []
    for f in dataclasses.fields(exp.config):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        row = {"name": f.name, "type": _type_name(_fields(exp)[f.name]), "default": default}
        row["presets"] = {p: overlay.get(f.name, default) for p, overlay in exp.presets.items()}
        row["doc"] = docs.get(f.name, "")
        rows.append(row)
    return rows
