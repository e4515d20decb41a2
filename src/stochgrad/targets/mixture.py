"""Mixtures of isotropic Gaussians in any dimension, with log-density, score and sampling."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class GaussianMixture:
    """p(x) = Σ_k w_k N(x; μ_k, s_k² I).

    means: ``[K, d]``; stds: ``[K]`` (or a number); weights: ``[K]`` (normalized here).
    """

    def __init__(self, means: Tensor, stds: Tensor | float, weights: Tensor | None = None) -> None:
        means = torch.as_tensor(means)
        if means.dim() != 2:
            raise ValueError(f"means must have shape [K, d], got {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=means.dtype).expand(k).clone()
        if not (stds > 0).all():
            raise ValueError("stds must be > 0")
        weights = (
            torch.full((k,), 1.0 / k, dtype=means.dtype)
            if weights is None
            else torch.as_tensor(weights, dtype=means.dtype)
        )
        if weights.shape != (k,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        self.means, self.stds, self.weights = means, stds, weights / weights.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def smoothed(self, sigma: Tensor | float) -> GaussianMixture:
        """The mixture convolved with N(0, σ² I)."""
        sigma = torch.as_tensor(sigma, dtype=self.means.dtype)
        return GaussianMixture(self.means, (self.stds**2 + sigma**2).sqrt(), self.weights)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; μ_k, s_k² I), ``[..., K]``."""
        x = x.to(self.means.dtype)
        sq = (x.unsqueeze(-2) - self.means).pow(2).sum(-1)
        var = self.stds**2
        return self.weights.log() - 0.5 * sq / var - 0.5 * self.dim * torch.log(2 * math.pi * var)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x), ``[...]``."""
        return torch.logsumexp(self.component_log_prob(x), dim=-1)

    def score(self, x: Tensor) -> Tensor:
        """∇_x log p(x) = Σ_k r_k(x) (μ_k - x)/s_k², ``[..., d]``."""
        resp = torch.softmax(self.component_log_prob(x), dim=-1)  # [..., K]
        diff = (self.means - x.to(self.means.dtype).unsqueeze(-2)) / self.stds[:, None] ** 2
        return (resp.unsqueeze(-1) * diff).sum(-2)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples, ``[n, d]``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, dtype=self.means.dtype, generator=generator)
        return self.means[k] + self.stds[k, None] * eps


def two_gaussians_1d() -> GaussianMixture:
    """p = 0.5 N(2, 0.5²) + 0.5 N(-2, 0.5²), the mixture of 000 section 4.2."""
    return GaussianMixture(torch.tensor([[2.0], [-2.0]], dtype=torch.float64), 0.5)
