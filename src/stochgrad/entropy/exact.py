"""Exact references: the optimal residual DAE f* for isotropic Gaussian mixtures (000 Prop. 1,
App. D.1) and closed-form Gaussian entropies."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..targets.mixture import GaussianMixture


def optimal_dae(x: Tensor, sigma: float | Tensor, mixture: GaussianMixture) -> Tensor:
    """f*(x; σ) = -E_u[p(x - σu) u] / (σ E_u[p(x - σu)]) for p an isotropic Gaussian mixture.

    p(x - σu) N(u; 0, I) is Gaussian in u, so f* is the score of the mixture smoothed by
    N(0, σ² I): f*(x; σ) = ∇_x log Σ_k w_k N(x; μ_k, (s_k² + σ²) I) (Prop. 1; denoising score
    matching).  At σ = 0 this is ∇_x log p.  ``x``: ``[..., d]``.
    """
    sigma = torch.as_tensor(sigma, dtype=x.dtype)
    if sigma.dim() != 0:
        raise ValueError(f"sigma must be a number, got a tensor of shape {tuple(sigma.shape)}")
    return mixture.smoothed(sigma).score(x)


def gaussian_entropy(cov: Tensor) -> Tensor:
    """H(N(μ, Σ)) = ½ log det(2πe Σ); ``cov``: ``[..., d, d]``."""
    d = cov.shape[-1]
    return 0.5 * (d * math.log(2 * math.pi * math.e) + torch.logdet(cov))
