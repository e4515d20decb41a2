"""Running experiments: one run, resume, seed sweeps (local processes or Ray), reproduce."""

from __future__ import annotations

import dataclasses
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stochgrad.runner import registry
from stochgrad.runner.config import config_from_dict, make_config
from stochgrad.runner.context import (
    CHECKPOINT,
    METRICS_CSV,
    RunContext,
    resolve_device,
    seed_everything,
)
from stochgrad.runner.registry import Experiment

RESULTS = "results.json"
CONFIG = "config.json"
METRIC_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


def versions() -> dict[str, str]:
    """Versions of python, torch, numpy and stochgrad."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("stochgrad")
    except PackageNotFoundError:
        from stochgrad import __version__ as own
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "stochgrad": own,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _jsonable(cfg: Any) -> dict[str, Any]:
    """The config as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        for i in range(1, 1000):
            if not path.with_name(f"{path.name}-{i}").exists():
                return path.with_name(f"{path.name}-{i}")
    return path


def default_out_dir(name: str, preset: str, tag: str) -> Path:
    """``runs/{name}/{preset}-{tag}-{timestamp}`` (relative to the working directory)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return _fresh_dir(Path("runs") / name / f"{preset}-{tag}-{stamp}")


def _use_agg() -> None:
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")


def _check_metrics(name: str, metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        raise TypeError(f"experiment {name!r} must return a dict of metrics, got {type(metrics)}")
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not METRIC_NAME.match(key):
            raise ValueError(
                f"experiment {name!r} returned metric name {key!r}; "
                "metric names must be lower-case and dotted, e.g. 'log10_grad_var.relax'"
            )
        x = float(value.item() if isinstance(value, torch.Tensor) else value)
        if not math.isfinite(x):
            raise FloatingPointError(f"final metric {key} is {x}")
        out[key] = x
    return out


def _execute(
    exp: Experiment, cfg: Any, preset: str, seed: int, out_dir: Path, device: str, resumed: bool
) -> dict[str, Any]:
    """Run ``exp`` in ``out_dir`` and write results.json; re-raises the run's error.

    CPU runs use ``STOCHGRAD_THREADS`` torch threads (default 1: the experiments' small
    networks run as fast on one thread, and extra threads thrash when processes share cores).
    """
    _use_agg()
    dev = resolve_device(device)
    threads_before = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(_threads())
    try:
        return _execute_in(exp, cfg, preset, seed, out_dir, dev, resumed)
    finally:
        torch.set_num_threads(threads_before)


def _threads() -> int:
    raw = os.environ.get("STOCHGRAD_THREADS", "1")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"STOCHGRAD_THREADS must be a positive integer, got {raw!r}")
    return value


def _execute_in(
    exp: Experiment,
    cfg: Any,
    preset: str,
    seed: int,
    out_dir: Path,
    dev: torch.device,
    resumed: bool,
) -> dict[str, Any]:
    ctx = RunContext(out_dir, seed=seed, device=dev, preset=preset, resumed=resumed)
    results: dict[str, Any] = {
        "experiment": exp.name,
        "preset": preset,
        "config": _jsonable(cfg),
        "seed": seed,
        "metrics": {},
        "versions": versions(),
        "wall_time_s": 0.0,
        "status": "running",
        "device": str(dev),
        "resumed": resumed,
    }
    seed_everything(seed)
    start = time.perf_counter()
    try:
        results["metrics"] = _check_metrics(exp.name, exp.run(cfg, ctx))
        results["status"] = "ok"
    except BaseException as e:
        results["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        results["error"] = f"{type(e).__name__}: {e}"
        if isinstance(e, FloatingPointError):
            kept = ctx.checkpoint_path.exists()
            note = "; last good checkpoint kept" if kept else ""
            raise FloatingPointError(f"{e} in run {out_dir}{note}") from e
        raise
    finally:
        ctx.close()
        results["wall_time_s"] = time.perf_counter() - start
        _write_json(out_dir / RESULTS, results)
    return results


def run_experiment(
    name: str,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int = 0,
    out_dir: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Run experiment ``name`` once and return its results (also written to results.json).

    ``overrides`` are ``key=value`` strings. ``out_dir`` defaults to
    ``runs/{name}/{preset}-seed{seed}-{timestamp}``. A fresh run in an existing directory
    replaces that directory's previous results, curves and checkpoint.
    """
    exp = registry.get(name)
    cfg = make_config(exp, preset, overrides)
    resolve_device(device)
    out = Path(out_dir) if out_dir is not None else default_out_dir(name, preset, f"seed{seed}")
    out.mkdir(parents=True, exist_ok=True)
    for stale in (RESULTS, METRICS_CSV, CHECKPOINT):
        (out / stale).unlink(missing_ok=True)
    shutil.rmtree(out / "tb", ignore_errors=True)
    _write_json(
        out / CONFIG,
        {
            "experiment": name,
            "preset": preset,
            "overrides": list(overrides),
            "config": _jsonable(cfg),
            "seed": seed,
            "device": device,
        },
    )
    return _execute(exp, cfg, preset, seed, out, device, resumed=False)


def resume(run_dir: str | Path, device: str | None = None) -> dict[str, Any]:
    """Continue the run in ``run_dir`` (from its config.json) with ``ctx.resumed=True``.

    The experiment's ``ctx.load_checkpoint()`` then returns the last saved state.
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not path.exists():
        raise ValueError(f"{run_dir} is not a run directory (no {CONFIG})")
    saved = json.loads(path.read_text())
    exp = registry.get(saved["experiment"])
    cfg = config_from_dict(exp, saved["config"])
    dev = device or saved.get("device", "auto")
    return _execute(exp, cfg, saved["preset"], int(saved["seed"]), run_dir, dev, resumed=True)


# ---- sweeps --------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; ranges and lists combine."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            if dash:
                if int(hi) < int(lo):
                    raise ValueError
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(lo))
    except ValueError:
        raise ValueError(f"--seeds: expected e.g. '0-4' or '0,2,5', got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: repeated seed in {text!r}")
    return seeds


def _worker(
    name: str,
    preset: str,
    overrides: list[str],
    seed: int,
    out_dir: str,
    device: str,
    extra: str,
    threads: int,
) -> dict[str, Any]:
    """Entry point of one sweep member in a child process or Ray task."""
    if extra:
        os.environ[registry.EXTRA_ENV] = extra
    os.environ.setdefault("STOCHGRAD_NO_PROGRESS", "1")
    os.environ["STOCHGRAD_THREADS"] = str(threads)
    return run_experiment(name, preset, overrides, seed, out_dir, device)


def _clean_error(seed: int, err: BaseException) -> BaseException:
    cause = getattr(err, "cause", None) or err  # Ray wraps the task's exception
    kind = (
        type(cause)
        if isinstance(cause, (ValueError, TypeError, FloatingPointError))
        else (RuntimeError)
    )
    return kind(f"seed {seed}: {cause}")


def run_sweep(
    name: str,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    out_dir: str | Path | None = None,
    device: str = "auto",
    backend: str = "local",
    workers: int | None = None,
) -> list[dict[str, Any]]:
    """Run one experiment for several seeds, each into ``out_dir/seed{k}``.

    backend ``local``: parallel processes (spawn), ``workers`` defaults to
    min(#seeds, #cpus); ``ray``: one Ray task per seed (``ray.init()`` unless already
    initialized; ``out_dir`` must then be on storage shared by the cluster). All seeds run;
    the first failure is raised afterwards.
    """
    seeds = list(seeds)
    exp = registry.get(name)
    make_config(exp, preset, overrides)  # fail fast on bad input, before starting processes
    if backend not in ("local", "ray"):
        raise ValueError(f"--backend: expected 'local' or 'ray', got {backend!r}")
    if backend == "local":  # Ray workers may have devices that this machine lacks
        resolve_device(device)
    tag = f"seeds{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed{seeds[0]}"
    out = Path(out_dir) if out_dir is not None else default_out_dir(name, preset, tag)
    out = out.resolve()
    extra = os.environ.get(registry.EXTRA_ENV, "")
    ncpu = os.cpu_count() or 1
    n_workers = workers or min(len(seeds), ncpu)
    if n_workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    threads = max(1, ncpu // n_workers)
    args = [
        (name, preset, list(overrides), s, str(out / f"seed{s}"), device, extra, threads)
        for s in seeds
    ]
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    if backend == "ray":
        try:
            import ray
        except ImportError:
            raise ValueError(
                "--backend ray needs Ray, which is not installed: "
                "python3 -m pip install 'stochgrad[ray]'"
            ) from None
        if not ray.is_initialized():
            ray.init()
        num_gpus = 1 if device.startswith("cuda") else 0
        task = ray.remote(num_cpus=1, num_gpus=num_gpus)(_worker)
        refs = [task.remote(*a) for a in args]
        for s, ref in zip(seeds, refs, strict=True):
            try:
                results.append(ray.get(ref))
            except Exception as e:  # noqa: BLE001 - collected and re-raised below
                errors.append(_clean_error(s, e))
    elif n_workers == 1:
        for a in args:
            try:
                results.append(run_experiment(*a[:6]))
            except Exception as e:  # noqa: BLE001
                errors.append(_clean_error(a[3], e))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            futures = [pool.submit(_worker, *a) for a in args]
            for s, fut in zip(seeds, futures, strict=True):
                try:
                    results.append(fut.result())
                except Exception as e:  # noqa: BLE001
                    errors.append(_clean_error(s, e))
    if errors:
        raise errors[0]
    return results


def reproduce(
    preset: str = "quick",
    out_dir: str | Path | None = None,
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    backend: str = "local",
    workers: int | None = None,
    only: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Run every registered experiment's ``preset`` into ``out_dir/{name}`` and write the report.

    ``out_dir`` defaults to ``runs/reproduce-{preset}``. Returns (report.md, report.html). All
    experiments run; a failure is raised after the report is written.
    """
    from stochgrad.runner.report import write_report

    out = Path(out_dir) if out_dir is not None else Path("runs") / f"reproduce-{preset}"
    todo = list(only) if only else registry.names()
    for name in todo:
        registry.get(name)
    errors: list[BaseException] = []
    for i, name in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {name} ({preset}, seeds {list(seeds)}) -> {out / name}")
        for stale in (out / name).rglob(RESULTS):  # runs of an earlier reproduce
            stale.unlink()
        try:
            if len(seeds) == 1:
                run_experiment(name, preset, (), seeds[0], out / name, device)
            else:
                run_sweep(name, preset, (), seeds, out / name, device, backend, workers)
        except Exception as e:  # noqa: BLE001 - reported after the others have run
            errors.append(e)
    paths = write_report([out], out)
    if errors:
        first = errors[0]
        kind = type(first) if isinstance(first, (ValueError, FloatingPointError)) else RuntimeError
        raise kind(f"{len(errors)} experiment(s) failed (report: {paths[0]}); first: {first}")
    return paths
