"""Samplers for entropy experiments (000 sections 6.1, 6.4, App. E).

* :class:`ImplicitSampler`: x = g(ε, cond), ε ~ N(0, I_{d_ε}); no density.
* :class:`HierarchicalSampler`: z ~ N(0, I), x ~ N(μ(z), σ²(z)); marginal density intractable.
* :class:`IAF`: inverse autoregressive flow with exact log-density (the baseline of 6.4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..nn import activation as activation_class
from ..nn import mlp

LOG_2PI = math.log(2 * math.pi)


def _check_n(n: int) -> int:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    return n


class ImplicitSampler(nn.Module):
    """x = g(ε, cond) with an MLP g; ``noise_dim`` = d_ε."""

    def __init__(
        self,
        dim: int,
        noise_dim: int,
        hidden: tuple[int, ...] = (256, 256, 256),
        cond_dim: int = 0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.dim, self.noise_dim, self.cond_dim = dim, noise_dim, cond_dim
        self.g = mlp(noise_dim + cond_dim, hidden, dim, activation)

    def forward(self, eps: Tensor, cond: Tensor | None = None) -> Tensor:
        """g(ε, cond): ``[..., d_ε]`` -> ``[..., d]``."""
        if cond is not None:
            eps = torch.cat([eps, cond.expand(*eps.shape[:-1], cond.shape[-1])], dim=-1)
        return self.g(eps)

    def sample(self, n: int, cond: Tensor | None = None) -> Tensor:
        """n samples per condition, ``[n, d]`` (or ``[batch, n, d]`` for cond ``[batch, c]``)."""
        _check_n(n)
        p = next(self.parameters())
        shape = (n, self.noise_dim) if cond is None else (cond.shape[0], n, self.noise_dim)
        eps = torch.randn(shape, device=p.device, dtype=p.dtype)
        return self(eps, None if cond is None else cond[:, None, :])


class HierarchicalSampler(nn.Module):
    """z ~ N(0, I_{d_z}), x ~ N(μ(z), diag σ²(z)); log σ² clamped below at ``logvar_min``."""

    def __init__(
        self,
        dim: int,
        latent_dim: int = 2,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "relu",
        logvar_min: float | None = None,
    ) -> None:
        super().__init__()
        self.dim, self.latent_dim, self.logvar_min = dim, latent_dim, logvar_min
        self.body = mlp(latent_dim, hidden[:-1], hidden[-1], activation)
        self.act = activation_class(activation)()
        self.mean = nn.Linear(hidden[-1], dim)
        self.logvar = nn.Linear(hidden[-1], dim)

    def conditional(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(μ(z), log σ²(z)), each ``[..., d]``."""
        h = self.act(self.body(z))
        logvar = self.logvar(h)
        if self.logvar_min is not None:
            logvar = logvar.clamp_min(self.logvar_min)
        return self.mean(h), logvar

    def sample(self, n: int) -> tuple[Tensor, Tensor]:
        """(x, z), reparameterized: ``[n, d]``, ``[n, d_z]``."""
        p = next(self.parameters())
        z = torch.randn(_check_n(n), self.latent_dim, device=p.device, dtype=p.dtype)
        mean, logvar = self.conditional(z)
        return mean + (0.5 * logvar).exp() * torch.randn_like(mean), z

    def log_prob_given(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z), ``[...]``."""
        mean, logvar = self.conditional(z)
        return -0.5 * ((x - mean).pow(2) / logvar.exp() + logvar + LOG_2PI).sum(-1)


class GaussianNet(nn.Module):
    """A diagonal Gaussian h(z|x) = N(μ(x), σ²(x)); the auxiliary model of eq. 5.

    log σ² is clamped below at ``logvar_min`` (a numerical floor, far below useful values).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "relu",
        logvar_min: float = -10.0,
    ) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, 2 * out_dim, activation)
        self.logvar_min = logvar_min

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        mean, logvar = self.net(x).chunk(2, dim=-1)
        logvar = logvar.clamp_min(self.logvar_min)
        return -0.5 * ((z - mean).pow(2) / logvar.exp() + logvar + LOG_2PI).sum(-1)


def auxiliary_entropy_bound(
    sampler: HierarchicalSampler, aux: GaussianNet, x: Tensor, z: Tensor
) -> Tensor:
    """Agakov & Barber's bound H(p(x)) >= -E[log p(x|z) p(z) / h(z|x)] (000 eq. 5), per sample."""
    log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    return -(sampler.log_prob_given(x, z) + log_pz - aux.log_prob(z, x))


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """An autoregressive MLP: output i depends on inputs < i only (Germain et al. 2015)."""

    def __init__(self, dim: int, hidden: int, n_out: int = 2) -> None:
        super().__init__()
        degrees_in = torch.arange(1, dim + 1)
        degrees_h = torch.arange(hidden) % max(dim - 1, 1) + 1
        self.l1 = MaskedLinear(dim, hidden, (degrees_h[:, None] >= degrees_in[None, :]).float())
        self.l2 = MaskedLinear(hidden, hidden, (degrees_h[:, None] >= degrees_h[None, :]).float())
        out_mask = (degrees_in[:, None] > degrees_h[None, :]).float().repeat(n_out, 1)
        self.l3 = MaskedLinear(hidden, n_out * dim, out_mask)
        self.n_out = n_out

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        h = torch.relu(self.l2(torch.relu(self.l1(x))))
        return self.l3(h).chunk(self.n_out, dim=-1)


class IAF(nn.Module):
    """Inverse autoregressive flow (Kingma et al. 2016) on a standard normal base.

    Each step: x ← σ ⊙ x + (1 - σ) ⊙ m with (m, s) = MADE(x), σ = sigmoid(s); the dimensions
    are reversed between steps, and a final affine map x ← loc + exp(log_scale) ⊙ x follows.
    log q(x) = log N(ε) - Σ_steps Σ log σ - Σ log_scale, exact.
    """

    def __init__(self, dim: int, n_flows: int = 4, hidden: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.flows = nn.ModuleList(MADE(dim, hidden) for _ in range(n_flows))
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def sample_and_log_prob(self, n: int) -> tuple[Tensor, Tensor]:
        """(x ``[n, d]``, log q(x) ``[n]``), reparameterized."""
        eps = torch.randn(_check_n(n), self.dim, device=self.loc.device, dtype=self.loc.dtype)
        log_q = -0.5 * (eps.pow(2) + LOG_2PI).sum(-1)
        x = eps
        for flow in self.flows:
            m, s = flow(x)
            gate = torch.sigmoid(s + 1.0)  # bias towards the identity at initialisation
            x = (gate * x + (1 - gate) * m).flip(-1)
            log_q = log_q - torch.log(gate).sum(-1)
        x = self.loc + self.log_scale.exp() * x
        return x, log_q - self.log_scale.sum()

    def sample(self, n: int) -> Tensor:
        return self.sample_and_log_prob(n)[0]
