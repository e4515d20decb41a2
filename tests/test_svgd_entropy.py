"""Experiment svgd-entropy (002 section 4.1, Fig. 4, 9, 10): quick preset, claims, targets."""

import json
import math
import time

import pytest
import torch

from stochgrad.runner import run_experiment
from stochgrad.targets import CircleMixture, paper_gaussian

SAMPLERS = ("svgd", "sgld", "dld", "hmc")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("svgd-entropy")
    start = time.perf_counter()
    results = run_experiment("svgd-entropy", "quick", seed=0, out_dir=out, device="cpu")
    return out, results, time.perf_counter() - start


def test_quick_preset_writes_results_and_figures(quick_run):
    out, results, wall = quick_run
    assert results["status"] == "ok" and wall < 60
    for name in ("fig4a_samplers", "fig4b_bandwidth", "fig9_bandwidth_particles"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert (out / "fig4c_steps_particles.png").stat().st_size > 1000
    m = results["metrics"]
    for s in SAMPLERS:
        assert f"entropy.{s}" in m and f"abs_err.{s}" in m
    for sigma in results["config"]["sigmas"]:
        assert f"abs_err.svgd.sigma_{sigma:g}" in m
    grid = json.loads((out / "grid.json").read_text())
    assert set(grid) == {"gaussian", "gmm"}
    assert len(grid["gmm"]["estimates"]) == 4  # 2 L values x 2 m values


def test_svgd_recovers_the_entropy_and_the_other_samplers_do_not(quick_run):
    """Quick preset: m = 100, L = 100 (half of 002's). The SVGD estimate's finite-m bias is
    ~0.05-0.1 nats here (0.04 at m = L = 200); SGLD/DLD/HMC are off by tens of nats."""
    m = quick_run[1]["metrics"]
    assert m["entropy.true"] == pytest.approx(3.41, abs=0.005)
    assert m["abs_err.svgd"] <= 0.15
    for s in ("sgld", "dld", "hmc"):
        assert m[f"abs_err.{s}"] > 5  # Proposition 3.4: the bookkeeping misses the noise
    # a too-small bandwidth breaks invertibility (ε >> σ), a huge one does not converge
    assert m["abs_err.svgd.sigma_0.1"] > 1 and m["abs_err.svgd.sigma_100"] > 0.5


def test_estimates_grow_with_the_true_entropy_even_for_few_steps_and_particles(quick_run):
    """Acceptance 3: monotone in every (L, m) cell, L = 10 and m = 10 included."""
    m = quick_run[1]["metrics"]
    assert m["spearman.gaussian.l10_m10"] == 1.0 and m["spearman.gmm.l10_m10"] == 1.0
    assert m["spearman.gaussian"] == 1.0 and m["spearman.gmm"] == 1.0


def test_targets_entropies():
    assert paper_gaussian().entropy() == pytest.approx(3.4129, abs=1e-4)
    one = CircleMixture(1, radius=3.0, variance=0.1)
    assert one.entropy_mc()[0] == pytest.approx(math.log(2 * math.pi * math.e * 0.1))
    # well-separated equal components: H = H(component) + log M, up to the overlap (~0)
    four = CircleMixture(4, radius=3.0, variance=0.1)
    h, se = four.entropy_mc(200_000, seed=1)
    assert abs(h - (math.log(2 * math.pi * math.e * 0.1) + math.log(4))) < 4 * se + 1e-3
    assert four.entropy_mc(200_000, seed=1) == (h, se)  # cached
    means = four.means
    torch.testing.assert_close(means.norm(dim=-1), torch.full((4,), 3.0, dtype=means.dtype))


def test_target_validation():
    with pytest.raises(ValueError, match="n_components"):
        CircleMixture(0)
    with pytest.raises(ValueError, match="variance"):
        CircleMixture(3, variance=0.0)
    with pytest.raises(ValueError, match="positive definite"):
        from stochgrad.targets import Gaussian

        Gaussian(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="gmm_step_size"):
        run_experiment("svgd-entropy", "quick", ["gmm_step_size=0"], seed=0, out_dir=tmp_path)
