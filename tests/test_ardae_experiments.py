"""Quick presets of the AR-DAE experiments (000 sections 4.2, 6.1, 6.4) run and make sense."""

import pytest
import torch

from stochgrad.experiments.ardae_energy import histogram, kl_estimate, total_variation
from stochgrad.experiments.ardae_maxent import emd, penalty
from stochgrad.runner import RunContext, resume, run_experiment


def test_mog_error_quick(tmp_path):
    res = run_experiment("ardae-mog-error", "quick", seed=0, out_dir=tmp_path, device="cpu")
    m = res["metrics"]
    smallest = "sigma_0.005"
    # the regular DAE blows up at small σ (division by σ²); AR-DAE at σ = 0 does not
    assert m["error.ardae.sigma0"] < m[f"error.regdae.{smallest}"] / 10
    assert m["error.ardae.sigma0"] < m[f"error.resdae.{smallest}"]
    assert m["error.ardae_antithetic.sigma0"] < m[f"error.regdae.{smallest}"] / 10
    # a σ-blind AR-DAE converges to the σ²-weighted average of f*: 3x f*(δ)'s error
    assert 2.5 * m["error.fstar.delta"] < m["error.sigma_blind.delta"]
    # f*'s asymptotic error shrinks with σ (Prop. 1)
    assert m["error.fstar.sigma_0.005"] < m["error.fstar.sigma_0.05"] < m["error.fstar.sigma_0.5"]
    for fig in ("error_vs_sigma", "sigma_conditioning", "optimal_dae"):
        assert (tmp_path / f"{fig}.png").exists()


def test_energy_quick(tmp_path):
    """Learning smoke test (tier D): every sampler moves its mass onto the target; an untrained
    sampler (a near point mass) has TV close to 1 on this grid."""
    res = run_experiment("ardae-energy", "quick", seed=0, out_dir=tmp_path, device="cpu")
    m = res["metrics"]
    for p in ("u1", "u2", "u3", "u4"):
        for method in ("hvi_aux", "hier_ardae", "implicit_ardae"):
            assert m[f"tv.{p}.{method}"] < 0.85, (p, method)
    assert (tmp_path / "densities.png").exists()


def test_maxent_quick(tmp_path):
    """Both samplers end within 1.5x of the EMD between two samples of the target itself (a
    smoke test: at 300 samples in 10-D the EMD cannot see the entropy term, the next test does)."""
    res = run_experiment("ardae-maxent", "quick", seed=0, out_dir=tmp_path, device="cpu")
    m = res["metrics"]
    assert m["repetitions"] == 2
    for name in ("ardae", "iaf"):
        assert 0 < m[f"emd.{name}.median"] < 1.5 * m["emd.floor.median"]
    assert (tmp_path / "emd_histograms.png").exists()


def test_maxent_entropy_term_spreads_the_samplers(tmp_path):
    """The entropy term of ardae-maxent is there, has the right sign and a strength comparable
    to the exact one (the EMD at 300 samples in 10-D cannot tell any of this).

    With a weak penalty (λ = 0.001 throughout) the entropy term dominates, and the log-det of
    the sample covariance must end far higher than in the same run without it (``entropy=false``:
    same seed, same random numbers, the penalty alone).  In 3-D, seeds 0-3, two repetitions each,
    the AR-DAE sampler's log-det rose by 5.4-10.0 nats in every repetition and the IAF's (exact
    entropy, the positive control) by 3.6-6.6; the mean rises were 1.4-1.75x the IAF's (seed 0:
    9.4 and 6.0 nats).  The bounds (2 nats, and 3/4 of the exact entropy's rise) fail when the
    AR-DAE entropy gradient is removed (rise exactly 0), reversed (-24.6), or 3x too weak
    (score / 3: 3.1 nats, below 4.5).  (With the quick preset's penalty schedule the entropy
    term's effect on the constrained solution is of the order of the run-to-run noise, about a
    nat, and in 10-D the AR-DAE sampler's log-det varied by ±13 nats between repetitions.)
    """
    overrides = ["dim=3", "lambda_start=0.001", "lambda_growth=1.0"]
    metrics = {
        entropy: run_experiment(
            "ardae-maxent",
            "quick",
            [*overrides, f"entropy={entropy}"],
            seed=0,
            out_dir=tmp_path / entropy,
            device="cpu",
        )["metrics"]
        for entropy in ("true", "false")
    }
    rise = {
        name: metrics["true"][f"logdet_gap.{name}.mean"]
        - metrics["false"][f"logdet_gap.{name}.mean"]
        for name in ("ardae", "iaf")
    }
    assert rise["iaf"] > 2, rise  # positive control: the exact entropy term spreads the IAF
    assert rise["ardae"] > 2 and rise["ardae"] > 0.75 * rise["iaf"], rise


def _interrupt_at(monkeypatch, step: int):
    original = RunContext.save_checkpoint

    def save_then_die(self, state, at):
        original(self, state, at)
        if at == step and not self.resumed:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunContext, "save_checkpoint", save_then_die)


@pytest.mark.parametrize(
    "name, overrides, cut",
    [
        (
            "ardae-energy",
            [
                "potentials=u1",
                "methods=implicit_ardae,hvi_aux",
                "iterations=40",
                "checkpoint_every=20",
                "eval_samples=2000",
            ],
            20,
        ),
        (
            "ardae-mog-error",
            [
                "sigmas=0.5",
                "methods=resdae,ardae",
                "iterations=20",
                "repetitions=1",
                "eval_samples=200",
            ],
            2,
        ),
    ],
)
def test_resume_matches_uninterrupted(tmp_path, monkeypatch, name, overrides, cut):
    full = run_experiment(name, "quick", overrides, seed=1, out_dir=tmp_path / "full")
    _interrupt_at(monkeypatch, cut)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(name, "quick", overrides, seed=1, out_dir=tmp_path / "cut")
    assert resume(tmp_path / "cut")["metrics"] == full["metrics"]
    assert resume(tmp_path / "cut")["metrics"] == full["metrics"]  # resuming a finished run


def test_total_variation_and_kl_of_exact_samples_are_small():
    """Samples of the grid density itself give TV close to 0; a point mass gives TV close to 1."""
    torch.manual_seed(0)
    target = torch.full((8, 8), 1 / 64, dtype=torch.float64)
    x = torch.rand(200_000, 2) * 8 - 4
    hist = histogram(x, 8, 4.0)
    assert total_variation(hist, target) < 0.02 and abs(kl_estimate(hist, target)) < 0.01
    point = histogram(torch.zeros(100, 2) + 0.1, 8, 4.0)
    assert total_variation(point, target) > 0.95
    outside = histogram(torch.full((100, 2), 10.0), 8, 4.0)
    assert total_variation(outside, target) == pytest.approx(1.0)


def test_maxent_penalty_and_emd():
    torch.manual_seed(1)
    m, b = torch.randn(3), torch.randn(3, 3)
    cov = b.T @ b
    x = torch.distributions.MultivariateNormal(m, cov).sample((20_000,))
    assert penalty(x, m, cov) < 0.1 * cov.pow(2).sum()
    assert penalty(x + 1.0, m, cov) > 2.9  # mean off by 1 in each of 3 dims
    y = x[:300]
    assert emd(y, y) == pytest.approx(0.0, abs=1e-9)
    assert emd(y, y + torch.tensor([3.0, 0.0, 0.0])) == pytest.approx(3.0, rel=1e-6)
