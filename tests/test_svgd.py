"""SVGD with tracked log-density and the Langevin/HMC bookkeeping (002 Theorems 3.1, 3.3,
Proposition 3.4): exact identities in float64, batching, entropy at 002's settings, errors."""

import itertools
import math

import pytest
import torch

from stochgrad.entropy import (
    bandwidth_heuristic,
    dld,
    entropy_estimate,
    hmc,
    particle_jacobian,
    rbf_kernel,
    sgld,
    svgd,
    svgd_direction,
    svgd_jacobian,
    svgd_step,
    svgd_trace_closed_form,
)
from stochgrad.targets import Gaussian, isotropic_gaussian, paper_gaussian

F64 = torch.float64


def random_gaussian(d: int, seed: int) -> Gaussian:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, dtype=F64, generator=g)
    return Gaussian(
        torch.randn(d, dtype=F64, generator=g), a @ a.T / d + 0.5 * torch.eye(d, dtype=F64)
    )


def particles(batch: int, m: int, d: int, seed: int, scale: float = 1.5) -> torch.Tensor:
    return scale * torch.randn(
        batch, m, d, dtype=F64, generator=torch.Generator().manual_seed(seed)
    )


def reference_field(x: torch.Tensor, a: torch.Tensor, s: torch.Tensor, sigma: float):
    """h_Q(x) of eq. 1 written term by term: x [d], frozen set a [m, d], scores s [m, d]."""
    out = torch.zeros_like(x)
    for j in range(a.shape[0]):
        k = torch.exp(-((a[j] - x) ** 2).sum() / (2 * sigma**2))
        out = out + k * s[j] + k * (x - a[j]) / sigma**2  # k ∇log p(a_j) + ∇_{a_j} k(a_j, x)
    return out / a.shape[0]


# ---- tier A: exact identities ----------------------------------------------------------------


def test_direction_matches_term_by_term_reference():
    p = random_gaussian(3, 0)
    a = particles(2, 7, 3, 1)
    s = p.score(a)
    k, _, sig = rbf_kernel(a, 0.8)
    h = svgd_direction(a, s, k, sig)
    for b in range(2):
        for i in range(7):
            torch.testing.assert_close(h[b, i], reference_field(a[b, i], a[b], s[b], 0.8))
    for log_det in ("none", "closed_form"):  # svgd_step's fused kernel products
        moved, _ = svgd_step(a, p.score, 0.3, 0.8, log_det)
        torch.testing.assert_close(moved, a + 0.3 * h)


def test_autograd_jacobian_matches_finite_differences_of_the_frozen_set_map():
    """svgd_jacobian is ∇_x h_Q(x) at x = a_i with the particle set (j = i included) frozen."""
    p = random_gaussian(2, 1)
    a = particles(1, 6, 2, 2)
    s = p.score(a)
    jac = svgd_jacobian(a, s, torch.full((1, 1, 1), 1.3, dtype=F64))
    eps = 1e-6
    for i in range(6):
        for c in range(2):
            e = torch.zeros(2, dtype=F64)
            e[c] = eps
            fd = (
                reference_field(a[0, i] + e, a[0], s[0], 1.3)
                - reference_field(a[0, i] - e, a[0], s[0], 1.3)
            ) / (2 * eps)
            torch.testing.assert_close(jac[0, i, :, c], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("d", [2, 5])
def test_closed_form_equals_autograd_trace(d):
    """Theorem 3.3 as derived in the svgd module: the closed form is tr ∇_x h_Q exactly."""
    p = random_gaussian(d, d)
    a = particles(3, 12, d, 10 + d)
    s = p.score(a)
    k, r2, sig = rbf_kernel(a, 1.2)
    closed = svgd_trace_closed_form(a, s, k, r2, sig)
    trace = svgd_jacobian(a, s, sig).diagonal(dim1=-2, dim2=-1).sum(-1)
    torch.testing.assert_close(closed, trace, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [2, 5])
def test_closed_form_and_trace_match_exact_log_det_to_order_eps_squared(d):
    """|log det(I + εJ) - ε tr J| = ε² tr(J²)/2 + O(ε³): the error falls 4x when ε halves and
    matches the second-order term within 5 % at the smallest ε, per particle."""
    p = random_gaussian(d, 20 + d)
    a = particles(2, 15, d, 30 + d)
    _, _, sig = rbf_kernel(a, 1.5)
    jac = svgd_jacobian(a, p.score(a), sig)
    tr_j2 = (jac @ jac).diagonal(dim1=-2, dim2=-1).sum(-1)
    errors = []
    for eps in (0.04, 0.02, 0.01):
        _, exact = svgd_step(a, p.score, eps, 1.5, "exact", self_term="frozen")
        _, trace = svgd_step(a, p.score, eps, 1.5, "trace", self_term="frozen")
        _, closed = svgd_step(a, p.score, eps, 1.5, "closed_form", self_term="frozen")
        torch.testing.assert_close(trace, closed, rtol=1e-10, atol=1e-13)
        err = closed - exact
        errors.append(err.abs().max().item())
        assert err.abs().max() <= eps**2 * tr_j2.abs().max()  # |ε² tr(J²)/2| + O(ε³) bound
    for coarse, fine in itertools.pairwise(errors):
        assert 3.5 < coarse / fine < 4.5
    torch.testing.assert_close(err / 0.01**2, tr_j2 / 2, rtol=0.05, atol=1e-3)


def test_paper_formula_misses_the_self_term_and_fails_the_order_eps_squared_check():
    """Negative control: 002's Theorem 3.3 sums over j != i. It differs from the exact trace by
    the self term d/(m σ²), so its log-det error is O(ε), not O(ε²)."""
    d, m, sigma = 2, 8, 1.1
    p = random_gaussian(d, 3)
    a = particles(1, m, d, 4)
    s = p.score(a)
    k, r2, sig = rbf_kernel(a, sigma)
    closed = svgd_trace_closed_form(a, s, k, r2, sig)
    paper = torch.zeros(1, m, dtype=F64)
    for i in range(m):
        for j in range(m):
            if j != i:
                delta = a[0, i] - a[0, j]
                paper[0, i] += k[0, i, j] * (d - r2[0, i, j] / sigma**2 - delta @ s[0, j])
    paper = paper / (m * sigma**2)
    torch.testing.assert_close(closed - paper, torch.full_like(paper, d / (m * sigma**2)))
    torch.testing.assert_close(svgd_trace_closed_form(a, s, k, r2, sig, "dropped"), paper)
    eps = 0.01
    _, exact = svgd_step(a, p.score, eps, sigma, "exact", self_term="frozen")
    assert ((eps * paper - exact).abs() > 10 * eps**2).all()


def test_log_prob_is_initial_minus_accumulated_log_dets():
    p = paper_gaussian()
    a0 = particles(2, 9, 2, 3)
    lp0 = isotropic_gaussian(2, 1.5**2).log_prob(a0)
    res = svgd(a0, p.score, step_size=0.1, n_steps=4, bandwidth=2.0, log_prob=lp0)
    a, total = a0, torch.zeros(2, 9, dtype=F64)
    for _ in range(4):
        a, ld = svgd_step(a, p.score, 0.1, 2.0)
        total = total + ld
    torch.testing.assert_close(res.particles, a)
    torch.testing.assert_close(res.log_prob, lp0 - total)
    torch.testing.assert_close(res.log_det, total)


def test_energy_gives_the_same_run_as_the_score():
    p = random_gaussian(3, 4)
    a0 = particles(2, 8, 3, 5)
    by_score = svgd(a0, p.score, step_size=0.2, n_steps=5, bandwidth="median")
    by_energy = svgd(a0, energy=p.energy, step_size=0.2, n_steps=5, bandwidth="median")
    torch.testing.assert_close(by_energy.particles, by_score.particles)
    torch.testing.assert_close(by_energy.log_prob, by_score.log_prob)


def test_closed_form_log_prob_is_differentiable_wrt_initial_particles():
    p = paper_gaussian()
    a0 = particles(1, 4, 2, 6).requires_grad_(True)

    def f(x):
        return svgd(x, p.score, step_size=0.1, n_steps=3, bandwidth=1.0).log_prob.sum()

    assert torch.autograd.gradcheck(f, (a0,))


# ---- batching and bandwidths -----------------------------------------------------------------


@pytest.mark.parametrize("log_det", ["closed_form", "exact"])
@pytest.mark.parametrize("bandwidth", [1.7, "median", "paper"])
def test_batched_call_matches_unbatched_calls(log_det, bandwidth):
    p = random_gaussian(3, 7)
    a0 = particles(3, 10, 3, 8)
    lp0 = torch.randn(3, 10, dtype=F64)
    kw = {"step_size": 0.05, "n_steps": 4, "bandwidth": bandwidth, "log_det": log_det}
    batched = svgd(a0, p.score, log_prob=lp0, **kw)
    for b in range(3):
        single = svgd(a0[b], p.score, log_prob=lp0[b], **kw)  # [m, d] in, [m, d] out
        assert single.particles.shape == (10, 3) and single.log_prob.shape == (10,)
        torch.testing.assert_close(batched.particles[b], single.particles)
        torch.testing.assert_close(batched.log_prob[b], single.log_prob)


def test_bandwidth_heuristics():
    a = particles(2, 9, 3, 9)
    diff = a.unsqueeze(2) - a.unsqueeze(1)
    r2 = diff.pow(2).sum(-1)
    iu = torch.triu_indices(9, 9, 1)
    med = r2[:, iu[0], iu[1]].median(-1).values
    torch.testing.assert_close(bandwidth_heuristic(r2, "median"), (med / (2 * math.log(10))).sqrt())
    torch.testing.assert_close(
        bandwidth_heuristic(r2, "paper"), r2.sum((1, 2)) / (4 * (2 * math.log(9) + 1))
    )
    k, r2_kernel, sig = rbf_kernel(a, "median")
    torch.testing.assert_close(r2_kernel, r2)
    torch.testing.assert_close(k, torch.exp(-r2 / (2 * sig**2)))


# ---- entropy at 002's settings (section 4.1, Table 2) ----------------------------------------


def test_svgd_recovers_the_entropy_of_the_paper_gaussian():
    """ε = 0.5, L = 200, m = 200, σ = 5, q^0 = N(0, 6 I): |H - 3.41| <= 0.1 (acceptance 2).

    The per-set estimate varies by ~0.01 between seeds (its bias, ~0.04 nats, is the finite-m
    error of eq. 11), so 0.1 is several standard deviations away from the observed error."""
    p = paper_gaussian()
    q0 = isotropic_gaussian(2, 6.0)
    a0 = q0.sample((2, 200), generator=torch.Generator().manual_seed(0))
    res = svgd(a0, p.score, step_size=0.5, n_steps=200, bandwidth=5.0, log_prob=q0.log_prob(a0),
               self_term="dropped", warn=False)  # 002's formula at 002's settings  # fmt: skip
    h = entropy_estimate(res.log_prob)
    assert h.shape == (2,)
    assert (h - p.entropy()).abs().max() <= 0.1


# ---- Langevin and HMC bookkeeping (Proposition 3.4) ------------------------------------------


def test_langevin_and_hmc_log_dets_match_the_gaussian_closed_forms():
    """For p = N(μ, Σ) the position maps are affine: DLD/SGLD I - εΣ⁻¹, one-step HMC
    I - (ε²/2) Σ⁻¹ (momentum held fixed)."""
    p = random_gaussian(3, 11)
    a0 = particles(2, 5, 3, 12)
    eps = 0.3
    eye = torch.eye(3, dtype=F64)
    want = {
        "dld": torch.linalg.slogdet(eye - eps * p.precision).logabsdet,
        "hmc": torch.linalg.slogdet(eye - eps**2 / 2 * p.precision).logabsdet,
    }
    for name, fn in [("dld", dld), ("sgld", sgld), ("hmc", hmc)]:
        res = fn(a0, p.score, step_size=eps, n_steps=3, log_det="exact")
        expected = 3 * want["hmc" if name == "hmc" else "dld"]
        torch.testing.assert_close(res.log_det, expected.expand(2, 5))
    tr = dld(a0, p.score, step_size=eps, n_steps=1, log_det="trace").log_det
    torch.testing.assert_close(tr, (-eps * p.precision.trace()).expand(2, 5))


def test_particle_jacobian_of_a_nonlinear_map():
    x = particles(2, 3, 2, 13)
    jac = particle_jacobian(lambda z: torch.sin(z) * z.flip(-1), x)
    s, c = torch.sin(x), torch.cos(x)
    y = x.flip(-1)
    torch.testing.assert_close(jac[..., 0, 0], c[..., 0] * y[..., 0])
    torch.testing.assert_close(jac[..., 0, 1], s[..., 0])
    torch.testing.assert_close(jac[..., 1, 0], s[..., 1])
    torch.testing.assert_close(jac[..., 1, 1], c[..., 1] * y[..., 1])


def test_sgld_bookkeeping_ignores_the_noise_and_misses_the_entropy():
    """Proposition 3.4: SGLD's particles spread like p, but the tracked density is the same as
    for noiseless DLD, whose particles collapse: both 'entropies' are far below H(p)."""
    p = paper_gaussian()
    q0 = isotropic_gaussian(2, 6.0)
    a0 = q0.sample((1, 500), generator=torch.Generator().manual_seed(1))
    kw = {"step_size": 0.1, "n_steps": 100, "log_prob": q0.log_prob(a0)}
    noisy = sgld(a0, p.score, generator=torch.Generator().manual_seed(2), **kw)
    quiet = dld(a0, p.score, **kw)
    torch.testing.assert_close(noisy.log_prob, quiet.log_prob)
    assert entropy_estimate(noisy.log_prob).item() < p.entropy() - 10
    spread = torch.cov(noisy.particles[0].T)  # 500 samples: the trace is within ~20 % of Σ's
    assert 0.7 < (spread.trace() / p.cov.trace()).item() < 1.5
    contraction = torch.linalg.matrix_power(torch.eye(2, dtype=F64) - 0.1 * p.precision, 100)
    quiet_cov = torch.cov(quiet.particles[0].T)  # DLD is linear here: exactly M cov(a0) Mᵀ
    torch.testing.assert_close(quiet_cov, contraction @ torch.cov(a0[0].T) @ contraction.T)
    assert quiet_cov.trace() < 0.01 * p.cov.trace()


# ---- input validation ------------------------------------------------------------------------


def test_errors_name_the_argument():
    p = paper_gaussian()
    a = particles(1, 5, 2, 0)
    ok = {"step_size": 0.1, "n_steps": 2}
    cases = [
        (lambda: svgd(a, p.score, step_size=0.0, n_steps=2), "step_size"),
        (lambda: svgd(a, p.score, step_size=float("nan"), n_steps=2), "step_size"),
        (lambda: svgd(a, p.score, bandwidth=-1.0, **ok), "bandwidth"),
        (lambda: svgd(a, p.score, bandwidth="silverman", **ok), "bandwidth"),
        (lambda: svgd(a[:, :1], p.score, bandwidth="median", **ok), "m >= 2"),
        (lambda: svgd(a, p.score, step_size=0.1, n_steps=-1), "n_steps"),
        (lambda: svgd(a, p.score, log_det="hutchinson", **ok), "log_det"),
        (lambda: svgd(a[0, 0], p.score, **ok), "particles"),
        (lambda: svgd(a.unsqueeze(0), p.score, **ok), "particles"),
        (lambda: svgd(a * float("inf"), p.score, **ok), "particles"),
        (lambda: svgd(a, **ok), "exactly one"),
        (lambda: svgd(a, p.score, energy=p.energy, **ok), "exactly one"),
        (lambda: svgd(a, lambda x: x[..., :1], **ok), "score"),
        (lambda: svgd(a, energy=lambda x: x, **ok), "energy"),
        (lambda: svgd(a, p.score, log_prob=torch.zeros(1, 4), **ok), "log_prob"),
        (lambda: sgld(a, p.score, step_size=-0.1, n_steps=1), "step_size"),
        (lambda: sgld(a, p.score, log_det="closed_form", **ok), "log_det"),
        (lambda: hmc(a, p.score, n_leapfrog=0, **ok), "n_leapfrog"),
    ]
    for call, word in cases:
        with pytest.raises(ValueError, match=word):
            call()
    with pytest.raises(TypeError, match="particles"):
        svgd(a.long(), p.score, **ok)
