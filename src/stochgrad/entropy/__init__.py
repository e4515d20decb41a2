"""Entropy gradients of samplers without a density (AR-DAE, paper 000) and particle samplers
with closed-form entropy (SVGD, paper 002)."""

from .dae import ARDAE, RegularDAE, ResidualDAE, ScoreNetwork
from .exact import gaussian_entropy, optimal_dae, sigma_blind_dae
from .surrogate import entropy_surrogate

__all__ = [
    "ARDAE",
    "RegularDAE",
    "ResidualDAE",
    "ScoreNetwork",
    "entropy_surrogate",
    "gaussian_entropy",
    "optimal_dae",
    "sigma_blind_dae",
]

# SVGD with tracked log-density, Langevin / HMC comparison (paper 002)
from .langevin import dld, hmc, langevin, particle_jacobian, sgld
from .svgd import (
    Diagnostics,
    ParticleResult,
    bandwidth_heuristic,
    entropy_estimate,
    rbf_kernel,
    score_from_energy,
    score_jacobian_trace,
    svgd,
    svgd_direction,
    svgd_jacobian,
    svgd_step,
    svgd_trace_closed_form,
)

__all__ += [
    "Diagnostics",
    "ParticleResult",
    "bandwidth_heuristic",
    "dld",
    "entropy_estimate",
    "hmc",
    "langevin",
    "particle_jacobian",
    "rbf_kernel",
    "score_from_energy",
    "score_jacobian_trace",
    "sgld",
    "svgd",
    "svgd_direction",
    "svgd_jacobian",
    "svgd_step",
    "svgd_trace_closed_form",
]
