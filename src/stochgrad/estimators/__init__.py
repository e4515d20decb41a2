"""Gradient estimators for d/dθ E_{p(b|θ)}[f(b)] (papers 003, 004)."""

from .control_variates import (
    ConcreteControlVariate,
    ControlVariate,
    MovingAverageBaseline,
    NeuralBaseline,
    NeuralControlVariate,
    RelaxedInput,
    SumControlVariate,
    concrete,
    mlp,
)
from .estimators import (
    Estimate,
    GradientEstimator,
    dlax,
    lax,
    muprop,
    rebar,
    reinforce,
    relax,
    reparameterization,
    score_term,
    variance_loss,
)
from .relaxations import BernoulliRelaxation, CategoricalRelaxation, Relaxation, as_relaxation

__all__ = [
    "BernoulliRelaxation",
    "CategoricalRelaxation",
    "ConcreteControlVariate",
    "ControlVariate",
    "Estimate",
    "GradientEstimator",
    "MovingAverageBaseline",
    "NeuralBaseline",
    "NeuralControlVariate",
    "Relaxation",
    "RelaxedInput",
    "SumControlVariate",
    "as_relaxation",
    "concrete",
    "dlax",
    "lax",
    "mlp",
    "muprop",
    "rebar",
    "reinforce",
    "relax",
    "reparameterization",
    "score_term",
    "variance_loss",
]
