"""Entropy gradients of samplers without a density (AR-DAE, paper 000) and particle samplers
with closed-form entropy (SVGD, paper 002)."""

from .dae import ARDAE, RegularDAE, ResidualDAE, ScoreNetwork
from .exact import gaussian_entropy, optimal_dae
from .surrogate import entropy_surrogate

__all__ = [
    "ARDAE",
    "RegularDAE",
    "ResidualDAE",
    "ScoreNetwork",
    "entropy_surrogate",
    "gaussian_entropy",
    "optimal_dae",
]
