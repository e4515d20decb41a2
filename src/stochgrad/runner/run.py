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
import signal
import sys
import tempfile
import threading
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
    load_checkpoint_file,
    read_metrics_csv,
    resolve_device,
    seed_everything,
)
from stochgrad.runner.lock import LOCK, DirLock
from stochgrad.runner.registry import Experiment

RESULTS = "results.json"
CONFIG = "config.json"
SWEEP = "sweep.json"
SEED_LIMIT = 2**32
"""Seeds lie in [0, 2**32) (NumPy's range)."""
CONFIRM_SEEDS = 100
"""Sweeps of more seeds than this need ``--yes``."""
MAX_SEEDS = 10_000_000
# lower-case parts joined by dots; parts after the first may hold inner "-" (test_log_px.hvi-aux)
METRIC_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+(?:-[a-z0-9_]+)*)*$")


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


# ---- checks made before anything is written ------------------------------------------------


def check_seed(seed: Any, flag: str = "--seed") -> int:
    """A seed is an integer in [0, 2**32)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{flag}: expected an integer in [0, 2**32), got {seed!r}")
    return seed


def prepare_dir(path: str | Path, flag: str = "--out") -> list[Path]:
    """Create ``path`` (with its parents) and check that it is a writable directory.

    Returns the directories this call created, deepest last (see :func:`remove_if_empty`).
    Raises ValueError naming ``flag`` and the path otherwise.
    """
    if str(path).strip() == "":
        raise ValueError(f"{flag}: empty path; give a directory")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: exists and is not a directory")
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise ValueError(f"{flag} {path}: {p} is not a directory")
    created: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        remove_if_empty(created)
        raise ValueError(f"{flag} {path}: not a writable directory ({e.strerror or e})") from None
    return created


def out_path(out_dir: str | Path | None, default: Path, flag: str = "--out") -> Path:
    """``out_dir`` as a Path (``default`` when None); an empty string is an error, not "."."""
    if out_dir is None:
        return default
    if str(out_dir).strip() == "":
        raise ValueError(f"{flag}: empty path; give a directory")
    return Path(out_dir)


def remove_if_empty(created: Sequence[Path]) -> None:
    """Remove directories made by :func:`prepare_dir` that hold nothing but a lock file."""
    for d in reversed(created):
        try:
            if [p.name for p in d.iterdir()] == [LOCK]:
                (d / LOCK).unlink()
            d.rmdir()
        except OSError:  # not empty, or gone: leave it and its parents
            return


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def available_memory(dev: torch.device) -> float | None:
    """Free memory of ``dev`` in bytes (MemAvailable on Linux for the CPU), None if unknown."""
    if dev.type == "cuda":
        return float(torch.cuda.mem_get_info(dev)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(exp: Experiment, cfg: Any, dev: torch.device) -> None:
    """Fail fast when the experiment's own estimate of its peak memory exceeds what is free."""
    if exp.memory is None:
        return
    need = float(exp.memory(cfg))
    free = available_memory(dev)
    if free is not None and need > free:
        raise ValueError(
            f"{exp.name}: this config needs an estimated {_fmt_bytes(need)} of {dev.type} memory, "
            f"more than the {_fmt_bytes(free)} available; reduce its sizes (`stochgrad show "
            f"{exp.name}` lists them)"
        )


def run_status(run_dir: Path) -> str | None:
    """What ``run_dir`` holds: None (no run), ``sweep``, or the run's status (``ok``,
    ``failed``, ``interrupted``; ``unfinished`` when it has no readable results.json)."""
    if (run_dir / SWEEP).exists():
        return "sweep"
    if not any((run_dir / f).exists() for f in (CONFIG, RESULTS, CHECKPOINT, METRICS_CSV)):
        return None
    try:
        status = json.loads((run_dir / RESULTS).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return "unfinished"
    return str(status) if status else "unfinished"


def _replaceable(run_dir: Path, status: str | None) -> bool:
    """A failed run without a checkpoint holds nothing to resume: a new run may replace it."""
    return status is None or (
        status in ("failed", "interrupted") and not (run_dir / CHECKPOINT).exists()
    )


def _nothing_run(run_dir: Path) -> bool:
    """True when a run failed before logging a step, saving a checkpoint or drawing a figure:
    its config.json and results.json hold nothing worth keeping."""
    return not any((run_dir / f).exists() for f in (CHECKPOINT, METRICS_CSV, "tb")) and not any(
        run_dir.glob("*.png")
    )


def _clear_run(run_dir: Path) -> None:
    for stale in (RESULTS, METRICS_CSV, CHECKPOINT, CONFIG):
        (run_dir / stale).unlink(missing_ok=True)
    for png in run_dir.glob("*.png"):
        png.unlink()
    shutil.rmtree(run_dir / "tb", ignore_errors=True)


# ---- one run -----------------------------------------------------------------------------------


def _check_metrics(name: str, metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        raise TypeError(f"experiment {name!r} must return a dict of metrics, got {type(metrics)}")
    if not metrics:
        raise ValueError(f"experiment {name!r} returned no metrics")
    out = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not METRIC_NAME.match(key):
            raise ValueError(
                f"experiment {name!r} returned metric name {key!r}; "
                "metric names must be lower-case and dotted, e.g. 'log10_grad_var.relax'; "
                "parts after a dot may hold '-' ('test_log_px.hvi-aux')"
            )
        x = float(value.item() if isinstance(value, torch.Tensor) else value)
        if not math.isfinite(x):
            raise FloatingPointError(f"final metric {key} is {x}")
        out[key] = x
    return out


def _threads() -> int:
    raw = os.environ.get("STOCHGRAD_THREADS", "1")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"STOCHGRAD_THREADS must be a positive integer, got {raw!r}")
    return value


def _execute(
    exp: Experiment,
    cfg: Any,
    preset: str,
    seed: int,
    out_dir: Path,
    dev: torch.device,
    resumed: bool,
    checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``exp`` in ``out_dir`` (locked by the caller) and write results.json; re-raises the
    run's error.

    CPU runs use ``STOCHGRAD_THREADS`` torch threads (default 1: the experiments' small
    networks run as fast on one thread, and extra threads thrash when processes share cores).
    """
    _use_agg()
    threads_before = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(_threads())
    ctx = RunContext(out_dir, seed, dev, preset, resumed=resumed, checkpoint=checkpoint)
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
            ckpt = "; last good checkpoint kept" if ctx.checkpoint_path.exists() else ""
            raise FloatingPointError(f"{e} in run {out_dir}{ckpt}") from e
        raise
    finally:
        torch.set_num_threads(threads_before)
        ctx.close()
        results["wall_time_s"] = time.perf_counter() - start
        if ctx.warnings:
            results["warnings"] = ctx.warnings
        _write_json(out_dir / RESULTS, results)
    return results


def run_experiment(
    name: str,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seed: int = 0,
    out_dir: str | Path | None = None,
    device: str = "auto",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run experiment ``name`` once and return its results (also written to results.json).

    ``overrides`` are ``key=value`` strings. ``out_dir`` defaults to
    ``runs/{name}/{preset}-seed{seed}-{timestamp}``. A directory that already holds a run is
    refused unless ``overwrite`` (a failed run without a checkpoint may be replaced). The
    directory is locked while the run lasts: a second writer gets a ValueError.
    """
    exp = registry.get(name)
    cfg = make_config(exp, preset, overrides)
    check_seed(seed)
    dev = resolve_device(device)
    check_memory(exp, cfg, dev)
    out = out_path(out_dir, default_out_dir(name, preset, f"seed{seed}"))
    created = prepare_dir(out)
    started = False
    try:
        with DirLock(out):
            status = run_status(out)
            if status == "sweep":
                raise ValueError(f"--out {out} holds a seed sweep; choose another directory")
            if not overwrite and not _replaceable(out, status):
                hint = "" if status == "ok" else f", or `stochgrad resume {out}` to continue it"
                raise ValueError(
                    f"--out {out} already holds a run (status {status}); pass --overwrite to "
                    f"replace it{hint}"
                )
            if status is not None:  # replace a run; never delete files of a directory without one
                _clear_run(out)
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
            started = True
            return _execute(exp, cfg, preset, seed, out, dev, resumed=False)
    except BaseException:
        if started and _nothing_run(out):  # e.g. a config error found by the experiment itself
            for f in (CONFIG, RESULTS):
                (out / f).unlink(missing_ok=True)
        remove_if_empty(created)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def load_run_config(run_dir: Path) -> tuple[Experiment, Any, dict[str, Any]]:
    """The experiment, config and saved fields of ``run_dir/config.json``, checked."""
    path = run_dir / CONFIG
    if not path.exists():
        raise ValueError(f"{run_dir} is not a run directory (no {CONFIG})")
    saved = _read_json(path)
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: expected a JSON object")  # noqa: TRY004 - a damaged file
    missing = [k for k in ("experiment", "preset", "config", "seed") if k not in saved]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    try:
        exp = registry.get(saved["experiment"])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    cfg = config_from_dict(exp, saved["config"], source=str(path))
    check_seed(saved["seed"], flag=f"{path}: seed")
    if saved["preset"] not in exp.presets:
        raise ValueError(f"{path}: unknown preset {saved['preset']!r}")
    return exp, cfg, saved


def resume(run_dir: str | Path, device: str | None = None) -> dict[str, Any]:
    """Continue the run in ``run_dir`` (from its config.json) with ``ctx.resumed=True``.

    The experiment's ``ctx.load_checkpoint()`` then returns the last saved state. config.json,
    checkpoint.pt and metrics.csv are checked before anything is written: a damaged file is a
    ValueError naming it, and the directory is left as it was. A finished run (status ``ok``) is
    not run again: its results.json is returned with ``"already_finished": True`` and no file
    changes (``stochgrad run --out DIR --overwrite`` runs it anew).
    """
    run_dir = Path(run_dir)
    exp, cfg, saved = load_run_config(run_dir)
    dev = resolve_device(device or saved.get("device", "auto"))
    check_memory(exp, cfg, dev)
    with DirLock(run_dir):
        checkpoint = None
        if (run_dir / CHECKPOINT).exists():
            checkpoint = load_checkpoint_file(run_dir / CHECKPOINT)
        if (run_dir / METRICS_CSV).exists():
            read_metrics_csv(run_dir / METRICS_CSV)
        if run_status(run_dir) == "ok":
            return {**_read_json(run_dir / RESULTS), "already_finished": True}
        return _execute(
            exp, cfg, saved["preset"], int(saved["seed"]), run_dir, dev, True, checkpoint
        )


# ---- sweeps --------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2,5"`` -> [0, 2, 5]; ranges and lists combine."""
    bad = ValueError(f"--seeds: expected e.g. '0-4' or '0,2,5', got {text!r}")
    ranges: list[tuple[int, int]] = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            ranges.append((int(lo), int(hi) if dash else int(lo)))
    except ValueError:
        raise bad from None
    for lo, hi in ranges:
        if hi < lo:
            raise bad
        if not (0 <= lo and hi < SEED_LIMIT):
            raise ValueError(f"--seeds: seeds must lie in [0, 2**32), got {text!r}")
    count = sum(hi - lo + 1 for lo, hi in ranges)
    if count > MAX_SEEDS:
        raise ValueError(f"--seeds {text}: {count} seeds, more than the limit of {MAX_SEEDS}")
    seeds = [s for lo, hi in ranges for s in range(lo, hi + 1)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: repeated seed in {text!r}")
    return seeds


def check_sweep_size(seeds: Sequence[int], yes: bool, flag: str = "--seeds") -> None:
    """More than CONFIRM_SEEDS runs need an explicit ``--yes``."""
    if len(seeds) > CONFIRM_SEEDS and not yes:
        raise ValueError(
            f"{flag} asks for {len(seeds)} runs (more than {CONFIRM_SEEDS}); pass --yes to "
            "start them"
        )


def _die_with_parent(parent: int) -> None:
    """Sweep workers exit when the sweep's process dies, even by ``kill -9``: the kernel's
    parent-death signal on Linux, and a thread watching the parent pid elsewhere."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="stochgrad-parent-watch").start()


def _member(
    name: str, preset: str, overrides: list[str], seed: int, out_dir: str, device: str, action: str
) -> dict[str, Any]:
    """Run one sweep member: ``fresh``, ``overwrite`` or ``resume``."""
    if action == "resume":
        return resume(out_dir, device)
    return run_experiment(name, preset, overrides, seed, out_dir, device, action == "overwrite")


def _worker(
    name: str,
    preset: str,
    overrides: list[str],
    seed: int,
    out_dir: str,
    device: str,
    action: str,
    extra: str,
    threads: int,
) -> dict[str, Any]:
    """Entry point of one sweep member in a child process or Ray task."""
    if extra:
        os.environ[registry.EXTRA_ENV] = extra
    os.environ.setdefault("STOCHGRAD_NO_PROGRESS", "1")
    os.environ["STOCHGRAD_THREADS"] = str(threads)
    return _member(name, preset, overrides, seed, out_dir, device, action)


def _clean_error(seed: int, err: BaseException) -> BaseException:
    cause = getattr(err, "cause", None) or err  # Ray wraps the task's exception
    kind = (
        type(cause)
        if isinstance(cause, (ValueError, TypeError, FloatingPointError))
        else (RuntimeError)
    )
    return kind(f"seed {seed}: {cause}")


def _config_differences(saved: dict[str, Any], want: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(want))
    return [k for k in keys if saved.get(k) != want.get(k)]


def plan_sweep(
    exp: Experiment,
    cfg: Any,
    preset: str,
    seeds: Sequence[int],
    out: Path,
    existing: str,
) -> list[tuple[int, Path, str]]:
    """(seed, directory, action) per seed; action is ``fresh``, ``overwrite``, ``resume`` or
    ``keep`` (a finished run of the same config, with ``existing="continue"``)."""
    want = _jsonable(cfg)
    plan, taken = [], []
    for s in seeds:
        d = out / f"seed{s}"
        status = run_status(d)
        if status == "sweep":
            raise ValueError(f"{d} holds a seed sweep, not a run")
        if existing == "overwrite":
            plan.append((s, d, "overwrite"))
        elif existing == "continue" and status is not None:
            _, _, saved = load_run_config(d)
            diff = _config_differences(saved["config"], want)
            if saved["experiment"] != exp.name or saved["preset"] != preset or saved["seed"] != s:
                diff = ["experiment/preset/seed", *diff]
            if diff:
                raise ValueError(
                    f"{d} holds a run of another config (differs in {', '.join(diff)}); "
                    "pass --overwrite to replace it"
                )
            plan.append((s, d, "keep" if status == "ok" else "resume"))
        elif _replaceable(d, status):
            plan.append((s, d, "fresh"))
        else:
            taken.append(f"{d.name} ({status})")
    if taken:
        raise ValueError(
            f"--out {out} already holds runs: {', '.join(taken)}; pass --overwrite to replace "
            f"them, or `stochgrad resume {out}` to continue them"
        )
    return plan


def run_sweep(
    name: str,
    preset: str = "quick",
    overrides: Sequence[str] = (),
    seeds: Iterable[int] = (0, 1, 2, 3, 4),
    out_dir: str | Path | None = None,
    device: str = "auto",
    backend: str = "local",
    workers: int | None = None,
    existing: str = "refuse",
) -> list[dict[str, Any]]:
    """Run one experiment for several seeds, each into ``out_dir/seed{k}``.

    backend ``local``: parallel processes (spawn) that die with this process, ``workers``
    defaults to min(#seeds, #cpus); ``ray``: one Ray task per seed (``ray.init()`` unless
    already initialized; ``out_dir`` must then be on storage shared by the cluster). All seeds
    run; the first failure is raised afterwards. ``existing``: what to do with seeds whose
    directory already holds a run: ``refuse`` (ValueError), ``overwrite``, or ``continue``
    (keep finished runs of the same config, resume unfinished ones). ``out_dir/sweep.json``
    records the sweep, so that ``stochgrad resume out_dir`` can finish it.
    """
    seeds = [check_seed(s, "--seeds") for s in seeds]
    if not seeds:
        raise ValueError("--seeds: no seeds given")
    if existing not in ("refuse", "overwrite", "continue"):
        raise ValueError(f"existing: expected refuse, overwrite or continue, got {existing!r}")
    exp = registry.get(name)
    cfg = make_config(exp, preset, overrides)  # fail fast on bad input, before starting processes
    if backend not in ("local", "ray"):
        raise ValueError(f"--backend: expected 'local' or 'ray', got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if backend == "local":  # Ray workers may have devices that this machine lacks
        check_memory(exp, cfg, resolve_device(device))
    tag = f"seeds{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed{seeds[0]}"
    out = out_path(out_dir, default_out_dir(name, preset, tag))
    created = prepare_dir(out)
    try:
        with DirLock(out):
            if run_status(out) not in (None, "sweep"):
                raise ValueError(f"--out {out} holds a single run, not a sweep")
            plan = plan_sweep(exp, cfg, preset, seeds, out, existing)
            record = {
                "experiment": name,
                "preset": preset,
                "overrides": list(overrides),
                "seeds": seeds,
                "device": device,
                "config": _jsonable(cfg),
            }
            _write_json(out / SWEEP, record)
            return _run_members(name, preset, list(overrides), plan, out, device, backend, workers)
    except BaseException:
        remove_if_empty(created)
        raise


def _run_members(
    name: str,
    preset: str,
    overrides: list[str],
    plan: list[tuple[int, Path, str]],
    out: Path,
    device: str,
    backend: str,
    workers: int | None,
) -> list[dict[str, Any]]:
    todo = [(s, d, a) for s, d, a in plan if a != "keep"]
    extra = os.environ.get(registry.EXTRA_ENV, "")
    ncpu = os.cpu_count() or 1
    n_workers = workers or min(max(len(todo), 1), ncpu)
    threads = max(1, ncpu // n_workers)
    root = out.resolve() if backend == "ray" else out  # Ray tasks may run elsewhere
    args = [
        (name, preset, overrides, s, str(root / d.name), device, a, extra, threads)
        for s, d, a in todo
    ]
    done: dict[int, dict[str, Any]] = {}
    errors: list[BaseException] = []
    if not todo:
        pass
    elif backend == "ray":
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
        for a, ref in zip(args, refs, strict=True):
            try:
                done[a[3]] = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - collected and re-raised below
                errors.append(_clean_error(a[3], e))
    elif n_workers == 1:
        for a in args:
            try:
                done[a[3]] = _member(*a[:7])
            except Exception as e:  # noqa: BLE001
                errors.append(_clean_error(a[3], e))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=n_workers,
            mp_context=ctx,
            initializer=_die_with_parent,
            initargs=(os.getpid(),),
        ) as pool:
            futures = [pool.submit(_worker, *a) for a in args]
            for a, fut in zip(args, futures, strict=True):
                try:
                    done[a[3]] = fut.result()
                except Exception as e:  # noqa: BLE001
                    errors.append(_clean_error(a[3], e))
    if errors:
        raise errors[0]
    results = []
    for s, d, a in plan:
        results.append(done[s] if a != "keep" else _read_json(d / RESULTS))
    return results


def resume_sweep(
    sweep_dir: str | Path, device: str | None = None, workers: int | None = None
) -> list[dict[str, Any]]:
    """Finish the sweep recorded in ``sweep_dir/sweep.json``: finished seeds are kept,
    unfinished ones resumed, seeds that never started are run."""
    sweep_dir = Path(sweep_dir)
    saved = _read_json(sweep_dir / SWEEP)
    try:
        name, preset = saved["experiment"], saved["preset"]
        overrides, seeds = list(saved["overrides"]), [int(s) for s in saved["seeds"]]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"{sweep_dir / SWEEP}: damaged (needs experiment, preset, overrides, seeds)"
        ) from None
    dev = device or saved.get("device", "auto")
    return run_sweep(
        name, preset, overrides, seeds, sweep_dir, dev, workers=workers, existing="continue"
    )


def reproduce(
    preset: str = "quick",
    out_dir: str | Path | None = None,
    seeds: Sequence[int] = (0,),
    device: str = "auto",
    backend: str = "local",
    workers: int | None = None,
    only: Sequence[str] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Run every registered experiment's ``preset`` into ``out_dir/{name}/{preset}/seed{k}``
    and write the report into ``out_dir``.

    ``out_dir`` defaults to ``runs/reproduce-{preset}``. Run again, it continues where it
    stopped: finished runs are kept, unfinished ones resumed (``overwrite`` starts over).
    Other runs under ``out_dir`` are never touched. Returns (report.md, report.html). All
    experiments run; a failure is raised after the report is written.
    """
    from stochgrad.runner.report import write_report

    out = out_path(out_dir, Path("runs") / f"reproduce-{preset}")
    todo = list(dict.fromkeys(only)) if only else registry.names()
    for name in todo:
        exp = registry.get(name)
        if preset not in exp.presets:
            raise ValueError(
                f"--preset {preset!r}: experiment {name!r} has presets {', '.join(exp.presets)}"
            )
    seeds = [check_seed(s, "--seeds") for s in seeds]
    resolve_device(device)
    existing = "overwrite" if overwrite else "continue"
    errors: list[BaseException] = []
    created = prepare_dir(out)
    try:
        with DirLock(out):
            for i, name in enumerate(todo, 1):
                where = out / name / preset
                exp = registry.get(name)
                plan = plan_sweep(exp, make_config(exp, preset), preset, seeds, where, existing)
                counts = {a: sum(1 for p in plan if p[2] == a) for a in ("keep", "resume")}
                note = ", ".join(
                    f"{n} {w}"
                    for w, n in (("kept", counts["keep"]), ("resumed", counts["resume"]))
                    if n
                )
                print(
                    f"[{i}/{len(todo)}] {name} ({preset}, seeds {_seed_text(seeds)}) -> {where}"
                    + (f" ({note})" if note else ""),
                    flush=True,
                )
                try:
                    run_sweep(name, preset, (), seeds, where, device, backend, workers, existing)
                except Exception as e:  # noqa: BLE001 - reported after the others have run
                    print(f"[{i}/{len(todo)}] {name} failed: {e}", file=sys.stderr, flush=True)
                    errors.append(e)
            dirs = [out / name / preset for name in todo if (out / name / preset).exists()]
            paths = write_report(dirs, out) if dirs else (out / "report.md", out / "report.html")
    except BaseException:
        remove_if_empty(created)
        raise
    if errors:
        first = errors[0]
        kind = type(first) if isinstance(first, (ValueError, FloatingPointError)) else RuntimeError
        raise kind(f"{len(errors)} experiment(s) failed (report: {paths[0]}); first: {first}")
    return paths


def _seed_text(seeds: Sequence[int]) -> str:
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))
