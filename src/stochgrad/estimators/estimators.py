"""Surrogates for d/dθ E_{p(b|θ)}[f(b)] (003 eqs. 2, 3, 8, 10; 004 eqs. 7, 11).

Every estimator returns an :class:`Estimate` whose ``surrogate`` has, under autograd, the
gradient estimate ĝ with respect to the distribution's parameters (and anything upstream of
them).  Estimators never call ``backward``.  Conventions:

* ``f(b) -> [batch]``; the distribution's leading dimension is the batch and log-probabilities
  are summed over all other dimensions (independent latent units).
* If ``f(b)`` itself depends on θ (004 eq. 11: a likelihood, a regularizer, ``-log q``), its
  pathwise term ``∂f/∂θ`` is included automatically: return ``f`` attached to the graph.
* Control variates and baselines keep their dependence on φ in ĝ, so the variance objective
  (:func:`variance_loss`) can differentiate ĝ with respect to φ.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ._checks import check_finite, evaluate_f
from .control_variates import ControlVariate
from .relaxations import Relaxation, as_relaxation

Objective = Callable[[Tensor], Tensor]


@dataclass
class Estimate:
    """Result of an estimator.

    surrogate: scalar whose gradient is ĝ (mean or sum over the batch).
    per_example: ``[batch]`` surrogates before reduction.
    sample: b, ``[batch, ...]`` (detached).
    f: f(b), ``[batch]`` (detached).
    log_prob: log p(b|θ) summed over units, ``[batch]`` (attached to θ).
    z, z_tilde: relaxed samples where the estimator uses them.
    """

    surrogate: Tensor
    per_example: Tensor
    sample: Tensor
    f: Tensor
    log_prob: Tensor
    z: Tensor | None = None
    z_tilde: Tensor | None = None


def _sum_units(x: Tensor, batch: int) -> Tensor:
    """Sum a per-unit tensor ``[batch, ...]`` to ``[batch]``."""
    return x.reshape(batch, -1).sum(-1)


def _reduce(per_example: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_example.mean()
    if reduction == "sum":
        return per_example.sum()
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def score_term(coef: Tensor, log_p: Tensor) -> Tensor:
    """A term whose θ-gradient is ``coef · ∂ log p/∂θ`` with ``coef`` held constant in θ.

    ``coef`` may depend on θ (REBAR's f(σ_λ(z̃)), a VAE's -log q) and on φ: the product
    ``(coef - stop(coef)) (log p - stop(log p))`` is zero in value and in θ-gradient, yet
    keeps ∂ĝ/∂φ = ∂coef/∂φ · ∂ log p/∂θ for the variance objective.
    """
    return coef.detach() * log_p + (coef - coef.detach()) * (log_p - log_p.detach())


def _finish(
    fb: Tensor, per_example: Tensor, b: Tensor, log_prob: Tensor, reduction: str, **extra: Tensor
) -> Estimate:
    if fb.requires_grad:  # 004 eq. 11: f depends on θ directly, add its pathwise gradient
        per_example = per_example + fb
    return Estimate(
        _reduce(per_example, reduction), per_example, b.detach(), fb.detach(), log_prob, **extra
    )


def _batch_of(x: Tensor, name: str) -> int:
    if x.dim() < 1:
        raise ValueError(f"{name} must have a leading batch dimension, got a scalar")
    return x.shape[0]


def reinforce(
    dist: torch.distributions.Distribution | Relaxation,
    f: Objective,
    baseline: Tensor | float | None = None,
    *,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
) -> Estimate:
    """Score-function estimator ĝ = (f(b) - baseline) ∂/∂θ log p(b|θ) (003 eq. 2).

    ``baseline``: a number, ``[batch]`` tensor or ``None``; it may carry the graph of its own
    parameters (for the variance objective); any dependence on θ is ignored.
    """
    if isinstance(dist, torch.distributions.Distribution) and not isinstance(
        dist,
        (
            torch.distributions.Bernoulli,
            torch.distributions.Categorical,
            torch.distributions.OneHotCategorical,
        ),
    ):
        with torch.no_grad():
            b = dist.sample()
        log_p = dist.log_prob(b)
    else:
        relaxation = as_relaxation(dist)
        b = relaxation.sample(generator)
        log_p = relaxation.log_prob(b)
    batch = _batch_of(b, "dist batch shape")
    log_p = _sum_units(log_p, batch)
    fb = evaluate_f(f, b, batch)
    coef = fb
    if baseline is not None:
        if isinstance(baseline, Tensor):
            check_finite(baseline.detach(), "baseline")
            if baseline.shape not in ((), (batch,)):
                raise ValueError(
                    f"baseline must be a number or have shape [batch] = ({batch},), "
                    f"got {tuple(baseline.shape)}"
                )
        coef = coef - baseline
    return _finish(fb, score_term(coef, log_p), b, log_p, reduction)


def reparameterization(
    dist: torch.distributions.Distribution, f: Objective, *, reduction: str = "mean"
) -> Estimate:
    """Pathwise estimator ĝ = ∂f(b(θ, ε))/∂θ (003 eq. 3); needs ``dist.has_rsample``."""
    if not getattr(dist, "has_rsample", False):
        raise TypeError(
            f"dist must support rsample (reparameterization), got {type(dist).__name__}"
        )
    b = dist.rsample()
    batch = _batch_of(b, "dist batch shape")
    fb = evaluate_f(f, b, batch)
    log_p = _sum_units(dist.log_prob(b.detach()), batch)
    return Estimate(_reduce(fb, reduction), fb, b.detach(), fb.detach(), log_p)


def lax(
    dist: torch.distributions.Distribution,
    f: Objective,
    control_variate: ControlVariate,
    cond: Tensor | None = None,
    *,
    reduction: str = "mean",
) -> Estimate:
    """LAX: ĝ = [f(b) - c_φ(b)] ∂/∂θ log p(b|θ) + ∂/∂θ c_φ(b), b = T(θ, ε) (003 eq. 8).

    ``f`` is only queried (black box); ``dist`` must support ``rsample``.  c_φ may depend on θ
    only through b (unlike RELAX, whose c(z) and c(z̃) terms cancel any direct dependence).
    """
    if not getattr(dist, "has_rsample", False):
        raise TypeError(f"LAX needs a reparameterizable dist (rsample), got {type(dist).__name__}")
    b = dist.rsample()
    batch = _batch_of(b, "dist batch shape")
    b_fixed = b.detach()
    log_p = _sum_units(dist.log_prob(b_fixed), batch)
    fb = evaluate_f(f, b_fixed, batch)
    c = control_variate(b, f, cond)  # reparameterized in θ
    per_example = score_term(fb - c, log_p) + c
    return _finish(fb, per_example, b, log_p, reduction, z=b)


def _relaxed_sample(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    generator: torch.Generator | None,
) -> tuple[Relaxation, Tensor, Tensor, int, Tensor, Tensor]:
    """z ~ p(z|θ), b = H(z), log p(b|θ) summed over units, and f(b) (checked)."""
    relaxation = as_relaxation(dist)
    z = relaxation.rsample_z(relaxation.sample_noise(generator))
    b = relaxation.hard(z)
    batch = _batch_of(b, "logits")
    log_p = _sum_units(relaxation.log_prob(b), batch)
    return relaxation, z, b, batch, log_p, evaluate_f(f, b, batch)


def relax(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    control_variate: ControlVariate,
    cond: Tensor | None = None,
    *,
    tied_noise: bool = True,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
) -> Estimate:
    """RELAX: ĝ = [f(b) - c_φ(z̃)] ∂ log p(b|θ) + ∂ c_φ(z) - ∂ c_φ(z̃) (003 eq. 10).

    b = H(z), z ~ p(z|θ), z̃ ~ p(z|b, θ).  ``tied_noise`` draws z̃ from the same uniform as z.
    REBAR is the special case ``control_variate = ConcreteControlVariate(...)``.
    """
    relaxation, z, b, _, log_p, fb = _relaxed_sample(dist, f, generator)
    z_tilde = relaxation.conditional_z(b, z if tied_noise else None, generator)
    c_tilde = control_variate(z_tilde, f, cond)
    per_example = score_term(fb - c_tilde, log_p) + control_variate(z, f, cond) - c_tilde
    return _finish(fb, per_example, b, log_p, reduction, z=z, z_tilde=z_tilde)


def rebar(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    control_variate: ControlVariate,
    cond: Tensor | None = None,
    *,
    tied_noise: bool = True,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
) -> Estimate:
    """REBAR (Tucker et al. 2017): RELAX with c(z) = η f(σ_λ(z)) (003 section 3.4).

    Pass a :class:`ConcreteControlVariate` (η and λ learnable) as ``control_variate``.
    """
    return relax(
        dist,
        f,
        control_variate,
        cond,
        tied_noise=tied_noise,
        reduction=reduction,
        generator=generator,
    )


def dlax(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    control_variate: ControlVariate,
    cond: Tensor | None = None,
    *,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
) -> Estimate:
    """DLAX: ĝ = f(b) ∂ log p(b|θ) - c_φ(z) ∂ log p(z|θ) + ∂ c_φ(z), b = H(z) (004 eq. 7).

    As for LAX, c_φ may depend on θ only through z: a ``ConcreteControlVariate`` over an f that
    depends on θ itself (004 eq. 11) makes DLAX biased; use RELAX/REBAR there.
    """
    relaxation, z, b, batch, log_p, fb = _relaxed_sample(dist, f, generator)
    log_p_z = _sum_units(relaxation.log_prob_z(z.detach()), batch)
    c = control_variate(z, f, cond)
    per_example = score_term(fb, log_p) - score_term(c, log_p_z) + c
    return _finish(fb, per_example, b, log_p, reduction, z=z)


def variance_loss(
    estimate: Estimate, wrt: Tensor | list[Tensor], kind: str = "single"
) -> tuple[Tensor, list[Tensor]]:
    """Objective whose φ-gradient lowers the estimator's variance (003 section 3.3, eq. 11).

    ``kind="single"``: Σ ĝ², with ĝ = ∂ surrogate / ∂ wrt; its gradient 2 ĝ ∂ĝ/∂φ is an
    unbiased estimate of ∂ Var(ĝ)/∂φ.  ``kind="batch"``: the empirical variance over the batch
    of the per-example gradients ``∂ per_example_i / ∂ wrt_i``; ``wrt`` is then one tensor
    ``[batch, ...]`` holding each example's own parameters (e.g. logits).

    Returns ``(loss, grads)``: ``grads`` are ĝ (with graph) so callers can also step θ.
    """
    params = [wrt] if isinstance(wrt, Tensor) else list(wrt)
    if kind == "single":
        grads = list(torch.autograd.grad(estimate.surrogate, params, create_graph=True))
        return sum(g.pow(2).sum() for g in grads), grads  # type: ignore[return-value]
    if kind == "batch":
        if len(params) != 1 or params[0].shape[:1] != estimate.per_example.shape:
            raise ValueError("kind='batch' needs one `wrt` tensor of shape [batch, ...]")
        (g,) = torch.autograd.grad(estimate.per_example.sum(), params, create_graph=True)
        per_example_grads = g.reshape(g.shape[0], -1)
        return per_example_grads.var(dim=0).sum(), [g]
    raise ValueError(f"kind must be 'single' or 'batch', got {kind!r}")


class GradientEstimator(nn.Module):
    """An estimator with its learnable parts, e.g. ``GradientEstimator("relax", cv)``.

    ``forward(dist, f, cond=None, **kw)`` returns an :class:`Estimate`; the module's
    parameters are φ, to be trained with :func:`variance_loss` at their own learning rate.
    """

    _functions: ClassVar[dict[str, Callable[..., Estimate]]] = {
        "lax": lax,
        "relax": relax,
        "rebar": rebar,
        "dlax": dlax,
    }

    def __init__(self, name: str, control_variate: ControlVariate) -> None:
        super().__init__()
        if name not in self._functions:
            raise ValueError(f"name must be one of {sorted(self._functions)}, got {name!r}")
        self.name = name
        self.control_variate = control_variate

    def forward(self, dist, f: Objective, cond: Tensor | None = None, **kwargs) -> Estimate:
        return self._functions[self.name](dist, f, self.control_variate, cond, **kwargs)

    variance_loss = staticmethod(variance_loss)
