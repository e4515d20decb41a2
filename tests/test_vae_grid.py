"""Experiment vae-grid (000 Fig. 5): quick preset end to end, the large-σ DAE's narrow posterior,
the residual DAE wrapper's contract, resume, and config errors."""

import pytest
import torch
from _experiment_helpers import assert_resume_matches_uninterrupted, read_rows
from _experiment_helpers import quick_run as run_quick

from stochgrad.data import grid_of_gaussians
from stochgrad.experiments.vae_grid import METHODS, FixedSigmaDAE, make_toy_vae, mmd2
from stochgrad.runner import run_experiment
from stochgrad.vae import ardae_loss

FIGURES = ("data", "samples", "aggregated_posterior", "mean_logvar")
TINY = ["n_train=256", "n_test=50", "epochs=2", "batch=64", "n_z=4", "iwae_samples=10"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_quick("vae-grid", tmp_path_factory)


def test_quick_preset_writes_metrics_and_figures(quick_run):
    out, results, wall = quick_run
    assert results["status"] == "ok" and wall < 60
    assert not results.get("warnings")
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 1000
    m = results["metrics"]
    for method in METHODS:
        for key in ("test_log_px", "mean_logvar", "agg_mmd", "sample_log_density"):
            assert f"{key}.{method}" in m
        # no model beats the data's own density by more than the IWAE noise
        assert m[f"test_log_px.{method}"] < m["true_log_px"] + 0.5
    rows = read_rows(out)
    curve = [r["logvar.ardae"] for r in rows if "logvar.ardae" in r]
    assert rows[0]["step"] == 0 and len(curve) == 1 + 128 // 8  # every curve_every = 8 updates


def test_quick_large_sigma_dae_keeps_the_narrowest_posterior(quick_run):
    """000 Fig. 5: a large fixed σ underestimates the entropy gradient, so the posterior stays
    the narrowest of the implicit ones (all three start from the same model, log-variance
    about -10).  Seeds 0-4 gave margins of 1.7, 1.1, 1.8, 0.27 and 0.47 below the next one
    (a 0.5 margin picked on seeds 0-2 failed out of sample, so only the order is tested)."""
    m = quick_run[1]["metrics"]
    others = min(m["mean_logvar.dae-small"], m["mean_logvar.ardae"])
    assert m["mean_logvar.dae-large"] < others


def test_score_models_never_train_the_posterior():
    """Algorithm 1: the AR-DAE / DAE loss reaches the score model only, and its score is a
    constant for the model loss."""
    torch.manual_seed(0)
    model = make_toy_vae("ardae", hidden=16)
    post = model.posterior
    dae = FixedSigmaDAE(2, post.feature_dim, sigma=0.1, scale=100.0, hidden=(16,))
    x = grid_of_gaussians(8)
    ardae_loss(model, dae, x, n_z=4).backward()
    assert all(p.grad is None for p in model.parameters())
    # (the potential's output bias has no gradient in the gradient parameterization)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in dae.parameters())
    z = post.sample(x, 3)
    score = dae.score(z, post.features(x), post.center(x))
    assert score.shape == z.shape and not score.requires_grad


def test_mmd_is_near_zero_for_equal_distributions_only():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 500, 2, generator=g)
    assert abs(mmd2(a, b)) < 0.01
    assert mmd2(a, 0.1 * b) > 0.5


def test_resume_matches_uninterrupted(tmp_path, monkeypatch):
    """Killed right after the checkpoint of epoch 1, then resumed."""
    assert_resume_matches_uninterrupted(
        monkeypatch, tmp_path, "vae-grid", TINY, 1, 4
    )  # epoch 1 of 4 updates


@pytest.mark.parametrize(
    "item, field",
    [
        ("methods=gaussian,dae", "methods"),
        ("methods=ardae,ardae", "methods"),
        ("n_z=1", "n_z"),
        ("batch=0", "batch"),
        ("sigma_small=2.0", "sigma_small"),
        ("sigma_large=-1.0", "sigma_large"),
        ("n_train=100", "n_train"),
        ("scale=0.0", "scale"),
        ("rmsprop_alpha=1.5", "rmsprop_alpha"),
    ],
)
def test_bad_config_names_the_field(tmp_path, item, field):
    with pytest.raises(ValueError, match=field):
        run_experiment("vae-grid", "quick", [item], out_dir=tmp_path)
