"""NaN/Inf inputs and runs that turn NaN/Inf give clear errors naming the argument (issue 9,
section 4): svgd, sgld, dld, hmc and entropy_estimate. Imports only what the base commit had,
so the file runs against it (where these NaNs came back silently)."""

import pytest
import torch

from stochgrad.entropy import dld, entropy_estimate, hmc, sgld, svgd
from stochgrad.targets import Gaussian

F64 = torch.float64


def particles(batch: int, m: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 1.5 * torch.randn(batch, m, d, dtype=F64, generator=g)


def nan_score(x: torch.Tensor) -> torch.Tensor:
    return torch.full_like(x, float("nan"))


def test_entropy_estimate_rejects_nan_and_inf():
    for bad in (float("nan"), float("inf"), -float("inf")):
        lp = torch.zeros(2, 5, dtype=F64)
        lp[1, 3] = bad
        with pytest.raises(ValueError, match="log_prob"):
            entropy_estimate(lp)
    with pytest.raises(ValueError, match="log_prob"):
        entropy_estimate(torch.zeros(2, 0))


@pytest.mark.parametrize("sampler", ["svgd", "sgld", "dld", "hmc"])
def test_samplers_name_the_score_or_step_size_when_the_run_turns_nan(sampler):
    a = particles(1, 6, 2, 11)
    fns = {"svgd": svgd, "sgld": sgld, "dld": dld, "hmc": hmc}
    fn = fns[sampler]
    with pytest.raises(ValueError, match="score"):
        fn(a, nan_score, step_size=0.1, n_steps=2)
    with pytest.raises(ValueError, match="score"):
        fn(a, energy=lambda x: x.sum(-1) * float("nan"), step_size=0.1, n_steps=2)
    steep = Gaussian(torch.zeros(2, dtype=F64), 1e-3 * torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="step_size"):  # ε x curvature = 1e4: diverges
        fn(a, steep.score, step_size=10.0, n_steps=200)


def test_svgd_names_the_step_where_it_diverged():
    steep = Gaussian(torch.zeros(2, dtype=F64), 1e-3 * torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match=r"at step \d+"):
        svgd(particles(1, 6, 2, 12), steep.score, step_size=10.0, n_steps=200)
