"""SGLD, deterministic Langevin (DLD) and HMC with SVGD's change-of-variables bookkeeping
(002 App. C.1 eqs. 12-14, Proposition 3.4).

Each step is treated as a map of the particle ``a`` with the step's noise (SGLD) or momentum
(HMC) held fixed, and the log-density is tracked as for SVGD (Theorem 3.1):

    log q^{l+1}(a^{l+1}) = log q^l(a^l) - log|det ∂a^{l+1}/∂a^l|.

This is exactly why these samplers fail as entropy estimators (Proposition 3.4): for SGLD the
map is not a function of ``a`` alone, the injected noise spreads the density (a convolution) and
the bookkeeping misses it; DLD is deterministic but only a contraction onto the modes, so its
tracked density is that of a collapsing cloud, not of ``p``; for HMC the position map depends on
the resampled momentum, and its ``a``-Jacobian ``I + (ε²/2) ∇²log p`` again ignores the momentum's
spread. The tracked "entropies" fall by ``-log|det(I + ε ∇²log p)|`` per step regardless of
where the particles end up.

Particles are ``[batch, m, d]`` (or ``[m, d]``); ``m`` is only a batch dimension here (no
interaction). The Jacobian needs the score's derivative (the Hessian of ``log p``) by autograd:
``d`` backward passes, so keep ``d`` small.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from .svgd import (
    Energy,
    ParticleResult,
    Score,
    _check_log_det,
    _check_log_prob,
    _check_particles,
    _check_positive,
    _check_run_finite,
    _check_steps,
    _eval_score,
    _finish,
    particle_jacobian,
    resolve_score,
)

MapLogDet = Literal["exact", "trace", "none"]
MAP_LOG_DET_METHODS = ("exact", "trace", "none")


def _map_log_det(fn: Callable[[Tensor], Tensor], a: Tensor, method: str) -> Tensor:
    """``log|det ∂fn(a)/∂a|`` (exact) or ``tr(∂fn(a)/∂a - I)`` (first order), ``[batch, m]``."""
    if method == "none":
        return a.new_zeros(a.shape[:-1])
    jac = particle_jacobian(fn, a)
    if method == "trace":
        return jac.diagonal(dim1=-2, dim2=-1).sum(-1) - a.shape[-1]
    return torch.linalg.slogdet(jac).logabsdet


def langevin(
    particles: Tensor,
    score: Score | None = None,
    *,
    energy: Energy | None = None,
    step_size: float,
    n_steps: int,
    noise: bool = True,
    log_prob: Tensor | None = None,
    log_det: MapLogDet = "trace",
    generator: torch.Generator | None = None,
) -> ParticleResult:
    """SGLD (eq. 12, ``noise=True``) or DLD (eq. 13, ``noise=False``) with tracked log-density.

    ``a ← a + ε ∇log p(a) + √(2ε) ξ``, ξ ~ N(0, I). particles: ``[batch, m, d]`` or ``[m, d]``;
    score / energy: the target (exactly one; ``p ∝ exp(-E)``); step_size: ε > 0; log_prob:
    ``log q^0(a^0)`` (default 0); log_det: ``"trace"`` (``ε Δlog p``, Theorem 3.1), ``"exact"``
    (``log|det(I + ε ∇²log p)|``) or ``"none"``. The tracked density ignores ξ; see the module
    docstring for why that makes it wrong. ValueError if the run ends with NaN or Inf.
    """
    a, unbatched = _check_particles(particles)
    fn = resolve_score(score, energy)
    eps = _check_positive(step_size, "step_size")
    n_steps = _check_steps(n_steps)
    _check_log_det(log_det, MAP_LOG_DET_METHODS)
    lp0 = _check_log_prob(log_prob, a.shape[:-1], unbatched, a)
    total = a.new_zeros(a.shape[:-1])

    def drift(x: Tensor) -> Tensor:
        return x + eps * _eval_score(fn, x)

    a0 = a
    for _ in range(n_steps):
        total = total + _map_log_det(drift, a, log_det)
        a = drift(a)
        if noise:
            xi = torch.randn(a.shape, dtype=a.dtype, device=a.device, generator=generator)
            a = a + (2 * eps) ** 0.5 * xi
    _check_run_finite(a, total, None, fn, a0, eps, "sgld" if noise else "dld")
    return _finish(a, lp0 - total, total, unbatched)


def sgld(particles: Tensor, score: Score | None = None, **kwargs) -> ParticleResult:
    """Stochastic gradient Langevin dynamics (002 eq. 12); see :func:`langevin`."""
    return langevin(particles, score, noise=True, **kwargs)


def dld(particles: Tensor, score: Score | None = None, **kwargs) -> ParticleResult:
    """Deterministic Langevin dynamics (002 eq. 13); see :func:`langevin`."""
    return langevin(particles, score, noise=False, **kwargs)


def hmc(
    particles: Tensor,
    score: Score | None = None,
    *,
    energy: Energy | None = None,
    step_size: float,
    n_steps: int,
    n_leapfrog: int = 1,
    log_prob: Tensor | None = None,
    log_det: MapLogDet = "trace",
    generator: torch.Generator | None = None,
) -> ParticleResult:
    """HMC without accept/reject (002 eq. 14, unit mass) with tracked log-density.

    Each of ``n_steps`` iterations draws a fresh momentum v ~ N(0, I) and applies ``n_leapfrog``
    leapfrog steps ``v ← v + (ε/2) ∇log p(a); a ← a + ε v; v ← v + (ε/2) ∇log p(a)``. The
    log-determinant is that of the position map ``a^l ↦ a^{l+1}`` with v held fixed (for one
    leapfrog step ``I + (ε²/2) ∇²log p(a)``): ``"exact"``, ``"trace"`` (``tr(J - I)``) or
    ``"none"``. Shapes and the other arguments as in :func:`langevin`.
    """
    a, unbatched = _check_particles(particles)
    fn = resolve_score(score, energy)
    eps = _check_positive(step_size, "step_size")
    n_steps = _check_steps(n_steps)
    if isinstance(n_leapfrog, bool) or not isinstance(n_leapfrog, int) or n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be an integer >= 1, got {n_leapfrog!r}")
    _check_log_det(log_det, MAP_LOG_DET_METHODS)
    lp0 = _check_log_prob(log_prob, a.shape[:-1], unbatched, a)
    total = a.new_zeros(a.shape[:-1])
    a0 = a
    for _ in range(n_steps):
        v0 = torch.randn(a.shape, dtype=a.dtype, device=a.device, generator=generator)

        def position_map(x: Tensor, v0: Tensor = v0) -> Tensor:
            v = v0 + 0.5 * eps * _eval_score(fn, x)
            for k in range(n_leapfrog):
                x = x + eps * v
                if k + 1 < n_leapfrog:  # the final half step of v is discarded with v
                    v = v + eps * _eval_score(fn, x)
            return x

        total = total + _map_log_det(position_map, a, log_det)
        a = position_map(a)
    _check_run_finite(a, total, None, fn, a0, eps, "hmc")
    return _finish(a, lp0 - total, total, unbatched)
