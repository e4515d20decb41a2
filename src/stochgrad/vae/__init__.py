"""Variational autoencoders trained with the library's estimators (issue 11).

Discrete latents (003 section 6.2, App. C.1; 004 Table 1): :class:`BinaryVAE` built by
:func:`make_model` (``"linear1"``, ``"linear2"``, ``"nonlinear"``), its encoder trained by
:class:`DiscreteEstimator` (``"nvil"``, ``"concrete"``, ``"rebar"``, ``"relax"``) in :func:`step`::

    model = make_model("linear1", x_mean=x_train.mean(0))
    est = DiscreteEstimator("relax", model)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.99999))
    est_opt = torch.optim.Adam(est.parameters(), lr=5e-3, betas=(0.9, 0.99999))  # 10x (notes)
    for x in batches:                                  # [24, 784] binary
        out = step(model, x, est, opt, est_opt)        # out.elbo: [24]
    model.iwae_bound(x_valid, n_samples=100)           # [n_valid]
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
