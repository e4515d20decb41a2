"""Variational autoencoders trained with the library's estimators (issue 11).

Discrete latents (003 section 6.2, App. C.1; 004 Table 1): :class:`BinaryVAE` built by
:func:`make_model` (``"linear1"``, ``"linear2"``, ``"nonlinear"``), its encoder trained by
:class:`DiscreteEstimator` (``"nvil"``, ``"concrete"``, ``"rebar"``, ``"relax"``, and
``"muprop"``, see :data:`ALL_ESTIMATORS`) in :func:`step`::

    model = make_model("linear1", x_mean=x_train.mean(0))
    est = DiscreteEstimator("relax", model)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4, betas=(0.9, 0.99999))
    est_opt = torch.optim.Adam(est.parameters(), lr=5e-3, betas=(0.9, 0.99999))  # 10x (notes)
    for x in batches:                                  # [24, 784] binary
        out = step(model, x, est, opt, est_opt)        # out.elbo: [24]
    model.iwae_bound(x_valid, n_samples=100)           # [n_valid]

Continuous latents (000 section 6.2, App. F): :class:`ContinuousVAE` built by
:func:`make_continuous_vae` (``"gaussian"``, ``"hvi-aux"``, ``"hvi-ardae"``, ``"ivi-ardae"``),
trained by :func:`continuous_step` (AR-DAE methods: Algorithm 1 with :func:`make_ardae`) and
evaluated by :func:`log_px` (importance sampling)::

    model = make_continuous_vae("ivi-ardae", x_mean=x_train.mean(0))
    ardae = make_ardae(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999))  # Table 8
    ardae_opt = torch.optim.RMSprop(ardae.parameters(), lr=1e-4, alpha=0.5)
    for x in batches:                                  # [128, 784] binary
        continuous_step(model, x, opt, ardae, ardae_opt, n_z=625, n_ardae_updates=2)
    log_px(model, x_test, n_samples=1000)              # [n_test]
"""

from .continuous import (
    ARCHITECTURES,
    ARDAE_METHODS,
    LIKELIHOODS,
    METHODS,
    AuxiliaryPosterior,
    ContinuousStep,
    ContinuousVAE,
    ConvDecoder,
    GaussianPosterior,
    HierarchicalPosterior,
    ImplicitPosterior,
    ardae_loss,
    ardae_model_loss,
    continuous_step,
    conv_encoder,
    log_px,
    make_ardae,
    make_continuous_vae,
)
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
    ALL_ESTIMATORS,
    ESTIMATORS,
    DiscreteEstimator,
    DiscreteGradients,
    RelaxedObjective,
    estimate_gradients,
    step,
)

__all__ = [
    "ALL_ESTIMATORS",
    "ARCHITECTURES",
    "ARDAE_METHODS",
    "ESTIMATORS",
    "LIKELIHOODS",
    "METHODS",
    "MODELS",
    "AuxiliaryPosterior",
    "BinaryVAE",
    "ContinuousStep",
    "ContinuousVAE",
    "ConvDecoder",
    "DiscreteEstimator",
    "DiscreteGradients",
    "GaussianPosterior",
    "HierarchicalPosterior",
    "ImplicitPosterior",
    "LayerObjective",
    "RelaxedObjective",
    "ardae_loss",
    "ardae_model_loss",
    "bernoulli_log_prob",
    "continuous_step",
    "conv_encoder",
    "estimate_gradients",
    "linear_vae",
    "log_px",
    "make_ardae",
    "make_continuous_vae",
    "make_model",
    "nonlinear_vae",
    "step",
]
