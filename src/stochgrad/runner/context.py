"""RunContext: what an experiment's ``run(cfg, ctx)`` uses for logging, progress, checkpoints and
figures. Everything an experiment writes goes into ``ctx.out_dir``."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")

CHECKPOINT = "checkpoint.pt"
METRICS_CSV = "metrics.csv"
_FLUSH_EVERY_S = 10.0


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cpu``; ``cuda`` or ``cuda:N`` (needs CUDA and
    N < the number of GPUs); ``mps`` (needs Apple's MPS). Anything else is a ValueError."""
    text = str(device).strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = f"--device: expected auto, cpu, cuda, cuda:N or mps, got {text!r}"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(expected) from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {text} was requested but CUDA is not available on this machine"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {text}: Apple MPS is not available on this machine")
        return dev
    raise ValueError(expected)


def _rng_state() -> dict[str, Any]:
    """RNG states as weights_only-loadable types (tensors, lists, numbers)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [py_version, list(py_state), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _NoWriter:
    """Stands in for TensorBoard's SummaryWriter when TensorBoard is not installed."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """Load and check ``checkpoint.pt``; ValueError naming the file when it is unusable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"{path} cannot be loaded (truncated or corrupt? {first}); nothing was changed. "
            "Delete it to restart this run from the beginning with `stochgrad resume`"
        ) from None
    if not (isinstance(payload, dict) and {"step", "state", "rng"} <= set(payload)):
        raise ValueError(
            f"{path} is not a stochgrad checkpoint (no step/state/rng); nothing was changed"
        )
    return payload


def read_metrics_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of metrics.csv; ValueError naming the file when it is damaged."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or ["step"])
            rows = [
                {k: (int(v) if k == "step" else float(v)) for k, v in r.items() if v != ""}
                for r in reader
            ]
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged ({e}); nothing was changed") from None
    if columns[:1] != ["step"] or any("step" not in r for r in rows):
        raise ValueError(f"{path} is damaged (no step column); nothing was changed")
    return columns, rows


class RunContext:
    """Handed to ``run(cfg, ctx)``.

    out_dir: the run directory. seed: the run's seed (already applied by the runner).
    device: the torch device to compute on, recorded in results.json: build every module and
    tensor on it (``torch.zeros(n, device=ctx.device)``, ``model.to(ctx.device)``); checkpoints
    come back on the CPU (copy them into your device tensors, or ``load_state_dict``).
    preset: preset name. resumed: True when the run was started by ``stochgrad resume``; then
    :meth:`load_checkpoint` returns the last saved state. checkpoint_step: the step of the
    checkpoint returned by :meth:`load_checkpoint`, else None. warnings: messages recorded with
    :meth:`warn` (also written to results.json).
    """

    def __init__(
        self,
        out_dir: Path,
        seed: int,
        device: torch.device | str,
        preset: str,
        resumed: bool = False,
        checkpoint: dict[str, Any] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.device = torch.device(device)
        self.preset = preset
        self.resumed = resumed
        self.checkpoint_step: int | None = None
        self.warnings: list[str] = []
        self._checkpoint = checkpoint  # already loaded (and checked) by the runner
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._rows: list[dict[str, Any]] = []
        self._columns: list[str] = ["step"]
        self._written_rows = 0
        self._written_columns: list[str] = []
        self._old_rows = False
        self._last_flush = time.monotonic()
        self._writer: Any = None
        if resumed and (self.out_dir / METRICS_CSV).exists():
            self._read_old_rows()

    # ---- metrics -----------------------------------------------------------------------------

    def log(self, step: int, **values: float) -> None:
        """Record scalars at ``step`` in metrics.csv and TensorBoard (``out_dir/tb``).

        Raises FloatingPointError naming the quantity and step when a value is NaN or Inf.
        """
        row: dict[str, Any] = {"step": int(step)}
        for name, value in values.items():
            x = float(value.item() if isinstance(value, torch.Tensor) else value)
            if not math.isfinite(x):
                self.flush()
                raise FloatingPointError(f"{name} is {x} at step {step}")
            row[name] = x
        if self._old_rows:  # resumed without loading a checkpoint: the run starts over
            self._rows, self._written_rows, self._written_columns = [], 0, []
            self._old_rows = False
        for name in row:
            if name not in self._columns:
                self._columns.append(name)
        self._rows.append(row)
        writer = self._tensorboard()
        for name, x in row.items():
            if name != "step":
                writer.add_scalar(name, x, global_step=row["step"])
        if time.monotonic() - self._last_flush > _FLUSH_EVERY_S:
            self.flush()

    def _tensorboard(self) -> Any:
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional for a run: metrics.csv has the curves
                self._writer = _NoWriter()
                self.warn("TensorBoard is not installed; curves only in metrics.csv")
                return self._writer
            purge = None if self.checkpoint_step is None else self.checkpoint_step + 1
            self._writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=purge)
        return self._writer

    def warn(self, message: str) -> None:
        """Record a warning in results.json (``warnings``) and print it on stderr."""
        self.warnings.append(message)
        print(f"warning: {message}", file=sys.stderr)

    def _read_old_rows(self) -> None:
        self._columns, self._rows = read_metrics_csv(self.out_dir / METRICS_CSV)
        self._old_rows = True

    def flush(self) -> None:
        """Write buffered rows to metrics.csv (rewriting it when new columns appeared)."""
        path = self.out_dir / METRICS_CSV
        if not self._rows and not self._written_columns:
            return
        if self._columns != self._written_columns:
            with open(path.with_suffix(".csv.tmp"), "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self._columns)
                writer.writeheader()
                writer.writerows(self._rows)
            os.replace(path.with_suffix(".csv.tmp"), path)
            self._written_columns = list(self._columns)
        elif self._written_rows < len(self._rows):
            with open(path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._columns).writerows(
                    self._rows[self._written_rows :]
                )
        self._written_rows = len(self._rows)
        if self._writer is not None:
            self._writer.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush metrics and close TensorBoard. Called by the runner."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ---- progress ----------------------------------------------------------------------------

    def progress(self, iterable_or_total: Iterable[T] | int, desc: str = "") -> Iterable[T]:
        """tqdm progress bar on stderr over an iterable, or over ``range(n)`` for an int.

        Disabled when stderr is not a terminal or when ``STOCHGRAD_NO_PROGRESS=1``.
        """
        it = range(iterable_or_total) if isinstance(iterable_or_total, int) else iterable_or_total
        disable = os.environ.get("STOCHGRAD_NO_PROGRESS") == "1" or not sys.stderr.isatty()
        if disable:
            return it
        from tqdm.auto import tqdm

        return tqdm(it, desc=desc, file=sys.stderr, dynamic_ncols=True)

    # ---- checkpoints -------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    def save_checkpoint(self, state: dict[str, Any], step: int) -> None:
        """Atomically write ``{"step", "state", "rng"}`` to ``out_dir/checkpoint.pt``.

        ``state`` may hold tensors, dicts, lists, tuples, numbers and strings (e.g. model and
        optimizer ``state_dict()``s). Also flushes metrics.csv so it matches the checkpoint.
        """
        self.flush()
        payload = {"step": int(step), "state": state, "rng": _rng_state()}
        fd, tmp = tempfile.mkstemp(dir=self.out_dir, prefix=".checkpoint-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.checkpoint_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self) -> dict[str, Any] | None:
        """On a resumed run: the ``state`` last passed to :meth:`save_checkpoint`, with the RNG
        states restored and ``ctx.checkpoint_step`` set. None on a fresh run or without one."""
        if not self.resumed:
            return None
        payload, self._checkpoint = self._checkpoint, None
        if payload is None:
            if not self.checkpoint_path.exists():
                return None
            payload = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
        self.checkpoint_step = int(payload["step"])
        _set_rng_state(payload["rng"])
        if self._old_rows:  # drop curve rows logged after the checkpoint; the run re-logs them
            self._rows = [r for r in self._rows if r["step"] <= self.checkpoint_step]
            self._written_rows, self._written_columns = 0, []
            self._old_rows = False
        return payload["state"]

    # ---- figures -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def figures(self) -> Iterator[None]:
        """Wrap figure drawing: an error inside becomes a warning in results.json, so a broken
        figure never discards a finished run's metrics."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - reported, the metrics are kept
            import matplotlib.pyplot as plt

            plt.close("all")
            self.warn(f"a figure failed: {type(e).__name__}: {e}")

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``out_dir/{name}.png`` and close it."""
        import matplotlib.pyplot as plt

        if not name or "/" in name or "\\" in name:
            raise ValueError(f"figure name must be a plain file name, got {name!r}")
        path = self.out_dir / f"{name}.png"
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path
