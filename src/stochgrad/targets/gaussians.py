"""Gaussian targets with known entropy (002 section 4.1, App. I Table 2).

:class:`Gaussian` has a closed-form entropy; :class:`CircleMixture`, M isotropic components on a
circle, has its entropy by Monte Carlo, computed once per instance and cached.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import MultivariateNormal

from .mixture import GaussianMixture


class Gaussian:
    """p = N(mean, cov) with score, energy and exact entropy.

    mean: ``[d]``; cov: ``[d, d]`` symmetric positive definite. Methods act on ``[..., d]``.
    """

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        mean = torch.as_tensor(mean)
        if not mean.is_floating_point():
            mean = mean.to(torch.get_default_dtype())
        cov = torch.as_tensor(cov, dtype=mean.dtype)
        if mean.dim() != 1:
            raise ValueError(f"mean must have shape [d], got {tuple(mean.shape)}")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(f"cov must have shape [{d}, {d}], got {tuple(cov.shape)}")
        if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
            raise ValueError("mean and cov must be finite")
        if not torch.allclose(cov, cov.T):
            raise ValueError("cov must be symmetric")
        chol, info = torch.linalg.cholesky_ex(cov)
        if info != 0:
            raise ValueError("cov must be positive definite")
        self.mean, self.cov, self._chol = mean, cov, chol
        self.precision = torch.cholesky_inverse(chol)
        self.dist = MultivariateNormal(mean, scale_tril=chol)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x), ``[...]``."""
        return self.dist.log_prob(x)

    def score(self, x: Tensor) -> Tensor:
        """∇_x log p(x) = -Σ⁻¹ (x - μ), ``[..., d]``."""
        return -(x - self.mean) @ self.precision

    def energy(self, x: Tensor) -> Tensor:
        """E(x) = ½ (x - μ)ᵀ Σ⁻¹ (x - μ), so that p ∝ exp(-E); ``[...]``."""
        diff = x - self.mean
        return 0.5 * ((diff @ self.precision) * diff).sum(-1)

    def sample(self, shape: tuple[int, ...] = (), generator: torch.Generator | None = None):
        """Samples ``[*shape, d]``."""
        eps = torch.randn(
            *shape, self.dim, dtype=self.mean.dtype, device=self.mean.device, generator=generator
        )
        return self.mean + eps @ self._chol.T

    def entropy(self) -> float:
        """H(p) = ½ log det(2πe Σ) (nats)."""
        return float(self.dist.entropy())


def isotropic_gaussian(d: int, variance: float, dtype: torch.dtype = torch.float64) -> Gaussian:
    """N(0, variance · I_d)."""
    if not (math.isfinite(variance) and variance > 0):
        raise ValueError(f"variance must be a finite number > 0, got {variance}")
    return Gaussian(torch.zeros(d, dtype=dtype), variance * torch.eye(d, dtype=dtype))


def paper_gaussian(dtype: torch.dtype = torch.float64) -> Gaussian:
    """The target of 002 section 4.1 / Table 2: N([-0.69, 0.8], [[1.13, 0.82], [0.82, 3.39]]),
    entropy 3.41 nats."""
    return Gaussian(
        torch.tensor([-0.69, 0.8], dtype=dtype),
        torch.tensor([[1.13, 0.82], [0.82, 3.39]], dtype=dtype),
    )


class CircleMixture(GaussianMixture):
    """Equal-weight mixture of ``n_components`` Gaussians N(μ_k, variance · I) in 2-D, with
    μ_k = radius · (cos 2πk/M, sin 2πk/M).

    002 Table 2 writes every component at [0, 0], which would make all mixtures the same
    Gaussian; we place the components evenly on a circle instead.
    """

    def __init__(
        self,
        n_components: int,
        radius: float = 3.0,
        variance: float = 0.1,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
            raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}")
        if not (math.isfinite(radius) and radius >= 0):
            raise ValueError(f"radius must be a finite number >= 0, got {radius}")
        if not (math.isfinite(variance) and variance > 0):
            raise ValueError(f"variance must be a finite number > 0, got {variance}")
        angle = 2 * math.pi * torch.arange(n_components, dtype=dtype) / n_components
        means = radius * torch.stack([angle.cos(), angle.sin()], -1)
        super().__init__(means, math.sqrt(variance))
        self.n_components, self.radius, self.variance = n_components, radius, variance
        self._entropy: dict[tuple[int, int], tuple[float, float]] = {}

    def energy(self, x: Tensor) -> Tensor:
        """E(x) = -log p(x), ``[...]``."""
        return -self.log_prob(x)

    def entropy_mc(self, n_samples: int = 1_000_000, seed: int = 0) -> tuple[float, float]:
        """Monte Carlo entropy ``-mean log p(x)``, x ~ p, and its standard error (nats).

        Computed once per ``(n_samples, seed)`` and cached; exact for one component.
        """
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        if self.n_components == 1:
            return math.log(2 * math.pi * math.e * self.variance), 0.0
        key = (n_samples, seed)
        if key not in self._entropy:
            gen = torch.Generator(device=self.means.device).manual_seed(seed)
            total, total_sq, done = 0.0, 0.0, 0
            while done < n_samples:  # chunks bound the memory of [n, M] log-densities
                n = min(200_000, n_samples - done)
                lp = self.log_prob(self.sample(n, generator=gen))
                total += float(lp.sum())
                total_sq += float(lp.pow(2).sum())
                done += n
            mean = total / n_samples
            var = max(total_sq / n_samples - mean**2, 0.0)
            self._entropy[key] = (-mean, math.sqrt(var / (n_samples - 1)))
        return self._entropy[key]

    def entropy(self) -> float:
        """Monte Carlo entropy with 10⁶ samples (see :meth:`entropy_mc`)."""
        return self.entropy_mc()[0]
