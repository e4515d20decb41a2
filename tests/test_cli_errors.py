"""Every CLI failure prints ``error: ...`` naming the argument or file and exits 2 (issue 10,
"Errors instead of tracebacks"); reports skip damaged runs; a figure error keeps the metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _dummy_experiment import dummy_env, run_cli  # noqa: F401 (fixture)

from stochgrad.cli import main
from stochgrad.runner import run_experiment

pytestmark = pytest.mark.usefixtures("dummy_env")

BIG = "99999999999999999999"  # > 2**63

CASES = [
    (["run", "dummy", "--out", "{file}"], "--out {file}: exists and is not a directory"),
    (["run", "dummy", "--out", "{file}/sub"], "is not a directory"),
    (["run", "dummy", "--out", "/proc/stochgrad-test/run"], "--out /proc/stochgrad-test/run"),
    (["run", "dummy", "--out", ""], "--out: empty path"),
    (["run", "dummy", "--set", "lr=nan", "--out", "{new}"], "--set lr: expected float"),
    (["run", "dummy", "--set", "lr=inf", "--out", "{new}"], "--set lr: expected float"),
    (["run", "dummy", "--set", "lr=-inf", "--out", "{new}"], "--set lr: expected float"),
    (["run", "relax-toy", "--set", "lr=-0.01", "--out", "{new}"], "lr must be > 0, got -0.01"),
    (["run", "relax-toy", "--set", "cv_lr=0", "--out", "{new}"], "cv_lr must be > 0"),
    (["run", "dummy", "--set", f"steps={BIG}", "--out", "{new}"], "--set steps: expected int"),
    (["run", "dummy", "--seed", BIG, "--out", "{new}"], "--seed: expected an integer in"),
    (["run", "dummy", "--seed", "-1", "--out", "{new}"], "--seed: expected an integer in"),
    (["run", "dummy", "--seeds", f"0-{BIG}", "--out", "{new}"], "--seeds"),
    (["run", "relax-toy", "--set", "estimators=", "--out", "{new}"], "estimators: expected"),
    (["run", "relax-toy", "--set", "estimators=relax,relax", "--out", "{new}"], "estimators"),
    (["run", "relax-toy", "--set", "estimators=relax,bogus", "--out", "{new}"], "'bogus'"),
    (["run", "dummy", "--seeds", "0-1", "--workers", "0", "--out", "{new}"], "--workers"),
    (["run", "dummy", "--seeds", "0-1", "--workers", "-3", "--out", "{new}"], "--workers"),
    (["reproduce", "--preset", "nope", "--out", "{new}"], "--preset 'nope'"),
    (["reproduce", "--only", "nope", "--out", "{new}"], "unknown experiment 'nope'"),
    (["reproduce", "--seeds", "0-1000", "--out", "{new}"], "pass --yes"),
    (["run", "dummy", "--seeds", "0-1000000", "--out", "{new}"], "asks for 1000001 runs"),
    (["run", "relax-toy", "--set", "batch=1000000000", "--out", "{new}"], "needs an estimated"),
    (["run", "ardae-mog-error", "--set", "batch=1000000000", "--out", "{new}"], "needs an estim"),
    (["run", "ardae-energy", "--set", "batch=1000000000", "--out", "{new}"], "needs an estim"),
    (["run", "ardae-maxent", "--set", "batch=1000000000", "--out", "{new}"], "needs an estim"),
    (["run", "svgd-entropy", "--set", "n_particles=10000000", "--out", "{new}"], "needs an est"),
    (["run", "dummy", "--device", "meta", "--out", "{new}"], "--device"),
    (["run", "dummy", "--preset", "fast", "--out", "{new}"], "unknown preset 'fast'"),
    (["resume", "{new}"], "is not a run directory"),
    (["resume", "{file}"], "is not a run directory"),
    (["report", "{new}"], "no such directory"),
    (["show", "nope"], "unknown experiment 'nope'"),
    (["run", "dummy", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("args, message", CASES)
def test_cli_errors_name_the_argument_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    new = tmp_path / "new" / "run"
    fill = {"{file}": str(file), "{new}": str(new)}
    for k, v in fill.items():
        args = [a.replace(k, v) for a in args]
        message = message.replace(k, v)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    # bad input leaves nothing behind (errors found inside the experiment included)
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["run", "dummy", "--out", str(locked / "run")]) == 2
    assert "not a writable directory" in capsys.readouterr().err
    assert main(["run", "dummy", "--out", str(locked)]) == 2
    assert "not a writable directory" in capsys.readouterr().err


def test_errors_from_the_real_command_have_no_traceback(tmp_path: Path) -> None:
    """The installed entry point behaves as main() does in the sweep above."""
    run = tmp_path / "run"
    run_experiment("dummy", "quick", ["steps=5"], out_dir=run)
    (run / "checkpoint.pt").write_bytes(b"")  # a zero-byte checkpoint
    proc = run_cli("resume", str(run))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "checkpoint.pt cannot be loaded" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sweep_over_100_seeds_needs_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["run", "dummy", "--set", "steps=1", "--seeds", "0-100", "--out", str(tmp_path / "s")]
    assert main(args) == 2
    assert "--seeds asks for 101 runs" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_figure_error_keeps_the_metrics(tmp_path: Path) -> None:
    res = run_experiment("dummy", "quick", ["figure_error=true"], out_dir=tmp_path)
    assert res["status"] == "ok" and set(res["metrics"]) == {"final.loss", "final.w0"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["metrics"] == res["metrics"]
    assert saved["warnings"] == ["a figure failed: RuntimeError: figure broke"]


def test_report_skips_damaged_runs_sorts_seeds_and_escapes_links(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "my runs"
    for seed in (10, 2):
        run_experiment("dummy", "quick", ["steps=3"], seed=seed, out_dir=sweep / f"seed {seed}")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    good = json.loads((sweep / "seed 2" / "results.json").read_text())
    (tmp_path / "text").mkdir()
    good["metrics"]["final.loss"] = "abc"
    (tmp_path / "text" / "results.json").write_text(json.dumps(good))
    assert main(["report", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: skipping {tmp_path / 'broken' / 'results.json'}: cannot read" in err
    assert f"skipping {tmp_path / 'text' / 'results.json'}: metric 'final.loss'" in err
    md = (tmp_path / "report.md").read_text()
    assert "2 run(s), seeds 2, 10." in md
    assert md.index("seed 2, ") < md.index("seed 10, ")
    assert "](my%20runs/seed%202)" in md and "(my%20runs/seed%202/weights.png)" in md
    assert 'href="my%20runs/seed%202"' in (tmp_path / "report.html").read_text()


def test_show_lists_fields_types_defaults_and_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "dummy"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.strip().startswith("field"))
    assert header.split() == ["field", "type", "default", "paper", "quick"]
    steps = next(line for line in out.splitlines() if line.split()[:1] == ["steps"])
    assert steps.split() == ["steps", "int", "40", "40", "12"]
    assert "Optimisation steps." in out
    hidden = next(line for line in out.splitlines() if line.split()[:1] == ["hidden"])
    assert hidden.split()[2:] == ["4,4", "4,4", "4,4"]
    assert main(["run", "dummy", "--help"]) == 0
    assert "stochgrad show NAME" in capsys.readouterr().out
