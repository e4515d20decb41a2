"""A tiny experiment for the runner tests (importable by spawned processes and Ray workers via
``STOCHGRAD_EXTRA_EXPERIMENTS=_dummy_experiment`` with ``tests/`` on PYTHONPATH)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from stochgrad.runner import Headline, RunContext, register


@dataclass(frozen=True)
class DummyConfig:
    steps: int = 40
    """Optimisation steps."""
    lr: float = 0.1
    """Step size."""
    checkpoint_every: int = 5
    """Save a checkpoint after every this many steps."""
    crash_after: int = -1
    """Raise right after the checkpoint at this step, unless resumed (simulates a kill)."""
    nan_at: int = -1
    """Log a NaN loss at this step."""
    hidden: tuple[int, ...] = (4, 4)
    """Unused; tests tuple parsing."""
    scale: float | None = None
    """Unused; tests Optional parsing."""
    verbose: bool = False
    """Unused; tests bool parsing."""
    label: str = "dummy"
    """Unused; tests str parsing."""
    sleep: float = 0.0
    """Seconds to sleep per step (keeps a run alive for the kill and lock tests)."""
    figure_error: bool = False
    """Raise while drawing the figure (an error in a figure must not discard the metrics)."""


HEADLINES = {
    "final.loss": Headline(paper="loss | 0 (a made-up claim)", meaning="last loss", quick="yes")
}


@register(
    "dummy", DummyConfig, {"quick": {"steps": 12}}, "runner test experiment", headlines=HEADLINES
)
def run(cfg: DummyConfig, ctx: RunContext) -> dict[str, float]:
    w, start = torch.zeros(3, device=ctx.device), 0
    state = ctx.load_checkpoint()
    if state is not None:
        w, start = state["w"].to(ctx.device), state["step"] + 1
    loss = float("nan")
    for step in ctx.progress(range(start, cfg.steps), desc="dummy"):
        if cfg.sleep:
            time.sleep(cfg.sleep)
        # draw from all three RNGs so that resume must restore each of them
        noise = torch.randn(3).to(ctx.device) + float(np.random.randn()) + random.random()
        w = w - cfg.lr * (w - noise)
        loss = float("nan") if step == cfg.nan_at else float((w**2).sum())
        ctx.log(step, loss=loss, w0=float(w[0]))
        if (step + 1) % cfg.checkpoint_every == 0:
            ctx.save_checkpoint({"w": w, "step": step}, step)
            if step == cfg.crash_after and not ctx.resumed:
                raise RuntimeError(f"simulated crash after step {step}")
    with ctx.figures():
        fig, ax = plt.subplots()
        ax.plot(w.cpu().numpy())
        if cfg.figure_error:
            raise RuntimeError("figure broke")
        ctx.save_figure(fig, "weights")
    return {"final.loss": loss, "final.w0": float(w[0])}


register(
    "dummy-crash",
    DummyConfig,
    {"quick": {"steps": 12, "crash_after": 4}},
    "like dummy, but its quick preset crashes after step 4 unless resumed",
)(run)


@register("dummy-bad-metric", DummyConfig, {"quick": {}}, "returns an invalid metric name")
def run_bad(cfg: DummyConfig, ctx: RunContext) -> dict[str, float]:
    return {"Final-Loss": 1.0}


TESTS = Path(__file__).resolve().parent


@pytest.fixture
def dummy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this module's experiments visible here, in spawned processes and in Ray workers."""
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(TESTS) + (os.pathsep + path if path else ""))
    monkeypatch.setenv("STOCHGRAD_EXTRA_EXPERIMENTS", "_dummy_experiment")
    monkeypatch.setenv("STOCHGRAD_NO_PROGRESS", "1")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m stochgrad ARGS`` in a subprocess, output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "stochgrad", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
