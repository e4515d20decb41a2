"""Training a :class:`~stochgrad.vae.discrete.BinaryVAE` with the library's encoder estimators.

Estimators (003 section 6.2, Table 1):

* ``"nvil"``: REINFORCE with an input-dependent baseline b_ψ(x, b_{<l}) trained by squared error
  (Mnih & Gregor 2014; no signal normalization);
* ``"concrete"``: the biased relaxed objective f(σ_λ(z)) with every layer relaxed at a fixed
  temperature, differentiated by reparameterization (the paper's baseline);
* ``"rebar"``: RELAX with c(z) = η f(σ_λ(z)), η and λ learned (003 section 3.4);
* ``"relax"``: c(z) = η f(σ_λ(z)) + r_ρ(σ_λ(z)) (003 section 6.2), r_ρ a ReLU MLP whose input
  also holds the centred data x - mean and the lower hard layers (notes), with scale 0 at start;
* ``"muprop"`` (in :data:`ALL_ESTIMATORS`, not in the default :data:`ESTIMATORS`): MuProp (Gu
  et al. 2016; 003 Table 1's MuProp column), the Taylor expansion c(b) = f(μ̄) + f'(μ̄)·(b - μ̄)
  at the mean μ̄ = σ(logits) of q(b_l|b_{l-1}), plus an NVIL baseline b_ψ(x, b_{<l}) fitted to
  f(b) - c(b) by squared error (Gu et al.'s input-dependent baseline; their variance
  normalization is left out, as for ``"nvil"``).  "f at μ̄" is the same
  :class:`~stochgrad.vae.discrete.LayerObjective` called at the mean-field input μ̄ in [0, 1]:
  the lower layers are the hard samples, the layers above are hard samples drawn from the same
  noise u_{>l} given μ̄ (as the relaxed evaluations of REBAR/RELAX draw them given σ_λ(z)), so
  f'(μ̄) is the derivative at those fixed upper samples.  Gu et al. propagate means through the
  upper layers instead (a mean-field network); any fixed c keeps the estimate unbiased, the
  choice only changes its variance.

Every stochastic layer l has its own estimator (its own baseline or η, λ, r_ρ) for the logits of
q(b_l|b_{l-1}), applied to f(b_l) of :class:`~stochgrad.vae.discrete.LayerObjective` with the
layers above drawn from noise shared by all layers' estimators (so all see the same sample b).
003 App. C.1 does not spell this out; it is REBAR's per-layer scheme.  The decoder and prior
get the exact pathwise gradient ∂f(b)/∂ω at that sample.  Control-variate parameters are
trained on :func:`~stochgrad.estimators.variance_loss` (Σ ĝ² over the logits, 003 eq. 11).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..estimators import (
    BernoulliRelaxation,
    ConcreteControlVariate,
    NeuralBaseline,
    NeuralControlVariate,
    RelaxedInput,
    mlp,
    muprop,
    rebar,
    reinforce,
    relax,
    variance_loss,
)
from .discrete import BinaryVAE, LayerObjective, bernoulli_log_prob, logistic_noise

ESTIMATORS = ("nvil", "concrete", "rebar", "relax")
"""The estimators of 003 Table 1 that the ``vae-discrete`` experiment trains by default."""
ALL_ESTIMATORS = (*ESTIMATORS, "muprop")
"""Every name :class:`DiscreteEstimator` accepts."""


class _GivenNoise(BernoulliRelaxation):
    """A :class:`BernoulliRelaxation` whose uniform noise u ``[batch, n]`` is fixed in advance."""

    def __init__(self, logits: Tensor, u: Tensor) -> None:
        super().__init__(logits=logits)
        self._u = u

    def sample_noise(self, generator: torch.Generator | None = None) -> Tensor:
        return self._u


class RelaxedObjective(ConcreteControlVariate):
    """REBAR's c(z) = η f(σ_λ(z)) for one layer of a multi-layer VAE (003 section 3.4).

    If ``f`` has a ``relaxed(s, λ)`` method (a :class:`LayerObjective`) the layers above are
    relaxed at the same λ, so that c is continuous in z; otherwise c = η f(σ_λ(z)).
    ``batched``: :meth:`pair` evaluates c(z) and c(z̃) in one call of ``f.relaxed`` on the
    stacked ``[2, batch, n]`` input (one pass of the networks instead of two; the same values
    up to float rounding); otherwise, or for an ``f`` without ``relaxed``, in two calls.
    """

    def __init__(self, eta: float = 1.0, temperature: float = 0.5, batched: bool = True) -> None:
        super().__init__("bernoulli", eta=eta, temperature=temperature)
        self.batched = bool(batched)

    def forward(self, z: Tensor, f, cond: Tensor | None = None) -> Tensor:
        lam = self.temperature
        if hasattr(f, "relaxed"):
            return self.eta * f.relaxed(torch.sigmoid(z / lam), lam)
        return self.eta * f(torch.sigmoid(z / lam))

    def pair(self, z1: Tensor, z2: Tensor, f, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(c(z1), c(z2)), each ``[batch]``, for z1, z2 ``[batch, n]``."""
        if not (self.batched and hasattr(f, "relaxed")):
            return self(z1, f, cond), self(z2, f, cond)
        lam = self.temperature
        both = self.eta * f.relaxed(torch.sigmoid(torch.stack([z1, z2]) / lam), lam)
        return both[0], both[1]


class DiscreteEstimator(nn.Module):
    """The encoder's estimator with its learnable parts, one per stochastic layer.

    name: one of ``"nvil"``, ``"concrete"``, ``"rebar"``, ``"relax"``, ``"muprop"``.  temperature:
    initial λ (notes: 0.5; fixed for ``"concrete"``).  hidden: r_ρ's ReLU layers (003 App. C.1:
    2 or 4 layers of 200).  baseline_hidden: the NVIL (and MuProp) baseline's tanh layers.  batched: REBAR and RELAX
    evaluate f at σ_λ(z) and σ_λ(z̃) in one stacked decoder pass (:class:`RelaxedObjective`;
    ``False``: two passes, the same estimates up to float rounding).  Parameters (φ, ψ) go to
    their own optimizer.
    """

    def __init__(
        self,
        name: str,
        model: BinaryVAE,
        temperature: float = 0.5,
        hidden: tuple[int, ...] = (200, 200),
        baseline_hidden: tuple[int, ...] = (100,),
        batched: bool = True,
    ) -> None:
        super().__init__()
        if name not in ALL_ESTIMATORS:
            raise ValueError(f"estimator must be one of {ALL_ESTIMATORS}, got {name!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.name, self.temperature = name, float(temperature)
        parts: list[nn.Module] = []
        for layer, n in enumerate(model.n_latent):
            n_cond = model.n_x + sum(model.n_latent[:layer])  # [x - mean, b_{<l}]
            if name in ("nvil", "muprop"):
                parts.append(NeuralBaseline(mlp(n_cond, baseline_hidden, 1, nn.Tanh)))
            elif name == "rebar":
                parts.append(RelaxedObjective(1.0, temperature, batched))
            elif name == "relax":
                net = nn.Sequential(
                    RelaxedInput("bernoulli", temperature), mlp(n + n_cond, hidden, 1, nn.ReLU)
                )
                cv = RelaxedObjective(1.0, temperature, batched)
                cv = cv + NeuralControlVariate(net, scale=0.0)
                parts.append(cv)
        self.parts = nn.ModuleList(parts)
        self.to(model.prior_logits.dtype)


@dataclass
class DiscreteGradients:
    """What one gradient estimate produced.

    elbo: one-sample ELBO at the sample b, ``[batch]`` (detached).
    estimator_loss: scalar objective of the estimator's parameters (variance objective for
    rebar/relax, baseline squared error for nvil and muprop), ``None`` for concrete.
    samples: b_l per layer ``[batch, n_l]``; logit_grads: ĝ with respect to each layer's
    logits ``[batch, n_l]`` (gradient of the batch-mean objective, detached).
    """

    elbo: Tensor
    estimator_loss: Tensor | None
    samples: list[Tensor]
    logit_grads: list[Tensor]


def _decoder_parameters(model: BinaryVAE) -> list[Tensor]:
    return [*model.decoders.parameters(), model.prior_logits]


def _accumulate(params: list[Tensor], grads: list[Tensor]) -> None:
    for p, g in zip(params, grads):
        g = g.detach()
        p.grad = g.clone() if p.grad is None else p.grad + g


def _concrete(
    model: BinaryVAE, x: Tensor, noise: list[Tensor], temperature: float
) -> DiscreteGradients:
    """The relaxed objective E[f(σ_λ(z))] (biased), all layers relaxed; ``.grad`` accumulated."""
    values, logits_list, log_q = [], [], x.new_zeros(x.shape[0])
    h = x
    for layer in range(model.n_layers):
        logits = model.encoders[layer](h)
        logits.retain_grad()
        h = torch.sigmoid((logits + logistic_noise(noise[layer])) / temperature)
        log_q = log_q + bernoulli_log_prob(logits, h)
        values.append(h)
        logits_list.append(logits)
    (log_q - model.log_joint(x, values)).mean().backward()
    with torch.no_grad():  # the hard sample b = H(z) of the same noise, and its ELBO
        b1 = (logits_list[0] + logistic_noise(noise[0]) > 0).to(x.dtype)
        samples, _ = model.upper_layers(b1, 0, noise, None)
        elbo = -LayerObjective(model, x, 0, [], logits_list[0], noise)(b1)
    grads = [lg.grad.detach() for lg in logits_list]
    return DiscreteGradients(elbo, None, samples, grads)


def estimate_gradients(
    model: BinaryVAE,
    x: Tensor,
    estimator: DiscreteEstimator,
    generator: torch.Generator | None = None,
) -> DiscreteGradients:
    """Accumulate into ``.grad`` of the model's parameters the estimate of ∂(-ELBO)/∂(θ, ω).

    x: ``[batch, n_x]``.  The objective is the batch mean of f(b) = -(log p(x, b) - log q(b|x))
    (003 section 6.2).  The estimator's own parameters get nothing here: call
    ``out.estimator_loss.backward(inputs=list(estimator.parameters()))`` (as :func:`step` does).
    """
    if not isinstance(estimator, DiscreteEstimator):
        raise TypeError(f"estimator must be a DiscreteEstimator, got {type(estimator).__name__}")
    if len(estimator.parts) not in (0, model.n_layers):
        raise ValueError("estimator was built for a model with another number of layers")
    x = model.check_x(x)
    noise = model.sample_noise(x.shape[0], generator)
    if estimator.name == "concrete":
        return _concrete(model, x, noise, estimator.temperature)
    centred = model.centred(x)
    lower: list[Tensor] = []
    logits_list, grads, losses = [], [], []
    for layer, part in enumerate(estimator.parts):
        logits = model.encoders[layer](x if layer == 0 else lower[-1])
        f = LayerObjective(model, x, layer, list(lower), logits, noise)
        dist = _GivenNoise(logits, noise[layer])
        cond = torch.cat([centred, *lower], dim=-1)
        if estimator.name == "nvil":
            est = reinforce(dist, f, baseline=part(cond))
            losses.append(part.loss(est.f, cond))
        elif estimator.name == "muprop":
            est = muprop(dist, f, baseline=part(cond))
            losses.append(part.loss(est.f - est.control, cond))  # the baseline fits f - c
        elif estimator.name == "rebar":
            est = rebar(dist, f, part, cond)
        else:
            est = relax(dist, f, part, cond)
        # ĝ for the logits (Σ ĝ² is the variance objective) and, from the first layer's
        # surrogate, ∂f(b)/∂ω for the decoder and prior, in one backward pass
        params = _decoder_parameters(model) if layer == 0 else []
        var_loss, (g, *g_params) = variance_loss(est, logits, params=params)
        if estimator.name not in ("nvil", "muprop"):
            losses.append(var_loss)
        _accumulate(params, g_params)
        if layer == 0:
            elbo = -est.f
        lower.append(est.sample)
        logits_list.append(logits)
        grads.append(g.detach())
    torch.autograd.backward(logits_list, grads)  # ĝ through each layer's encoder
    return DiscreteGradients(elbo, sum(losses), lower, grads)


def step(
    model: BinaryVAE,
    x: Tensor,
    estimator: DiscreteEstimator,
    optimizer: torch.optim.Optimizer,
    estimator_optimizer: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> DiscreteGradients:
    """One training step on a batch ``x`` ``[batch, n_x]``: the model descends -ELBO with the
    estimator's gradient, and (if ``estimator_optimizer`` is given) the estimator's parameters
    descend their objective (003 eq. 11 for rebar/relax)."""
    optimizer.zero_grad(set_to_none=True)
    if estimator_optimizer is not None:
        estimator_optimizer.zero_grad(set_to_none=True)
    out = estimate_gradients(model, x, estimator, generator)
    if estimator_optimizer is not None and out.estimator_loss is not None:
        out.estimator_loss.backward(inputs=list(estimator.parameters()))
        estimator_optimizer.step()
    optimizer.step()
    out.estimator_loss = None if out.estimator_loss is None else out.estimator_loss.detach()
    return out
