"""The relaxations of 003 App. A: z ~ p(z|θ), b = H(z), z̃ ~ p(z|b,θ), log-densities."""

import pytest
import torch
from scipy import stats

from stochgrad.estimators import BernoulliRelaxation, CategoricalRelaxation

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


def test_conditional_is_differentiable_in_theta():
    logits = torch.tensor([[0.2, -0.7, 0.4]], requires_grad=True)
    for rel in (BernoulliRelaxation(logits=logits), CategoricalRelaxation(logits=logits)):
        z = rel.rsample_z(rel.sample_noise())
        z_tilde = rel.conditional_z(rel.hard(z), z)
        (g,) = torch.autograd.grad(z_tilde.sum(), logits)
        assert torch.isfinite(g).all() and g.abs().sum() > 0
