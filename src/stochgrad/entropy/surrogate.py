"""The path-derivative entropy surrogate (000 eq. 1, App. A)."""

from __future__ import annotations

import torch
from torch import Tensor


def entropy_surrogate(x: Tensor, score: Tensor) -> Tensor:
    """A scalar whose gradient is -∇_θ H(q_θ), given x = g_θ(ε) attached to the sampler's graph
    and an estimate of the score ∇_x log q(x) (000 eq. 1).

    ∇_θ H = -E[∇_x log q(x)ᵀ J_θ g_θ(ε)], so E[score.detach() · x] has gradient -∇_θ H.
    ``x``, ``score``: ``[..., d]``; the mean is over all leading dimensions.  It acts as -H:
    add it to a loss that you minimize to *maximize* entropy, subtract it to minimize entropy.
    """
    for name, t in (("x", x), ("score", score)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if x.shape != score.shape:
        raise ValueError(
            f"score must have the shape of x {tuple(x.shape)}, got {tuple(score.shape)}"
        )
    if x.numel() == 0:
        raise ValueError(f"x is empty, shape {tuple(x.shape)}")
    for name, t in (("x", x), ("score", score)):  # a NaN would otherwise reach every gradient
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or Inf")
    return (score.detach() * x).sum(-1).mean()
