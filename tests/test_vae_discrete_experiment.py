"""Experiment vae-discrete (003 section 6.2, Tables 1-3): quick preset, its metrics against the
curves it logged, model selection blind to the test set, resume."""

import json

import numpy as np
import pytest
from _experiment_helpers import assert_resume_matches_uninterrupted, read_rows
from _experiment_helpers import quick_run as run_quick

from stochgrad.data import load_binarized_mnist
from stochgrad.runner import run_experiment

ESTIMATORS = ("nvil", "concrete", "rebar", "relax")
TINY = [
    "n_train=240",
    "n_valid=100",
    "n_test=100",
    "epochs=3",
    "warmup_steps=5",
    "var_every=1",
    "var_samples=4",
    "iwae_samples=5",
]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_quick("vae-discrete", tmp_path_factory)


def test_quick_preset_writes_metrics_and_figures(quick_run):
    out, results, wall = quick_run
    assert results["status"] == "ok" and wall < 60
    assert json.loads((out / "results.json").read_text())["preset"] == "quick"
    for name in ("elbo_curves", "grad_variance"):
        assert (out / f"{name}.png").stat().st_size > 1000
    m = results["metrics"]
    assert m["data.full_mnist"] == 0.0 and m["data.n_train"] == 2000  # the packaged subset
    for est in ESTIMATORS:
        for key in ("train_elbo", "valid_elbo", "test_elbo", "log10_grad_var"):
            assert f"{key}.linear1.{est}" in m
        assert f"epochs_to_rebar_best.linear1.{est}" in m
    rows = read_rows(out)
    assert [r["step"] for r in rows] == list(range(results["config"]["epochs"] + 1))


def test_metrics_agree_with_the_logged_curves(quick_run):
    """Table 1-3 metrics are the best train / valid ELBO over epochs, the test ELBO at the
    validation-best epoch, and the first epoch reaching REBAR's best (-1: never)."""
    out, results, _ = quick_run
    m, rows = results["metrics"], read_rows(out)
    rebar_best = max(r["valid_elbo.linear1.rebar"] for r in rows)
    for est in ESTIMATORS:
        valid = [r[f"valid_elbo.linear1.{est}"] for r in rows]
        train = [r[f"train_elbo.linear1.{est}"] for r in rows]
        assert m[f"valid_elbo.linear1.{est}"] == pytest.approx(max(valid), abs=1e-9)
        assert m[f"train_elbo.linear1.{est}"] == pytest.approx(max(train), abs=1e-9)
        assert m[f"best_epoch.linear1.{est}"] == valid.index(max(valid))
        reached = [e for e, v in enumerate(valid) if v >= rebar_best - 1e-9]
        assert m[f"epochs_to_rebar_best.linear1.{est}"] == (reached[0] if reached else -1)
        assert m[f"test_iwae.linear1.{est}"] >= m[f"test_elbo.linear1.{est}"] - 1.0


def test_quick_relax_and_rebar_beat_nvil(quick_run):
    """Quick-preset part of the Table 1 order: RELAX, REBAR > NVIL in training ELBO, and the
    learned control variates give far lower encoder gradient variance than NVIL (fixed seed)."""
    m = quick_run[1]["metrics"]
    for est in ("rebar", "relax"):
        assert m[f"train_elbo.linear1.{est}"] > m["train_elbo.linear1.nvil"] + 5
        assert m[f"valid_elbo.linear1.{est}"] > m["valid_elbo.linear1.nvil"] + 5
        assert m[f"log10_grad_var.linear1.{est}"] < m["log10_grad_var.linear1.nvil"] - 1


def test_model_selection_never_reads_the_test_set(tmp_path):
    """Two data files that differ only in their test arrays give the same training, validation
    and selection; only the test metrics change."""
    arrays = {
        s: load_binarized_mnist(subset=True, split=s).numpy().astype(np.uint8)
        for s in ("train", "valid", "test")
    }
    np.savez(tmp_path / "a.npz", **arrays)
    np.savez(tmp_path / "b.npz", **{**arrays, "test": arrays["train"][:500]})
    over = [*TINY, "estimators=nvil,rebar", "n_test=0"]
    runs = [
        run_experiment(
            "vae-discrete",
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
    assert test_keys and all(a[k] != b[k] for k in test_keys)
    assert {k: v for k, v in a.items() if k not in test_keys} == {
        k: v for k, v in b.items() if k not in test_keys
    }


@pytest.mark.parametrize("cut", [0, 2])
def test_resume_matches_uninterrupted(tmp_path, monkeypatch, cut):
    """Killed right after the checkpoint of epoch ``cut`` (0: after the warm-up), then resumed."""
    over = [*TINY, "models=linear2"]
    assert_resume_matches_uninterrupted(monkeypatch, tmp_path, "vae-discrete", over, 1, cut)


def test_bad_config_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="models"):
        run_experiment("vae-discrete", "quick", ["models=linear3"], out_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="n_train"):
        run_experiment("vae-discrete", "quick", ["n_train=10"], out_dir=tmp_path / "b")


def test_muprop_can_join_the_comparison(tmp_path):
    over = [*TINY, "epochs=1", "estimators=nvil,muprop"]
    m = run_experiment("vae-discrete", "quick", over, out_dir=tmp_path / "a")["metrics"]
    for key in ("train_elbo", "valid_elbo", "test_elbo", "log10_grad_var"):
        assert np.isfinite(m[f"{key}.linear1.muprop"])
    assert (tmp_path / "a" / "elbo_curves.png").exists()
