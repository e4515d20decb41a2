"""The `stochgrad` command line: exit codes, messages, and the run/report/resume round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _dummy_experiment import dummy_env  # noqa: F401 (fixture)

from stochgrad.cli import main

pytestmark = pytest.mark.usefixtures("dummy_env")


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown experiment 'nope'; known experiments: "),
        (["run", "dummy", "--set", "stepz=1"], "unknown config key 'stepz'"),
        (["run", "dummy", "--set", "steps=abc"], "--set steps: expected int"),
        (["run", "dummy", "--set", "nan_at=3", "--out", "{tmp}"], "loss is nan at step 3"),
    ],
)
def test_user_errors_exit_2_without_traceback(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2  # an exception escaping main would fail the test with a traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_list_run_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    assert "dummy" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["run", "dummy", "--set", "lr=0.3", "--seed", "4", "--out", str(out)]) == 0
    assert "final.loss" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == 4 and results["config"]["lr"] == 0.3
    assert main(["report", str(tmp_path)]) == 0
    assert "report.md" in capsys.readouterr().out
    assert "final.loss" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.html").exists()


def test_seed_sweep_prints_mean_and_se(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "dummy", "--set", "steps=4", "--seeds", "0-2", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mean ± s.e. over 3 runs" in out and "final.loss" in out
    assert sorted(p.name for p in tmp_path.glob("seed*")) == ["seed0", "seed1", "seed2"]
    assert (tmp_path / "report.md").exists()


def test_resume_continues_a_crashed_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a run that fails inside the experiment is no user error: exit 1, `error:` and no traceback
    assert main(["run", "dummy", "--set", "crash_after=4", "--out", str(tmp_path)]) == 1
    assert "error: " in (err := capsys.readouterr().err) and "simulated crash" in err
    assert "Traceback" not in err
    assert main(["resume", str(tmp_path)]) == 0
    assert "resumed" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "ok"
    assert main(["resume", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_reproduce_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--preset", "quick", "--only", "dummy", "--out", str(tmp_path)]) == 0
    assert str(tmp_path / "report.md") in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "dummy", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_seed_and_seeds_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "dummy", "--seed", "1", "--seeds", "0-1"]) == 2
    assert capsys.readouterr().err.startswith("error: argument --seeds: not allowed with")
