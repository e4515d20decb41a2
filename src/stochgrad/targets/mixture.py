"""Gaussian mixtures in any dimension, isotropic or with full covariances, with log-density,
score, Gaussian smoothing and sampling."""

from __future__ import annotations

import math

import torch
from torch import Tensor


class GaussianMixture:
    """p(x) = Σ_k w_k N(x; μ_k, Σ_k), with Σ_k = s_k² I (``stds``) or full (``covariances``).

    means: ``[K, d]``; stds: ``[K]`` (or a number); covariances: ``[K, d, d]`` (or ``[d, d]``,
    shared), symmetric positive definite; weights: ``[K]`` (normalized here).  Give exactly one
    of ``stds`` and ``covariances``.  ``stds`` is ``None`` for a full-covariance mixture.
    """

    def __init__(
        self,
        means: Tensor,
        stds: Tensor | float | None = None,
        weights: Tensor | None = None,
        covariances: Tensor | None = None,
    ) -> None:
        if not isinstance(means, Tensor):  # as_tensor would move a tensor to a default device
            means = torch.as_tensor(means)
        if means.dim() != 2:
            raise ValueError(f"means must have shape [K, d], got {tuple(means.shape)}")
        k, d = means.shape
        if (stds is None) == (covariances is None):
            raise ValueError("give exactly one of stds and covariances")
        self.stds: Tensor | None = None
        self.scale_tril: Tensor | None = None
        if stds is not None:
            stds = torch.as_tensor(stds, dtype=means.dtype, device=means.device).expand(k).clone()
            if not (stds > 0).all():
                raise ValueError("stds must be > 0")
            self.stds = stds
        else:
            cov = torch.as_tensor(covariances, dtype=means.dtype, device=means.device)
            if cov.shape == (d, d):
                cov = cov.expand(k, d, d)
            if cov.shape != (k, d, d):
                raise ValueError(
                    f"covariances must have shape [{k}, {d}, {d}] or [{d}, {d}], "
                    f"got {tuple(cov.shape)}"
                )
            if not torch.allclose(cov, cov.transpose(-1, -2)):
                raise ValueError("covariances must be symmetric")
            tril, info = torch.linalg.cholesky_ex(cov)
            if (info != 0).any():
                raise ValueError("covariances must be positive definite")
            self.scale_tril = tril  # Σ_k = L_k L_kᵀ
        weights = (
            torch.full((k,), 1.0 / k, dtype=means.dtype, device=means.device)
            if weights is None
            else torch.as_tensor(weights, dtype=means.dtype, device=means.device)
        )
        if weights.shape != (k,) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {k} non-negative numbers with a positive sum")
        self.means, self.weights = means, weights / weights.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def isotropic(self) -> bool:
        return self.stds is not None

    @property
    def covariances(self) -> Tensor:
        """Σ_k, ``[K, d, d]``."""
        if self.stds is not None:
            eye = torch.eye(self.dim, dtype=self.means.dtype, device=self.means.device)
            return self.stds[:, None, None] ** 2 * eye
        return self.scale_tril @ self.scale_tril.transpose(-1, -2)

    def smoothed(self, sigma: Tensor | float) -> GaussianMixture:
        """The mixture convolved with N(0, σ² I): Σ_k → Σ_k + σ² I."""
        sigma = torch.as_tensor(sigma, dtype=self.means.dtype, device=self.means.device)
        if self.stds is not None:
            return GaussianMixture(self.means, (self.stds**2 + sigma**2).sqrt(), self.weights)
        eye = torch.eye(self.dim, dtype=self.means.dtype, device=self.means.device)
        return GaussianMixture(
            self.means, weights=self.weights, covariances=self.covariances + sigma**2 * eye
        )

    def _whitened(self, x: Tensor) -> Tensor:
        """L_k⁻¹ (x - μ_k), ``[..., K, d]`` (full covariances)."""
        diff = x.to(self.means.dtype).unsqueeze(-2) - self.means  # [..., K, d]
        tril = self.scale_tril.expand(*diff.shape[:-1], self.dim, self.dim)
        return torch.linalg.solve_triangular(tril, diff.unsqueeze(-1), upper=False).squeeze(-1)

    def component_log_prob(self, x: Tensor) -> Tensor:
        """log w_k + log N(x; μ_k, Σ_k), ``[..., K]``."""
        if self.stds is None:
            half_logdet = self.scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # ½ log|Σ_k|
            sq = self._whitened(x).pow(2).sum(-1)
            return (
                self.weights.log() - 0.5 * sq - half_logdet - 0.5 * self.dim * math.log(2 * math.pi)
            )
        x = x.to(self.means.dtype)
        sq = (x.unsqueeze(-2) - self.means).pow(2).sum(-1)
        var = self.stds**2
        return self.weights.log() - 0.5 * sq / var - 0.5 * self.dim * torch.log(2 * math.pi * var)

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x), ``[...]``."""
        return torch.logsumexp(self.component_log_prob(x), dim=-1)

    def score(self, x: Tensor) -> Tensor:
        """∇_x log p(x) = Σ_k r_k(x) Σ_k⁻¹ (μ_k - x), ``[..., d]``."""
        resp = torch.softmax(self.component_log_prob(x), dim=-1)  # [..., K]
        if self.stds is None:
            white = self._whitened(x)  # L⁻¹ (x - μ)
            tril = self.scale_tril.expand(*white.shape[:-1], self.dim, self.dim)
            # Σ⁻¹ (μ - x) = -L⁻ᵀ L⁻¹ (x - μ)
            diff = -torch.linalg.solve_triangular(
                tril.transpose(-1, -2), white.unsqueeze(-1), upper=True
            ).squeeze(-1)
        else:
            diff = (self.means - x.to(self.means.dtype).unsqueeze(-2)) / self.stds[:, None] ** 2
        return (resp.unsqueeze(-1) * diff).sum(-2)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples, ``[n, d]``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(
            n, self.dim, dtype=self.means.dtype, device=self.means.device, generator=generator
        )
        if self.stds is None:
            return self.means[k] + (self.scale_tril[k] @ eps.unsqueeze(-1)).squeeze(-1)
        return self.means[k] + self.stds[k, None] * eps


def two_gaussians_1d() -> GaussianMixture:
    """p = 0.5 N(2, 0.5²) + 0.5 N(-2, 0.5²), the mixture of 000 section 4.2."""
    return GaussianMixture(torch.tensor([[2.0], [-2.0]], dtype=torch.float64), 0.5)


def anisotropic_mixture_2d() -> GaussianMixture:
    """Three 2-D Gaussians with full, differently oriented covariances (not in the papers):
    means (-2, 0), (2, 0.5), (0, 2.5); variances 1.0 and 0.05 along axes rotated by 30°, -45°
    and 90°; weights 0.4, 0.35, 0.25.  A test case for score models with anisotropic curvature."""
    dt = torch.float64
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.5], [0.0, 2.5]], dtype=dt)
    angles = torch.tensor([30.0, -45.0, 90.0], dtype=dt) * math.pi / 180
    rot = torch.stack(
        [
            torch.stack([angles.cos(), -angles.sin()], -1),
            torch.stack([angles.sin(), angles.cos()], -1),
        ],
        -2,
    )  # [3, 2, 2]
    diag = torch.diag(torch.tensor([1.0, 0.05], dtype=dt))
    covs = rot @ diag @ rot.transpose(-1, -2)
    return GaussianMixture(
        means, weights=torch.tensor([0.4, 0.35, 0.25], dtype=dt), covariances=covs
    )
