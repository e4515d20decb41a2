"""Runner: config building, run directories, checkpoints and resume, sweeps, reports."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from _dummy_experiment import DummyConfig, dummy_env  # noqa: F401 (fixture)

from stochgrad.runner import (
    RunContext,
    aggregate,
    find_runs,
    get,
    make_config,
    names,
    parse_seeds,
    reproduce,
    resume,
    run_experiment,
    run_sweep,
    write_report,
)

pytestmark = pytest.mark.usefixtures("dummy_env")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- registry and config ---------------------------------------------------------------------


def test_registry_lists_and_gets_experiments() -> None:
    assert "dummy" in names()
    exp = get("dummy")
    assert exp.config is DummyConfig and set(exp.presets) == {"paper", "quick"}


def test_unknown_experiment_names_it_and_lists_known() -> None:
    with pytest.raises(ValueError, match="unknown experiment 'nope'.*dummy"):
        get("nope")


def test_presets_and_overrides_are_parsed_by_field_type() -> None:
    exp = get("dummy")
    assert make_config(exp, "paper", []) == DummyConfig()
    assert make_config(exp, "quick", []).steps == 12
    cfg = make_config(
        exp,
        "quick",
        ["steps=7", "lr=1e-3", "hidden=8,16,32", "scale=none", "verbose=true", "label=a=b"],
    )
    assert cfg == DummyConfig(
        steps=7, lr=1e-3, hidden=(8, 16, 32), scale=None, verbose=True, label="a=b"
    )
    assert make_config(exp, "quick", ["scale=2.5"]).scale == 2.5


def test_unknown_key_names_key_and_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown config key 'stepz'.*valid keys:.*steps"):
        make_config(get("dummy"), "quick", ["stepz=3"])


@pytest.mark.parametrize(
    "item, expected",
    [("steps=abc", "int"), ("lr=fast", "float"), ("verbose=maybe", "bool"), ("hidden=1,x", "")],
)
def test_wrong_type_names_key_type_and_value(item: str, expected: str) -> None:
    key, _, value = item.partition("=")
    with pytest.raises(ValueError, match=rf"--set {key}: expected .*{expected}.*{value!r}"):
        make_config(get("dummy"), "quick", [item])


def test_unknown_preset_and_malformed_set() -> None:
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        make_config(get("dummy"), "fast", [])
    with pytest.raises(ValueError, match="key=value"):
        make_config(get("dummy"), "quick", ["steps"])


def test_parse_seeds() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("1-2,7") == [1, 2, 7]
    for bad in ("a", "3-1", "1,1", ""):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


# ---- one run -----------------------------------------------------------------------------------


def test_run_writes_results_curves_figure_and_tensorboard(tmp_path: Path) -> None:
    res = run_experiment("dummy", "quick", ["lr=0.2"], seed=3, out_dir=tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == res
    assert {"experiment", "preset", "config", "seed", "metrics", "versions", "wall_time_s"} <= set(
        saved
    )
    assert saved["status"] == "ok" and saved["experiment"] == "dummy"
    assert saved["preset"] == "quick" and saved["seed"] == 3
    assert saved["config"]["lr"] == 0.2 and saved["config"]["steps"] == 12
    assert set(saved["versions"]) == {"python", "torch", "numpy", "stochgrad"}
    assert saved["versions"]["torch"] == torch.__version__
    assert set(saved["metrics"]) == {"final.loss", "final.w0"}
    assert saved["wall_time_s"] > 0

    rows = read_csv(tmp_path / "metrics.csv")
    assert list(rows[0]) == ["step", "loss", "w0"]
    assert [int(r["step"]) for r in rows] == list(range(12))
    assert float(rows[-1]["loss"]) == pytest.approx(saved["metrics"]["final.loss"], rel=1e-12)
    assert float(rows[-1]["w0"]) == pytest.approx(saved["metrics"]["final.w0"], rel=1e-12)

    assert (tmp_path / "weights.png").stat().st_size > 0
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["experiment"] == "dummy" and config["seed"] == 3


def test_same_seed_same_metrics_and_bad_metric_names(tmp_path: Path) -> None:
    a = run_experiment("dummy", "quick", seed=1, out_dir=tmp_path / "a")["metrics"]
    b = run_experiment("dummy", "quick", seed=1, out_dir=tmp_path / "b")["metrics"]
    c = run_experiment("dummy", "quick", seed=2, out_dir=tmp_path / "c")["metrics"]
    assert a == b and a != c
    with pytest.raises(ValueError, match="'Final-Loss'.*lower-case"):
        run_experiment("dummy-bad-metric", "quick", out_dir=tmp_path / "d")


def test_csv_handles_new_columns(tmp_path: Path) -> None:
    ctx = RunContext(tmp_path, seed=0, device=torch.device("cpu"), preset="quick")
    ctx.log(0, a=1.0)
    ctx.flush()
    ctx.log(1, a=2.0, b=torch.tensor(3.0))
    ctx.log(2, a=4.0)
    ctx.close()
    rows = read_csv(tmp_path / "metrics.csv")
    assert rows == [
        {"step": "0", "a": "1.0", "b": ""},
        {"step": "1", "a": "2.0", "b": "3.0"},
        {"step": "2", "a": "4.0", "b": ""},
    ]


def test_nan_stops_the_run_naming_quantity_and_step(tmp_path: Path) -> None:
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 7.*checkpoint kept"):
        run_experiment("dummy", "quick", ["nan_at=7"], out_dir=tmp_path)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4  # the last good checkpoint
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed" and "loss is nan" in results["error"]
    assert [int(r["step"]) for r in read_csv(tmp_path / "metrics.csv")] == list(range(7))


# ---- checkpoints and resume --------------------------------------------------------------------


def test_checkpoint_is_atomic_weights_only_and_restores_rng(tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    ctx = RunContext(tmp_path, seed=0, device=cpu, preset="quick")
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 2)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "buf": [1, 2.5, "x"]}
    ctx.save_checkpoint(state, step=17)
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert raw["step"] == 17 and set(raw) == {"step", "state", "rng"}

    assert ctx.load_checkpoint() is None  # a fresh run never picks up a checkpoint
    resumed = RunContext(tmp_path, seed=0, device=cpu, preset="quick", resumed=True)
    loaded = resumed.load_checkpoint()
    assert resumed.checkpoint_step == 17
    assert loaded is not None and loaded["buf"] == [1, 2.5, "x"]
    torch.testing.assert_close(loaded["model"]["weight"], model.weight.detach())
    assert loaded["opt"]["state"][0]["step"] == opt.state_dict()["state"][0]["step"]
    torch.testing.assert_close(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_resume_after_crash_matches_uninterrupted_run(tmp_path: Path) -> None:
    full = run_experiment("dummy", "paper", ["steps=20"], seed=5, out_dir=tmp_path / "full")
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash after step 9"):
        run_experiment("dummy", "paper", ["steps=20", "crash_after=9"], seed=5, out_dir=crashed)
    assert json.loads((crashed / "results.json").read_text())["status"] == "failed"
    assert torch.load(crashed / "checkpoint.pt", weights_only=True)["step"] == 9

    res = resume(crashed)
    assert res["status"] == "ok" and res["resumed"] is True
    assert res["metrics"] == full["metrics"]
    assert read_csv(crashed / "metrics.csv") == read_csv(tmp_path / "full" / "metrics.csv")


def test_resume_needs_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a run directory"):
        resume(tmp_path)


# ---- sweeps and reports ------------------------------------------------------------------------


def _check_aggregate(sweep_dir: Path, seeds: list[int]) -> None:
    runs = find_runs([sweep_dir])
    assert sorted(r.results["seed"] for r in runs) == seeds
    (group,) = aggregate(runs)
    stats = group.stats()
    for metric in ("final.loss", "final.w0"):
        values = np.array([r.results["metrics"][metric] for r in runs])
        mean, sem, n = stats[metric]
        assert n == len(seeds)
        assert mean == pytest.approx(values.mean(), rel=1e-12)
        assert sem == pytest.approx(values.std(ddof=1) / math.sqrt(len(values)), rel=1e-12)


def test_local_sweep_in_processes_and_report(tmp_path: Path) -> None:
    results = run_sweep("dummy", "quick", ["steps=6"], seeds=[0, 1], out_dir=tmp_path, workers=2)
    assert [r["seed"] for r in results] == [0, 1]
    assert results[0]["metrics"] != results[1]["metrics"]
    # processes reproduce in-process runs exactly
    again = run_experiment("dummy", "quick", ["steps=6"], seed=1, out_dir=tmp_path / "x" / "s1")
    assert again["metrics"] == results[1]["metrics"]
    (tmp_path / "x" / "s1" / "results.json").unlink()
    _check_aggregate(tmp_path, [0, 1])

    md, html = write_report([tmp_path])
    text = md.read_text()
    mean, sem, _ = aggregate(find_runs([tmp_path]))[0].stats()["final.loss"]
    assert "## dummy" in text and f"| final.loss | {mean:.4g} | {sem:.4g} | 2 |" in text
    assert "![weights](seed0/weights.png)" in text and "(seed1/weights.png)" in text
    assert '<img src="seed0/weights.png"' in html.read_text()


def test_sweep_fails_fast_on_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown config key 'nope'"):
        run_sweep("dummy", "quick", ["nope=1"], seeds=[0, 1], out_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_ray_sweep(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        results = run_sweep("dummy", "quick", ["steps=6"], [0, 1], tmp_path, backend="ray")
    finally:
        ray.shutdown()
    local = run_experiment("dummy", "quick", ["steps=6"], seed=0, out_dir=tmp_path / "local")
    assert results[0]["metrics"] == local["metrics"]
    (tmp_path / "local" / "results.json").unlink()
    _check_aggregate(tmp_path, [0, 1])


def test_reproduce_runs_presets_and_writes_report(tmp_path: Path) -> None:
    md, html = reproduce("quick", tmp_path, only=["dummy"])
    assert (tmp_path / "dummy" / "quick" / "seed0" / "results.json").exists()
    assert md == tmp_path / "report.md" and "final.loss" in md.read_text()
    loss = json.loads((tmp_path / "dummy" / "quick" / "seed0" / "results.json").read_text())
    row = f"| final.loss | {loss['metrics']['final.loss']:.4g} ± – | loss \\| 0 (a made-up claim) |"
    assert row + " last loss | yes |" in md.read_text()  # the headline next to the paper's claim
    assert html.exists()


def test_extra_experiments_module_must_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCHGRAD_EXTRA_EXPERIMENTS", "_dummy_experiment, no_such_module_xyz")
    with pytest.raises(ValueError, match="STOCHGRAD_EXTRA_EXPERIMENTS.*'no_such_module_xyz'"):
        names()


def test_metric_names_may_hold_inner_hyphens_after_a_dot():
    from stochgrad.runner.run import METRIC_NAME

    for good in ("test_log_px.hvi-aux", "a.b", "mean_logvar.dae-large", "x.y-z.w"):
        assert METRIC_NAME.match(good), good
    for bad in ("a-b.c", "a.-b", "a.b-", "A.b", "a..b", "a.b--c", "a.b c"):
        assert not METRIC_NAME.match(bad), bad
