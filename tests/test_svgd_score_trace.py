"""svgd(score_trace=...): the hessian self term from a caller-given trace."""

import pytest
import torch

from stochgrad.entropy.svgd import svgd


def test_score_trace_in_closed_form_equals_the_autograd_hessian_self_term():
    """``score_trace`` (score and tr ∇score given by the caller) gives the same particles and
    log-density as the default autograd passes of self_term='hessian'."""
    torch.manual_seed(0)
    a0 = torch.randn(3, 7, 2, dtype=torch.float64)
    prec = torch.tensor([[1.5, 0.3], [0.3, 0.8]], dtype=torch.float64)

    def score(x):
        return -(x @ prec) + torch.sin(x)

    def score_trace(x):
        return score(x), torch.cos(x).sum(-1) - prec.diagonal().sum()

    ref = svgd(a0, score, step_size=0.05, n_steps=6, bandwidth="authors", warn=False)
    got = svgd(
        a0, score_trace=score_trace, step_size=0.05, n_steps=6, bandwidth="authors", warn=False
    )
    torch.testing.assert_close(got.particles, ref.particles, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.log_prob, ref.log_prob, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="exactly one"):
        svgd(a0, score, score_trace=score_trace, step_size=0.05, n_steps=1)
    with pytest.raises(ValueError, match="score_trace must return"):
        svgd(a0, score_trace=score, step_size=0.05, n_steps=1)
