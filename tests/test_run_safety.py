"""Runs never lose or misreport results (issue 10): reproduce keeps earlier runs and continues
where it stopped, a failed resume changes nothing, one owner per run directory, sweep workers
die with their parent, devices are checked. Subprocess tests use the tiny dummy experiment."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from _dummy_experiment import dummy_env  # noqa: F401 (fixture)

from stochgrad.cli import main
from stochgrad.runner import reproduce, resume, run_experiment

pytestmark = pytest.mark.usefixtures("dummy_env")


def start(log: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start the command with its output in ``log`` (not a pipe: processes that outlive it
    would keep a pipe open)."""
    with open(log, "wb") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "stochgrad", *args], stdout=f, stderr=subprocess.STDOUT
        )


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Content and modification time of every file below ``directory`` (lock file aside)."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def steps(run_dir: Path) -> list[int]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def descendants(pid: int) -> set[int]:
    """All live descendants of ``pid`` (Linux /proc)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parent.items() if pp == p}
        found |= kids
        todo += list(kids)
    return found


# ---- 1. reproduce keeps earlier runs and continues where it stopped ----------------------------


def test_reproduce_keeps_other_runs_and_continues_where_it_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs"
    run_experiment("dummy", "quick", ["steps=5"], seed=0, out_dir=out / "dummy" / "a")
    run_experiment("dummy", "quick", ["steps=5"], seed=1, out_dir=out / "dummy" / "b")
    earlier = snapshot(out / "dummy")

    with pytest.raises(RuntimeError, match="1 experiment.*failed.*simulated crash"):
        reproduce("quick", out, only=["dummy", "dummy-crash"])
    after = snapshot(out / "dummy")
    assert {k: v for k, v in after.items() if k in earlier} == earlier  # earlier runs untouched
    finished = out / "dummy" / "quick" / "seed0"
    crashed = out / "dummy-crash" / "quick" / "seed0"
    assert json.loads((finished / "results.json").read_text())["status"] == "ok"
    assert json.loads((crashed / "results.json").read_text())["status"] == "failed"
    kept = snapshot(finished)
    assert "[1/2] dummy" in capsys.readouterr().out

    md, _ = reproduce("quick", out, only=["dummy", "dummy-crash"])  # again: continues
    printed = capsys.readouterr().out
    assert "[1/2] dummy" in printed and "1 kept" in printed and "1 resumed" in printed
    assert snapshot(finished) == kept  # the finished experiment was not run again
    assert snapshot(out / "dummy" / "a") == {
        k.removeprefix("a/"): v for k, v in earlier.items() if k.startswith("a/")
    }
    res = json.loads((crashed / "results.json").read_text())
    assert res["status"] == "ok" and res["resumed"] is True
    # the resumed run equals an uninterrupted one of the same config
    full = run_experiment("dummy", "quick", seed=0, out_dir=tmp_path / "full")
    assert res["metrics"] == full["metrics"]
    assert steps(crashed) == list(range(12))
    text = md.read_text()
    assert "## dummy-crash" in text and "## dummy\n" in text
    assert "dummy/a" not in text  # the report covers reproduce's own runs


# ---- 2. a failing resume leaves every file as it was ---------------------------------------


def _damage_checkpoint_half(run: Path) -> None:
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])


def _damage_checkpoint_empty(run: Path) -> None:
    (run / "checkpoint.pt").write_bytes(b"")


def _damage_config(run: Path) -> None:
    saved = json.loads((run / "config.json").read_text())
    saved["config"]["steps"] = "many"
    (run / "config.json").write_text(json.dumps(saved))


@pytest.mark.parametrize(
    "damage, named",
    [
        (_damage_checkpoint_half, "checkpoint.pt"),
        (_damage_checkpoint_empty, "checkpoint.pt"),
        (_damage_config, "config.json: config field 'steps'"),
    ],
)
@pytest.mark.parametrize("finished", [True, False])
def test_failed_resume_changes_nothing_and_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage, named: str, finished: bool
) -> None:
    run = tmp_path / "run"
    overrides = ["steps=10"] if finished else ["steps=10", "crash_after=4"]
    if finished:
        run_experiment("dummy", "quick", overrides, out_dir=run)
    else:
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_experiment("dummy", "quick", overrides, out_dir=run)
    damage(run)
    before = snapshot(run)
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and str(run) in err
    assert snapshot(run) == before


def test_resume_of_a_finished_run_changes_no_file(tmp_path: Path) -> None:
    """A finished run is not run again by resume: before, a resume that failed or was
    interrupted truncated its metrics.csv while results.json still said ok."""
    run = tmp_path / "run"
    run_experiment("dummy", "quick", ["steps=10"], out_dir=run)
    saved = json.loads((run / "config.json").read_text())
    saved["config"]["nan_at"] = 9  # valid config, but a re-run would now fail at step 9
    (run / "config.json").write_text(json.dumps(saved))
    before = snapshot(run)
    res = resume(run)
    assert res["already_finished"] and res["status"] == "ok"
    assert snapshot(run) == before


def test_run_into_a_directory_without_a_run_deletes_nothing(tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    (pics / "tb").mkdir(parents=True)
    (pics / "holiday.png").write_text("img")
    (pics / "tb" / "notes.txt").write_text("x")
    run_experiment("dummy", "quick", ["steps=3"], out_dir=pics)
    assert (pics / "holiday.png").read_text() == "img"
    assert (pics / "tb" / "notes.txt").read_text() == "x"


# ---- 3. one owner per run directory ------------------------------------------------------


def test_second_writer_is_refused_and_a_killed_owner_leaves_no_stuck_lock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "cc"
    log = tmp_path / "owner.log"
    owner = start(
        log, "run", "dummy", "--set", "steps=400", "--set", "sleep=0.05", "--out", str(run)
    )
    try:
        wait_for(lambda: (run / "metrics.csv").exists() or owner.poll() is not None, what="run")
        assert owner.poll() is None, log.read_text()
        code = main(["run", "dummy", "--seed", "1", "--out", str(run)])
        err = capsys.readouterr().err
        assert code == 2 and "in use by another stochgrad process" in err, err
        assert f"pid {owner.pid}" in err
        # not even --overwrite takes a directory that another process owns
        assert main(["run", "dummy", "--seed", "1", "--overwrite", "--out", str(run)]) == 2
        assert "in use" in capsys.readouterr().err
        assert main(["resume", str(run)]) == 2
        assert "in use" in capsys.readouterr().err
    finally:
        owner.kill()
        owner.wait()
    assert owner.returncode == -signal.SIGKILL
    saved = json.loads((run / "config.json").read_text())
    saved["config"]["sleep"] = 0.0  # finish quickly
    (run / "config.json").write_text(json.dumps(saved))
    assert resume(run)["status"] == "ok"  # the dead owner's lock is gone
    assert steps(run) == list(range(400))
    assert json.loads((run / "results.json").read_text())["seed"] == 0


def test_finished_run_is_not_replaced_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run_experiment("dummy", "quick", ["steps=5"], out_dir=run)
    before = snapshot(run)
    assert main(["run", "dummy", "--seed", "3", "--out", str(run)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert snapshot(run) == before
    assert main(["run", "dummy", "--seeds", "0-1", "--workers", "1", "--out", str(run)]) == 2
    assert snapshot(run) == before
    assert main(["run", "dummy", "--seed", "3", "--overwrite", "--out", str(run)]) == 0
    assert json.loads((run / "results.json").read_text())["seed"] == 3


def test_sweep_is_not_replaced_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "dummy", "--set", "steps=3", "--seeds", "0-1", "--workers", "1"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    before = snapshot(tmp_path)
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "seed0 (ok), seed1 (ok)" in err and "--overwrite" in err
    assert snapshot(tmp_path) == before


# ---- 4. workers of a killed sweep die with it; resume finishes the sweep --------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killed_sweep_takes_its_workers_along_and_resume_finishes_it(tmp_path: Path) -> None:
    n = 60
    log = tmp_path.parent / f"{tmp_path.name}-sweep.log"
    sweep = start(
        log,
        "run",
        "dummy",
        "--set",
        f"steps={n}",
        "--set",
        "sleep=0.05",
        "--seeds",
        "0-2",
        "--workers",
        "2",
        "--out",
        str(tmp_path),
    )
    try:
        members = [tmp_path / "seed0", tmp_path / "seed1"]
        wait_for(
            lambda: all((d / "metrics.csv").exists() for d in members) or sweep.poll() is not None,
            what="both workers to start",
        )
        assert sweep.poll() is None, log.read_text()
        workers = descendants(sweep.pid)
        assert workers
    finally:
        sweep.kill()
        sweep.wait()
    try:
        wait_for(lambda: not any(alive(p) for p in workers), timeout=15, what="workers to exit")
    finally:  # on failure, do not leave the orphans running
        for p in workers:
            if alive(p):
                os.kill(p, signal.SIGKILL)
    assert not (tmp_path / "seed2").exists()  # never started

    assert main(["resume", str(tmp_path), "--workers", "1"]) == 0
    for s in range(3):
        res = json.loads((tmp_path / f"seed{s}" / "results.json").read_text())
        assert res["status"] == "ok" and res["seed"] == s
        assert steps(tmp_path / f"seed{s}") == list(range(n))


# ---- 5. devices --------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["meta", "gpu", "cuda:x", "cpu:0:1", ""])
def test_unsupported_devices_are_refused(
    device: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "dummy", "--device", device, "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("error: --device")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="needs a machine without MPS")
def test_mps_without_mps_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "dummy", "--device", "mps"]) == 2
    assert "MPS is not available" in capsys.readouterr().err


def test_results_record_the_device_the_run_used(tmp_path: Path) -> None:
    res = run_experiment("dummy", "quick", ["steps=2"], out_dir=tmp_path, device="cpu")
    assert res["device"] == "cpu"


def test_lock_file_names_the_owner(tmp_path: Path) -> None:
    from stochgrad.runner.lock import DirectoryBusy, DirLock

    with DirLock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(DirectoryBusy, match=f"pid {os.getpid()}"):
            DirLock(tmp_path).acquire()
    with DirLock(tmp_path):  # released on exit
        pass


def test_a_config_error_found_by_the_experiment_leaves_no_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "run"
    assert main(["run", "relax-toy", "--set", "steps=-3", "--out", str(out)]) == 2
    assert "steps" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
