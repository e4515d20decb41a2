"""Helpers shared by the experiment tests: metrics.csv rows, and a run killed after a checkpoint
then resumed, compared with an uninterrupted one."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from stochgrad.runner import RunContext, resume, run_experiment


def quick_run(name, tmp_path_factory):
    """(out dir, results, CPU seconds) of ``name``'s quick preset, seed 0, on the CPU (CPU time:
    the wall time depends on the machine's load)."""
    out = tmp_path_factory.mktemp(name)
    start = time.process_time()
    results = run_experiment(name, "quick", seed=0, out_dir=out, device="cpu")
    return out, results, time.process_time() - start


def read_rows(out):
    """metrics.csv of the run in ``out`` as dicts of floats (empty cells left out)."""
    with open(out / "metrics.csv") as fh:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]


def assert_resume_matches_uninterrupted(monkeypatch, tmp_path, name, overrides, seed, cut):
    """Run ``name`` (quick preset + overrides) whole, and again killed right after its checkpoint
    at step ``cut`` and resumed: the same metrics and the same logged rows."""
    full = run_experiment(name, "quick", overrides, seed=seed, out_dir=tmp_path / "full")
    original = RunContext.save_checkpoint

    def save_then_die(self, state, step):
        original(self, state, step)
        if step == cut and not self.resumed:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunContext, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(name, "quick", overrides, seed=seed, out_dir=tmp_path / "cut")
    assert resume(tmp_path / "cut")["metrics"] == full["metrics"]
    assert read_rows(tmp_path / "cut") == read_rows(tmp_path / "full")


def sigkill_after_checkpoint_then_resume(args, out, checkpoint_glob, what, settle=0.0):
    """Run ``python -m stochgrad *args`` writing to ``out``, SIGKILL it once ``out`` holds a file
    matching ``checkpoint_glob`` (after ``settle`` more seconds), then ``stochgrad resume out``;
    returns the resumed run's results.json (asserted ok and resumed)."""
    from stochgrad.cli import main

    proc = subprocess.Popen(
        [sys.executable, "-m", "stochgrad", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(checkpoint_glob)):
            assert proc.poll() is None and time.monotonic() < deadline, f"no {what} checkpoint"
            time.sleep(0.01)
        time.sleep(settle)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert (out / "checkpoint.pt").exists()
    assert main(["resume", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "ok" and results["resumed"]
    return results
