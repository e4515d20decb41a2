"""Argument validation shared by the estimators (clear errors for user mistakes).

The checks on the hot path cost one reduction and one scalar read per tensor: ``x.sum()`` is
finite exactly when ``x`` has no NaN or Inf, except when finite values overflow the sum, in
which case the full element-wise test decides.  On a GPU each scalar read is a host-device
synchronization (two to four per estimator call; not measured here, the benchmarks are CPU).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def check_tensor(x: object, name: str, floating: bool = False) -> Tensor:
    """Raise ``TypeError`` naming ``name`` unless ``x`` is a (floating-point) tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_finite(x: Tensor, name: str) -> Tensor:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds NaN or Inf (one reduction)."""
    check_tensor(x, name)
    if x.is_floating_point() and not math.isfinite(
        x.item() if x.numel() == 1 else x.detach().sum().item()
    ):
        if torch.isnan(x).any():
            raise ValueError(f"{name} contains NaN values; expected finite numbers")
        if torch.isinf(x).any():
            raise ValueError(f"{name} contains Inf values; expected finite numbers")
    return x


def check_logits_masked(logits: Tensor, name: str = "logits") -> Tensor:
    """Like :func:`check_finite`, but ``-inf`` (a masked class) is allowed.

    NaN and ``+inf`` are rejected, and so is a row ``[..., k]`` whose classes are all masked.
    """
    check_tensor(logits, name, floating=True)
    if math.isfinite(logits.detach().sum().item()):
        return logits
    if torch.isnan(logits).any():
        raise ValueError(f"{name} contains NaN values; expected finite numbers or -inf (masked)")
    if torch.isposinf(logits).any():
        raise ValueError(f"{name} contains +Inf values; use -inf to mask a class")
    if torch.isneginf(logits).all(-1).any():
        raise ValueError(
            f"{name} has a unit whose classes are all -inf (masked): none can be drawn"
        )
    return logits


def check_probs(probs: Tensor, name: str = "probs") -> Tensor:
    """Raise ``ValueError`` unless every entry of ``probs`` lies in [0, 1]."""
    check_tensor(probs, name, floating=True)
    check_finite(probs, name)
    if (probs < 0).any() or (probs > 1).any():
        lo, hi = probs.min().item(), probs.max().item()
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return probs


def check_batch(x: Tensor, name: str) -> int:
    """The leading (batch) size of ``x``; ``ValueError`` naming ``name`` if absent or empty."""
    if x.dim() < 1:
        raise ValueError(f"{name} must have a leading batch dimension, got a scalar")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has an empty batch (shape {tuple(x.shape)}); expected >= 1 row")
    return x.shape[0]


def evaluate_f(f: Callable[[Tensor], Tensor], b: Tensor, batch: int, name: str = "f") -> Tensor:
    """Call ``f(b)`` and check it returns finite values of shape ``[batch]``."""
    if not callable(f):
        raise TypeError(f"{name} must be callable, got {type(f).__name__}")
    value = f(b)
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must return a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 1 or value.shape[0] != batch:
        raise ValueError(
            f"{name} must return a tensor of shape [batch] = ({batch},), got {tuple(value.shape)}"
        )
    return check_finite(value, f"{name}(b)")
