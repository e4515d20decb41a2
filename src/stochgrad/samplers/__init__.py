"""Samplers: implicit, hierarchical Gaussian, inverse autoregressive flow (paper 000)."""

from .samplers import (
    IAF,
    MADE,
    GaussianNet,
    HierarchicalSampler,
    ImplicitSampler,
    auxiliary_entropy_bound,
)

__all__ = [
    "IAF",
    "MADE",
    "GaussianNet",
    "HierarchicalSampler",
    "ImplicitSampler",
    "auxiliary_entropy_bound",
]
