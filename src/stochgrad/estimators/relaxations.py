"""Continuous relaxations of Bernoulli and Categorical variables (003 section 3.2, App. A).

Each relaxation gives a reparameterized ``z ~ p(z|θ)`` with ``b = H(z) ~ p(b|θ)``, the
conditional ``z̃ ~ p(z|b, θ)`` and the log-densities
``log p(b|θ)`` and ``log p(z|θ)``.  Shapes: logits ``[batch, ...]`` for Bernoulli units and
``[batch, ..., k]`` for Categorical units with ``k`` classes; samples ``b`` are floats (0/1
for Bernoulli as ``torch.distributions.Bernoulli``, one-hot for Categorical as
``OneHotCategorical``) so that ``f`` accepts ``b`` and ``σ_λ(z)`` alike.  The relaxed sample
``σ_λ(z)`` (:func:`~stochgrad.estimators.concrete`) is distributed as
``torch.distributions.RelaxedBernoulli`` / ``RelaxedOneHotCategorical`` with temperature λ, and
equals their ``rsample()`` for the same uniform noise.

Masked classes: a Categorical logit may be ``-inf`` (the class has probability 0).  Then
``z`` and ``z̃`` are ``-inf`` in that class, ``σ_λ(z)`` is 0 there, ``log p(b|θ)`` and
``log p(z|θ)`` leave the class out, and its gradient is 0.  A control variate that feeds the
raw ``z`` to a network must relax it first (:class:`~stochgrad.estimators.RelaxedInput`).

Note on App. A of 003: with ``z = log θ/(1-θ) + log u/(1-u)`` we have ``b = 1`` iff
``u > 1 - θ``, so ``u | b=1 ~ U(1-θ, 1)`` and ``u | b=0 ~ U(0, 1-θ)``; the appendix writes the
two intervals with θ and 1-θ swapped.  For the Categorical case the appendix gives
``z̃_b = log θ_b - log(-log v_b)``; the exact conditional of the Gumbel-max is
``z̃_b = -log(-log v_b)`` (the maximum of ``log θ + Gumbel`` is a standard Gumbel when θ is
normalized).  We implement the exact conditionals; ``tests/test_relaxations.py`` checks them
against rejection sampling.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_finite, check_logits_masked, check_probs, check_tensor


def _uniform(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """U(0, 1) noise kept away from {0, 1} so that logit/log stay finite."""
    eps = torch.finfo(like.dtype).eps
    u = torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)
    return u.clamp_(eps, 1 - eps)


class Relaxation(Protocol):
    """What RELAX, REBAR and DLAX need from a discrete distribution."""

    logits: Tensor

    def sample_noise(self, generator: torch.Generator | None = None) -> Tensor: ...
    def rsample_z(self, u: Tensor) -> Tensor: ...
    def hard(self, z: Tensor) -> Tensor: ...
    def conditional_z(
        self, b: Tensor, z: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor: ...
    def log_prob(self, b: Tensor) -> Tensor: ...
    def log_prob_z(self, z: Tensor) -> Tensor: ...
    def sample(self, generator: torch.Generator | None = None) -> Tensor: ...


class BernoulliRelaxation:
    """Bernoulli(θ) units with logistic relaxation ``z = logit θ + logit u``, ``H(z) = 1[z > 0]``.

    Give exactly one of ``logits`` (any real, finite) or ``probs`` (in [0, 1]).
    """

    kind = "bernoulli"

    def __init__(self, logits: Tensor | None = None, probs: Tensor | None = None) -> None:
        if (logits is None) == (probs is None):
            raise ValueError("give exactly one of `logits` or `probs`")
        if probs is not None:
            check_probs(probs, "probs")
            eps = torch.finfo(probs.dtype).eps
            p = probs.clamp(eps, 1 - eps)
            logits = torch.log(p) - torch.log1p(-p)
        assert logits is not None
        if not (isinstance(logits, Tensor) and logits.is_floating_point()):
            check_tensor(logits, "logits", floating=True)
        self.logits = check_finite(logits, "logits")

    @property
    def probs(self) -> Tensor:
        return torch.sigmoid(self.logits)

    def sample_noise(self, generator: torch.Generator | None = None) -> Tensor:
        return _uniform(self.logits.shape, self.logits, generator)

    def rsample_z(self, u: Tensor) -> Tensor:
        """z = log θ/(1-θ) + log u/(1-u) (003 App. A)."""
        return self.logits + torch.log(u) - torch.log1p(-u)

    def hard(self, z: Tensor) -> Tensor:
        """b = H(z) = 1[z > 0]."""
        return (z > 0).to(z.dtype)  # a comparison carries no graph

    def conditional_z(
        self, b: Tensor, z: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """z̃ ~ p(z | b, θ), reparameterized in θ.

        With ``z`` given the noise is tied: ``v`` is recovered from ``z`` (no gradient), so
        z̃ equals z in value but carries the conditional's dependence on θ.
        """
        logits = self.logits
        p1 = torch.sigmoid(logits)  # θ = P(b = 1) = width of the interval for b = 1
        p0 = torch.sigmoid(-logits)  # 1 - θ = threshold on u
        top = b > 0.5
        if z is None:
            v = _uniform(logits.shape, logits, generator)
        else:
            with torch.no_grad():
                u = torch.sigmoid(z - logits)
                eps = torch.finfo(logits.dtype).eps
                v = torch.where(top, (u - p0) / p1, u / p0).clamp_(eps, 1 - eps)
        # u' | b=1 ~ U(1-θ, 1), u' | b=0 ~ U(0, 1-θ); logit(u') computed stably.
        log_p0, log_p1 = F.logsigmoid(-logits), F.logsigmoid(logits)
        log_u = torch.where(top, torch.log(p0 + v * p1), torch.log(v) + log_p0)
        log_1mu = torch.where(top, log_p1 + torch.log1p(-v), torch.log1p(-v * p0))
        return logits + log_u - log_1mu

    def log_prob(self, b: Tensor) -> Tensor:
        """log p(b|θ) per unit, shape of logits."""
        return -F.binary_cross_entropy_with_logits(self.logits, b, reduction="none")

    def log_prob_z(self, z: Tensor) -> Tensor:
        """log p(z|θ): logistic density at z - logit θ, per unit."""
        y = z - self.logits
        return -F.softplus(y) - F.softplus(-y)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """b ~ p(b|θ) without graph, ``[batch, ...]``."""
        u = self.sample_noise(generator)
        return self.hard(self.logits.detach() + torch.log(u) - torch.log1p(-u))


class CategoricalRelaxation:
    """Categorical(θ) units with Gumbel relaxation ``z = log θ + Gumbel``, ``H(z) = onehot(argmax z)``.

    ``logits``: ``[batch, ..., k]`` (unnormalized), or ``probs`` with rows in [0, 1].
    """

    kind = "categorical"

    def __init__(self, logits: Tensor | None = None, probs: Tensor | None = None) -> None:
        if (logits is None) == (probs is None):
            raise ValueError("give exactly one of `logits` or `probs`")
        if probs is not None:
            check_probs(probs, "probs")
            sums = probs.sum(-1)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
                raise ValueError("probs must sum to 1 over the last dimension (the classes)")
            logits = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
        assert logits is not None
        check_logits_masked(logits, "logits")
        if logits.dim() < 2:
            raise ValueError(f"logits must have shape [batch, ..., k], got {tuple(logits.shape)}")
        self.logits = logits
        self.log_theta = torch.log_softmax(logits, dim=-1)
        self._mask: Tensor | None | bool = False  # not computed yet; None: no masked class

    @property
    def mask(self) -> Tensor | None:
        """Boolean ``[batch, ..., k]``: True where a class is masked (logit -inf); None if none."""
        if self._mask is False:
            mask = torch.isneginf(self.logits)
            self._mask = mask if bool(mask.any()) else None
        return self._mask  # type: ignore[return-value]

    @property
    def probs(self) -> Tensor:
        return self.log_theta.exp()

    def sample_noise(self, generator: torch.Generator | None = None) -> Tensor:
        return _uniform(self.logits.shape, self.logits, generator)

    def rsample_z(self, u: Tensor) -> Tensor:
        """z = log θ - log(-log u) (003 App. A)."""
        return self.log_theta - torch.log(-torch.log(u))

    def hard(self, z: Tensor) -> Tensor:
        """b = H(z) = one-hot(argmax z)."""
        return F.one_hot(z.argmax(-1), z.shape[-1]).to(z.dtype)  # no graph

    def conditional_z(
        self, b: Tensor, z: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """z̃ ~ p(z | b, θ) via the exponential race: T_i = E_i/θ_i, b = argmin T.

        Given b, T_b ~ Exp(1) and T_i - T_b ~ Exp(θ_i) for i ≠ b, so
        z̃_b = -log E_b and z̃_i = -log(E_i/θ_i + E_b) with E ~ Exp(1).  With ``z`` given,
        E is recovered from z (tied noise, no gradient).
        """
        mask = self.mask
        log_theta = self.log_theta
        if mask is not None:  # masked classes: θ_i = 0 and z̃_i = -inf; keep the algebra finite
            log_theta = torch.where(mask, 0.0, log_theta)
        top = b > 0.5
        # in log space throughout: E_i/θ_i and exp(-z) overflow float32 (and the second
        # derivatives the more) once a policy puts θ_i below about 1e-19
        if z is None:
            log_e = torch.log(-torch.log(_uniform(self.logits.shape, self.logits, generator)))
            log_e_b = torch.where(top, log_e, 0.0).sum(-1, keepdim=True)
        else:
            # E recovered from z (no gradient): log E_i = log θ_i - z_i + log(1 - e^{z_i - z_b})
            with torch.no_grad():
                z_b = torch.where(top, z, 0.0).sum(-1, keepdim=True)
                gap = torch.where(top, -1.0, z - z_b)  # < 0 off the top; the top's is unused
                log_e = log_theta - z + torch.log1p(-torch.exp(gap))
                if mask is not None:
                    log_e = torch.where(mask, 0.0, log_e)
                log_e_b = -z_b
        z_other = -torch.logaddexp(log_e - log_theta, log_e_b)  # -log(E_i/θ_i + E_b)
        z_other = torch.where(top, -log_e_b, z_other)
        if mask is not None:
            z_other = torch.where(mask, -torch.inf, z_other)
        return z_other

    def log_prob(self, b: Tensor) -> Tensor:
        """log p(b|θ) per unit for one-hot ``b``, shape ``logits.shape[:-1]``."""
        return self.log_theta.gather(-1, b.argmax(-1, keepdim=True)).squeeze(-1)

    def log_prob_z(self, z: Tensor) -> Tensor:
        """log p(z|θ): independent Gumbels located at log θ, per unit (masked classes left out)."""
        mask = self.mask
        y = z - self.log_theta
        if mask is None:
            return (-y - torch.exp(-y)).sum(-1)
        y = torch.where(mask, 0.0, y)
        return torch.where(mask, 0.0, -y - torch.exp(-y)).sum(-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """b ~ p(b|θ) one-hot without graph, ``[batch, ..., k]``."""
        u = self.sample_noise(generator)
        return self.hard(self.log_theta.detach() - torch.log(-torch.log(u)))


def as_relaxation(dist: object, estimator: str | None = None) -> Relaxation:
    """Return ``dist`` if it is a relaxation; convert torch Bernoulli/Categorical/OneHot.

    ``estimator`` names the caller in the error for other distributions (a continuous one
    points to ``lax``, the control-variate estimator for reparameterizable distributions).
    """
    if isinstance(dist, (BernoulliRelaxation, CategoricalRelaxation)):
        return dist
    if isinstance(dist, torch.distributions.Bernoulli):
        return BernoulliRelaxation(logits=dist.logits)
    if isinstance(dist, (torch.distributions.Categorical, torch.distributions.OneHotCategorical)):
        return CategoricalRelaxation(logits=dist.logits)
    hint = ""
    if isinstance(dist, torch.distributions.Distribution) and dist.has_rsample:
        hint = (
            f"; {type(dist).__name__} is continuous and reparameterizable: use "
            "stochgrad.estimators.lax (or reparameterization) instead"
        )
    caller = f"{estimator} needs a discrete distribution: " if estimator else ""
    raise TypeError(
        f"{caller}dist must be a BernoulliRelaxation, CategoricalRelaxation, or a torch "
        f"Bernoulli/Categorical/OneHotCategorical distribution, got {type(dist).__name__}{hint}"
    )
