"""Exact references: the optimal residual DAE f* and the σ-blind AR-DAE limit for Gaussian
mixtures, isotropic or with full covariances (000 Prop. 1, App. D.1), and closed-form Gaussian
entropies."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..targets.mixture import GaussianMixture


def optimal_dae(x: Tensor, sigma: float | Tensor, mixture: GaussianMixture) -> Tensor:
    """f*(x; σ) = -E_u[p(x - σu) u] / (σ E_u[p(x - σu)]) for p a Gaussian mixture (000 Prop. 1).

    p(x - σu) N(u; 0, I) is Gaussian in u, so f* is the score of the mixture smoothed by
    N(0, σ² I): f*(x; σ) = ∇_x log Σ_k w_k N(x; μ_k, Σ_k + σ² I) (denoising score matching;
    Σ_k = s_k² I for an isotropic mixture).  At σ = 0 this is ∇_x log p.  ``x``: ``[..., d]``.
    """
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.dim() != 0:
        raise ValueError(f"sigma must be a number, got a tensor of shape {tuple(sigma.shape)}")
    return mixture.smoothed(sigma).score(x)


def sigma_blind_dae(x: Tensor, delta: float, mixture: GaussianMixture, n_grid: int = 512) -> Tensor:
    """The minimizer of the AR-DAE loss (000 eq. 2, σ ~ N(0, δ²)) over f that ignore σ.

    By denoising score matching the loss is E_σ[σ² E_{y~p_σ} ||f(y) - f*(y; σ)||²] + const, so
    f(y) = E_σ[σ² p_σ(y) f*(y; σ)] / E_σ[σ² p_σ(y)], with p_σ = p * N(0, σ² I) (any Gaussian
    mixture, isotropic or full covariances).  A network that does not resolve σ converges here,
    not to ∇ log p.  Quadrature over σ ∈ (0, 6δ] (f* is even in σ); ``x``: ``[n, d]``.
    """
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    sigmas = torch.linspace(6 * delta / n_grid, 6 * delta, n_grid, dtype=x.dtype)
    smoothed = [mixture.smoothed(s) for s in sigmas]  # p_σ
    log_w = torch.stack(
        [-0.5 * (s / delta) ** 2 + 2 * s.log() + p.log_prob(x) for s, p in zip(sigmas, smoothed)]
    )  # [n_grid, n]
    scores = torch.stack([p.score(x) for p in smoothed])  # f*(x; σ): [n_grid, n, d]
    return (log_w.softmax(0).unsqueeze(-1) * scores).sum(0)


def gaussian_entropy(cov: Tensor) -> Tensor:
    """H(N(μ, Σ)) = ½ log det(2πe Σ); ``cov``: ``[..., d, d]``."""
    d = cov.shape[-1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + torch.logdet(cov))
