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
``ε tr ∇_x h_Q``, trace from the autograd Jacobian), or in closed form (``"closed_form"``). This
is the ``self_term="frozen"`` variant; the others change only the particle's own term (below).

**Closed form (our derivation of Theorem 3.3).** With ``δ_ij = a_i - a_j``, ``r_ij = ‖δ_ij‖``,
``s_j = ∇log p(a_j)`` and ``∇_x k(a_j, x) = -k δ/σ²``, ``∇_{a_j} k(a_j, x) = k δ/σ²``:

    ∇_x [k(a_j, x) s_j]      = -(k_ij/σ²) s_j δ_ijᵀ                 trace: -(k_ij/σ²) δ_ijᵀ s_j
    ∇_x [k(a_j, x) δ/σ²]     =  (k_ij/σ²) (I - δ_ij δ_ijᵀ/σ²)        trace:  (k_ij/σ²)(d - r_ij²/σ²)

    tr ∇_x h_Q(a_i) = 1/(m σ²) Σ_{j=1..m} k_ij (d - r_ij²/σ² - δ_ijᵀ s_j)

Only first-order derivatives (the scores, already computed by the step) and dot products. The
``j = i`` term is ``d/σ²``: the particle set is frozen, so ``s_i`` is a constant of ``T_Q``.
Differences from 002: the target there is ``exp(Q/α)`` with the update scaled by α, so with the
score of ``p`` α drops out (the proof's term ① carries a spurious α and ``k(a_j, a_j)`` for
``k(a_i, a_j)``).

**The particle's own term (``self_term``).** Particle i's update contains its own term
``(1/m)[k(a_i, a_i) s_i + ∇_{a_j} k(a_j, a_i)|_{j=i}] = s_i / m``. Three ways to differentiate it:

- ``"frozen"``: as a member of the frozen set Q (above): ``+d/(m σ²)`` per unit of ε. This is
  the Jacobian of ``T_Q``, the map that transports the density in the mean-field limit.
- ``"dropped"``: 002's main-text Theorem 3.3, the sum over ``j ≠ i`` (normalized by m; the
  authors' code uses m - 1): ``frozen - d/(m σ²)``.
- ``"hessian"`` (default): the derivative of the particle's own update with the others fixed,
  ``(1/m) ∇s(a_i)``: ``dropped + tr ∇s(a_i) / m``, ``tr ∇s`` (the Laplacian of log p) by
  autograd (:func:`score_jacobian_trace`: ``d`` backward passes through the score; for an
  energy, double backward). Summed over particles this is the trace of the joint ``md × md``
  Jacobian of the step, so ``-mean_i log q^L`` is, to first order in ε, ``(1/m) H(a_1, ..., a_m)``,
  the joint entropy per particle, which is at most the entropy of one particle's marginal
  (subadditivity), with equality when the particles are independent (at step 0).

**Where the closed form holds** (``benchmarks/results/svgd_marginal.md``: 1000 independent
particle sets, one particle of each, its entropy by k-NN; Gaussians in 1-D to 6-D and a 2-D
mixture, m = 50 and 10, σ from 0.5 to 5, median and the authors'; 10 to 1000 steps of ε = 0.1).
The policy's entropy is that of one particle's marginal, and no variant is that in general: a
particle's next position depends on the others, which are random and correlated with it. While
SVGD still transports the particles (each step moves them at least :data:`SETTLED_FRACTION` =
0.6 times as far as the first), ``hessian`` was within 0.11 nats of the marginal in all 43 such
rows; ``frozen`` and ``dropped`` miss ``tr ∇s / m`` per step and overshoot by up to 6.6 and 2.4
nats there (at S2AC's m = 10, d = 6, authors' bandwidth, 10 steps: +1.04 and +0.88, hessian
+0.03). Once the particles settle into a configuration every estimate drifts while the
marginal changes slowly: ``hessian`` falls (the joint density of a settled configuration
concentrates), ``frozen`` rises by ``ε d/(m σ²)`` per step, ``dropped`` goes either way.
:func:`svgd` records the per-step entropy change and movement (:class:`Diagnostics`) and warns
when the particles have settled.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.func import jacrev

Score = Callable[[Tensor], Tensor]
ScoreTrace = Callable[[Tensor], tuple[Tensor, Tensor]]
Energy = Callable[[Tensor], Tensor]
Bandwidth = float | Literal["median", "authors", "paper"]
LogDet = Literal["closed_form", "trace", "exact", "none"]
SelfTerm = Literal["frozen", "dropped", "hessian"]

LOG_DET_METHODS = ("closed_form", "trace", "exact", "none")
BANDWIDTH_HEURISTICS = ("median", "authors", "paper")
SELF_TERMS = ("frozen", "dropped", "hessian")
DEFAULT_SELF_TERM: SelfTerm = "hessian"  # chosen by benchmarks/svgd_marginal.py
DEFAULT_BANDWIDTH: Bandwidth = 1.0
SETTLED_FRACTION = 0.6  # svgd warns below it (chosen from benchmarks/results/svgd_marginal.md)


@dataclass
class ParticleResult:
    """Output of a particle sampler.

    particles: ``[batch, m, d]`` after the last step (``[m, d]`` if the input was unbatched).
    log_prob: tracked ``log q^L(a^L)``, ``[batch, m]`` (``[m]``); the initial ``log_prob`` minus
        the accumulated log-determinants (a log-density change if no ``log_prob`` was given).
    log_det: accumulated ``Σ_l log|det ∂a^{l+1}/∂a^l|``, same shape as ``log_prob``.
    diagnostics: per-step entropy change and particle movement (:class:`Diagnostics`; SVGD).
    """

    particles: Tensor
    log_prob: Tensor
    log_det: Tensor
    diagnostics: Diagnostics | None = None


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


def _finish(
    a: Tensor, log_prob: Tensor, log_det: Tensor, unbatched: bool, diag: Diagnostics | None = None
) -> ParticleResult:
    if unbatched:
        if diag is not None:
            diag = Diagnostics(
                *(x.squeeze(-1) for x in (diag.entropy_change, diag.movement, diag.drift_ratio)),
                diag.settling.squeeze(0),
            )
        return ParticleResult(a.squeeze(0), log_prob.squeeze(0), log_det.squeeze(0), diag)
    return ParticleResult(a, log_prob, log_det, diag)


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


def _eval_score_trace(score_trace: ScoreTrace, a: Tensor) -> tuple[Tensor, Tensor]:
    out = score_trace(a)
    ok = isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)
    if not ok or out[0].shape != a.shape or out[1].shape != a.shape[:-1]:
        raise ValueError(
            f"score_trace must return (score {tuple(a.shape)}, tr ∇score {tuple(a.shape[:-1])})"
        )
    return out


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
    for ``k = exp(-r²/h)``. ``"authors"``: the S2AC code's ``k = exp(-r² log(m+1) / stat)`` with
    ``stat = mean_{i,j} r_ij² / 2`` (mean over all m² pairs, i = j included), i.e.
    σ² = mean r² / (4 log(m + 1)). ``"paper"``: σ = Σ_{i,j} r_ij² / (4 (2 log m + 1)), 002 Tables
    3-4 as printed: σ carries units of length², grows like m² · spread² and makes the kernel
    nearly constant (k > 0.97 for every pair) once the spread is of order 1 or more. Computed on
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
    elif method in ("authors", "paper"):
        return _sigma_from_sum(r2.sum((-1, -2)), m, method)
    else:
        raise ValueError(
            f"bandwidth must be a number > 0 or one of {BANDWIDTH_HEURISTICS}, got {method!r}"
        )
    if not (sigma > 0).all():
        raise ValueError(f"bandwidth heuristic {method!r} gave σ = 0: all particles coincide")
    return sigma


def _sigma_from_sum(sum_r2: Tensor, m: int, method: str) -> Tensor:
    """``"authors"`` / ``"paper"`` σ from ``Σ_{i,j} r_ij²``, ``[batch]`` -> ``[batch]``."""
    sum_r2 = sum_r2.detach()
    if method == "authors":
        sigma = (sum_r2 / (m * m * 4 * math.log(m + 1))).sqrt()
    else:
        sigma = sum_r2 / (4 * (2 * math.log(m) + 1))
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


def svgd_trace_closed_form(
    a: Tensor,
    s: Tensor,
    k: Tensor,
    r2: Tensor,
    sigma: Tensor,
    self_term: SelfTerm = "frozen",
    score_trace: Tensor | None = None,
) -> Tensor:
    """``tr ∇h`` at every particle in closed form (Theorem 3.3, derived in the module
    docstring), ``[batch, m]``. ``"frozen"``: ``1/(m σ²) Σ_j k_ij (d - r_ij²/σ² - (a_i - a_j)ᵀ
    s_j)``, j = i included (its term is d/σ²); ``"dropped"``: the same sum over j ≠ i (002's
    Theorem 3.3); ``"hessian"``: the j ≠ i sum plus ``tr ∇s(a_i) / m``, which needs
    ``score_trace`` (``[batch, m]``, see :func:`score_jacobian_trace`).
    """
    m, d = a.shape[-2], a.shape[-1]
    c = a - a.mean(-2, keepdim=True)
    out = k @ torch.cat([s, torch.ones_like(c[..., :1]), (c * s).sum(-1, keepdim=True)], -1)
    ks, k1, kcs = out[..., :d], out[..., d], out[..., d + 1]
    sig2 = sigma.squeeze(-1) ** 2
    kr2 = (k * r2).sum(-1)
    trace = (d * k1 - kr2 / sig2 - ((c * ks).sum(-1) - kcs)) / (m * sig2)
    if self_term == "frozen":
        return trace
    if self_term == "dropped":
        return trace - d / (m * sig2)
    if self_term != "hessian" or score_trace is None:
        raise ValueError(f"self_term must be one of {SELF_TERMS} (hessian with score_trace)")
    return trace - d / (m * sig2) + score_trace / m


def score_jacobian_trace(score: Score, a: Tensor) -> tuple[Tensor, Tensor]:
    """Scores ``s = score(a)`` and ``tr ∇s(a_i)`` (the Laplacian of log p) at every particle.

    a: ``[batch, m, d]``; returns ``([batch, m, d], [batch, m])``. By autograd: one score
    evaluation and ``d`` backward passes, each batched over all particles. The graph is kept
    when ``a`` requires grad.
    """
    keep = torch.is_grad_enabled() and a.requires_grad
    with torch.enable_grad():
        x = a if a.requires_grad else a.detach().requires_grad_(True)
        s = _eval_score(score, x)
        if not s.requires_grad:
            raise ValueError(
                "score must be differentiable by autograd for self_term='hessian' "
                "(its output does not depend on its input in the graph)"
            )
        tr = x.new_zeros(x.shape[:-1])
        for j in range(x.shape[-1]):
            (g,) = torch.autograd.grad(s[..., j].sum(), x, retain_graph=True, create_graph=keep)
            tr = tr + g[..., j]
    if not keep:
        s, tr = s.detach(), tr.detach()
    return s, tr


def _fused_step_terms(
    a: Tensor, s: Tensor, bandwidth: Bandwidth, with_trace: bool
) -> tuple[Tensor, Tensor | None, Tensor | float, Tensor | float]:
    """The update and the frozen-set trace from one kernel matrix and one matrix product.

    Returns ``(m h, T, 1/σ², σ)``: ``m h = Σ_j [k_ij s_j + k_ij (a_i - a_j)/σ²]`` (``[batch, m,
    d]``) and, if ``with_trace``, ``T = Σ_j k_ij (d - r_ij²/σ² - (a_i - a_j)ᵀ s_j)``
    (``[batch, m]``, so that ``tr ∇_x h_Q = T / (m σ²)``); ``1/σ²`` and ``σ`` are numbers or
    ``[batch, 1, 1]``. With centred particles ``c`` and ``q_i = ‖c_i‖²``, the product is
    ``k @ [s - c/σ², c, c·(s - c/σ²)]`` plus the row sums ``Σ_j k_ij``: expanding ``r_ij² = q_i +
    q_j - 2 c_i·c_j`` and ``δ_ij = c_i - c_j`` turns T into ``d Σ_j k_ij + Σ_j k_ij (c_j·s_j -
    q_j/σ²) - c_i·(m h_i - Σ_j k_ij c_j/σ²)``. The kernel exponent ``-r²/(2σ²) = (c_i·c_j - q_i/2 - q_j/2)/σ²`` comes
    from one ``baddbmm`` and is clamped to ``[0.9 log(tiny), 0]`` before ``exp``: float32 ``exp``
    below about -87 gives subnormal numbers, which make the step and its products many times
    slower; the clamp changes ``k`` by at most ``tiny^0.9`` (7e-35 in float32). Without
    gradients the kernel is built in place.
    """
    m, d = a.shape[-2], a.shape[-1]
    c = a - a.mean(-2, keepdim=True)
    q = torch.linalg.vecdot(c, c)  # [batch, m]
    ct = c.transpose(-1, -2)
    if isinstance(bandwidth, str):
        r2 = squared_distances(a) if bandwidth == "median" else None
        if r2 is not None:
            sigma: Tensor | float = _sigma(r2, "median")
        else:  # Σ_ij r_ij² = 2 m Σ_i ‖c_i‖² (c centred): no m x m pass needed
            sigma = _sigma_from_sum(2 * m * q.detach().sum(-1), m, bandwidth).view(-1, 1, 1)
        inv: Tensor | float = sigma.pow(-2)
        half = (-0.5 * inv) * q.unsqueeze(-1)
        e = torch.baddbmm(half + half.transpose(-1, -2), c * inv, ct)
    else:
        sigma = float(bandwidth)
        inv = 1.0 / sigma**2
        half = (-0.5 * inv) * q.unsqueeze(-1)
        e = torch.baddbmm(half + half.transpose(-1, -2), c, ct, alpha=inv)
    floor = _exp_floor(a.dtype)
    if torch.is_grad_enabled() and (a.requires_grad or s.requires_grad):
        k = e.clamp(floor, 0.0).exp()
    else:
        k = e.clamp_(floor, 0.0).exp_()
    # P = Σ_j k_ij (s_j - c_j/σ²): m h = P + (c_i/σ²) Σ_j k_ij
    scalar = not isinstance(inv, Tensor)
    s_c = torch.add(s, c, alpha=-inv) if scalar else s - inv * c
    k1 = k.sum(-1, keepdim=True)  # Σ_j k_ij, [batch, m, 1]
    if not with_trace:
        pk = k @ s_c
        hm = torch.addcmul(pk, c, k1, value=inv) if scalar else torch.addcmul(pk, inv * c, k1)
        return hm, None, inv, sigma
    # Σ_j k_ij (c_j·s_j - q_j/σ²) = Σ_j k_ij c_j·(s_j - c_j/σ²)
    out = k @ torch.cat([s_c, c, torch.linalg.vecdot(c, s_c).unsqueeze(-1)], -1)
    pk, kc, kcol = out[..., :d], out[..., d : 2 * d], out[..., -1]
    if scalar:
        hm = torch.addcmul(pk, c, k1, value=inv)
        u = torch.add(hm, kc, alpha=-inv)
    else:
        hm = torch.addcmul(pk, inv * c, k1)
        u = hm - inv * kc
    # T = d Σ_j k_ij + Σ_j k_ij (c_j·s_j - q_j/σ²) - c_i·(m h_i - Σ_j k_ij c_j/σ²)
    trace = torch.add(kcol, k1.squeeze(-1), alpha=d) - torch.linalg.vecdot(c, u)
    return hm, trace, inv, sigma


_EXP_FLOOR: dict[torch.dtype, float] = {}


def _exp_floor(dtype: torch.dtype) -> float:
    """``0.9 log(tiny)`` of a floating dtype: ``exp`` above it is a normal number."""
    if dtype not in _EXP_FLOOR:
        _EXP_FLOOR[dtype] = 0.9 * math.log(torch.finfo(dtype).tiny)
    return _EXP_FLOOR[dtype]


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


def _step(
    a: Tensor,
    score: Score,
    step_size: float,
    bandwidth: Bandwidth,
    log_det: str,
    self_term: str,
    score_trace: ScoreTrace | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor | float]:
    """One step: ``(new particles, log-det [batch, m], m h [batch, m, d], sigma)``."""
    m, d = a.shape[-2], a.shape[-1]
    hessian = self_term == "hessian" and log_det != "none"
    if hessian and score_trace is not None:
        s, score_tr = _eval_score_trace(score_trace, a)
    elif hessian:
        s, score_tr = score_jacobian_trace(score, a)
    else:
        s, score_tr = _eval_score(score, a), None
    hm, trace, inv, sigma = _fused_step_terms(a, s, bandwidth, log_det == "closed_form")
    if trace is not None:
        inv1 = inv.view(-1, 1) if isinstance(inv, Tensor) else inv
        if self_term == "dropped":
            trace = trace - d  # T's j = i term is k_ii d = d
        elif self_term == "hessian":
            trace = trace - d + score_tr / inv1  # + σ² tr ∇s(a_i)
        ld = trace * (step_size * inv1 / m)  # ε tr ∇h = ε T / (m σ²)
    elif log_det in ("trace", "exact"):
        sig = sigma if isinstance(sigma, Tensor) else a.new_full((a.shape[0], 1, 1), sigma)
        jac = svgd_jacobian(a, s, sig)
        eye = torch.eye(d, dtype=a.dtype, device=a.device)
        if self_term != "frozen":
            jac = jac - eye / (m * sig.unsqueeze(-1) ** 2)
        if hessian:
            jac = jac + particle_jacobian(score, a) / m
        if log_det == "trace":
            ld = step_size * jac.diagonal(dim1=-2, dim2=-1).sum(-1)
        else:
            ld = torch.linalg.slogdet(eye + step_size * jac).logabsdet
    else:
        ld = a.new_zeros(a.shape[:-1])
    return torch.add(a, hm, alpha=step_size / m), ld, hm, sigma


def particle_jacobian(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Per-particle Jacobian ``∂fn(x)_i/∂x_i``, ``[batch, m, d, d]`` (row: output dimension).

    ``fn: [batch, m, d] -> [batch, m, d]`` must act on each particle separately. Uses ``d``
    autograd passes; the graph is kept when ``x`` requires grad.
    """
    keep = torch.is_grad_enabled() and x.requires_grad
    with torch.enable_grad():
        xg = x if x.requires_grad else x.detach().requires_grad_(True)
        y = fn(xg)
        rows = [
            torch.autograd.grad(y[..., k].sum(), xg, retain_graph=True, create_graph=keep)[0]
            for k in range(x.shape[-1])
        ]
    return torch.stack(rows, -2)


def svgd_step(
    particles: Tensor,
    score: Score,
    step_size: float,
    bandwidth: Bandwidth = DEFAULT_BANDWIDTH,
    log_det: LogDet = "closed_form",
    *,
    self_term: SelfTerm = DEFAULT_SELF_TERM,
) -> tuple[Tensor, Tensor]:
    """One SVGD step ``a_i ← a_i + ε h(a_i)`` (eq. 1) on ``particles: [batch, m, d]``.

    Returns ``(new particles [batch, m, d], log|det(I + ε ∇h)| [batch, m])``; the second is
    the exact value, its first-order approximation ``ε tr ∇h`` (``"trace"`` by autograd,
    ``"closed_form"`` analytically) or zeros (``"none"``); ``self_term`` picks which ∇h (module
    docstring). The low-level step: no input checks and no diagnostics (see :func:`svgd`).
    """
    a, ld, _, _ = _step(particles, score, step_size, bandwidth, log_det, self_term)
    return a, ld


def svgd(
    particles: Tensor,
    score: Score | None = None,
    *,
    energy: Energy | None = None,
    step_size: float,
    n_steps: int,
    bandwidth: Bandwidth = DEFAULT_BANDWIDTH,
    log_prob: Tensor | None = None,
    log_det: LogDet = "closed_form",
    self_term: SelfTerm = DEFAULT_SELF_TERM,
    score_trace: ScoreTrace | None = None,
    warn: bool = True,
) -> ParticleResult:
    """Run ``n_steps`` SVGD steps (eq. 1) and track each particle's log-density (Theorem 3.1).

    particles: initial particles ``a^0``, ``[batch, m, d]`` (or ``[m, d]``), drawn from ``q^0``.
    score / energy: the target, ``∇log p`` or ``E`` with ``p ∝ exp(-E)`` (exactly one).
    step_size: ε > 0. bandwidth: RBF σ > 0, or ``"median"`` / ``"authors"`` / ``"paper"``
    (recomputed every step, see :func:`bandwidth_heuristic`). log_prob: ``log q^0(a^0)``,
    ``[batch, m]`` (default 0). log_det: ``"closed_form"`` (default, Theorem 3.3), ``"trace"``,
    ``"exact"`` or ``"none"``. self_term: which derivative of a particle's own term enters
    ``∇h``: ``"hessian"`` (default; needs a score differentiable by autograd and costs ``d``
    backward passes through it per step), ``"dropped"`` (002's Theorem 3.3) or ``"frozen"``; see
    the module docstring. score_trace: instead of ``score``/``energy``, a function returning
    ``(score, tr ∇score)`` (``[batch, m, d]``, ``[batch, m]``), e.g. in closed form: the
    ``"hessian"`` self term then costs no autograd passes. warn: ``RuntimeWarning`` once the particles have settled
    (:attr:`Diagnostics.settling` below :data:`SETTLED_FRACTION`), where the estimate no longer
    follows their marginal entropy.

    Returns :class:`ParticleResult` with ``log_prob = log q^0 - Σ_l log|det(I + ε ∇h)|`` and
    the per-step diagnostics. Autograd flows through the steps (e.g. to ``q^0``'s parameters or
    the target's). ValueError if the run produces NaN or Inf (naming score or step_size).
    """
    a, unbatched = _check_particles(particles)
    if score_trace is not None:
        if score is not None or energy is not None:
            raise ValueError("give exactly one of score, energy and score_trace")
        if not callable(score_trace):
            raise TypeError(f"score_trace must be callable, got {type(score_trace).__name__}")

        def fn(x: Tensor) -> Tensor:
            return _eval_score_trace(score_trace, x)[0]
    else:
        fn = resolve_score(score, energy)
    step_size = _check_positive(step_size, "step_size")
    n_steps = _check_steps(n_steps)
    _check_log_det(log_det, LOG_DET_METHODS)
    if self_term not in SELF_TERMS:
        raise ValueError(f"self_term must be one of {SELF_TERMS}, got {self_term!r}")
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
    a0, m, d = a, a.shape[-2], a.shape[-1]
    total = a.new_zeros(a.shape[:-1])
    change, movement = [], []
    for _ in range(n_steps):
        a, ld, hm, sigma = _step(a, fn, step_size, bandwidth, log_det, self_term, score_trace)
        total = total + ld
        with torch.no_grad():
            change.append(ld.mean(-1))  # estimated entropy change of this step (nats)
            sig = sigma.view(-1) if isinstance(sigma, Tensor) else sigma
            movement.append(hm.norm(dim=-1).mean(-1) * (step_size / m / sig))
    diag = _diagnostics(change, movement, d, a.shape[0], a.new_empty(0))
    _check_run_finite(a, total, diag.movement if n_steps else None, fn, a0, step_size, "svgd")
    if warn and n_steps and log_det != "none":
        _warn_if_settled(diag)
    return _finish(a, lp0 - total, total, unbatched, diag)


# ---- diagnostics -----------------------------------------------------------------------------


@dataclass
class Diagnostics:
    """Per-step record of a particle run, ``[n_steps, batch]`` each (``[n_steps]`` unbatched),
    and its summary ``settling`` (``[batch]``).

    entropy_change: estimated entropy change of each step, ``mean_i log|det|`` (nats).
    movement: mean particle move of each step, ``mean_i ‖a_i^{l+1} - a_i^l‖ / σ`` (in kernel
        widths).
    drift_ratio: ``|entropy_change| / (d · movement)``: nats of estimated entropy change per
        kernel width moved per dimension; it grows without bound when the estimate keeps
        changing while the particles stand still.
    settling: mean movement over the last tenth of the steps divided by the first step's. The
        closed form follows the particles' marginal entropy while SVGD transports them and
        stops following it as they settle into a configuration (module docstring, "Where the
        closed form holds"); ``svgd`` warns when the median over sets is below
        :data:`SETTLED_FRACTION`.
    """

    entropy_change: Tensor
    movement: Tensor
    drift_ratio: Tensor
    settling: Tensor


def _diagnostics(change: list, movement: list, d: int, batch: int, like: Tensor) -> Diagnostics:
    if not change:
        empty = like.new_zeros(0, batch)
        return Diagnostics(empty, empty, empty, like.new_ones(batch))
    ch, mv = torch.stack(change), torch.stack(movement)
    tiny = torch.finfo(mv.dtype).tiny
    ratio = ch.abs() / (d * mv).clamp_min(tiny)
    n = mv.shape[0]
    settling = mv[n - max(1, n // 10) :].mean(0) / mv[0].clamp_min(tiny)
    return Diagnostics(ch, mv, ratio, settling)


def _warn_if_settled(diag: Diagnostics) -> None:
    """RuntimeWarning if the particles have settled (median ``settling`` below
    :data:`SETTLED_FRACTION`): the estimate then no longer follows their marginal entropy."""
    settling = float(diag.settling.median())
    if settling < SETTLED_FRACTION:
        n = diag.movement.shape[0]
        drift = float(diag.entropy_change[n - max(1, n // 10) :].mean().abs())
        warnings.warn(
            f"svgd: the particles have settled (they now move {settling:.2g} times as far per "
            f"step as in the first step, below {SETTLED_FRACTION:g}) while the tracked entropy "
            f"still changes by {drift:.2g} nats per step: past this point the closed-form "
            "estimate no longer follows the particles' marginal entropy (see the README and "
            "ParticleResult.diagnostics). Use fewer steps.",
            RuntimeWarning,
            stacklevel=3,
        )


def _check_run_finite(
    a: Tensor,
    total: Tensor,
    movement: Tensor | None,
    score: Score,
    a0: Tensor,
    step_size: float,
    name: str,
) -> None:
    """ValueError naming score or step_size if a run ended with NaN/Inf (one check per run)."""
    if bool(torch.isfinite(total).all()) and bool(torch.isfinite(a).all()):
        return
    with torch.no_grad():
        s0 = score(a0.detach())
    if not bool(torch.isfinite(s0).all()):
        raise ValueError(f"{name}: score returned NaN or Inf at the initial particles")
    where = ""
    if movement is not None:
        bad = (~torch.isfinite(movement)).any(-1).nonzero()
        if bad.numel():
            where = f" at step {int(bad[0]) + 1}"
    raise ValueError(
        f"{name}: the particles or their log-density became NaN or Inf{where}: the step_size "
        f"({step_size:g}) is too large for this target (the particles diverged) or the score "
        "returned NaN/Inf away from the initial particles"
    )


def entropy_estimate(log_prob: Tensor) -> Tensor:
    """Entropy ``H ≈ -mean_i log q^L(a_i^L)`` (002 eq. 11); ``log_prob: [batch, m] -> [batch]``
    (``[m]`` -> scalar). ValueError if ``log_prob`` holds NaN or Inf."""
    if not isinstance(log_prob, Tensor) or log_prob.dim() not in (1, 2):
        got = tuple(log_prob.shape) if isinstance(log_prob, Tensor) else type(log_prob).__name__
        raise ValueError(f"log_prob must have shape [batch, m] or [m], got {got}")
    if log_prob.shape[-1] == 0:
        raise ValueError("log_prob must hold at least one particle, got m = 0")
    if not bool(torch.isfinite(log_prob).all()):
        raise ValueError("log_prob contains NaN or Inf values; expected finite log-densities")
    return -log_prob.mean(-1)
