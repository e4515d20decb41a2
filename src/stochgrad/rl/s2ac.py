"""Stein soft actor-critic, S2AC (002 section 3, Algorithms 1-2, App. K).

The policy is a sampler from the energy-based model π(a|s) ∝ exp(Q(s, a)/α): m particles drawn
from an initial distribution q^0 and moved by L SVGD steps (eq. 1), batched over the states of
a minibatch (``[batch, m, d]``).  Their log-density is tracked in closed form
(:func:`stochgrad.entropy.svgd`, Theorem 3.3), which gives the entropy in the critic target
(eq. 8) and in the actor objective (eq. 9).

Variants: ``"phi"`` (S2AC(φ): fixed q^0 = N(0, q0_std² I)), ``"phi-theta"`` (S2AC(φ, θ): a learned
state-dependent Gaussian q^0_θ, its draws restricted to μ ± tσ by keeping in-range candidates,
never by clipping) and ``"amortized"`` (S2AC(φ, θ, ψ): φ-θ training, plus a network
a = f_ψ(s, z) trained by amortized SVGD (App. K eqs. 24-25) and used by :meth:`act`).

Choices where 002 and its code differ (../shared/papers/IMPLEMENTATION_NOTES.md):

- particles live in pre-tanh space u, actions are ``a = tanh(u) · scale + bias``; Q is evaluated
  at the squashed action, and the SVGD target is the density of u that maps to exp(Q/α) on
  actions: ``log p(u|s) = Q(s, a(u))/α + Σ log(1 - tanh² u)`` (α in the target; the authors'
  code drops α and evaluates Q at u);
- ``step_size`` ε is 002's: it multiplies ``h = (1/m) Σ_j [k_ij α ∇log p(u_j) + α ∇_{u_j} k_ij]``,
  the form of Theorem 3.3 and eq. 24 (``k ∇Q + α ∇k``), which is α times the score form
  ``k ∇log p + ∇k``; so :func:`svgd` runs with step ``ε α``.  The Q-drift per step is then the
  same for every α and the repulsion grows with α (with ε fixed in the score form, a large α
  would freeze the particles at q^0 within L steps);
- the kernel bandwidth is the authors' (``"authors"``), not the formula printed in Tables 3-4,
  and the log-density keeps the particle's own term by its Hessian (``self_term="hessian"``),
  both chosen by measurement in :mod:`stochgrad.entropy.svgd`;
- log π(a|s) = log q^L(u) - Σ log(1 - tanh² u) - Σ log scale (the change of variables to a);
- the range μ ± tσ holds exactly at step 0 (a truncated Gaussian, with its normalizer in
  log q^0); the fraction of particles outside it after L steps is reported by :meth:`update`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..entropy.svgd import (
    BANDWIDTH_HEURISTICS,
    DEFAULT_SELF_TERM,
    SELF_TERMS,
    bandwidth_heuristic,
    score_from_energy,
    squared_distances,
    svgd,
)
from ..nn import mlp
from .agent import OffPolicyAgent, frozen
from .networks import LOG_2PI, TwinQ, polyak_update

VARIANTS = ("phi", "phi-theta", "amortized")
# 002 Table 4 (MuJoCo): L = 20 for S2AC(φ), 3 for S2AC(φ, θ)
DEFAULT_STEPS = {"phi": 20, "phi-theta": 3, "amortized": 3}


def log1m_tanh2(u: Tensor) -> Tensor:
    """log(1 - tanh² u) = 2 (log 2 - u - softplus(-2u)), elementwise and stable."""
    return 2 * (math.log(2) - u - F.softplus(-2 * u))


def per_particle(obs: Tensor, m: int) -> Tensor:
    """Each state repeated for its m particles (a view): ``[batch, obs]`` -> ``[batch, m, obs]``."""
    return obs.unsqueeze(1).expand(-1, m, -1)


def normal_log_prob(xi: Tensor) -> Tensor:
    """Σ log N(ξ_k; 0, 1) over the last dimension."""
    return -0.5 * (xi.pow(2) + LOG_2PI).sum(-1)


def truncated_standard_normal(shape: tuple[int, int, int], t: float, like: Tensor) -> Tensor:
    """ξ ~ N(0, I) restricted to the box |ξ_k| <= t, ``[batch, m, d]``: candidates are drawn and
    the first m in range kept per batch row (rows short of m are drawn again)."""
    batch, m, d = shape
    p_in = math.erf(t / math.sqrt(2)) ** d
    n_cand = m + max(4, math.ceil(4 * m * (1 - p_in) / p_in + 4 * math.sqrt(m / p_in)))
    out = like.new_empty(shape)
    todo = torch.arange(batch, device=like.device)
    while todo.numel():
        xi = torch.randn(todo.numel(), n_cand, d, dtype=like.dtype, device=like.device)
        ok = (xi.abs() <= t).all(-1)
        enough = ok.sum(-1) >= m
        # in-range candidates first, in their drawn order (a stable sort of the mask)
        order = torch.argsort((~ok).to(torch.int8), dim=-1, stable=True)[:, :m]
        keep = xi.gather(1, order.unsqueeze(-1).expand(-1, m, d))
        out[todo[enough]] = keep[enough]
        todo = todo[~enough]
    return out


class GaussianInit(nn.Module):
    """q^0_θ(u|s) = N(μ_θ(s), diag σ_θ(s)²) with σ clamped to [sigma_min, sigma_max] (002 3.1).

    forward(obs ``[batch, obs_dim]``) -> (μ, σ), each ``[batch, act_dim]``.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...],
        sigma_min: float = 0.1,
        sigma_max: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        self.net = mlp(obs_dim, hidden, 2 * act_dim)
        self.log_min, self.log_max = math.log(sigma_min), math.log(sigma_max)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.net(obs).chunk(2, -1)
        return mean, log_std.clamp(self.log_min, self.log_max).exp()


class AmortizedSampler(nn.Module):
    """u = f_ψ(s, z), z ~ N(0, I_d) (App. K): one network pass per action.

    forward(obs ``[..., obs_dim]``, z ``[..., act_dim]``) -> u ``[..., act_dim]``.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, act_dim)

    def forward(self, obs: Tensor, z: Tensor) -> Tensor:
        return self.net(torch.cat([obs, z], -1))


class S2AC(OffPolicyAgent):
    """S2AC on a Gymnasium environment with a Box action space (defaults: 002 Table 4).

    variant: ``"phi"``, ``"phi-theta"`` or ``"amortized"`` (module docstring).  alpha: the
    entropy weight α > 0.  n_particles m, n_steps L (default 20 for phi, 3 otherwise),
    step_size ε (002's form, see above), q0_std (S2AC(φ)'s q^0 = N(0, q0_std² I); Table 4's N(0, 0.5 I) read as a
    covariance), particle_range t, bandwidth and self_term (:func:`stochgrad.entropy.svgd`).
    Other arguments: :class:`OffPolicyAgent` (Table 4: batch 100, 2 x 256 ReLU, Adam 3e-4).
    """

    name = "s2ac"

    def __init__(
        self,
        env: str | gym.Env,
        *,
        variant: str = "phi-theta",
        alpha: float = 1.0,
        n_particles: int = 10,
        n_steps: int | None = None,
        step_size: float = 0.1,
        q0_std: float = math.sqrt(0.5),
        particle_range: float = 3.0,
        bandwidth: str | float = "authors",
        self_term: str = DEFAULT_SELF_TERM,
        batch_size: int = 100,
        **kwargs: Any,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        for key, value in (("alpha", alpha), ("step_size", step_size), ("q0_std", q0_std)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{key} must be a number > 0, got {value!r}")
        if not (isinstance(particle_range, (int, float)) and particle_range > 0):
            raise ValueError(f"particle_range must be a number > 0, got {particle_range!r}")
        if isinstance(n_particles, bool) or not isinstance(n_particles, int) or n_particles < 2:
            raise ValueError(f"n_particles must be an int >= 2, got {n_particles!r}")
        n_steps = DEFAULT_STEPS[variant] if n_steps is None else n_steps
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
            raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
        if isinstance(bandwidth, str):
            if bandwidth not in BANDWIDTH_HEURISTICS:
                raise ValueError(f"bandwidth must be > 0 or one of {BANDWIDTH_HEURISTICS}")
        elif (
            isinstance(bandwidth, bool)
            or not isinstance(bandwidth, (int, float))
            or not math.isfinite(bandwidth)
            or bandwidth <= 0
        ):
            raise ValueError(f"bandwidth must be a number > 0 or one of {BANDWIDTH_HEURISTICS}")
        if self_term not in SELF_TERMS:
            raise ValueError(f"self_term must be one of {SELF_TERMS}, got {self_term!r}")
        super().__init__(
            env, variant=variant, alpha=float(alpha), n_particles=n_particles, n_steps=n_steps,
            step_size=float(step_size), q0_std=float(q0_std),
            particle_range=float(particle_range), bandwidth=bandwidth, self_term=self_term,
            batch_size=batch_size, **kwargs,
        )  # fmt: skip

    def _build(self) -> None:
        hp, dev = self.hparams, self.device
        self.variant: str = hp["variant"]
        self.alpha: float = hp["alpha"]
        self.scale = ((self.high - self.low) / 2).to(dev)
        self.bias = ((self.high + self.low) / 2).to(dev)
        self.critic = TwinQ(self.obs_dim, self.act_dim, hp["hidden"]).to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=hp["lr"], fused=True)
        self.init = self.init_opt = self.sampler = self.sampler_opt = None
        if self.variant != "phi":
            self.init = GaussianInit(self.obs_dim, self.act_dim, hp["hidden"]).to(dev)
            self.init_opt = torch.optim.Adam(self.init.parameters(), lr=hp["lr"], fused=True)
        if self.variant == "amortized":
            self.sampler = AmortizedSampler(self.obs_dim, self.act_dim, hp["hidden"]).to(dev)
            self.sampler_opt = torch.optim.Adam(self.sampler.parameters(), lr=hp["lr"], fused=True)

    @property
    def _piecewise_linear(self) -> bool:
        """Whether the critic is built only from Linear and ReLU layers (∇²_a Q = 0 a.e.)."""
        leaves = [m for m in self.critic.modules() if not any(m.children())]
        return bool(leaves) and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in leaves)

    def _state_objects(self) -> dict[str, Any]:
        return {
            "critic": self.critic, "critic_target": self.critic_target,
            "critic_opt": self.critic_opt, "init": self.init, "init_opt": self.init_opt,
            "sampler": self.sampler, "sampler_opt": self.sampler_opt,
        }  # fmt: skip

    # ---- the policy: SVGD on exp(Q/α) ---------------------------------------------------------

    def squash(self, u: Tensor) -> Tensor:
        """Action ``tanh(u) · scale + bias`` within the bounds, ``[..., d]``."""
        return torch.tanh(u) * self.scale + self.bias

    def log_target(self, obs: Tensor, u: Tensor) -> Tensor:
        """log p(u|s) + const = min Q(s, a(u))/α + Σ log(1 - tanh² u), the density of u that
        maps to exp(Q/α) on actions; obs ``[batch, obs]``, u ``[batch, m, d]`` -> ``[batch, m]``."""
        obs_m = per_particle(obs, u.shape[1])
        return self.critic.min_q(obs_m, self.squash(u)) / self.alpha + log1m_tanh2(u).sum(-1)

    def score_trace(self, obs: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """∇_u log p(u|s) and its trace tr ∇_u(∇_u log p), ``[batch, m, d]`` and ``[batch, m]``,
        for a critic that is piecewise linear in the action (ReLU MLP), so ∇²_a Q = 0 almost
        everywhere. With G = ∇_a min Q, g = 1 - tanh² u:
        s = G · scale · g / α - 2 tanh u,  tr ∇s = Σ_k (-2 G_k scale_k tanh u_k g_k / α - 2 g_k).
        One backward pass through Q instead of 1 + d; the graph is kept if ``u`` requires grad."""
        keep = u.requires_grad
        with torch.enable_grad():
            x = u if keep else u.detach().requires_grad_(True)
            th = torch.tanh(x)
            a = th * self.scale + self.bias
            obs_m = per_particle(obs, u.shape[1])
            # ∇_a Q is piecewise constant in a: no graph through it (∇²_a Q = 0 a.e.), the
            # dependence on u is all in tanh(u) below
            (grad_q,) = torch.autograd.grad(self.critic.min_q(obs_m, a).sum(), a)
        g = 1 - th * th
        gq = grad_q * self.scale / self.alpha  # ∂(Q/α)/∂tanh(u)
        score = gq * g - 2 * th
        trace = (-2 * (gq * th + 1) * g).sum(-1)
        if not keep:
            score, trace = score.detach(), trace.detach()
        return score, trace

    def initial_particles(self, obs: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """u^0 ~ q^0(·|s) and log q^0(u^0|s), ``[batch, m, d]`` and ``[batch, m]``; the third
        output is (μ, σ) stacked ``[2, batch, 1, d]`` for q^0_θ (None for the fixed q^0)."""
        batch, d = obs.shape[0], self.act_dim
        if self.init is None:  # S2AC(φ): q^0 = N(0, q0_std² I)
            std = self.hparams["q0_std"]
            xi = torch.randn(batch, m, d, device=obs.device)
            return std * xi, normal_log_prob(xi) - d * math.log(std), None
        t = self.hparams["particle_range"]
        mean, std = self.init(obs)
        mean, std = mean.unsqueeze(1), std.unsqueeze(1)
        xi = truncated_standard_normal((batch, m, d), t, obs)
        # truncated Gaussian: N(ξ) / σ over the box's mass (erf(t/√2))^d
        log_q0 = normal_log_prob(xi) - std.log().sum(-1) - d * math.log(math.erf(t / math.sqrt(2)))
        return mean + std * xi, log_q0, torch.stack([mean, std])

    def sample(
        self, obs: Tensor, m: int | None = None, log_density: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """m particles of π(·|s) by L SVGD steps: (actions ``[batch, m, d]``, log π(a|s)
        ``[batch, m]``, fraction of particles outside μ ± tσ ``[]``).

        ``log_density=False`` skips the log-density (acting needs only the particles) and
        returns NaN for it.  Differentiable in θ (through u^0 and the steps) when grad is
        enabled; under ``no_grad`` the steps still take ∇_u log p by autograd, keeping no graph.
        The critic's parameters get no gradient.  FloatingPointError if the particles or their
        log-density become NaN/Inf.
        """
        hp = self.hparams
        m = hp["n_particles"] if m is None else m
        u0, log_q0, init = self.initial_particles(obs, m)
        if self._piecewise_linear:  # score and Laplacian in closed form (score_trace)
            target = {"score_trace": lambda u: self.score_trace(obs, u)}
        else:
            target = {"energy": lambda u: -self.log_target(obs, u)}
        with frozen(self.critic):
            try:
                res = svgd(
                    u0, step_size=hp["step_size"] * self.alpha, n_steps=hp["n_steps"],
                    bandwidth=hp["bandwidth"], log_prob=log_q0,
                    log_det="closed_form" if log_density else "none",
                    self_term=hp["self_term"], warn=False, **target,
                )  # fmt: skip
            except ValueError as err:  # a diverged run (NaN/Inf particles or critic)
                raise FloatingPointError(
                    f"{self.name} update at step {self.num_steps}: SVGD failed ({err}); "
                    "training diverged, the last checkpoint, if any, is kept as it was"
                ) from err
        u = res.particles
        log_pi = res.log_prob - log1m_tanh2(u).sum(-1) - self.scale.log().sum()
        if not log_density:
            log_pi = torch.full_like(log_pi, math.nan)
        if init is None:
            out = u.new_zeros(())
        else:
            with torch.no_grad():
                t = hp["particle_range"]
                out = ((u - init[0]).abs() > t * init[1]).any(-1).float().mean()
        return self.squash(u), log_pi, out

    def _policy(self, obs: Tensor, deterministic: bool) -> Tensor:
        if self.sampler is not None:  # S2AC(φ, θ, ψ) at test time: a = f_ψ(s, z)
            z = torch.zeros if deterministic else torch.randn
            return self.squash(self.sampler(obs, z(obs.shape[0], self.act_dim, device=obs.device)))
        return self._svgd_policy(obs, deterministic)

    def _svgd_policy(self, obs: Tensor, deterministic: bool) -> Tensor:
        """One of the m SVGD particles per state: a uniform choice (exploration), or the one of
        highest min Q (``deterministic``)."""
        # the steps take ∇_a Q by autograd also under no_grad; acting needs no log-density
        actions, _, _ = self.sample(obs, log_density=False)
        if deterministic:
            obs_m = per_particle(obs, actions.shape[1])
            idx = self.critic.min_q(obs_m, actions).argmax(-1)
        else:
            idx = torch.randint(actions.shape[1], (obs.shape[0],), device=obs.device)
        return actions[torch.arange(obs.shape[0], device=obs.device), idx]

    def _explore_action(self, obs: Any) -> Any:
        """Algorithm 2: training always acts with the SVGD sampler, also when amortized."""
        with torch.no_grad():
            action = self._svgd_policy(self._tensor(obs)[None], deterministic=False)
        return action[0].cpu().numpy()

    def entropy(self, obs: Tensor, n_sets: int = 10) -> Tensor:
        """H(π(·|s)) ≈ -mean of log π(a_i|s) (eq. 11) over ``n_sets`` particle sets of m;
        ``[batch, obs]`` -> ``[batch]`` (nats, in action space)."""
        x = obs.to(self.device, torch.float32)
        with torch.no_grad():
            _, log_pi, _ = self.sample(x.repeat_interleave(n_sets, 0))
        return -log_pi.view(-1, n_sets * log_pi.shape[-1]).mean(-1)

    # ---- learning -----------------------------------------------------------------------------

    def update(self) -> dict[str, float]:
        """One step of the critic (eq. 8), q^0_θ (eq. 9) and f_ψ (eq. 25) on a minibatch."""
        hp = self.hparams
        b = self.buffer.sample(hp["batch_size"], self.generator)
        with torch.no_grad():  # eq. 8's target: E_i[min Q̄(s', a'_i) - α log π(a'_i|s')]
            next_a, next_log_pi, _ = self.sample(b.next_obs)
            obs_m = per_particle(b.next_obs, next_a.shape[1])
            next_q = self.critic_target.min_q(obs_m, next_a)
            next_v = (next_q - self.alpha * next_log_pi).mean(-1)
            target = b.reward + hp["gamma"] * (1 - b.done) * next_v
        q1, q2 = self.critic(b.obs, b.action)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        out = {"critic_loss": critic_loss.item(), "entropy": -next_log_pi.mean().item()}

        if self.init is not None:  # eq. 9: max E[Q(s, a^L)] + α H, through the SVGD steps
            action, log_pi, outside = self.sample(b.obs)
            obs_m = per_particle(b.obs, action.shape[1])
            with frozen(self.critic):
                actor_loss = (self.alpha * log_pi - self.critic.min_q(obs_m, action)).mean()
                self.init_opt.zero_grad(set_to_none=True)
                actor_loss.backward()
            self.init_opt.step()
            out["actor_loss"] = actor_loss.item()
            out["outside_range"] = outside.item()
        if self.sampler is not None:
            out["amortized_loss"] = self._amortized_step(b.obs)
        polyak_update(self.critic_target, self.critic, hp["tau"])
        return out

    def _amortized_step(self, obs: Tensor) -> float:
        """App. K eqs. 24-25: move each output x = f_ψ(s, z) along the Stein direction
        ``Δf = (1/m) Σ_i [k(a_i, x) ∇log p(a_i) + ∇_{a_i} k(a_i, x)]`` of m other outputs a_i
        of f_ψ at the same state (held fixed; Soft Q-learning's split, so x is never in its own
        sum), i.e. ``ψ ← ψ + lr · Σ Δf ∂f_ψ/∂ψ`` through the surrogate loss ``-Σ Δf · x``."""
        m, d = self.hparams["n_particles"], self.act_dim
        z = torch.randn(obs.shape[0], 2 * m, d, device=obs.device)
        u = self.sampler(per_particle(obs, 2 * m), z)  # [batch, 2m, d]
        a, x = u[:, :m].detach(), u[:, m:]  # the fixed set and the updated outputs
        with frozen(self.critic):
            if self._piecewise_linear:
                score = self.score_trace(obs, a)[0]
            else:
                score = score_from_energy(lambda v: -self.log_target(obs, v))(a).detach()
        with torch.no_grad():
            a = a.detach()
            bw = self.hparams["bandwidth"]
            if isinstance(bw, str):
                sigma2 = bandwidth_heuristic(squared_distances(a), bw).pow(2).view(-1, 1, 1)
            else:
                sigma2 = a.new_full((a.shape[0], 1, 1), float(bw) ** 2)
            diff = x.detach().unsqueeze(2) - a.unsqueeze(1)  # [batch, m(x), m(a), d]
            k = torch.exp(-diff.pow(2).sum(-1) / (2 * sigma2))  # k(a_i, x)
            # eq. 24 in 002's form k ∇Q + α ∇k = α (k ∇log p + ∇k)
            direction = self.alpha * (k @ score + (k.unsqueeze(-1) * diff).sum(2) / sigma2) / m
        loss = -(direction * x).sum(-1).mean()  # eq. 25
        self.sampler_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.sampler_opt.step()
        return float(direction.norm(dim=-1).mean())
