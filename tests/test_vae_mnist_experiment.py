"""Experiment vae-mnist (000 section 6.2, Table 1): quick preset, metrics against the logged
curves, model selection blind to the test set, early stopping, Polyak averaging, β-annealing,
dynamic binarization, resume."""

import json

import numpy as np
import pytest
import torch
from _experiment_helpers import assert_resume_matches_uninterrupted, read_rows
from _experiment_helpers import quick_run as run_quick

from stochgrad.data import load_binarized_mnist
from stochgrad.experiments.vae_mnist import VaeMnistConfig, _beta
from stochgrad.runner import run_experiment
from stochgrad.vae import METHODS

TINY = [
    "n_train=256",
    "n_valid=40",
    "n_test=40",
    "iterations=40",
    "eval_every=20",
    "batch=32",
    "n_z=4",
    "ardae_width=32",
    "ardae_layers=2",
    "valid_samples=5",
    "n_eval=20",
    "elbo_samples=2",
    "n_mix=5",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_quick("vae-mnist", tmp_path_factory)


def test_quick_preset_writes_metrics_and_figures(quick_run):
    out, results, wall = quick_run
    assert results["status"] == "ok" and wall < 60
    assert json.loads((out / "results.json").read_text())["preset"] == "quick"
    for name in ("valid_log_px", "samples"):
        assert (out / f"{name}.png").stat().st_size > 1000
    m = results["metrics"]
    assert m["data.full_mnist"] == 0.0 and m["data.n_train"] == 2000  # the packaged subset
    for method in METHODS:
        assert f"test_log_px.{method}" in m and f"valid_log_px.{method}" in m
        assert m[f"iterations.{method}"] == results["config"]["iterations"]
        if method != "ivi-ardae":  # an implicit posterior has no density, so no ELBO
            # the ELBO (or its semi-implicit lower bound) lies below log p(x): 200 test images
            assert m[f"test_elbo.{method}"] < m[f"test_log_px.{method}"]
    assert "test_elbo.ivi-ardae" not in m
    steps = [r["step"] for r in read_rows(out)]
    assert steps == [100, 200, 300]


def test_metrics_agree_with_the_logged_curves(quick_run):
    """valid_log_px is the best logged validation score and best_iteration its update."""
    out, results, _ = quick_run
    m, rows = results["metrics"], read_rows(out)
    for method in METHODS:
        valid = [r[f"valid_log_px.{method}"] for r in rows]
        assert m[f"valid_log_px.{method}"] == pytest.approx(max(valid), abs=1e-9)
        assert m[f"best_iteration.{method}"] == rows[valid.index(max(valid))]["step"]


def test_model_selection_never_reads_the_test_set(tmp_path):
    """Two data files that differ only in their test arrays give the same training, validation
    and selection; only the test metrics change."""
    arrays = {
        s: load_binarized_mnist(subset=True, split=s).numpy().astype(np.uint8)
        for s in ("train", "valid", "test")
    }
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez(tmp_path / "b.npz", **{**arrays, "test": arrays["train"][:500]})
    over = [*TINY, "methods=gaussian,hvi-ardae"]
    runs = [
        run_experiment(
            "vae-mnist",
            "quick",
            [*over, f"data_path={tmp_path / f}.npz"],
            seed=2,
            out_dir=tmp_path / f,
        )
        for f in ("a", "b")
    ]
    a, b = (r["metrics"] for r in runs)
    assert a["data.full_mnist"] == 1.0
    test_keys = {k for k in a if k.startswith("test_")}
    assert len(test_keys) == 4 and all(a[k] != b[k] for k in test_keys)
    assert {k: v for k, v in a.items() if k not in test_keys} == {
        k: v for k, v in b.items() if k not in test_keys
    }


def test_early_stopping_polyak_and_beta_annealing(tmp_path):
    """patience=1 stops a method at its first validation score without improvement; the
    Polyak average and β-annealing run; a method that stopped trains no further."""
    over = [*TINY, "iterations=200", "polyak_decay=0.9", "beta_anneal=30", "patience=1"]
    over += ["lr=0.01", "n_valid=10"]  # noisy scores of a fast learner: some fall back
    m = run_experiment("vae-mnist", "quick", over, seed=3, out_dir=tmp_path / "a")["metrics"]
    rows = read_rows(tmp_path / "a")
    for method in METHODS:
        valid = [r[f"valid_log_px.{method}"] for r in rows if f"valid_log_px.{method}" in r]
        worse = [i for i in range(1, len(valid)) if valid[i] <= max(valid[:i])]
        n_evals = worse[0] + 1 if worse else 10
        assert len(valid) == n_evals
        assert m[f"iterations.{method}"] == 20 * n_evals
    assert any(m[f"iterations.{method}"] < 200 for method in METHODS)


def test_dynamic_binarization_needs_grey_levels(tmp_path):
    with pytest.raises(ValueError, match="grey_path"):
        run_experiment("vae-mnist", "quick", ["binarization=dynamic"], out_dir=tmp_path / "a")
    rng = np.random.default_rng(0)
    grey = {s: rng.integers(0, 256, (300, 784), dtype=np.uint8) for s in ("train", "valid", "test")}
    np.savez(tmp_path / "grey.npz", **grey)
    over = [*TINY, "methods=gaussian", "binarization=dynamic", f"grey_path={tmp_path}/grey.npz"]
    r = run_experiment("vae-mnist", "quick", over, out_dir=tmp_path / "b")
    assert r["status"] == "ok" and np.isfinite(r["metrics"]["test_log_px.gaussian"])


def test_resume_matches_uninterrupted(tmp_path, monkeypatch):
    """Killed right after the first checkpoint, then resumed: the same curves and metrics."""
    over = [*TINY, "methods=hvi-aux,ivi-ardae", "polyak_decay=0.5"]
    assert_resume_matches_uninterrupted(
        monkeypatch, tmp_path, "vae-mnist", over, 1, 20
    )  # the first turn's updates


@pytest.mark.parametrize(
    "override, field",
    [
        ("methods=gaussian,vamp", "methods"),
        ("architecture=resconv", "architecture"),
        ("n_train=10", "n_train"),
        ("polyak_decay=1.0", "polyak_decay"),
        ("n_z=1", "n_z"),
        ("patience=-1", "patience"),
    ],
)
def test_bad_config_names_the_field(tmp_path, override, field):
    with pytest.raises(ValueError, match=field):
        run_experiment("vae-mnist", "quick", [override], out_dir=tmp_path / "a")


@pytest.mark.parametrize("start, averaged", [(0, True), (40, False)])
def test_polyak_average_is_what_validation_selects(tmp_path, start, averaged):
    """With polyak_decay > 0 the selected parameters are the average's (000 Table 8), and
    before polyak_start updates there is no average: the model itself is selected."""
    over = [*TINY, "methods=gaussian", "iterations=20", "polyak_decay=0.9"]
    over += [f"polyak_start={start}"]
    run_experiment("vae-mnist", "quick", over, out_dir=tmp_path / "a")
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["state"]
    s = state["methods"]["gaussian"]
    average = {k[len("module.") :]: v for k, v in s["average"].items() if k.startswith("module.")}
    expected = average if averaged else s["model"]
    other = s["model"] if averaged else average
    assert s["best_state"].keys() == expected.keys()
    assert all(torch.equal(s["best_state"][k], expected[k]) for k in expected)
    assert not all(torch.equal(s["best_state"][k], other[k]) for k in expected)
    assert int(s["average"]["n_averaged"]) == (20 if averaged else 0)


def test_beta_schedule():
    cfg = VaeMnistConfig(beta_anneal=4)
    assert [_beta(cfg, i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert _beta(VaeMnistConfig(), 0) == 1.0


def test_log_step_counts_updates_when_eval_every_does_not_divide_iterations(tmp_path):
    over = [*TINY, "methods=gaussian", "iterations=50"]
    r = run_experiment("vae-mnist", "quick", over, out_dir=tmp_path / "a")
    assert [row["step"] for row in read_rows(tmp_path / "a")] == [20, 40, 50]
    assert r["metrics"]["iterations.gaussian"] == 50
