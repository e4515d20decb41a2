"""The path-derivative entropy surrogate (000 eq. 1, App. A)."""

from __future__ import annotations

from torch import Tensor


def entropy_surrogate(x: Tensor, score: Tensor) -> Tensor:
    """A scalar whose gradient is -∇_θ H(q_θ), given x = g_θ(ε) attached to the sampler's graph
    and an estimate of the score ∇_x log q(x) (000 eq. 1).

    ∇_θ H = -E[∇_x log q(x)ᵀ J_θ g_θ(ε)], so E[score.detach() · x] has gradient -∇_θ H.
    ``x``, ``score``: ``[..., d]``; the mean is over all leading dimensions.  It acts as -H:
    add it to a loss that you minimize to *maximize* entropy, subtract it to minimize entropy.
    """
    if x.shape != score.shape:
        raise ValueError(
            f"score must have the shape of x {tuple(x.shape)}, got {tuple(score.shape)}"
        )
    return (score.detach() * x).sum(-1).mean()
