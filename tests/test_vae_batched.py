"""Changes for speed keep the results (issue 11, Performance).

REBAR's and RELAX's relaxed decoder passes batched: f at σ_λ(z) and σ_λ(z̃) in one stacked call
of ``LayerObjective.relaxed`` gives, at the same noise, the same estimates and the same
variance-objective gradients as two calls, in float64.  The one-pass input checks
(``torch.aminmax``) still reject NaN, Inf and values outside [0, 1] with the named error.
"""

import math

import pytest
import torch
from test_vae_discrete import estimator_for, synthetic_batch

from stochgrad.vae import (
    DiscreteEstimator,
    LayerObjective,
    RelaxedObjective,
    estimate_gradients,
    make_continuous_vae,
    make_model,
)

DT = torch.float64
EXACT = {"rtol": 1e-10, "atol": 1e-12}  # float rounding only


def pair_of_estimators(name: str, model) -> tuple[DiscreteEstimator, DiscreteEstimator]:
    """Batched and unbatched estimators with equal parameters, every learned part away from its
    start (η ≠ 1, λ ≠ 0.5, r_ρ's scale ≠ 0), so every term of c reaches the comparison."""
    batched = estimator_for(name, model)
    assert all(part.terms[0].batched if name == "relax" else part.batched for part in batched.parts)
    plain = DiscreteEstimator(name, model, hidden=(16,), baseline_hidden=(8,), batched=False)
    plain.load_state_dict(batched.state_dict())
    return batched, plain


def run(model, x, est, seed: int) -> tuple[list[torch.Tensor], ...]:
    """Estimates (ELBO, logit gradients, every model .grad) and the estimator's loss gradients."""
    model.zero_grad(set_to_none=True)
    est.zero_grad(set_to_none=True)
    out = estimate_gradients(model, x, est, torch.Generator().manual_seed(seed))
    est_params = [p for p in est.parameters() if p.requires_grad]
    est_grads = torch.autograd.grad(out.estimator_loss, est_params, allow_unused=True)
    model_grads = [p.grad.clone() for p in model.parameters()]
    return (
        [out.elbo, out.estimator_loss.detach(), *out.logit_grads, *out.samples],
        model_grads,
        [torch.zeros_like(p) if g is None else g for p, g in zip(est_params, est_grads)],
    )


@pytest.mark.parametrize("model_name", ["linear1", "linear2", "nonlinear"])
@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_batched_relaxed_passes_give_the_same_estimates(model_name, name, monkeypatch):
    x = synthetic_batch(16)
    torch.manual_seed(0)
    model = make_model(model_name, x_mean=x.mean(0)).to(DT)
    with torch.no_grad():  # away from initialization, so that σ_λ(z) ≠ σ_λ(z̃) matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batched, plain = pair_of_estimators(name, model)

    calls: list[tuple[int, ...]] = []
    relaxed = LayerObjective.relaxed

    def counting(self, s, temperature):
        calls.append(tuple(s.shape))
        return relaxed(self, s, temperature)

    monkeypatch.setattr(LayerObjective, "relaxed", counting)
    for seed in (3, 4):
        calls.clear()
        a = run(model, x.to(DT), batched, seed)
        stacked = list(calls)
        calls.clear()
        b = run(model, x.to(DT), plain, seed)
        # the batched path really is one stacked call per layer, the plain one two
        assert stacked == [(2, 16, n) for n in model.n_latent]
        assert calls == [(16, n) for n in model.n_latent for _ in range(2)]
        for group_a, group_b in zip(a, b):
            assert len(group_a) == len(group_b)
            for ta, tb in zip(group_a, group_b):
                torch.testing.assert_close(ta, tb, **EXACT)
        # the variance-objective gradients are not trivially zero
        assert any(g.abs().max() > 0 for g in a[2])


def test_relaxed_objective_falls_back_to_two_calls_for_a_plain_f():
    """An f without ``relaxed`` gets two calls of [batch, n] (it may not accept a stack)."""
    shapes = []

    def f(s: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(s.shape))
        return s.pow(2).sum(-1)

    cv = RelaxedObjective(0.7, 0.3, batched=True).to(DT)
    z1, z2 = torch.randn(5, 3, dtype=DT), torch.randn(5, 3, dtype=DT)
    c1, c2 = cv.pair(z1, z2, f)
    assert shapes == [(5, 3), (5, 3)]
    torch.testing.assert_close(c1, 0.7 * torch.sigmoid(z1 / 0.3).pow(2).sum(-1))
    torch.testing.assert_close(c2, 0.7 * torch.sigmoid(z2 / 0.3).pow(2).sum(-1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), -0.1, 1.5])
def test_input_checks_reject_bad_pixels(bad):
    x = torch.zeros(3, 6)
    x[1, 4] = bad
    finite = math.isfinite(bad)
    with pytest.raises(ValueError, match=r"x must hold values in \[0, 1\]"):
        make_model("linear1", n_x=6, n_latent=2).check_x(x)
    message = r"x must hold values in \[0, 1\]" if finite else "x contains NaN or Inf"
    with pytest.raises(ValueError, match=message):
        make_continuous_vae("gaussian", n_x=6, latent_dim=2, hidden=3).check_x(x)
    x[1, 4] = 1.0
    assert torch.equal(make_model("linear1", n_x=6, n_latent=2).check_x(x), x)


def test_bernoulli_log_prob_broadcasts_leading_dimensions_only():
    from stochgrad.vae import bernoulli_log_prob

    logits = torch.randn(3, 5)
    assert bernoulli_log_prob(logits, torch.rand(2, 3, 5)).shape == (2, 3)
    assert bernoulli_log_prob(torch.randn(5), torch.rand(3, 5)).shape == (3,)
    with pytest.raises(ValueError, match="trailing"):
        bernoulli_log_prob(logits, torch.rand(3, 1))
    with pytest.raises(ValueError, match="trailing"):
        bernoulli_log_prob(torch.randn(3), torch.rand(3, 5))
