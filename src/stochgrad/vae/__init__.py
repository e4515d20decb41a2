"""Variational autoencoders trained with the library's estimators (issue 11).

Discrete latents (003 section 6.2, App. C.1; 004 Table 1): :class:`BinaryVAE` built by
:func:`make_model` (``"linear1"``, ``"linear2"``, ``"nonlinear"``), its encoder trained by
:class:`DiscreteEstimator` (``"nvil"``, ``"concrete"``, ``"rebar"``, ``"relax"``) in :func:`step`.
"""

from .discrete import (
    MODELS,
    BinaryVAE,
    LayerObjective,
    bernoulli_log_prob,
    linear_vae,
    make_model,
    nonlinear_vae,
)
from .discrete_training import (
    ESTIMATORS,
    DiscreteEstimator,
    DiscreteGradients,
    RelaxedObjective,
    estimate_gradients,
    step,
)

__all__ = [
    "ESTIMATORS",
    "MODELS",
    "BinaryVAE",
    "DiscreteEstimator",
    "DiscreteGradients",
    "LayerObjective",
    "RelaxedObjective",
    "bernoulli_log_prob",
    "estimate_gradients",
    "linear_vae",
    "make_model",
    "nonlinear_vae",
    "step",
]
