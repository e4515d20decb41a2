"""Build an experiment's config from a preset and ``--set key=value`` overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from stochgrad.runner.registry import Experiment

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else str(tp)


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
        return int(raw)
    if tp is float:
        return float(raw)
    if tp is str:
        return raw
    raise ValueError(raw)


def parse_value(key: str, raw: str, tp: Any) -> Any:
    """Parse the text of ``--set key=raw`` according to the field type ``tp``."""
    try:
        return _parse(raw, tp)
    except ValueError:
        raise ValueError(
            f"--set {key}: expected {_type_name(tp)}, got {raw!r}"
            + (" (comma-separated)" if typing.get_origin(tp) in (tuple, list) else "")
        ) from None


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


def config_from_dict(exp: Experiment, data: Mapping[str, Any]) -> Any:
    """Rebuild a config from ``dataclasses.asdict`` output read back from JSON (lists -> tuples)."""
    fields = _fields(exp)
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown_key(exp, key)
        if isinstance(value, list) and _wants_tuple(fields[key]):
            value = tuple(value)
        values[key] = value
    return exp.config(**values)


def _wants_tuple(tp: Any) -> bool:
    if typing.get_origin(tp) is tuple:
        return True
    return any(_wants_tuple(a) for a in typing.get_args(tp) if a is not Ellipsis)


def require_positive(cfg: Any, *keys: str) -> None:
    """Raise ValueError naming the first config field among ``keys`` that is below 1."""
    for key in keys:
        value = getattr(cfg, key)
        if value < 1:
            raise ValueError(f"{key} must be >= 1, got {value}")
