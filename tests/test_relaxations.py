"""The relaxations of 003 App. A: z ~ p(z|θ), b = H(z), z̃ ~ p(z|b,θ), log-densities."""

import itertools

import pytest
import torch
from scipy import stats

from stochgrad.estimators import BernoulliRelaxation, CategoricalRelaxation, concrete

N = 100_000
ALPHA = 1e-3  # false-alarm rate of each KS test


def test_bernoulli_hard_sample_has_the_right_mean():
    logits = torch.tensor([-1.5, 0.0, 0.7], dtype=torch.float64).expand(N, 3)
    rel = BernoulliRelaxation(logits=logits)
    b = rel.hard(rel.rsample_z(rel.sample_noise()))
    p = torch.sigmoid(logits[0])
    se = (p * (1 - p) / N).sqrt()
    assert ((b.mean(0) - p).abs() < 4 * se).all()


@pytest.mark.parametrize("tied", [False, True])
def test_bernoulli_conditional_matches_rejection_sampling(tied):
    theta = 0.8
    logits = torch.full((N, 1), theta, dtype=torch.float64)
    rel = BernoulliRelaxation(logits=logits)
    z = rel.rsample_z(rel.sample_noise())
    b = rel.hard(z)
    z_ref = rel.rsample_z(rel.sample_noise())  # independent draws, split by their own b
    b_ref = rel.hard(z_ref)
    z_tilde = rel.conditional_z(b, z if tied else None)
    for value in (0.0, 1.0):
        sel, ref = z_tilde[b == value], z_ref[b_ref == value]
        assert ((sel > 0).double() == value).all()
        assert stats.ks_2samp(sel.numpy(), ref.numpy()).pvalue > ALPHA
    if tied:
        torch.testing.assert_close(z_tilde, z)


def test_bernoulli_conditional_with_appendix_intervals_is_caught():
    """Negative control: 003 App. A's intervals (θ and 1-θ swapped) fail the same test."""
    theta = torch.tensor(0.8, dtype=torch.float64)
    p = torch.sigmoid(theta)
    v = torch.rand(N, dtype=torch.float64)
    u_swapped = v * p  # the appendix's choice for b = 0
    z_swapped = theta + torch.log(u_swapped) - torch.log1p(-u_swapped)
    rel = BernoulliRelaxation(logits=theta.expand(N, 1))
    z_ref = rel.rsample_z(rel.sample_noise())
    ref = z_ref[z_ref <= 0]
    assert stats.ks_2samp(z_swapped.numpy(), ref.numpy()).pvalue < ALPHA


@pytest.mark.parametrize("tied", [False, True])
def test_categorical_conditional_matches_rejection_sampling(tied):
    logits = torch.tensor([0.5, -1.0, 1.2, 0.0], dtype=torch.float64).expand(N, 4)
    rel = CategoricalRelaxation(logits=logits)
    z = rel.rsample_z(rel.sample_noise())
    b = rel.hard(z)
    z_ref = rel.rsample_z(rel.sample_noise())
    b_ref = rel.hard(z_ref)
    z_tilde = rel.conditional_z(b, z if tied else None)
    assert torch.equal(rel.hard(z_tilde), b)
    for k in (0, 1, 2):  # condition on b = k; compare every coordinate of z
        sel, ref = z_tilde[b[:, k] == 1], z_ref[b_ref[:, k] == 1]
        for i in range(4):
            assert stats.ks_2samp(sel[:, i].numpy(), ref[:, i].numpy()).pvalue > ALPHA / 12
    if tied:
        torch.testing.assert_close(z_tilde, z)


def test_categorical_hard_sample_frequencies():
    logits = torch.tensor([0.5, -1.0, 1.2], dtype=torch.float64).expand(N, 3)
    rel = CategoricalRelaxation(logits=logits)
    freq = rel.sample().mean(0)
    p = torch.softmax(logits[0], -1)
    assert ((freq - p).abs() < 4 * (p * (1 - p) / N).sqrt()).all()


def test_log_prob_z_matches_torch_distributions():
    logits = torch.tensor([[0.3, -2.0]], dtype=torch.float64)
    z = torch.tensor([[1.1, -0.4]], dtype=torch.float64)
    logistic = torch.distributions.TransformedDistribution(
        torch.distributions.Uniform(0.0, 1.0),
        [
            torch.distributions.transforms.SigmoidTransform().inv,
            torch.distributions.transforms.AffineTransform(logits, 1.0),
        ],
    )
    expected = logistic.log_prob(z.float()).double()
    torch.testing.assert_close(
        BernoulliRelaxation(logits=logits).log_prob_z(z), expected, atol=1e-5, rtol=1e-5
    )
    rel = CategoricalRelaxation(logits=logits)
    gumbel = torch.distributions.Gumbel(rel.log_theta, torch.ones_like(logits))
    torch.testing.assert_close(rel.log_prob_z(z), gumbel.log_prob(z).sum(-1))


@pytest.mark.parametrize("cls", [BernoulliRelaxation, CategoricalRelaxation])
def test_conditional_gradient_matches_finite_differences(cls):
    """Tier A: ∂z̃/∂θ at fixed noise v and fixed b equals central finite differences (tied
    noise only recovers v from z without gradient, then takes the same formula)."""
    logits = torch.tensor([[0.2, -0.7, 0.4], [1.1, 0.3, -0.5]], dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    rel = cls(logits=logits)
    b = rel.hard(rel.rsample_z(rel.sample_noise(gen)))
    weights = torch.randn(2, 3, dtype=torch.float64, generator=gen)

    def weighted_z_tilde(theta):
        z_tilde = cls(logits=theta).conditional_z(b, None, torch.Generator().manual_seed(4))
        return (z_tilde * weights).sum()

    leaf = logits.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(weighted_z_tilde(leaf), leaf)
    h = 1e-6
    fd = torch.zeros_like(logits)
    for idx in itertools.product(range(2), range(3)):
        e = torch.zeros_like(logits)
        e[idx] = h
        fd[idx] = (weighted_z_tilde(logits + e) - weighted_z_tilde(logits - e)) / (2 * h)
    torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-7)
    assert g.abs().sum() > 0


@pytest.mark.parametrize("tied", [False, True])
def test_categorical_conditional_with_a_masked_class(tied):
    """A class with logit -inf: z̃ is -inf there, and the other coordinates still follow
    p(z | b) (KS against rejection sampling); gradients stay finite and are 0 for that class."""
    base = torch.tensor([0.5, -float("inf"), 1.2, 0.0], dtype=torch.float64)
    logits = base.expand(N, 4).clone().requires_grad_(True)
    rel = CategoricalRelaxation(logits=logits)
    z = rel.rsample_z(rel.sample_noise())
    b = rel.hard(z)
    assert b[:, 1].sum() == 0
    z_tilde = rel.conditional_z(b, z if tied else None)
    assert torch.isneginf(z_tilde[:, 1]).all()
    assert torch.equal(rel.hard(z_tilde), b)
    z_ref = rel.rsample_z(rel.sample_noise()).detach()
    b_ref = rel.hard(z_ref)
    with torch.no_grad():
        for k in (0, 2):
            sel, ref = z_tilde[b[:, k] == 1], z_ref[b_ref[:, k] == 1]
            for i in (0, 2, 3):
                assert stats.ks_2samp(sel[:, i].numpy(), ref[:, i].numpy()).pvalue > ALPHA / 6
    if tied:
        torch.testing.assert_close(z_tilde[:, [0, 2, 3]], z[:, [0, 2, 3]])
    for value in (
        z_tilde.clamp_min(-50).sum(),
        rel.log_prob_z(z.detach()).sum(),
        rel.log_prob(b).sum(),
    ):
        (g,) = torch.autograd.grad(value, logits, retain_graph=True)
        assert torch.isfinite(g).all() and (g[:, 1] == 0).all()
    gumbel = torch.distributions.Gumbel(
        rel.log_theta[:, [0, 2, 3]], torch.ones(N, 3, dtype=torch.float64)
    )
    torch.testing.assert_close(rel.log_prob_z(z), gumbel.log_prob(z[:, [0, 2, 3]]).sum(-1))


def test_relaxed_samples_follow_torch_distributions():
    """σ_λ(z(u)) equals RelaxedBernoulli / RelaxedOneHotCategorical rsample for the same noise."""
    logits = torch.tensor([[0.3, -1.2, 2.0], [0.0, 0.5, -0.4]], dtype=torch.float64)
    for lam in (0.3, 1.0, 2.5):
        torch.manual_seed(5)
        ref = torch.distributions.RelaxedBernoulli(torch.tensor(lam), logits=logits).rsample()
        torch.manual_seed(5)
        rel = BernoulliRelaxation(logits=logits)
        torch.testing.assert_close(
            concrete(rel.rsample_z(rel.sample_noise()), "bernoulli", lam), ref
        )
        torch.manual_seed(6)
        ref = torch.distributions.RelaxedOneHotCategorical(
            torch.tensor(lam), logits=logits
        ).rsample()
        torch.manual_seed(6)
        rel = CategoricalRelaxation(logits=logits)
        torch.testing.assert_close(
            concrete(rel.rsample_z(rel.sample_noise()), "categorical", lam), ref
        )


def test_conditional_z_stays_finite_for_a_peaked_policy_in_float32():
    """A policy with θ_i near 1e-40 (log θ_i = -92): E_i/θ_i and exp(-z_i) overflow float32,
    and the variance objective's second derivatives the more; the log-space conditional keeps
    z̃, ∂z̃ and ∂²z̃ finite, tied or not, and equal to float64's."""
    logits = torch.tensor([[0.0, -92.0, -30.0], [-60.0, 0.0, -5.0]], requires_grad=True)
    relaxation = CategoricalRelaxation(logits=logits)
    u = relaxation.sample_noise(torch.Generator().manual_seed(0))
    z = relaxation.rsample_z(u)
    b = relaxation.hard(z)
    for tied in (z, None):
        z_tilde = relaxation.conditional_z(b, tied, torch.Generator().manual_seed(1))
        assert torch.isfinite(z_tilde).all()
        (g,) = torch.autograd.grad(z_tilde.pow(2).sum(), logits, create_graph=True)
        (gg,) = torch.autograd.grad(g.pow(2).sum(), logits, retain_graph=True)
        assert torch.isfinite(g).all() and torch.isfinite(gg).all()
    wide = CategoricalRelaxation(logits=logits.detach().double())
    z64 = wide.rsample_z(u.double())
    torch.testing.assert_close(
        relaxation.conditional_z(b, z).double(),
        wide.conditional_z(b.double(), z64),
        rtol=1e-5,
        atol=1e-4,
    )
