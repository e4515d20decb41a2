"""AR-DAE's σ options: Richardson extrapolation of the score to σ = 0 (``extrapolate``)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from stochgrad.entropy import ARDAE

DT = torch.float64


def quadratic_in_sigma(model: ARDAE, quartic: float = 0.0) -> ARDAE:
    """Replace the network by f(x; σ) = -x + σ² sin x + quartic · σ⁴ cos x, the form of the
    smoothed score f*(x; σ) for small σ (even in σ)."""

    def forward(x: Tensor, sigma: Tensor, cond: Tensor | None = None, **_: object) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype)
        return -x + sigma**2 * x.sin() + quartic * sigma**4 * x.cos()

    model.f.forward = forward
    return model


def test_richardson_extrapolation_is_exact_for_quadratic_in_sigma() -> None:
    x = torch.randn(50, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
    for a, b in [(0.5, 1.0), (1.0, 2.0), (0.0, 1.0)]:
        model = quadratic_in_sigma(
            ARDAE(3, hidden=(8,), delta=0.3, extrapolate=(a, b), scale=2.0).double()
        )
        # score = s · f(s x; 0) = s · (-s x)
        torch.testing.assert_close(model.score(x), -(2.0**2) * x)
        # an explicit σ is read directly, not extrapolated
        torch.testing.assert_close(model.score(x, sigma=0.3), 2.0 * (-2 * x + 0.09 * (2 * x).sin()))


def test_richardson_error_is_fourth_order() -> None:
    """With a σ⁴ term the extrapolation error is a² b² δ⁴ k(x): it shrinks 16x when δ halves."""
    x = torch.randn(20, 2, dtype=DT, generator=torch.Generator().manual_seed(1))
    errs = []
    for delta in (0.2, 0.1):
        model = quadratic_in_sigma(
            ARDAE(2, hidden=(8,), delta=delta, extrapolate=(0.5, 1.0)).double(), quartic=1.0
        )
        err = model.score(x) + x
        torch.testing.assert_close(err, -(0.25 * delta**4) * x.cos())
        errs.append(err.abs().max())
    assert 15.9 < errs[0] / errs[1] < 16.1


def test_extrapolate_default_is_the_paper_score_and_bad_values_raise() -> None:
    torch.manual_seed(0)
    plain = ARDAE(2, hidden=(16,), delta=0.1)
    assert plain.extrapolate is None
    rich = ARDAE(2, hidden=(16,), delta=0.1, extrapolate=(0.0, 1.0))
    rich.load_state_dict(plain.state_dict())
    x = torch.randn(10, 2)
    # a = 0: (b² f(0) - 0) / b² = f(0), the paper's score
    torch.testing.assert_close(rich.score(x), plain.score(x))
    for bad in [(1.0, 0.5), (-0.5, 1.0), (0.0, 0.0)]:
        with pytest.raises(ValueError, match="extrapolate"):
            ARDAE(2, hidden=(16,), extrapolate=bad)


def test_square_sigma_input_feeds_scaled_sigma_squared() -> None:
    """``sigma_input="square"`` feeds (sigma_scale · σ)², so f(x; σ) = f(x; -σ) exactly."""
    torch.manual_seed(0)
    model = ARDAE(2, hidden=(16,), delta=0.2, sigma_input="square", sigma_feature_scale=5.0)
    x = torch.randn(7, 2)
    inputs = model.f._inputs(x, torch.tensor(0.3), None)
    torch.testing.assert_close(inputs[:, -1], torch.full((7,), (5.0 * 0.3) ** 2))
    torch.testing.assert_close(model.score(x, sigma=0.3), model.score(x, sigma=-0.3))
    signed = ARDAE(2, hidden=(16,), delta=0.2, sigma_feature_scale=5.0)
    assert not torch.allclose(signed.score(x, sigma=0.3), signed.score(x, sigma=-0.3))
    loss = model.loss(torch.randn(32, 2))
    assert loss.ndim == 0 and torch.isfinite(loss)
