"""Experiment registry: every paper figure or table is registered under a stable name.

An experiment module defines a frozen config dataclass (defaults = the paper's settings) and a
function ``run(cfg, ctx) -> dict[str, float]`` decorated with :func:`register`. Modules in
``stochgrad.experiments`` are imported lazily the first time the registry is queried; users add
their own with the environment variable ``STOCHGRAD_EXTRA_EXPERIMENTS=pkg.mod[,other.mod]``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stochgrad.runner.context import RunContext

EXTRA_ENV = "STOCHGRAD_EXTRA_EXPERIMENTS"
_NAME_RE = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")

RunFn = Callable[[Any, "RunContext"], Mapping[str, float]]
MemoryFn = Callable[[Any], float]


@dataclass(frozen=True)
class Headline:
    """What a headline metric reproduces, shown next to its value in the report.

    paper: the paper's value or claim (with its figure/table). meaning: one line on what the
    metric measures. quick: whether the quick preset is expected to reach the paper's claim.
    """

    paper: str
    meaning: str
    quick: str


@dataclass(frozen=True)
class Experiment:
    """A registered experiment.

    name: stable CLI name, e.g. ``relax-toy``.
    config: frozen dataclass type whose defaults are the paper's settings.
    presets: preset name -> dict overlay on the defaults (``quick``, ``paper``, ...).
    description: one line shown by ``stochgrad list``.
    run: ``run(cfg, ctx) -> dict[str, float]`` returning flat, dotted, lower-case metrics.
    headlines: metric name -> :class:`Headline` (the paper claim it reproduces).
    memory: ``memory(cfg) -> bytes``, a rough estimate of the run's peak memory, checked
    against the memory available before the run starts.
    """

    name: str
    config: type
    presets: Mapping[str, Mapping[str, Any]]
    description: str
    run: RunFn
    headlines: Mapping[str, Headline] = dataclasses.field(default_factory=dict)
    memory: MemoryFn | None = None


_REGISTRY: dict[str, Experiment] = {}


def register(
    name: str,
    config: type,
    presets: dict[str, dict[str, Any]],
    description: str = "",
    headlines: Mapping[str, Headline] | None = None,
    memory: MemoryFn | None = None,
) -> Callable[[RunFn], RunFn]:
    """Decorator registering ``run(cfg, ctx) -> dict[str, float]`` as experiment ``name``.

    ``presets`` maps preset names to overlays on the config defaults; a ``paper`` preset
    (empty overlay) is added when missing. Preset keys are checked against the config fields.
    ``headlines`` and ``memory`` are described in :class:`Experiment`.
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"experiment name {name!r} must be lower-case words joined by '-' or '_'")
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise TypeError(f"config for experiment {name!r} must be a dataclass type, got {config!r}")
    field_names = {f.name for f in dataclasses.fields(config)}
    presets = {"paper": {}, **{k: dict(v) for k, v in presets.items()}}
    for preset, overlay in presets.items():
        unknown = sorted(set(overlay) - field_names)
        if unknown:
            raise ValueError(
                f"preset {preset!r} of experiment {name!r} sets unknown config keys {unknown}; "
                f"valid keys: {', '.join(sorted(field_names))}"
            )

    def decorator(fn: RunFn) -> RunFn:
        old = _REGISTRY.get(name)
        same = old is not None and (old.run.__module__, old.run.__qualname__) == (
            fn.__module__,
            fn.__qualname__,
        )
        if old is not None and not same:
            raise ValueError(f"experiment {name!r} is already registered by {old.run.__module__}")
        _REGISTRY[name] = Experiment(
            name, config, presets, description, fn, dict(headlines or {}), memory
        )
        return fn

    return decorator


def _load_all() -> None:
    """Import the built-in experiments and any modules named in ``STOCHGRAD_EXTRA_EXPERIMENTS``."""
    importlib.import_module("stochgrad.experiments")
    for module in filter(None, (m.strip() for m in os.environ.get(EXTRA_ENV, "").split(","))):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not module.startswith(e.name):
                raise  # the module exists but one of its own imports is missing
            raise ValueError(
                f"{EXTRA_ENV} names module {module!r}, which cannot be imported: {e}"
            ) from None


def names() -> list[str]:
    """Sorted names of all registered experiments."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    """The experiment registered as ``name``; ValueError listing the known ones otherwise."""
    known = names()
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known experiments: {', '.join(known)}")
    return _REGISTRY[name]
