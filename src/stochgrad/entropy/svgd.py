"""SVGD with a tracked per-particle log-density (paper 002: eq. 1, Theorems 3.1 and 3.3).

Particles have shape ``[batch, m, d]``: ``batch`` independent particle sets of ``m`` particles in
``d`` dimensions (a ``[m, d]`` tensor is one set). The target is given by its score
``score(a) = ∇_a log p(a)`` or by an energy with ``p(a) ∝ exp(-E(a))``; both act on the last
dimension and must treat particles independently (``[..., d] -> [..., d]`` resp. ``[...]``).

RBF kernel ``k(x, y) = exp(-‖x - y‖² / (2 σ²))``, the convention of 002's proofs (App. G.3,
H.1), where ``σ`` is called the "kernel variance"; ``bandwidth`` below is this ``σ``.

**Which Jacobian is tracked.** One SVGD step with the particle set ``Q = {a_j}`` frozen is the map

    T_Q(x) = x + ε h_Q(x),   h_Q(x) = 1/m Σ_{j=1..m} [k(a_j, x) ∇log p(a_j) + ∇_{a_j} k(a_j, x)]

(eq. 1; the sum includes ``j = i``, as in standard SVGD) and every particle moves by
``a_i ← T_Q(a_i)``. ``T_Q`` transports the particles' density (in the mean-field limit it is
the map that pushes ``q^l`` to ``q^{l+1}``), so the log-density is tracked with

    log q^{l+1}(a_i^{l+1}) = log q^l(a_i^l) - log|det(I + ε ∇_x h_Q(x))|  at x = a_i^l,

exact (``log_det="exact"``, autograd Jacobian), to first order (``"trace"``, Theorem 3.1:
``ε tr ∇_x h_Q``, trace from the autograd Jacobian), or in closed form (``"closed_form"``).

**Closed form (our derivation of Theorem 3.3).** With ``δ_ij = a_i - a_j``, ``r_ij = ‖δ_ij‖``,
``s_j = ∇log p(a_j)`` and ``∇_x k(a_j, x) = -k δ/σ²``, ``∇_{a_j} k(a_j, x) = k δ/σ²``:

    ∇_x [k(a_j, x) s_j]      = -(k_ij/σ²) s_j δ_ijᵀ                 trace: -(k_ij/σ²) δ_ijᵀ s_j
    ∇_x [k(a_j, x) δ/σ²]     =  (k_ij/σ²) (I - δ_ij δ_ijᵀ/σ²)        trace:  (k_ij/σ²)(d - r_ij²/σ²)

    tr ∇_x h_Q(a_i) = 1/(m σ²) Σ_{j=1..m} k_ij (d - r_ij²/σ² - δ_ijᵀ s_j)

Only first-order derivatives (the scores, already computed by the step) and dot products. The
``j = i`` term is ``d/σ²``: the particle set is frozen, so ``s_i`` is a constant of ``T_Q`` and no
Hessian appears. Differences from 002: the target there is ``exp(Q/α)`` with the update scaled
by α, so with the score of ``p`` α drops out (the proof's term ① carries a spurious α and
``k(a_j, a_j)`` for ``k(a_i, a_j)``); the main-text Theorem 3.3 has the same factors as above but
sums over ``j ≠ i`` only, i.e. drops the self term ``ε d/(m σ²)`` per step (the authors' code
also normalizes that sum by ``m - 1``). With 002's settings (m = 200, σ = 5) the self term moves
the entropy by 0.04 nats; with few particles and small bandwidths it matters. Differentiating the
update ``a_i ↦ a_i + ε h(a_i)`` with the *other* particles fixed and ``a_i`` moving also inside
``s_i`` instead adds ``(∇²log p(a_i) - I/σ²)/m``: summed over particles that is the trace of the
joint ``md × md`` Jacobian, i.e. it tracks the joint density of the particle system, whose
entropy per particle is lower than a particle's marginal entropy (2.7 vs 3.41 nats in 002
section 4.1), so we do not use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.func import jacrev

Score = Callable[[Tensor], Tensor]
Energy = Callable[[Tensor], Tensor]
Bandwidth = float | Literal["median", "paper"]
LogDet = Literal["closed_form", "trace", "exact", "none"]

LOG_DET_METHODS = ("closed_form", "trace", "exact", "none")
BANDWIDTH_HEURISTICS = ("median", "paper")


@dataclass
class ParticleResult:
    """Output of a particle sampler.

    particles: ``[batch, m, d]`` after the last step (``[m, d]`` if the input was unbatched).
    log_prob: tracked ``log q^L(a^L)``, ``[batch, m]`` (``[m]``); the initial ``log_prob`` minus
        the accumulated log-determinants (a log-density change if no ``log_prob`` was given).
    log_det: accumulated ``Σ_l log|det ∂a^{l+1}/∂a^l|``, same shape as ``log_prob``.
    """

    particles: Tensor
    log_prob: Tensor
    log_det: Tensor


# ---- validation ------------------------------------------------------------------------------


def _check_particles(particles: Tensor, name: str = "particles") -> tuple[Tensor, bool]:
    """Return ``([batch, m, d] tensor, was_unbatched)``; ValueError on bad shape or values."""
    if not isinstance(particles, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(particles).__name__}")
    if not particles.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {particles.dtype}")
    if particles.dim() not in (2, 3) or particles.shape[-1] < 1 or particles.shape[-2] < 1:
        raise ValueError(
            f"{name} must have shape [batch, m, d] or [m, d] with m, d >= 1, "
            f"got {tuple(particles.shape)}"
        )
    if not torch.isfinite(particles).all():
        raise ValueError(f"{name} contains NaN or Inf values; expected finite numbers")
    unbatched = particles.dim() == 2
    return (particles.unsqueeze(0) if unbatched else particles), unbatched


def _check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def _check_steps(n_steps: int, name: str = "n_steps") -> int:
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {n_steps!r}")
    return n_steps


def _check_log_det(log_det: str, allowed: tuple[str, ...]) -> str:
    if log_det not in allowed:
        raise ValueError(f"log_det must be one of {allowed}, got {log_det!r}")
    return log_det


def _check_log_prob(log_prob: Tensor | None, shape: torch.Size, unbatched: bool, like: Tensor):
    """Initial log-density, ``[batch, m]`` (``[m]`` for unbatched particles)."""
    if log_prob is None:
        return like.new_zeros(shape)
    if not isinstance(log_prob, Tensor):
        raise TypeError(f"log_prob must be a torch.Tensor, got {type(log_prob).__name__}")
    lp = log_prob.unsqueeze(0) if unbatched else log_prob
    if lp.shape != shape:
        want = tuple(shape[1:]) if unbatched else tuple(shape)
        raise ValueError(
            f"log_prob must have shape {want} (one value per particle), got {tuple(log_prob.shape)}"
        )
    if not torch.isfinite(lp).all():
        raise ValueError("log_prob contains NaN or Inf values; expected finite numbers")
    return lp.to(like.dtype)


def _finish(a: Tensor, log_prob: Tensor, log_det: Tensor, unbatched: bool) -> ParticleResult:
    if unbatched:
        return ParticleResult(a.squeeze(0), log_prob.squeeze(0), log_det.squeeze(0))
    return ParticleResult(a, log_prob, log_det)


# ---- target ----------------------------------------------------------------------------------


def score_from_energy(energy: Energy) -> Score:
    """Score ``∇_a log p(a) = -∇_a E(a)`` of ``p ∝ exp(-E)`` by autograd; ``E: [..., d] -> [...]``.

    The graph is kept when the input requires grad, so the score can be differentiated further.
    """
    if not callable(energy):
        raise TypeError(f"energy must be callable, got {type(energy).__name__}")

    def score(a: Tensor) -> Tensor:
        with torch.enable_grad():
            x = a if a.requires_grad else a.detach().requires_grad_(True)
            e = energy(x)
            if not isinstance(e, Tensor) or e.shape != x.shape[:-1]:
                got = tuple(e.shape) if isinstance(e, Tensor) else type(e).__name__
                raise ValueError(
                    f"energy must return one value per particle, shape {tuple(x.shape[:-1])}, "
                    f"got {got}"
                )
            (g,) = torch.autograd.grad(e.sum(), x, create_graph=a.requires_grad)
        return -g

    return score


def resolve_score(score: Score | None, energy: Energy | None) -> Score:
    """The score function from exactly one of ``score`` and ``energy``."""
    if (score is None) == (energy is None):
        raise ValueError("give exactly one of score (∇ log p) and energy (p ∝ exp(-E))")
    if score is not None:
        if not callable(score):
            raise TypeError(f"score must be callable, got {type(score).__name__}")
        return score
    return score_from_energy(energy)  # type: ignore[arg-type]


def _eval_score(score: Score, a: Tensor) -> Tensor:
    s = score(a)
    if not isinstance(s, Tensor) or s.shape != a.shape:
        got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
        raise ValueError(
            f"score must return a tensor shaped like its input {tuple(a.shape)}, got {got}"
        )
    return s


# ---- kernel ----------------------------------------------------------------------------------


def squared_distances(a: Tensor) -> Tensor:
    """``‖a_i - a_j‖²`` for ``a: [batch, m, d]`` -> ``[batch, m, m]``.

    Computed on centred particles through a Gram matrix (differentiable, also at ``i = j``).
    """
    c = a - a.mean(-2, keepdim=True)
    sq = c.pow(2).sum(-1)
    return (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * c @ c.transpose(-1, -2)).clamp_min(0)


def bandwidth_heuristic(r2: Tensor, method: str) -> Tensor:
    """Bandwidth σ per particle set from squared distances ``r2: [batch, m, m]`` -> ``[batch]``.

    ``"median"``: σ² = med_{i<j} r_ij² / (2 log(m + 1)), i.e. Liu & Wang's ``h = med²/log(m+1)``
    for ``k = exp(-r²/h)``. ``"paper"``: σ = Σ_{i,j} r_ij² / (4 (2 log m + 1)), 002 Tables 3-4,
    implemented as printed (a sum over all pairs, so σ grows like m² · spread²). Computed on
    detached distances; needs m >= 2 and not all particles equal.
    """
    m = r2.shape[-1]
    if m < 2:
        raise ValueError(f"bandwidth heuristic {method!r} needs m >= 2 particles, got m = {m}")
    r2 = r2.detach()
    if method == "median":
        iu = torch.triu_indices(m, m, offset=1, device=r2.device)
        med = r2[:, iu[0], iu[1]].median(-1).values
        sigma = (med / (2 * math.log(m + 1))).sqrt()
    elif method == "paper":
        sigma = r2.sum((-1, -2)) / (4 * (2 * math.log(m) + 1))
    else:
        raise ValueError(
            f"bandwidth must be a number > 0 or one of {BANDWIDTH_HEURISTICS}, got {method!r}"
        )
    if not (sigma > 0).all():
        raise ValueError(f"bandwidth heuristic {method!r} gave σ = 0: all particles coincide")
    return sigma


def _sigma(r2: Tensor, bandwidth: Bandwidth) -> Tensor:
    """σ as a ``[batch, 1, 1]`` tensor."""
    if isinstance(bandwidth, str):
        sigma = bandwidth_heuristic(r2, bandwidth)
    else:
        sigma = r2.new_full(r2.shape[:1], _check_positive(bandwidth, "bandwidth"))
    return sigma.view(-1, 1, 1)


def rbf_kernel(a: Tensor, bandwidth: Bandwidth) -> tuple[Tensor, Tensor, Tensor]:
    """RBF kernel matrix of one or more particle sets.

    a: ``[batch, m, d]``. Returns ``(k, r2, sigma)`` with ``k_ij = exp(-r_ij²/(2σ²))`` and
    ``r2`` both ``[batch, m, m]`` and ``sigma: [batch, 1, 1]``.
    """
    r2 = squared_distances(a)
    sigma = _sigma(r2, bandwidth)
    return torch.exp(-r2 / (2 * sigma**2)), r2, sigma


# ---- SVGD ------------------------------------------------------------------------------------


def svgd_direction(a: Tensor, s: Tensor, k: Tensor, sigma: Tensor) -> Tensor:
    """SVGD direction h(a_i) of eq. 1 for every particle (j = i included), ``[batch, m, d]``.

    ``h_i = 1/m Σ_j [k_ij s_j + k_ij (a_i - a_j)/σ²]`` with ``s: [batch, m, d]`` the scores,
    ``k: [batch, m, m]`` and ``sigma: [batch, 1, 1]``.
    """
    m = a.shape[-2]
    c = a - a.mean(-2, keepdim=True)
    out = k @ torch.cat([s, c, torch.ones_like(c[..., :1])], -1)
    d = a.shape[-1]
    ks, kc, k1 = out[..., :d], out[..., d : 2 * d], out[..., 2 * d :]
    return (ks + (c * k1 - kc) / sigma**2) / m


def svgd_trace_closed_form(a: Tensor, s: Tensor, k: Tensor, r2: Tensor, sigma: Tensor) -> Tensor:
    """``tr ∇_x h_Q(x)`` at every particle in closed form (Theorem 3.3, derived in the module
    docstring): ``1/(m σ²) Σ_j k_ij (d - r_ij²/σ² - (a_i - a_j)ᵀ s_j)``. Returns ``[batch, m]``.
    """
    m, d = a.shape[-2], a.shape[-1]
    c = a - a.mean(-2, keepdim=True)
    out = k @ torch.cat([s, torch.ones_like(c[..., :1]), (c * s).sum(-1, keepdim=True)], -1)
    ks, k1, kcs = out[..., :d], out[..., d], out[..., d + 1]
    sig2 = sigma.squeeze(-1) ** 2
    kr2 = (k * r2).sum(-1)
    return (d * k1 - kr2 / sig2 - ((c * ks).sum(-1) - kcs)) / (m * sig2)


def _fused_step_terms(
    a: Tensor, s: Tensor, bandwidth: Bandwidth, with_trace: bool
) -> tuple[Tensor, Tensor | None, Tensor]:
    """:func:`svgd_direction` and, if asked, :func:`svgd_trace_closed_form` from one kernel
    matrix and one matrix product ``k @ [s, c, 1, c·s]`` (c: centred particles)."""
    m, d = a.shape[-2], a.shape[-1]
    c = a - a.mean(-2, keepdim=True)
    sq = c.pow(2).sum(-1)
    r2 = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2 * c @ c.transpose(-1, -2)).clamp_min(0)
    sigma = _sigma(r2, bandwidth)
    inv = sigma.pow(-2)  # [batch, 1, 1]
    k = torch.exp(-0.5 * inv * r2)
    cols = [s, c, torch.ones_like(c[..., :1])]
    if with_trace:
        cols.append((c * s).sum(-1, keepdim=True))
    out = k @ torch.cat(cols, -1)
    ks, kc, k1 = out[..., :d], out[..., d : 2 * d], out[..., 2 * d : 2 * d + 1]
    h = (ks + (c * k1 - kc) * inv) / m
    if not with_trace:
        return h, None, sigma
    inv1 = inv.squeeze(-1)
    kr2 = (k * r2).sum(-1)
    trace = (d * k1.squeeze(-1) - kr2 * inv1 - ((c * ks).sum(-1) - out[..., -1])) * inv1 / m
    return h, trace, sigma


def svgd_jacobian(a: Tensor, s: Tensor, sigma: Tensor) -> Tensor:
    """Jacobian ``∇_x h_Q(x)`` at every particle by autograd, with the particle set ``Q = a``
    and its scores ``s`` frozen. ``[batch, m, d, d]`` (row: output dimension). Costs d backward
    passes (vectorized); for validation and small d.
    """
    m = a.shape[-2]
    mean = a.mean(-2, keepdim=True)
    c = a - mean  # frozen set, centred
    sq_c = c.pow(2).sum(-1).unsqueeze(-2)  # [batch, 1, m]

    def field(x: Tensor) -> Tensor:
        cx = x - mean
        r2 = (cx.pow(2).sum(-1, keepdim=True) + sq_c - 2 * cx @ c.transpose(-1, -2)).clamp_min(0)
        kx = torch.exp(-r2 / (2 * sigma**2))  # k(a_j, x_i): [batch, m(query), m(set)]
        return (kx @ s + (cx * kx.sum(-1, keepdim=True) - kx @ c) / sigma**2) / m

    # h_Q(x_i) depends on x_i only, so the Jacobian of the sum over particles has the blocks.
    jac = jacrev(lambda x: field(x).sum((0, 1)))(a)  # [d(out), batch, m, d(in)]
    return jac.permute(1, 2, 0, 3)


def svgd_step(
    particles: Tensor,
    score: Score,
    step_size: float,
    bandwidth: Bandwidth = 1.0,
    log_det: LogDet = "closed_form",
) -> tuple[Tensor, Tensor]:
    """One SVGD step ``a_i ← a_i + ε h(a_i)`` (eq. 1) on ``particles: [batch, m, d]``.

    Returns ``(new particles [batch, m, d], log|det(I + ε ∇_x h_Q)| [batch, m])``; the second is
    the exact value, its first-order approximation ``ε tr ∇_x h_Q`` (``"trace"`` by autograd,
    ``"closed_form"`` analytically) or zeros (``"none"``). See the module docstring.
    """
    a = particles
    s = _eval_score(score, a)
    h, trace, sigma = _fused_step_terms(a, s, bandwidth, with_trace=log_det == "closed_form")
    if trace is not None:
        ld = step_size * trace
    elif log_det in ("trace", "exact"):
        jac = svgd_jacobian(a, s, sigma)
        if log_det == "trace":
            ld = step_size * jac.diagonal(dim1=-2, dim2=-1).sum(-1)
        else:
            eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            ld = torch.linalg.slogdet(eye + step_size * jac).logabsdet
    else:
        ld = a.new_zeros(a.shape[:-1])
    return a + step_size * h, ld


def svgd(
    particles: Tensor,
    score: Score | None = None,
    *,
    energy: Energy | None = None,
    step_size: float,
    n_steps: int,
    bandwidth: Bandwidth = 1.0,
    log_prob: Tensor | None = None,
    log_det: LogDet = "closed_form",
) -> ParticleResult:
    """Run ``n_steps`` SVGD steps (eq. 1) and track each particle's log-density (Theorem 3.1).

    particles: initial particles ``a^0``, ``[batch, m, d]`` (or ``[m, d]``), drawn from ``q^0``.
    score / energy: the target, ``∇log p`` or ``E`` with ``p ∝ exp(-E)`` (exactly one).
    step_size: ε > 0. bandwidth: RBF σ > 0, or ``"median"`` / ``"paper"`` (recomputed every step,
    see :func:`bandwidth_heuristic`). log_prob: ``log q^0(a^0)``, ``[batch, m]`` (default 0).
    log_det: ``"closed_form"`` (default, Theorem 3.3), ``"trace"``, ``"exact"`` or ``"none"``.

    Returns :class:`ParticleResult` with ``log_prob = log q^0 - Σ_l log|det(I + ε ∇_x h_Q)|``.
    Autograd flows through the steps (e.g. to ``q^0``'s parameters or the target's).
    """
    a, unbatched = _check_particles(particles)
    fn = resolve_score(score, energy)
    step_size = _check_positive(step_size, "step_size")
    n_steps = _check_steps(n_steps)
    _check_log_det(log_det, LOG_DET_METHODS)
    if isinstance(bandwidth, str):
        if bandwidth not in BANDWIDTH_HEURISTICS:
            raise ValueError(
                f"bandwidth must be a number > 0 or one of {BANDWIDTH_HEURISTICS}, "
                f"got {bandwidth!r}"
            )
        if a.shape[1] < 2:
            raise ValueError(f"bandwidth {bandwidth!r} needs m >= 2 particles, got m = 1")
    else:
        _check_positive(bandwidth, "bandwidth")
    lp0 = _check_log_prob(log_prob, a.shape[:-1], unbatched, a)
    total = a.new_zeros(a.shape[:-1])
    for _ in range(n_steps):
        a, ld = svgd_step(a, fn, step_size, bandwidth, log_det)
        total = total + ld
    return _finish(a, lp0 - total, total, unbatched)


def entropy_estimate(log_prob: Tensor) -> Tensor:
    """Entropy ``H ≈ -mean_i log q^L(a_i^L)`` (002 eq. 11); ``log_prob: [batch, m] -> [batch]``
    (``[m]`` -> scalar)."""
    if not isinstance(log_prob, Tensor) or log_prob.dim() not in (1, 2):
        got = tuple(log_prob.shape) if isinstance(log_prob, Tensor) else type(log_prob).__name__
        raise ValueError(f"log_prob must have shape [batch, m] or [m], got {got}")
    return -log_prob.mean(-1)
