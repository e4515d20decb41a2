"""Exact references for Gaussian mixtures with full covariances: log-density, score, smoothing,
the optimal residual DAE f* (000 Prop. 1) and the σ-blind AR-DAE limit, each against an
independent computation (torch.distributions + autograd, Monte Carlo, scipy quadrature)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from stochgrad.entropy import optimal_dae, sigma_blind_dae
from stochgrad.targets.mixture import GaussianMixture, anisotropic_mixture_2d, two_gaussians_1d

DT = torch.float64


def random_mixture(k: int = 3, d: int = 3, seed: int = 0) -> GaussianMixture:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(k, d, d, dtype=DT, generator=gen)
    covs = a @ a.transpose(-1, -2) / d + 0.2 * torch.eye(d, dtype=DT)
    means = 2 * torch.randn(k, d, dtype=DT, generator=gen)
    weights = torch.rand(k, dtype=DT, generator=gen) + 0.2
    return GaussianMixture(means, weights=weights, covariances=covs)


def reference(mixture: GaussianMixture, sigma: float = 0.0) -> MixtureSameFamily:
    """p * N(0, σ² I) written with torch.distributions (independent of GaussianMixture)."""
    d = mixture.dim
    cov = mixture.covariances + sigma**2 * torch.eye(d, dtype=DT)
    return MixtureSameFamily(Categorical(mixture.weights), MultivariateNormal(mixture.means, cov))


def autograd_score(dist: MixtureSameFamily, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(dist.log_prob(x).sum(), x)
    return g


@pytest.mark.parametrize("sigma", [0.0, 0.05, 0.3, 1.0])
@pytest.mark.parametrize("case", ["random3d", "aniso2d"])
def test_full_covariance_log_prob_and_smoothed_score(case: str, sigma: float) -> None:
    mixture = random_mixture() if case == "random3d" else anisotropic_mixture_2d()
    x = mixture.sample(200, generator=torch.Generator().manual_seed(1))
    x = x + 0.5 * torch.randn(x.shape, dtype=DT, generator=torch.Generator().manual_seed(2))
    ref = reference(mixture, sigma)
    smoothed = mixture.smoothed(sigma)
    torch.testing.assert_close(smoothed.log_prob(x), ref.log_prob(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(optimal_dae(x, sigma, mixture), autograd_score(ref, x))


def test_isotropic_covariances_agree_with_stds() -> None:
    """A full-covariance mixture with Σ_k = s_k² I is the isotropic one (the old code path)."""
    gen = torch.Generator().manual_seed(3)
    means, stds = torch.randn(4, 2, dtype=DT, generator=gen), torch.tensor([0.5, 0.8, 1.0, 0.3])
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=DT)
    iso = GaussianMixture(means, stds.to(DT), weights)
    full = GaussianMixture(
        means, weights=weights, covariances=stds.to(DT)[:, None, None] ** 2 * torch.eye(2, dtype=DT)
    )
    assert iso.isotropic and not full.isotropic
    x = iso.sample(300, generator=gen)
    torch.testing.assert_close(full.log_prob(x), iso.log_prob(x))
    torch.testing.assert_close(full.score(x), iso.score(x))
    for sigma in (0.05, 0.4):
        torch.testing.assert_close(optimal_dae(x, sigma, full), optimal_dae(x, sigma, iso))
    torch.testing.assert_close(sigma_blind_dae(x, 0.1, full), sigma_blind_dae(x, 0.1, iso))
    one_d = two_gaussians_1d()
    one_d_full = GaussianMixture(one_d.means, covariances=torch.full((2, 1, 1), 0.25, dtype=DT))
    y = torch.linspace(-4, 4, 41, dtype=DT)[:, None]
    torch.testing.assert_close(
        sigma_blind_dae(y, 0.05, one_d_full), sigma_blind_dae(y, 0.05, one_d)
    )


def test_optimal_dae_full_covariance_matches_monte_carlo_prop1() -> None:
    """f*(x; σ) = -E_u[p(x - σu) u] / (σ E_u[p(x - σu)]) (000 Prop. 1) by Monte Carlo, with p
    from torch.distributions; ratio estimator, delta-method standard errors, |z| < 4.5."""
    mixture = anisotropic_mixture_2d()
    ref = reference(mixture)
    sigma, n = 0.4, 400_000
    x = torch.tensor([[-1.5, 0.3], [1.0, 1.0], [0.2, 2.2]], dtype=DT)
    u = torch.randn(n, 2, dtype=DT, generator=torch.Generator().manual_seed(4))
    exact = optimal_dae(x, sigma, mixture)
    for i in range(x.shape[0]):
        p = ref.log_prob(x[i] - sigma * u).exp()  # [n]
        num, den = -(p[:, None] * u) / sigma, p
        est = num.mean(0) / den.mean()
        resid = num - est * den[:, None]  # delta method for a ratio of means
        se = resid.std(0) / (den.mean() * math.sqrt(n))
        z = (est - exact[i]) / se
        assert z.abs().max() < 4.5, (i, est, exact[i], z)


@pytest.mark.parametrize("case", ["aniso2d", "random3d"])
def test_sigma_blind_full_covariance_matches_scipy_quadrature(case: str) -> None:
    """E_σ[σ² p_σ(x) f*(x; σ)] / E_σ[σ² p_σ(x)], σ ~ N(0, δ²), by adaptive scipy quadrature over
    σ ∈ (0, ∞) with p_σ and f* from torch.distributions + autograd."""
    mixture = anisotropic_mixture_2d() if case == "aniso2d" else random_mixture(seed=5)
    delta = 0.15
    x = mixture.sample(4, generator=torch.Generator().manual_seed(6))
    ours = sigma_blind_dae(x, delta, mixture)
    for i in range(x.shape[0]):
        xi = x[i : i + 1]

        def weight(s: float, xi: torch.Tensor = xi) -> float:
            return (
                s**2
                * math.exp(-0.5 * (s / delta) ** 2)
                * reference(mixture, s).log_prob(xi).exp().item()
            )

        den = integrate.quad(weight, 0, 10 * delta, epsabs=0, epsrel=1e-10)[0]
        num = [
            integrate.quad(
                lambda s, j=j, xi=xi: (
                    weight(s, xi) * autograd_score(reference(mixture, s), xi)[0, j].item()
                ),
                0,
                10 * delta,
                epsabs=0,
                epsrel=1e-10,
            )[0]
            for j in range(mixture.dim)
        ]
        torch.testing.assert_close(ours[i], torch.tensor(num, dtype=DT) / den, rtol=1e-6, atol=1e-8)


def test_full_covariance_sampling_moments() -> None:
    """Sample mean and covariance of each component match μ_k, Σ_k (z-tests, 4.5 s.e.)."""
    mixture = GaussianMixture(
        torch.tensor([[0.0, 0.0]], dtype=DT),
        covariances=torch.tensor([[[1.0, 0.8], [0.8, 2.0]]], dtype=DT),
    )
    n = 100_000
    x = mixture.sample(n, generator=torch.Generator().manual_seed(7))
    assert (
        x.mean(0).abs() / (torch.tensor([1.0, 2.0], dtype=DT).sqrt() / math.sqrt(n)) < 4.5
    ).all()
    prods = x[:, :, None] * x[:, None, :]  # [n, 2, 2]
    z = (prods.mean(0) - mixture.covariances[0]) / (prods.std(0) / math.sqrt(n))
    assert z.abs().max() < 4.5


def test_full_covariance_input_errors() -> None:
    means = torch.zeros(2, 2, dtype=DT)
    with pytest.raises(ValueError, match="exactly one"):
        GaussianMixture(means)
    with pytest.raises(ValueError, match="exactly one"):
        GaussianMixture(means, 1.0, covariances=torch.eye(2, dtype=DT))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(means, covariances=torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=DT))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture(means, covariances=torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=DT))
    with pytest.raises(ValueError, match="covariances must have shape"):
        GaussianMixture(means, covariances=torch.eye(3, dtype=DT))
