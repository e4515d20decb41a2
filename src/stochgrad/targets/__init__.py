"""Targets: energy functions and Gaussian mixtures with exact densities and scores."""

from .mixture import GaussianMixture, two_gaussians_1d
from .potentials import POTENTIALS, box_wall, get_potential, grid_density, u1, u2, u3, u4

__all__ = [
    "POTENTIALS",
    "GaussianMixture",
    "box_wall",
    "get_potential",
    "grid_density",
    "two_gaussians_1d",
    "u1",
    "u2",
    "u3",
    "u4",
]

# Gaussian targets with known entropy (paper 002 section 4.1)
from .gaussians import CircleMixture, Gaussian, isotropic_gaussian, paper_gaussian

__all__ += ["CircleMixture", "Gaussian", "isotropic_gaussian", "paper_gaussian"]
