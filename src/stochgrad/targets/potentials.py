"""The four 2-D potentials U(z) of Rezende & Mohamed (2015), 000 Table 4; p(z) ∝ exp(-U(z))."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor


def _w1(z: Tensor) -> Tensor:
    return torch.sin(2 * math.pi * z[..., 0] / 4)


def _w2(z: Tensor) -> Tensor:
    return 3 * torch.exp(-0.5 * ((z[..., 0] - 1) / 0.6) ** 2)


def _w3(z: Tensor) -> Tensor:
    return 3 * torch.sigmoid((z[..., 0] - 1) / 0.3)


def _neg_log_sum_exp(a: Tensor, b: Tensor) -> Tensor:
    """-ln(e^a + e^b), stably."""
    return -torch.logaddexp(a, b)


def u1(z: Tensor) -> Tensor:
    """U1: a ring with two modes."""
    r = z.norm(dim=-1)
    return 0.5 * ((r - 2) / 0.4) ** 2 + _neg_log_sum_exp(
        -0.5 * ((z[..., 0] - 2) / 0.6) ** 2, -0.5 * ((z[..., 0] + 2) / 0.6) ** 2
    )


def u2(z: Tensor) -> Tensor:
    """U2: a sine-shaped band."""
    return 0.5 * ((z[..., 1] - _w1(z)) / 0.4) ** 2


def u3(z: Tensor) -> Tensor:
    """U3: two sine bands split by a bump."""
    return _neg_log_sum_exp(
        -0.5 * ((z[..., 1] - _w1(z)) / 0.35) ** 2,
        -0.5 * ((z[..., 1] - _w1(z) + _w2(z)) / 0.35) ** 2,
    )


def u4(z: Tensor) -> Tensor:
    """U4: two sine bands split by a sigmoid step."""
    return _neg_log_sum_exp(
        -0.5 * ((z[..., 1] - _w1(z)) / 0.4) ** 2, -0.5 * ((z[..., 1] - _w1(z) + _w3(z)) / 0.35) ** 2
    )


POTENTIALS: dict[str, Callable[[Tensor], Tensor]] = {"u1": u1, "u2": u2, "u3": u3, "u4": u4}


def box_wall(z: Tensor, limit: float = 4.0, width: float = 0.1) -> Tensor:
    """Σ_i relu(|z_i| - limit)² / (2 width²): zero inside [-limit, limit]², steep outside."""
    return (torch.relu(z.abs() - limit) ** 2).sum(-1) / (2 * width**2)


def get_potential(name: str, limit: float | None = 4.0) -> Callable[[Tensor], Tensor]:
    """The potential named ``u1`` ... ``u4``, plus :func:`box_wall` unless ``limit`` is None.

    U2-U4 do not grow along z1, so exp(-U) is not normalizable on R²; like the figures of
    Rezende & Mohamed (2015) we take the target on the box [-limit, limit]², enforced by a wall
    that is zero inside the box.
    """
    if name not in POTENTIALS:
        raise ValueError(f"potential must be one of {sorted(POTENTIALS)}, got {name!r}")
    u = POTENTIALS[name]
    if limit is None:
        return u
    return lambda z: u(z) + box_wall(z, limit)


def grid_density(
    potential: Callable[[Tensor], Tensor], limit: float = 4.0, bins: int = 256
) -> tuple[Tensor, Tensor]:
    """exp(-U) normalized over a ``bins x bins`` grid of cells on [-limit, limit]².

    Returns (probabilities ``[bins, bins]`` summing to 1, with [i, j] the cell of x-bin i and
    y-bin j, and the bin edges ``[bins + 1]``).
    """
    edges = torch.linspace(-limit, limit, bins + 1, dtype=torch.float64)
    centers = 0.5 * (edges[1:] + edges[:-1])
    gx, gy = torch.meshgrid(centers, centers, indexing="ij")
    log_p = -potential(torch.stack([gx, gy], dim=-1))
    return torch.softmax(log_p.flatten(), 0).reshape(bins, bins), edges
