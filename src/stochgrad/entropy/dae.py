"""Denoising score models: regular DAE, residual DAE and the amortized residual DAE (AR-DAE).

All three estimate the score ∇_x log q(x) of the distribution their training samples come from
(paper 000 sections 2.2-4.1).  Shapes: samples ``x`` are ``[batch, d]`` with an optional
conditioning input ``cond`` ``[batch, c]`` (data in a VAE, state in RL); AR-DAE also accepts
``[n_cond, n_z, d]`` with ``cond`` ``[n_cond, c]`` for the adaptive prior of App. F.2.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..nn import input_gradient, mlp, supports_input_gradient

PARAMETERIZATIONS = ("residual", "gradient")
SIGMA_INPUTS = ("signed", "abs", "square", "none")


class ScoreNetwork(nn.Module):
    """f(x; σ, cond) ∈ R^d, either output directly (``"residual"``) or as f = ∇_x ψ(x; σ, cond)
    of a scalar potential ψ (``"gradient"``, 000 App. D.1; needed for log-densities).

    ``sigma_input``: feed σ (``"signed"``), |σ| (``"abs"``, App. D.2), σ² (``"square"``, not in
    the paper: f* is even in σ, about linear in σ² near 0) or nothing (``"none"``); the fed value
    is ``sigma_scale`` · σ (squared after scaling for ``"square"``).
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int = 0,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "softplus",
        parameterization: str = "residual",
        sigma_input: str = "signed",
        sigma_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}, got {parameterization!r}"
            )
        if sigma_input not in SIGMA_INPUTS:
            raise ValueError(f"sigma_input must be one of {SIGMA_INPUTS}, got {sigma_input!r}")
        if dim < 1 or cond_dim < 0:
            raise ValueError(f"dim must be >= 1 and cond_dim >= 0, got {dim}, {cond_dim}")
        self.dim, self.cond_dim = dim, cond_dim
        self.parameterization, self.sigma_input = parameterization, sigma_input
        self.sigma_scale = _check_sigma(sigma_scale, "sigma_scale")
        n_in = dim + cond_dim + (sigma_input != "none")
        n_out = dim if parameterization == "residual" else 1
        self.net = mlp(n_in, hidden, n_out, activation)
        # ∇_x ψ written out (one forward pass plus a hand-written backward recursion), so that
        # training needs one first-order backward pass, not autograd's double backward
        self.written_out_gradient = parameterization == "gradient" and supports_input_gradient(
            self.net
        )

    def _inputs(self, x: Tensor, sigma: Tensor | None, cond: Tensor | None) -> Tensor:
        parts = [x]
        if self.sigma_input != "none":
            if sigma is None:
                sigma = x.new_zeros(())
            sigma = sigma.abs() if self.sigma_input == "abs" else sigma
            feature = self.sigma_scale * sigma
            feature = feature**2 if self.sigma_input == "square" else feature
            parts.append(feature.to(x.dtype).expand(*x.shape[:-1], 1))
        if self.cond_dim:
            if cond is None or cond.shape[-1] != self.cond_dim:
                raise ValueError(
                    f"cond must have shape [..., {self.cond_dim}], "
                    f"got {None if cond is None else tuple(cond.shape)}"
                )
            parts.append(cond.expand(*x.shape[:-1], self.cond_dim))
        elif cond is not None:
            raise ValueError("cond was given but the network was built with cond_dim=0")
        return torch.cat(parts, dim=-1)

    def potential(
        self, x: Tensor, sigma: Tensor | None = None, cond: Tensor | None = None
    ) -> Tensor:
        """ψ(x; σ, cond), ``[...]`` (gradient parameterization only)."""
        if self.parameterization != "gradient":
            raise ValueError("potential() needs parameterization='gradient'")
        return self.net(self._inputs(x, sigma, cond)).squeeze(-1)

    def forward(
        self,
        x: Tensor,
        sigma: Tensor | None = None,
        cond: Tensor | None = None,
        create_graph: bool | None = None,
    ) -> Tensor:
        """f(x; σ, cond), shape of ``x``.  ``create_graph`` (gradient parameterization) keeps the
        graph of ∇_x ψ for training; it defaults to ``torch.is_grad_enabled()``."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"x must have shape [..., {self.dim}], got {tuple(x.shape)}")
        if self.parameterization == "residual":
            return self.net(self._inputs(x, sigma, cond))
        create_graph = torch.is_grad_enabled() if create_graph is None else create_graph
        if self.written_out_gradient:  # equals autograd's ∇_x ψ (tests: to 1e-10 in float64)
            with torch.enable_grad() if create_graph else torch.no_grad():
                return input_gradient(self.net, self._inputs(x, sigma, cond), self.dim)
        with torch.enable_grad():
            x_in = x if x.requires_grad else x.detach().requires_grad_(True)
            psi = self.potential(x_in, sigma, cond)
            (f,) = torch.autograd.grad(psi.sum(), x_in, create_graph=create_graph)
        return f


def _check_sigma(value: float, name: str) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def _check_tensor(t: Tensor, name: str, dtype: torch.dtype) -> None:
    """A non-empty, finite tensor of the network's floating dtype (one isfinite().all())."""
    if not isinstance(t, Tensor) or not t.is_floating_point():
        got = t.dtype if isinstance(t, Tensor) else type(t).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {got}")
    if t.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {t.dtype} but the network's parameters are {dtype}: "
            f"convert one of them (e.g. model.to({dtype}))"
        )
    if t.numel() == 0:
        raise ValueError(f"{name} is empty, shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf")


def _check_samples(
    net: ScoreNetwork, x: Tensor, cond: Tensor | None, center: Tensor | None = None
) -> None:
    """``x`` ``[batch, d]`` or ``[n_cond, n_z, d]``; ``cond`` / ``center`` with matching leading
    dimensions (a 2-D one per condition for 3-D ``x``), all finite and of the network's dtype."""
    dtype = net.net[0].weight.dtype
    _check_tensor(x, "x", dtype)
    d, c = net.dim, net.cond_dim
    if x.dim() not in (2, 3) or x.shape[-1] != d:
        raise ValueError(
            f"x must have shape [batch, {d}] or [n_cond, n_z, {d}], got {tuple(x.shape)}"
        )
    lead = tuple(x.shape[:-1])
    for name, t, width in (("cond", cond, c), ("center", center, d)):
        if t is None:
            continue
        expected = f"[{lead[0]}, {width}]" + (
            f" or [{lead[0]}, {lead[1]}, {width}]" if len(lead) == 2 else ""
        )
        if not isinstance(t, Tensor) or t.dim() not in (1, 2, 3):
            raise ValueError(f"{name} must have shape {expected}, got {t!r:.60}")
        t_lead = tuple(t.shape[:-1])
        if len(lead) == 2 and t.dim() == 2:  # one row per condition
            t_lead = (t_lead[0], 1)
        try:
            ok = t.shape[-1] == width and torch.broadcast_shapes(t_lead, lead) == lead
        except RuntimeError:
            ok = False
        if not ok and not (name == "cond" and c == 0):
            raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
        _check_tensor(t, name, dtype)


class RegularDAE(nn.Module):
    """Regular DAE: minimize E||r(x + σu) - x||², score (r(x) - x)/σ² (000 section 2.2)."""

    def __init__(
        self,
        dim: int,
        sigma: float,
        cond_dim: int = 0,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        self.sigma = _check_sigma(sigma, "sigma")
        self.reconstruction = ScoreNetwork(dim, cond_dim, hidden, activation, "residual", "none")

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """E||r(x + σu) - x||² on samples ``x`` ``[batch, d]`` (detached)."""
        _check_samples(self.reconstruction, x, cond)
        x = x.detach()
        u = torch.randn_like(x)
        r = self.reconstruction(x + self.sigma * u, cond=cond)
        return (r - x).pow(2).sum(-1).mean()

    def score(self, x: Tensor, cond: Tensor | None = None, create_graph: bool = False) -> Tensor:
        """f_r(x) = (r(x) - x)/σ², ``[batch, d]``; detached unless ``create_graph`` (see
        ``ARDAE.score``)."""
        _check_samples(self.reconstruction, x, cond)
        with torch.enable_grad() if create_graph else torch.no_grad():
            return (self.reconstruction(x, cond=cond) - x) / self.sigma**2


class ResidualDAE(nn.Module):
    """Residual DAE with loss rescaling at a fixed σ: minimize E||u + σ f(x + σu)||² (eq. 2)."""

    def __init__(
        self,
        dim: int,
        sigma: float,
        cond_dim: int = 0,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "softplus",
        parameterization: str = "residual",
    ) -> None:
        super().__init__()
        self.sigma = _check_sigma(sigma, "sigma")
        self.f = ScoreNetwork(dim, cond_dim, hidden, activation, parameterization, "none")

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """E||u + σ f(x + σu)||² on samples ``x`` ``[batch, d]`` (detached)."""
        _check_samples(self.f, x, cond)
        x = x.detach()
        u = torch.randn_like(x)
        return (u + self.sigma * self.f(x + self.sigma * u, cond=cond)).pow(2).sum(-1).mean()

    def score(self, x: Tensor, cond: Tensor | None = None, create_graph: bool = False) -> Tensor:
        """f(x) ≈ ∇_x log q(x), ``[batch, d]``; detached unless ``create_graph`` (see
        ``ARDAE.score``)."""
        _check_samples(self.f, x, cond)
        with torch.enable_grad() if create_graph else torch.no_grad():
            return self.f(x, cond=cond, create_graph=create_graph)


class ARDAE(nn.Module):
    """Amortized residual DAE (000 eq. 2; eq. 13 with conditioning and the adaptive prior).

    L = E_{x, u ~ N(0, I), σ ~ N(0, δ²)} ||u + σ f(x̃ + σu; σ, cond)||², with x̃ = s (x - b) the
    normalized input (App. F.2: ``scale`` s and a pseudo-mean ``center`` b), ``n_sigma`` draws
    of σ per sample, and δ fixed (``delta``) or adaptive, δ(cond) = ``delta_scale`` · S_{x|cond}
    with S the sample standard deviation (mean over dimensions) of the n_z samples per condition.
    The score is ∇_x log q(x) = s · f(x̃; σ = 0).  ``sigma_feature_scale`` multiplies σ where it
    enters the network as an input (e.g. 1/δ, so the input is of order 1; the paper feeds σ).

    ``antithetic`` (not in the paper) pairs every draw (σ, u) with (σ, -u) at the same x̃, using
    ``n_sigma / 2`` pairs.  The objective's expectation is unchanged, but the O(σ) term of its
    gradient, 2σ uᵀ∂f(x̃ + σu), cancels within a pair, so the signal-to-noise ratio no longer
    decays like O(σ) (000 App. C).

    ``extrapolate`` (not in the paper; default ``None``: the paper's f(x̃; σ = 0)) = (a, b) makes
    ``score`` extrapolate to σ = 0 from σ = aδ and σ = bδ, quadratically in σ (f* is even in σ):
    f(0) ≈ (b² f(aδ) - a² f(bδ)) / (b² - a²) (Richardson), e.g. (0.5, 1) gives
    (4 f(δ/2) - f(δ)) / 3.  It reads the network where the loss weights it (|σ| ~ δ) rather than
    at σ = 0, where the σ² weighting of the loss leaves it unconstrained.
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int = 0,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "softplus",
        parameterization: str = "residual",
        delta: float = 0.1,
        n_sigma: int = 10,
        sigma_input: str = "signed",
        scale: float = 1.0,
        delta_scale: float | None = None,
        sigma_feature_scale: float = 1.0,
        antithetic: bool = False,
        extrapolate: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        if extrapolate is not None:
            a, b = (float(v) for v in extrapolate)
            if not (0 <= a < b and b > 0):
                raise ValueError(f"extrapolate must be (a, b) with 0 <= a < b, got {extrapolate}")
            extrapolate = (a, b)
        self.extrapolate = extrapolate
        if sigma_input == "none":
            raise ValueError(
                "AR-DAE is conditioned on σ: sigma_input must be 'signed' or 'abs' (or 'square')"
            )
        self.delta = _check_sigma(delta, "delta")
        self.scale = _check_sigma(scale, "scale")
        self.delta_scale = None if delta_scale is None else _check_sigma(delta_scale, "delta_scale")
        if n_sigma < 1:
            raise ValueError(f"n_sigma must be >= 1, got {n_sigma}")
        if antithetic and n_sigma % 2:
            raise ValueError(f"antithetic pairs need an even n_sigma, got {n_sigma}")
        self.n_sigma, self.antithetic = int(n_sigma), bool(antithetic)
        self.f = ScoreNetwork(
            dim, cond_dim, hidden, activation, parameterization, sigma_input, sigma_feature_scale
        )

    def normalize(self, x: Tensor, center: Tensor | None = None) -> Tensor:
        """x̃ = s (x - b); ``center`` b is ``[batch, d]`` (``[n_cond, d]`` for 3-D ``x``)."""
        if center is None:
            return self.scale * x
        if x.dim() == 3 and center.dim() == 2:
            center = center[:, None, :]
        if center.shape[-1] != x.shape[-1]:
            raise ValueError(
                f"center must have shape [..., {x.shape[-1]}], got {tuple(center.shape)}"
            )
        return self.scale * (x - center)

    def prior_scale(self, x_tilde: Tensor) -> Tensor:
        """δ per sample, broadcastable to ``x_tilde[..., :1]``."""
        if self.delta_scale is None:
            return x_tilde.new_full((), self.delta)
        if x_tilde.dim() != 3 or x_tilde.shape[1] < 2:
            raise ValueError(
                "the adaptive prior needs x of shape [n_cond, n_z, d] with n_z >= 2, "
                f"got {tuple(x_tilde.shape)}"
            )
        spread = x_tilde.std(dim=1).mean(-1)  # S_{x|cond} of the normalized x̃: [n_cond]
        return (self.delta_scale * spread).clamp_min(1e-8)[:, None, None]

    def loss(self, x: Tensor, cond: Tensor | None = None, center: Tensor | None = None) -> Tensor:
        """The AR-DAE objective on samples ``x`` ``[batch, d]`` or ``[n_cond, n_z, d]``.

        ``cond`` ``[batch, c]`` / ``[n_cond, c]``; ``center`` b broadcastable to ``x``.  The
        samples are detached: the objective never trains the sampler.
        """
        _check_samples(self.f, x, cond, center)
        x_tilde = self.normalize(x.detach(), None if center is None else center.detach())
        if cond is not None:
            cond = cond.detach()
            if x_tilde.dim() == 3 and cond.dim() == 2:
                cond = cond[:, None, :]
        delta = self.prior_scale(x_tilde)
        n_draws = self.n_sigma // 2 if self.antithetic else self.n_sigma
        x_rep = x_tilde.unsqueeze(0).expand(n_draws, *x_tilde.shape)
        sigma = torch.randn(*x_rep.shape[:-1], 1, device=x.device, dtype=x.dtype) * delta
        u = torch.randn_like(x_rep)
        if self.antithetic:  # (σ, u) and (σ, -u): same x̃, mirrored noise
            x_rep, sigma, u = (
                torch.cat([x_rep, x_rep]),
                torch.cat([sigma, sigma]),
                torch.cat([u, -u]),
            )
        f = self.f(x_rep + sigma * u, sigma, cond)
        return (u + sigma * f).pow(2).sum(-1).mean()

    def score(
        self,
        x: Tensor,
        cond: Tensor | None = None,
        center: Tensor | None = None,
        sigma: float = 0.0,
        create_graph: bool = False,
    ) -> Tensor:
        """∇_x log q(x|cond) ≈ s · f(s (x - b); σ, cond), by default at σ = 0, shape of ``x``.

        ``create_graph=False`` (the default of every DAE's ``score``): the result is a constant,
        detached from ``x``, ``cond``, ``center`` and the network, as the entropy surrogate
        (000 eq. 1) needs, and computed without a graph (cheapest).  ``create_graph=True`` keeps
        the graph to all of them, e.g. to differentiate the score with respect to ``x`` or to
        train the network through it.  (The log-density of SAC-AR-DAE is ``potential``, which
        always keeps its graph.)
        """
        _check_samples(self.f, x, cond, center)
        if not create_graph:
            x = x.detach()
            center = None if center is None else center.detach()
            cond = None if cond is None else cond.detach()
        with torch.enable_grad() if create_graph else torch.no_grad():
            x_tilde = self.normalize(x, center)
            if cond is not None and x_tilde.dim() == 3 and cond.dim() == 2:
                cond = cond[:, None, :]
            if self.extrapolate is None or sigma != 0:
                sig = x_tilde.new_full((), float(sigma))
                f = self.f(x_tilde, sig, cond, create_graph=create_graph)
            else:  # Richardson: f(0) ≈ (b² f(aδ) - a² f(bδ)) / (b² - a²)
                a, b = self.extrapolate
                delta = self.prior_scale(x_tilde)
                f_a = self.f(x_tilde, a * delta, cond, create_graph=create_graph)
                f_b = self.f(x_tilde, b * delta, cond, create_graph=create_graph)
                f = (b**2 * f_a - a**2 * f_b) / (b**2 - a**2)
            return self.scale * f

    def potential(
        self, x: Tensor, cond: Tensor | None = None, center: Tensor | None = None
    ) -> Tensor:
        """ψ(x̃; σ = 0, cond): an unnormalized log q(x|cond) (gradient parameterization), ``[...]``
        of ``x``'s leading shape; it keeps its graph to ``x`` and the network."""
        _check_samples(self.f, x, cond, center)
        x_tilde = self.normalize(x, center)
        if cond is not None and x_tilde.dim() == 3 and cond.dim() == 2:
            cond = cond[:, None, :]
        return self.f.potential(x_tilde, x_tilde.new_zeros(()), cond)
