"""Argument validation shared by the estimators (clear errors for user mistakes)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def check_finite(x: Tensor, name: str) -> Tensor:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or Inf."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.isfinite(x).all():
        bad = "NaN" if torch.isnan(x).any() else "Inf"
        raise ValueError(f"{name} contains {bad} values; expected finite numbers")
    return x


def check_probs(probs: Tensor, name: str = "probs") -> Tensor:
    """Raise ``ValueError`` unless every entry of ``probs`` lies in [0, 1]."""
    check_finite(probs, name)
    if (probs < 0).any() or (probs > 1).any():
        lo, hi = probs.min().item(), probs.max().item()
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return probs


def evaluate_f(f: Callable[[Tensor], Tensor], b: Tensor, batch: int, name: str = "f") -> Tensor:
    """Call ``f(b)`` and check it returns finite values of shape ``[batch]``."""
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__}")
    value = f(b)
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must return a torch.Tensor, got {type(value).__name__}")
    if value.shape != (batch,):
        raise ValueError(
            f"{name} must return a tensor of shape [batch] = ({batch},), got {tuple(value.shape)}"
        )
    return check_finite(value, f"{name}(b)")
