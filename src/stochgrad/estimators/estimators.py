"""Surrogates for d/dθ E_{p(b|θ)}[f(b)] (003 eqs. 2, 3, 8, 10; 004 eqs. 7, 11).

Every estimator returns an :class:`Estimate` whose ``surrogate`` has, under autograd, the
gradient estimate ĝ with respect to the distribution's parameters (and anything upstream of
them).  Estimators never call ``backward``.  Conventions:

* ``f(b) -> [batch]``; the distribution's leading dimension is the batch and log-probabilities
  are summed over all other dimensions (independent latent units).
* What ``f`` receives follows ``torch.distributions``: ``reinforce`` hands it what ``sample()``
  returns (indices for ``Categorical``, one-hot for ``OneHotCategorical`` and
  :class:`CategoricalRelaxation`, 0/1 floats for Bernoulli).  RELAX, REBAR and DLAX hand it
  float vectors: ``b`` as 0/1 or one-hot ``[batch, ..., k]`` (also for a ``Categorical``), and
  REBAR's control variate evaluates it at relaxed vectors ``σ_λ(z)`` in (0, 1) or the simplex.
* If ``f(b)`` itself depends on θ (004 eq. 11: a likelihood, a regularizer, ``-log q``) or on
  other parameters ω (a decoder's weights), return it attached to the graph: its pathwise
  term ``∂f(b)/∂θ, ∂f(b)/∂ω`` is included, and every estimator is unbiased for ω as well.
* Control variates and baselines keep their dependence on φ in ĝ, so the variance objective
  (:func:`variance_loss`) can differentiate ĝ with respect to φ.

Pathwise terms of a control variate (LAX, DLAX).  Write ``c(z)`` with all its other inputs:
φ, and in REBAR's ``c = η f(σ_λ(z))`` the parameters ω of f (and θ itself under 004 eq. 11).
The score-function estimate of ∂E[c] for any parameter ψ is ``c ∂ψ log p(z) + ∂ψ c|_z``
(the second term: c's direct dependence on ψ at fixed z), the reparameterized one is
``∂ψ c|_z + ∂c/∂z · ∂z/∂ψ``.  Their difference, which LAX and DLAX add to the score-function
estimate of f, is ``∂c/∂z · ∂z/∂ψ - c ∂ψ log p(z)``: the direct terms cancel exactly.  So the
pathwise term of c must reach the parameters only through the sample z; adding ``c(z)`` whole
(as 004 eq. 7 is often coded) also adds ``∂ω c|_z``, which nothing cancels, and biases every
ω inside f.  We add ``c(z) - c(stop(z))``: zero in value, gradient ``∂c/∂z · ∂z/∂(·)`` for
any parameter, and still a function of φ for the variance objective.  As a consequence a
plain ``surrogate.backward()`` leaves (up to rounding) zero in the control variate's ``.grad``.
In RELAX (003 eq. 10) ``c(z) - c(z̃)`` already cancels the direct terms in expectation (z and
z̃ have the same marginal), exactly with tied noise (z̃ = z in value); with untied noise each
sample adds a zero-mean ``∂ω c(z) - ∂ω c(z̃)`` to ω's gradient and to φ's ``.grad`` (pass
``inputs=`` to ``backward`` to keep φ's ``.grad`` clean).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import torch
from torch import Tensor, nn

from ._checks import check_batch, check_finite, check_tensor, evaluate_f
from .control_variates import ControlVariate
from .relaxations import BernoulliRelaxation, CategoricalRelaxation, Relaxation, as_relaxation

Objective = Callable[[Tensor], Tensor]
_DISCRETE = (
    torch.distributions.Bernoulli,
    torch.distributions.Categorical,
    torch.distributions.OneHotCategorical,
)


@dataclass
class Estimate:
    """Result of an estimator.

    per_example: ``[batch]`` surrogates; ``surrogate`` reduces them (computed on first access).
    sample: b, ``[batch, ...]`` (detached; indices ``[batch, ...]`` for a torch ``Categorical``
    in ``reinforce``).
    f: f(b), ``[batch]`` (detached).
    log_prob: log p(b|θ) summed over units, ``[batch]`` (attached to θ).
    z, z_tilde: relaxed samples where the estimator uses them.
    reduction: ``"mean"`` or ``"sum"``, how ``surrogate`` reduces ``per_example``.
    control: c(b), a control variate's value at the sample, ``[batch]`` (detached), where the
    estimator has one (MuProp's Taylor expansion; a baseline is fitted to ``f - control``).
    """

    per_example: Tensor
    sample: Tensor
    f: Tensor
    log_prob: Tensor
    z: Tensor | None = None
    z_tilde: Tensor | None = None
    reduction: str = "mean"
    control: Tensor | None = None

    @cached_property
    def surrogate(self) -> Tensor:
        """Scalar whose gradient is ĝ: the mean (or sum) of ``per_example`` over the batch."""
        if self.reduction == "mean":
            return self.per_example.mean()
        return self.per_example.sum()


def _sum_units(x: Tensor, batch: int) -> Tensor:
    """Sum a per-unit tensor ``[batch, ...]`` to ``[batch]``."""
    if x.dim() <= 2:
        return x if x.dim() == 1 else x.sum(-1)
    return x.reshape(batch, -1).sum(-1)


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def score_term(coef: Tensor, log_p: Tensor) -> Tensor:
    """A term whose θ-gradient is ``coef · ∂ log p/∂θ`` with ``coef`` held constant in θ.

    ``coef`` may depend on θ (REBAR's f(σ_λ(z̃)), a VAE's -log q), on φ and on ω (f's own
    parameters): ``coef (log p - stop(log p)) + stop(coef) stop(log p)`` has the value
    ``coef · log p``, θ-gradient ``coef · ∂ log p/∂θ``, zero gradient for anything inside
    ``coef``, and keeps ∂ĝ/∂φ = ∂coef/∂φ · ∂ log p/∂θ for the variance objective.  A ``coef``
    without graph takes the plain product.
    """
    if not coef.requires_grad:
        return coef * log_p
    log_p_fixed = log_p.detach()
    return coef * (log_p - log_p_fixed) + coef.detach() * log_p_fixed


def _finish(
    fb: Tensor,
    per_example: Tensor,
    b: Tensor,
    log_prob: Tensor,
    reduction: str,
    **extra: Tensor,
) -> Estimate:
    if fb.requires_grad:  # 004 eq. 11: f depends on θ or ω directly, add its pathwise gradient
        per_example = per_example + fb
        fb = fb.detach()
    if b.requires_grad:
        b = b.detach()
    return Estimate(per_example, b, fb, log_prob, reduction=reduction, **extra)


def _given_sample(
    dist: torch.distributions.Distribution | Relaxation, sample: Tensor
) -> tuple[Tensor, Tensor]:
    """(b, log p(b|θ)) for a caller-drawn ``sample`` of ``dist`` (detached, checked)."""
    b = check_finite(check_tensor(sample, "sample"), "sample").detach()
    if isinstance(dist, torch.distributions.Categorical):
        relaxation = CategoricalRelaxation(logits=dist.logits)
        if b.shape != relaxation.logits.shape[:-1] or b.is_floating_point():
            raise ValueError(
                f"sample must be class indices of shape {tuple(relaxation.logits.shape[:-1])} "
                f"for a Categorical, got dtype {b.dtype} shape {tuple(b.shape)}"
            )
        return b, relaxation.log_theta.gather(-1, b.unsqueeze(-1)).squeeze(-1)
    if isinstance(dist, torch.distributions.Distribution) and not isinstance(dist, _DISCRETE):
        return b, dist.log_prob(b)
    relaxation = as_relaxation(dist, "reinforce")
    if b.shape != relaxation.logits.shape:
        raise ValueError(
            f"sample must have the shape of the logits {tuple(relaxation.logits.shape)} "
            f"(0/1 or one-hot floats), got {tuple(b.shape)}"
        )
    return b, relaxation.log_prob(b)


def _check_baseline(baseline: object, batch: int) -> Tensor | float:
    if isinstance(baseline, Tensor):
        check_finite(baseline, "baseline")
        if baseline.shape not in ((), (batch,)):
            raise ValueError(
                f"baseline must be a number or have shape [batch] = ({batch},), "
                f"got {tuple(baseline.shape)}"
            )
        return baseline
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise ValueError(f"baseline must be a finite number, got {baseline}")
        return float(baseline)
    raise TypeError(
        f"baseline must be a number, a tensor of shape [] or [batch], or None; "
        f"got {type(baseline).__name__}"
    )


def _check_control_variate(control_variate: object, estimator: str) -> None:
    if control_variate is None or not callable(control_variate):
        raise TypeError(
            f"{estimator} needs control_variate: a ControlVariate module called as "
            f"c(z, f, cond) -> [batch], got {type(control_variate).__name__}"
            + ("; for no control variate use reinforce" if control_variate is None else "")
        )


def _pair(
    control_variate: ControlVariate, z1: Tensor, z2: Tensor, f: Objective, cond: Tensor | None
) -> tuple[Tensor, Tensor]:
    """``(c(z1), c(z2))`` in one ``pair`` call; a dtype mismatch becomes a clear TypeError."""
    try:
        if hasattr(control_variate, "pair"):
            return control_variate.pair(z1, z2, f, cond)
        return control_variate(z1, f, cond), control_variate(z2, f, cond)
    except RuntimeError as exc:
        if isinstance(control_variate, nn.Module):
            dtypes = {p.dtype for p in control_variate.parameters() if p.is_floating_point()}
            if dtypes and dtypes != {z1.dtype}:
                names = ", ".join(sorted(str(d) for d in dtypes))
                raise TypeError(
                    f"control_variate has parameters of dtype {names} but the sample z is "
                    f"{z1.dtype} (the dtype of the logits / distribution parameters); convert "
                    f"it with control_variate.to({z1.dtype})"
                ) from exc
        raise


def reinforce(
    dist: torch.distributions.Distribution | Relaxation,
    f: Objective,
    baseline: Tensor | float | None = None,
    *,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
    sample: Tensor | None = None,
) -> Estimate:
    """Score-function estimator ĝ = (f(b) - baseline) ∂/∂θ log p(b|θ) (003 eq. 2).

    ``f`` receives what ``dist.sample()`` returns: indices ``[batch, ...]`` for a torch
    ``Categorical``, one-hot ``[batch, ..., k]`` for ``OneHotCategorical`` and
    :class:`CategoricalRelaxation`, 0/1 floats for Bernoulli; masked classes (logit -inf) are
    never drawn.  ``baseline``: a finite number, ``[batch]`` tensor or ``None``; it may carry
    the graph of its own parameters (for the variance objective); any dependence on θ is
    ignored.  ``generator`` drives the draws of discrete distributions.  ``sample``: a b drawn
    beforehand from ``dist`` (in what ``sample()`` returns; e.g. the actions an RL rollout took),
    used instead of a new draw.
    """
    _check_reduction(reduction)
    if sample is not None:
        b, log_p = _given_sample(dist, sample)
    elif isinstance(dist, (BernoulliRelaxation, CategoricalRelaxation)):
        b = dist.sample(generator)
        log_p = dist.log_prob(b)
    elif isinstance(dist, torch.distributions.Categorical):
        relaxation = CategoricalRelaxation(logits=dist.logits)
        check_batch(relaxation.logits, "dist batch shape")
        with torch.no_grad():
            b = relaxation.rsample_z(relaxation.sample_noise(generator)).argmax(-1)
        log_p = relaxation.log_theta.gather(-1, b.unsqueeze(-1)).squeeze(-1)
    elif isinstance(dist, torch.distributions.Distribution) and not isinstance(dist, _DISCRETE):
        with torch.no_grad():
            b = dist.sample()
        log_p = dist.log_prob(b)
    else:
        relaxation = as_relaxation(dist, "reinforce")
        b = relaxation.sample(generator)
        log_p = relaxation.log_prob(b)
    batch = check_batch(b, "dist batch shape")
    log_p = _sum_units(log_p, batch)
    fb = evaluate_f(f, b, batch)
    coef = fb if baseline is None else fb - _check_baseline(baseline, batch)
    return _finish(fb, score_term(coef, log_p), b, log_p, reduction)


def muprop(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    baseline: Tensor | float | None = None,
    *,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
) -> Estimate:
    """MuProp (Gu et al. 2016): ĝ = [f(b) - c(b) - baseline] ∂ log p(b|θ) + f'(μ̄) ∂μ̄/∂θ.

    c(b) = f(μ̄) + f'(μ̄)·(b - μ̄) is the first-order Taylor expansion of f at the mean
    μ̄ = E[b] (``probs`` ``[batch, ...]`` for Bernoulli units, ``[batch, ..., k]`` for
    Categorical ones), with f(μ̄), f'(μ̄) and μ̄ held constant in c.  ``f`` receives b as
    floats (0/1, or one-hot ``[batch, ..., k]`` also for a torch ``Categorical``, as in
    :func:`relax`) and the mean-field input μ̄ in [0, 1] (the simplex): it must be
    differentiable in its input there.  ``baseline`` as in :func:`reinforce`.  The last term
    reaches the parameters through μ̄ only: for an f without direct dependence on θ it is
    ∂f(μ̄(θ))/∂θ; f's own parameters ω (and θ inside f, 004 eq. 11) get the pathwise ∂f(b),
    never ∂f(μ̄), which would bias them.  Costs one more call of f and one backward pass.
    """
    _check_reduction(reduction)
    relaxation = as_relaxation(dist, "muprop")
    batch = check_batch(relaxation.logits, "logits")
    b = relaxation.sample(generator)
    log_p = _sum_units(relaxation.log_prob(b), batch)
    fb = evaluate_f(f, b, batch)
    mu = relaxation.probs  # μ̄ = E[b], attached to θ
    mu_fixed = mu.detach().requires_grad_(True)
    with torch.enable_grad():
        f_mu = evaluate_f(f, mu_fixed, batch, "f at the mean μ̄")
        df = (
            torch.autograd.grad(f_mu.sum(), mu_fixed, allow_unused=True)[0]
            if f_mu.requires_grad
            else None
        )
    if df is None:
        raise ValueError(
            "muprop needs f differentiable in its input: f(μ̄) at the mean-field input "
            "μ̄ = E[b] has no gradient with respect to μ̄ (f must accept floats in [0, 1])"
        )
    check_finite(df, "f'(μ̄), the gradient of f at the mean")
    mu_fixed = mu_fixed.detach()
    c = f_mu.detach() + _sum_units(df * (b - mu_fixed), batch)  # Taylor expansion at μ̄
    coef = fb - c if baseline is None else fb - c - _check_baseline(baseline, batch)
    # E[c(b)] = f(μ̄) + f'(μ̄)·(μ̄(θ) - μ̄) with f(μ̄), f'(μ̄) constant: ∂E[c]/∂θ = f'(μ̄) ∂μ̄/∂θ
    mean_term = _sum_units(df * (mu - mu_fixed), batch)  # zero in value, gradient f'(μ̄) ∂μ̄/∂θ
    per_example = score_term(coef, log_p) + mean_term
    return _finish(fb, per_example, b, log_p, reduction, control=c)


def reparameterization(
    dist: torch.distributions.Distribution, f: Objective, *, reduction: str = "mean"
) -> Estimate:
    """Pathwise estimator ĝ = ∂f(b(θ, ε))/∂θ (003 eq. 3); needs ``dist.has_rsample``."""
    _check_reduction(reduction)
    if not getattr(dist, "has_rsample", False):
        raise TypeError(
            f"dist must support rsample (reparameterization), got {type(dist).__name__}"
        )
    b = dist.rsample()
    batch = check_batch(b, "dist batch shape")
    fb = evaluate_f(f, b, batch)
    b_fixed = b.detach()
    log_p = _sum_units(dist.log_prob(b_fixed), batch)  # at sampling time (not needed for ĝ)
    return Estimate(fb, b_fixed, fb.detach(), log_p, reduction=reduction)


def lax(
    dist: torch.distributions.Distribution,
    f: Objective,
    control_variate: ControlVariate,
    cond: Tensor | None = None,
    *,
    reduction: str = "mean",
    sample: Tensor | None = None,
) -> Estimate:
    """LAX: ĝ = [f(b) - c_φ(b)] ∂/∂θ log p(b|θ) + ∂/∂θ c_φ(b), b = T(θ, ε) (003 eq. 8).

    ``f`` is only queried (black box) at b ``[batch, ...]``; ``dist`` must support
    ``rsample``.  The pathwise term of c reaches the parameters through b only (module
    docstring), so c may also depend on θ directly or on f's parameters.  ``sample``: a
    reparameterized b = T(θ, ε) built by the caller, attached to θ (e.g. ``loc + scale * ε``
    with the ε an RL rollout stored), used instead of ``dist.rsample()``.
    """
    _check_reduction(reduction)
    _check_control_variate(control_variate, "lax")
    if not getattr(dist, "has_rsample", False):
        raise TypeError(f"LAX needs a reparameterizable dist (rsample), got {type(dist).__name__}")
    if sample is not None:
        b = check_finite(check_tensor(sample, "sample", floating=True), "sample")
        if not b.requires_grad:
            raise ValueError(
                "sample must be a reparameterized draw attached to θ (b = T(θ, ε) with "
                "requires_grad), not a detached tensor: LAX's pathwise term needs ∂b/∂θ"
            )
    else:
        b = dist.rsample()
    batch = check_batch(b, "dist batch shape")
    b_fixed = b.detach()
    log_p = _sum_units(dist.log_prob(b_fixed), batch)
    fb = evaluate_f(f, b_fixed, batch)
    c, c_fixed = _pair(control_variate, b, b_fixed, f, cond)  # c(b), c(stop(b))
    per_example = score_term(fb - c_fixed, log_p) + (c - c_fixed)  # eq. 8
    return _finish(fb, per_example, b, log_p, reduction, z=b)


def _relaxed_sample(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    generator: torch.Generator | None,
    estimator: str,
    control_variate: object,
    reduction: str,
    noise: Tensor | None = None,
) -> tuple[Relaxation, Tensor, Tensor, int, Tensor, Tensor]:
    """z ~ p(z|θ), b = H(z), log p(b|θ) summed over units, and f(b) (checked)."""
    _check_reduction(reduction)
    _check_control_variate(control_variate, estimator)
    relaxation = as_relaxation(dist, estimator)
    batch = check_batch(relaxation.logits, "logits")
    if noise is None:
        noise = relaxation.sample_noise(generator)
    else:
        check_tensor(noise, "noise", floating=True)
        if noise.shape != relaxation.logits.shape:
            raise ValueError(
                f"noise must have the shape of the logits {tuple(relaxation.logits.shape)}, "
                f"got {tuple(noise.shape)}"
            )
        if not bool(((noise > 0) & (noise < 1)).all()):
            raise ValueError("noise must hold uniforms strictly inside (0, 1)")
        noise = noise.detach().to(relaxation.logits.dtype)
    z = relaxation.rsample_z(noise)
    b = relaxation.hard(z)
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
    noise: Tensor | None = None,
) -> Estimate:
    """RELAX: ĝ = [f(b) - c_φ(z̃)] ∂ log p(b|θ) + ∂ c_φ(z) - ∂ c_φ(z̃) (003 eq. 10).

    b = H(z), z ~ p(z|θ), z̃ ~ p(z|b, θ).  ``tied_noise`` draws z̃ from the same uniform as z.
    ``f`` receives b as floats (0/1, or one-hot ``[batch, ..., k]`` also for a torch
    ``Categorical``); a control variate that evaluates f (REBAR) passes it relaxed vectors.
    REBAR is the special case ``control_variate = ConcreteControlVariate(...)``.  ``noise``:
    the uniforms u of z = log θ - log(-log u) (logits' shape), drawn beforehand (e.g. stored by
    an RL rollout that took b = H(z)), used instead of a new draw.
    """
    return _relax(dist, f, control_variate, cond, tied_noise, reduction, generator, "relax", noise)


def _relax(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    control_variate: ControlVariate,
    cond: Tensor | None,
    tied_noise: bool,
    reduction: str,
    generator: torch.Generator | None,
    name: str,
    noise: Tensor | None = None,
) -> Estimate:
    relaxation, z, b, _, log_p, fb = _relaxed_sample(
        dist, f, generator, name, control_variate, reduction, noise
    )
    z_tilde = relaxation.conditional_z(b, z if tied_noise else None, generator)
    c, c_tilde = _pair(control_variate, z, z_tilde, f, cond)
    per_example = score_term(fb - c_tilde, log_p) + c - c_tilde  # eq. 10
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
    noise: Tensor | None = None,
) -> Estimate:
    """REBAR (Tucker et al. 2017): RELAX with c(z) = η f(σ_λ(z)) (003 section 3.4).

    Pass a :class:`ConcreteControlVariate` (η and λ learnable) as ``control_variate``; f
    receives b (0/1 or one-hot floats) and the relaxed vectors σ_λ(z), σ_λ(z̃) of the same
    shape.
    """
    return _relax(dist, f, control_variate, cond, tied_noise, reduction, generator, "rebar", noise)


def dlax(
    dist: Relaxation | torch.distributions.Distribution,
    f: Objective,
    control_variate: ControlVariate,
    cond: Tensor | None = None,
    *,
    reduction: str = "mean",
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> Estimate:
    """DLAX: ĝ = f(b) ∂ log p(b|θ) - c_φ(z) ∂ log p(z|θ) + ∂ c_φ(z), b = H(z) (004 eq. 7).

    The last term is taken through z only (``c(z) - c(stop(z))``, module docstring), which
    keeps DLAX unbiased for parameters inside f when c evaluates f (REBAR's control variate)
    and for f depending on θ (004 eq. 11).  f receives b as for :func:`relax`; ``noise`` as
    for :func:`relax`.
    """
    relaxation, z, b, batch, log_p, fb = _relaxed_sample(
        dist, f, generator, "dlax", control_variate, reduction, noise
    )
    z_fixed = z.detach()
    log_p_z = _sum_units(relaxation.log_prob_z(z_fixed), batch)
    c, c_fixed = _pair(control_variate, z, z_fixed, f, cond)  # c(z), c(stop(z))
    per_example = score_term(fb, log_p) - score_term(c_fixed, log_p_z) + (c - c_fixed)  # eq. 7
    return _finish(fb, per_example, b, log_p, reduction, z=z)


def variance_loss(
    estimate: Estimate,
    wrt: Tensor | Sequence[Tensor],
    kind: str = "single",
    *,
    params: Iterable[Tensor] = (),
) -> tuple[Tensor, list[Tensor]]:
    """Objective whose φ-gradient lowers the estimator's variance (003 section 3.3, eq. 11).

    ``kind="single"``: Σ ĝ², with ĝ = ∂ surrogate / ∂ wrt; its gradient 2 ĝ ∂ĝ/∂φ is an
    unbiased estimate of ∂ Var(ĝ)/∂φ.  ``kind="batch"``: the empirical variance over the batch
    of the per-example gradients ``∂ per_example_i / ∂ wrt_i``; ``wrt`` is then one tensor
    ``[batch, ...]`` holding each example's own parameters (e.g. logits), and its returned
    gradient is per example (the surrogate's is their mean when ``reduction="mean"``).

    ``params``: further tensors (e.g. a decoder's weights) whose gradient ∂ surrogate/∂p comes
    from the same backward pass; they are not part of the loss.  Returns ``(loss, grads)``:
    ĝ for ``wrt`` then for ``params`` (with graph), so one pass serves both the variance
    objective and the model's step: backpropagate ``grads[0]`` through the logits
    (``logits.backward(g.detach())``) instead of a second ``surrogate.backward()``.
    """
    wrt_list = [wrt] if isinstance(wrt, Tensor) else list(wrt)
    extra = list(params)
    if kind not in ("single", "batch"):
        raise ValueError(f"kind must be 'single' or 'batch', got {kind!r}")
    if not estimate.surrogate.requires_grad:
        raise ValueError("estimate.surrogate has no graph: build the distribution from wrt")
    for name, tensors in (("wrt", wrt_list), ("params", extra)):
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor) or not t.requires_grad:
                raise ValueError(
                    f"{name}[{i}] must be a tensor that requires grad, got "
                    f"{type(t).__name__}"
                    + (" without requires_grad" if isinstance(t, Tensor) else "")
                )
    if kind == "batch" and (
        len(wrt_list) != 1 or wrt_list[0].shape[:1] != estimate.per_example.shape
    ):
        raise ValueError("kind='batch' needs one `wrt` tensor of shape [batch, ...]")
    target = estimate.surrogate if kind == "single" else estimate.per_example.sum()
    grads = list(
        torch.autograd.grad(target, wrt_list + extra, create_graph=True, allow_unused=True)
    )
    for i, g in enumerate(grads[: len(wrt_list)]):
        if g is None:
            raise ValueError(
                f"wrt[{i}] (shape {tuple(wrt_list[i].shape)}) is not in the estimate's graph: "
                "pass the tensor the distribution's parameters were computed from (e.g. logits)"
            )
    wrt_grads = grads[: len(wrt_list)]
    extra_grads = [
        torch.zeros_like(p) if g is None else g for p, g in zip(extra, grads[len(wrt_list) :])
    ]
    if kind == "single":
        loss = sum(g.pow(2).sum() for g in wrt_grads)
    else:
        g = wrt_grads[0]
        loss = g.reshape(g.shape[0], -1).var(dim=0).sum()
        if estimate.reduction == "mean":
            extra_grads = [g / estimate.per_example.shape[0] for g in extra_grads]
    return loss, wrt_grads + extra_grads  # type: ignore[return-value]


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
