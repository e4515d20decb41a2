"""On-policy policy gradients with interchangeable estimators: A2C, RELAX and LAX (003 section
4.0.1 and App. B; 004 section 6.3).

One update per episode, the papers' highest-variance setting (003 section 6.3): when the episode
ends, its discounted returns-to-go R_t = Σ_{t'≥t} γ^{t'-t} r_t' are the black-box f of one
estimator call over the episode as a batch ``[T, ...]`` conditioned on the states s_t:

- ``a2c``:   ĝ = Σ_t ∂log π(a_t|s_t) (R_t - V(s_t)), V trained by squared error (003 eq. 13);
- ``relax``: ĝ = Σ_t ∂log π(a_t|s_t) [R_t - c(z̃_t, s_t)] + ∂c(z_t, s_t) - ∂c(z̃_t, s_t)
  (003 App. B; z_t the Gumbel-max relaxation of the action, z̃_t ~ p(z|a_t) with tied noise);
- ``lax``:   ĝ = Σ_t ∂log π(a_t|s_t) [R_t - c(a_t, s_t)] + ∂c(g_θ(ε_t, s_t), s_t) (003 eq. 12;
  Gaussian policy a = μ_θ(s) + σ_θ ε).

With γ < 1 the three are unbiased (to each other) for the papers' returns-to-go policy gradient
E[Σ_t ∂log π(a_t|s_t) R_t], which equals ∂E[Σ_t r_t] only at γ = 1: the discounted objective
E[Σ_t γ^t r_t] would weight step t by γ^t (Thomas 2014); 003 section 6.3 uses R_t as here.

RELAX and LAX use c_φ(·, s) = V(s) + ĉ(·, s) (004 section 6.3), trained by the variance objective
Σ ĝ² over the policy's parameters (003 eq. 11).  The rollout stores each step's noise (the
uniforms u_t of z_t, or ε_t), so the estimators of :mod:`stochgrad.estimators` rebuild exactly
the actions taken.  ``n_step`` replaces R_t by n-step bootstrapped returns on the learned V.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from scipy.signal import lfilter
from torch import Tensor, nn

from ..estimators import (
    BaselineControlVariate,
    CategoricalRelaxation,
    Estimate,
    NeuralBaseline,
    NeuralControlVariate,
    lax,
    reinforce,
    relax,
    variance_loss,
)
from ..estimators.relaxations import _uniform
from ..nn import mlp
from .agent import fresh_env, make_env, mean_return, resolve_agent_device, save_atomic

PG_ESTIMATORS = ("a2c", "relax", "lax")
NOISE_BLOCK = 256
"""Steps of noise a rollout draws from its generator at a time."""


def discounted_returns(rewards: np.ndarray, gamma: float, last_value: float = 0.0) -> np.ndarray:
    """G_t = Σ_{i<T-t} γ^i r_{t+i} + γ^{T-t} last_value, ``[T]`` (a reverse linear filter)."""
    r = np.asarray(rewards, dtype=np.float64).copy()
    if r.size == 0:
        return r
    r[-1] += gamma * last_value
    return lfilter([1.0], [1.0, -gamma], r[::-1])[::-1].copy()


def n_step_returns(
    rewards: np.ndarray, values: np.ndarray, gamma: float, n: int, last_value: float = 0.0
) -> np.ndarray:
    """R_t = Σ_{i<n} γ^i r_{t+i} + γ^n V(s_{t+n}), the sum cut at the episode's end T, where
    ``last_value`` (V(s_T) after a time limit, 0 after termination) closes it; ``values`` is
    V(s_t), ``[T]``.  As G_t - γ^n G_{t+n} + γ^n V(s_{t+n}) for t + n < T."""
    g = discounted_returns(rewards, gamma, last_value)
    out = g.copy()
    if n < len(g):
        out[:-n] = g[:-n] - gamma**n * g[n:] + gamma**n * np.asarray(values[n:], np.float64)
    return out


def episodes_to_solve(returns: list[float] | np.ndarray, threshold: float, window: int = 100):
    """The first episode count n >= ``window`` whose last ``window`` returns average at least
    ``threshold`` (gym's "solved" criterion), or None if none does."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < window:
        return None
    c = np.concatenate([[0.0], np.cumsum(r)])
    means = (c[window:] - c[:-window]) / window  # means[j]: episodes j .. j + window - 1
    hit = np.flatnonzero(means >= threshold)
    return int(hit[0] + window) if hit.size else None


class GaussianPolicy(nn.Module):
    """π_θ(a|s) = N(μ_θ(s), diag σ²) with a state-independent learned log σ; a = μ + σ ε."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], log_std: float = 0.0):
        super().__init__()
        self.mean = mlp(obs_dim, hidden, act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std)))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean [batch, d], std [d])``."""
        return self.mean(obs), self.log_std.exp()


class _Fixed(nn.Module):
    """``module(x)`` without gradient: V as a fixed baseline inside c (fitted by its own loss)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x).detach()


class PolicyGradient:
    """A policy-gradient learner, one update per episode, with the estimator named by ``estimator``.

    env: an id for ``gym.make`` or an environment (Discrete actions for ``a2c``/``relax``, Box for
    ``a2c``/``lax``; LAX clips the Gaussian action to the bounds only when stepping the env).
    hidden: the policy's, V's and ĉ's hidden layers (ReLU); lr: the policy's Adam step;
    cv_lr: the Adam step of V (A2C) or of c_φ = V + ĉ (RELAX, LAX); cv_scale: ĉ's initial scale
    s in ĉ = s · MLP; n_step: None for Monte-Carlo returns (no bootstrapping), else n-step
    bootstrapped ones.  value_objective (RELAX, LAX): ``"variance"`` trains all of c_φ = V + ĉ
    by Σ ĝ² (003 eq. 11); ``"squared-error"`` fits V by A2C's squared error and ĉ alone by
    Σ ĝ² (V then enters ĝ as a fixed baseline).  critic_steps: the critic's Adam steps on each
    episode (the papers: 1; benchmarks/results/pg_variance.md shows what more buys).
    """

    name: ClassVar[str] = "pg"

    def __init__(
        self,
        env: str | gym.Env,
        estimator: str = "a2c",
        *,
        hidden: tuple[int, ...] = (10, 10),
        lr: float = 0.01,
        cv_lr: float = 0.01,
        cv_scale: float = 1.0,
        gamma: float = 0.99,
        n_step: int | None = None,
        log_std: float = 0.0,
        value_objective: str = "variance",
        critic_steps: int = 1,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        if estimator not in PG_ESTIMATORS:
            raise ValueError(f"estimator must be one of {PG_ESTIMATORS}, got {estimator!r}")
        for key, value in (("lr", lr), ("cv_lr", cv_lr)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{key} must be a number > 0, got {value!r}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        if n_step is not None and (
            isinstance(n_step, bool) or not isinstance(n_step, int) or n_step < 1
        ):
            raise ValueError(
                f"n_step must be None (no bootstrapping) or an int >= 1, got {n_step!r}"
            )
        if not hidden or any(
            isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden
        ):
            raise ValueError(f"hidden must be a non-empty tuple of ints >= 1, got {hidden!r}")
        self.env_id = env if isinstance(env, str) else None
        self.env = make_env(env) if isinstance(env, str) else env
        space = self.env.action_space
        self.discrete = isinstance(space, gym.spaces.Discrete)
        if not self.discrete and not isinstance(space, gym.spaces.Box):
            raise TypeError(f"PolicyGradient needs a Discrete or Box action space, got {space}")
        if estimator == "relax" and not self.discrete:
            raise ValueError("estimator='relax' needs a Discrete action space; use 'lax' for Box")
        if estimator == "lax" and self.discrete:
            raise ValueError("estimator='lax' needs a Box action space; use 'relax' for Discrete")
        if isinstance(critic_steps, bool) or not isinstance(critic_steps, int) or critic_steps < 1:
            raise ValueError(f"critic_steps must be an int >= 1, got {critic_steps!r}")
        if value_objective not in ("variance", "squared-error"):
            raise ValueError(
                f"value_objective must be 'variance' or 'squared-error', got {value_objective!r}"
            )
        if n_step is not None and estimator != "a2c" and value_objective == "variance":
            warnings.warn(
                "n_step bootstraps from V, which value_objective='variance' trains to lower "
                "Var ĝ, not to predict returns; value_objective='squared-error' fits it to them",
                UserWarning,
                stacklevel=2,
            )
        self.estimator = estimator
        self.hparams: dict[str, Any] = {
            "estimator": estimator, "hidden": tuple(hidden), "lr": lr, "cv_lr": cv_lr,
            "cv_scale": cv_scale, "gamma": gamma, "n_step": n_step, "log_std": log_std,
            "value_objective": value_objective, "critic_steps": critic_steps, "seed": seed,
        }  # fmt: skip
        self.device = resolve_agent_device(device)
        self.obs_dim = int(np.prod(self.env.observation_space.shape))
        self.act_dim = int(space.n) if self.discrete else int(np.prod(space.shape))
        if not self.discrete:
            self.low, self.high = space.low.reshape(-1), space.high.reshape(-1)
        torch.manual_seed(seed)
        with torch.device(self.device):
            self._build(hidden, cv_scale, log_std)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.num_steps = 0
        self.episode = 0
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.grad_var_log: list[tuple[int, float]] = []

    # ---- networks -----------------------------------------------------------------------------

    def _build(self, hidden: tuple[int, ...], cv_scale: float, log_std: float) -> None:
        if self.discrete:
            self.policy: nn.Module = mlp(self.obs_dim, hidden, self.act_dim)  # logits
        else:
            self.policy = GaussianPolicy(self.obs_dim, self.act_dim, hidden, log_std)
        self.value = NeuralBaseline(mlp(self.obs_dim, hidden, 1))  # V(s)
        if self.estimator == "a2c":
            self.control_variate = None
            critic: nn.Module = self.value
        else:  # c_φ(·, s) = V(s) + ĉ(·, s), 004 section 6.3
            c_hat = NeuralControlVariate(mlp(self.act_dim + self.obs_dim, hidden, 1), cv_scale)
            fixed = self.hparams["value_objective"] == "squared-error"
            v = _Fixed(self.value) if fixed else self.value
            self.control_variate = BaselineControlVariate(v) + c_hat
            critic = self.control_variate
        # fused: one kernel per step instead of a loop over the tiny tensors (1.2-1.4x per update)
        self.policy_optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=self.hparams["lr"], fused=True
        )
        self.critic_optimizer = torch.optim.Adam(
            critic.parameters(), lr=self.hparams["cv_lr"], fused=True
        )
        self._critic = critic

    # ---- acting -------------------------------------------------------------------------------

    def _noise(self, generator: torch.Generator) -> Tensor:
        """One step's noise: uniforms ``[k]`` of the Gumbel z, or ε ``[d]``."""
        if self.discrete:
            return _uniform(
                torch.Size([self.act_dim]), torch.empty(0, device=self.device), generator
            )
        return torch.randn(self.act_dim, generator=generator, device=self.device)

    def _action(self, obs: Tensor, noise: Tensor) -> Tensor:
        """The action the noise selects: argmax(log π + Gumbel(u)) (003 App. A), or μ + σ ε."""
        if self.discrete:
            logits = self.policy(obs)
            return (torch.log_softmax(logits, -1) - torch.log(-torch.log(noise))).argmax(-1)
        mean, std = self.policy(obs)
        return mean + std * noise

    def act(self, obs: Any, deterministic: bool = False) -> np.ndarray | int:
        """An action for one observation: sampled, or the mode with ``deterministic``."""
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            if deterministic:
                if self.discrete:
                    return int(self.policy(x).argmax(-1))
                a = self.policy(x)[0]
            else:
                a = self._action(x, self._noise(self.generator))
        if self.discrete:
            return int(a)
        return np.clip(a.cpu().numpy(), self.low, self.high)

    def _numpy_policy(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The policy's network (logits, or the Gaussian's mean) as a float32 numpy function of
        one observation, from copies of its weights (fixed within an episode); None if it is
        not a plain ReLU MLP.  A one-row pass rounds differently from the batched one of the
        update anyway; :meth:`estimate` takes the rollout's outputs as the values."""
        if self.discrete:
            net: nn.Module | None = self.policy
        else:  # a GaussianPolicy's σ does not depend on the state
            net = self.policy.mean if isinstance(self.policy, GaussianPolicy) else None
        if not isinstance(net, nn.Sequential):
            return None
        layers: list[tuple[np.ndarray, np.ndarray]] = []
        for i, module in enumerate(net):
            if isinstance(module, nn.Linear) and module.bias is not None and i % 2 == 0:
                w = module.weight.detach().cpu().numpy().astype(np.float32)
                layers.append((w, module.bias.detach().cpu().numpy().astype(np.float32)))
            elif not (isinstance(module, nn.ReLU) and i % 2 == 1):
                return None
        if len(net) % 2 == 0:  # must end with a Linear layer (the logits / mean)
            return None
        last = len(layers) - 1

        def forward(x: np.ndarray) -> np.ndarray:
            for k, (w, b) in enumerate(layers):
                x = w @ x + b
                if k < last:
                    x = np.maximum(x, 0.0, out=x)
            return x

        return forward

    def rollout(self, env: gym.Env, seed: int, generator: torch.Generator) -> dict[str, Any]:
        """One episode from ``env.reset(seed=seed)``: states ``[T, obs]``, noise ``[T, k|d]``,
        actions ``[T]`` (indices) or ``[T, d]`` (unclipped), the policy's outputs ``[T, k|d]``
        (logits, or the Gaussian's mean), rewards ``[T]``, the final state and whether the
        episode ended by termination (not a time limit).  The noise is drawn in blocks of
        ``NOISE_BLOCK`` steps from ``generator``."""
        forward = self._numpy_policy()
        obs, _ = env.reset(seed=seed)
        states, outputs, actions, rewards, blocks = [], [], [], [], []
        done, terminated, t = False, False, 0
        with torch.no_grad():
            if not self.discrete:
                std = self.policy(torch.zeros(self.obs_dim, device=self.device))[1].cpu().numpy()
            while not done:
                if t % NOISE_BLOCK == 0:  # the next block of noise (and Gumbel offsets)
                    u = self._noise_block(generator)
                    blocks.append(u)
                    noise = (torch.log(-torch.log(u)) if self.discrete else u).cpu()
                    noise_np = noise.numpy()
                x = np.asarray(obs, dtype=np.float32).reshape(-1)
                if forward is None:
                    out = self.policy(torch.as_tensor(x, device=self.device))
                    out = (out if self.discrete else out[0]).cpu().numpy()
                else:
                    out = forward(x)
                if self.discrete:  # argmax(log π - log(-log u)), the core's own ops (003 App. A)
                    z = torch.log_softmax(torch.from_numpy(out), -1) - noise[t % NOISE_BLOCK]
                    a: Any = int(z.argmax())
                    step: Any = a
                else:
                    a = out + std * noise_np[t % NOISE_BLOCK]  # μ + σ ε
                    step = np.clip(a, self.low, self.high)
                obs_next, reward, terminated, truncated, _ = env.step(step)
                states.append(x)
                outputs.append(out)
                actions.append(a)
                rewards.append(float(reward))
                obs, done, t = obs_next, terminated or truncated, t + 1
        dev = self.device
        return {
            "states": torch.as_tensor(np.stack(states), device=dev),
            "noise": torch.cat(blocks)[:t],
            "actions": torch.as_tensor(np.asarray(actions), device=dev),
            "policy_out": torch.as_tensor(np.stack(outputs), device=dev),
            "rewards": np.asarray(rewards),
            "final_state": torch.as_tensor(np.asarray(obs, np.float32).reshape(-1), device=dev),
            "terminated": bool(terminated),
        }

    def _noise_block(self, generator: torch.Generator) -> Tensor:
        """``NOISE_BLOCK`` steps of noise: uniforms ``[n, k]`` of the Gumbel z, or ε ``[n, d]``."""
        shape = torch.Size([NOISE_BLOCK, self.act_dim])
        if self.discrete:
            return _uniform(shape, torch.empty(0, device=self.device), generator)
        return torch.randn(shape, generator=generator, device=self.device)

    # ---- the estimators -----------------------------------------------------------------------

    def returns(self, episode: dict[str, Any]) -> Tensor:
        """R_t ``[T]``: discounted returns-to-go, or n-step bootstrapped ones (``n_step``)."""
        gamma, n = self.hparams["gamma"], self.hparams["n_step"]
        if n is None:
            g = discounted_returns(episode["rewards"], gamma)
        else:
            with torch.no_grad():
                values = self.value(episode["states"]).cpu().numpy()
                last = 0.0 if episode["terminated"] else float(self.value(episode["final_state"]))
            g = n_step_returns(episode["rewards"], values, gamma, n, last)
        return torch.as_tensor(g, dtype=torch.float32, device=self.device)

    def estimate(
        self, episode: dict[str, Any], returns: Tensor, baseline: Tensor | None = None
    ) -> Estimate:
        """The estimator's surrogate for the episode (sum over its T steps, eq. 12 / App. B);
        ``baseline``: A2C's V(s_t) ``[T]`` (detached here)."""
        states, noise, actions = episode["states"], episode["noise"], episode["actions"]

        def f(b: Tensor) -> Tensor:  # the black box: the returns of the actions taken
            if not torch.equal(b.argmax(-1) if self.discrete and b.dim() == 2 else b, actions):
                raise RuntimeError("the estimator rebuilt other actions than the rollout took")
            return returns

        if self.discrete:
            out = self.policy(states)  # logits
        else:
            out, std = self.policy(states)  # mean, std
        if "policy_out" in episode:  # valued as the rollout's one-row passes (they round apart)
            out = episode["policy_out"] + (out - out.detach())
        if self.discrete:
            if self.estimator == "a2c":
                dist: Any = torch.distributions.Categorical(logits=out, validate_args=False)
                return reinforce(dist, f, baseline, reduction="sum", sample=actions)
            dist = CategoricalRelaxation(logits=out)
            return relax(dist, f, self.control_variate, states, noise=noise, reduction="sum")
        std = std.expand_as(out)
        dist = torch.distributions.Normal(out, std, validate_args=False)
        if self.estimator == "a2c":
            return reinforce(dist, f, baseline, reduction="sum", sample=actions)
        sample = out + std * noise  # a_t = g_θ(ε_t, s_t), attached to θ
        sample = actions + (sample - sample.detach())  # valued as the action taken
        return lax(dist, f, self.control_variate, states, reduction="sum", sample=sample)

    def policy_gradient(
        self, episode: dict[str, Any], critic: bool = True
    ) -> tuple[list[Tensor], Tensor | None, Estimate]:
        """ĝ for the policy's parameters (ascent direction), the critic's loss, and the estimate.
        The critic's loss is V's squared error (A2C) or Σ ĝ² (RELAX, LAX; plus V's squared error
        with ``value_objective="squared-error"``), with graph; None with ``critic=False``."""
        returns = self.returns(episode)
        params = list(self.policy.parameters())
        fit_v = self.estimator == "a2c" or self.hparams["value_objective"] == "squared-error"
        need_v = self.estimator == "a2c" or (fit_v and critic)  # the baseline, or its fit
        values = self.value(episode["states"]) if need_v else None
        est = self.estimate(episode, returns, None if values is None else values.detach())
        value_loss = (returns - values).pow(2).mean() if fit_v and critic else None
        if self.estimator == "a2c" or not critic:
            g = list(torch.autograd.grad(est.surrogate, params))
            return g, value_loss, est
        critic_loss, g = variance_loss(est, params)  # 003 eq. 11
        if value_loss is not None:
            critic_loss = critic_loss + value_loss
        return g, critic_loss, est

    def critic_step(self, critic_loss: Tensor) -> None:
        """One Adam step of the critic alone on ``critic_loss`` (from :meth:`policy_gradient`)."""
        params = list(self._critic.parameters())
        grads = torch.autograd.grad(critic_loss, params, allow_unused=True)
        for p, gp in zip(params, grads):
            p.grad = None if gp is None else gp.detach()
        self.critic_optimizer.step()

    def update(self, episode: dict[str, Any]) -> dict[str, float]:
        """One step of the policy (ascent on ĝ) and ``critic_steps`` of the critic (descent on
        its loss) on the episode; ĝ is taken with the critic as it was, the critic steps with θ
        as it was."""
        g, critic_loss, _ = self.policy_gradient(episode)
        stats = {
            "critic_loss": float(critic_loss.detach()),
            "grad_norm": float(torch.sqrt(sum(x.detach().pow(2).sum() for x in g))),
        }
        for k in range(self.hparams["critic_steps"]):
            if k > 0:  # the critic has moved: its loss again, on the same episode and θ
                _, critic_loss, _ = self.policy_gradient(episode)
                stats["critic_loss"] = float(critic_loss.detach())
            if not all(math.isfinite(v) for v in stats.values()):
                raise FloatingPointError(
                    f"{self.estimator} update at episode {self.episode} gave {stats}: training "
                    "diverged (the last checkpoint, if any, is kept as it was)"
                )
            self.critic_step(critic_loss)
        for p, gp in zip(self.policy.parameters(), g):
            p.grad = -gp.detach()  # maximize the return
        self.policy_optimizer.step()
        return stats

    def _episode_seed(self, episode: int, stream: int = 0) -> int:
        return (self.hparams["seed"] * 1_000_003 + episode + stream * 7_919_713) % 2**32

    # ---- the loop -----------------------------------------------------------------------------

    def learn(
        self,
        total_episodes: int | None = None,
        *,
        total_steps: int | None = None,
        stop_at: float | None = None,
        window: int = 100,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 100,
        callback: Callable[[PolicyGradient], None] | None = None,
        grad_var_every: int | None = None,
        grad_var_samples: int = 10,
    ) -> PolicyGradient:
        """Run episodes, one update each, until ``total_episodes`` episodes or ``total_steps``
        environment steps in all (checked at episode ends), or, with ``stop_at``, until the mean
        return of the last ``window`` episodes reaches it.  Every ``grad_var_every`` episodes,
        :meth:`gradient_variance` on ``grad_var_samples`` extra episodes (not trained on, on their
        own env and noise: the training run is the same with or without them).  ``checkpoint``:
        :meth:`save` there every ``checkpoint_every`` episodes."""
        if total_episodes is None and total_steps is None and stop_at is None:
            raise ValueError("give total_episodes, total_steps or stop_at (else it never ends)")
        for key, value in (("total_episodes", total_episodes), ("total_steps", total_steps)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"{key} must be an int >= 0 or None, got {value!r}")
        for key, value in (("checkpoint_every", checkpoint_every), ("window", window),
                           ("grad_var_samples", grad_var_samples)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an int >= 1, got {value!r}")
        if grad_var_samples < 2 and grad_var_every:
            raise ValueError("grad_var_samples must be >= 2 to estimate a variance")
        if grad_var_every is not None and (
            not isinstance(grad_var_every, int) or grad_var_every < 1
        ):
            raise ValueError(f"grad_var_every must be None or an int >= 1, got {grad_var_every!r}")
        while True:
            if total_episodes is not None and self.episode >= total_episodes:
                break
            if total_steps is not None and self.num_steps >= total_steps:
                break
            if stop_at is not None and self.solved(stop_at, window) is not None:
                break
            if grad_var_every is not None and self.episode % grad_var_every == 0:
                self.grad_var_log.append((self.episode, self.gradient_variance(grad_var_samples)))
            episode = self.rollout(self.env, self._episode_seed(self.episode), self.generator)
            self.update(episode)
            self.episode_returns.append(float(np.sum(episode["rewards"])))
            self.episode_lengths.append(len(episode["rewards"]))
            self.num_steps += len(episode["rewards"])
            self.episode += 1
            if checkpoint is not None and self.episode % checkpoint_every == 0:
                self.save(checkpoint)
            if callback is not None:
                callback(self)
        return self

    def solved(self, threshold: float, window: int = 100) -> int | None:
        """:func:`episodes_to_solve` of this run's returns so far."""
        return episodes_to_solve(self.episode_returns, threshold, window)

    def gradient_variance(self, n_samples: int = 10) -> float:
        """log10 of the variance of ĝ over ``n_samples`` episodes of the current policy, averaged
        over the policy's parameters (Fig. 4 bottom row).  Uses its own env copy and noise."""
        env = fresh_env(self.env_id, self.env)
        generator = torch.Generator(device=self.device).manual_seed(
            self._episode_seed(self.episode, stream=1)
        )
        grads = []
        for i in range(n_samples):
            episode = self.rollout(
                env, self._episode_seed(self.episode * n_samples + i, 2), generator
            )
            g, _, _ = self.policy_gradient(episode, critic=False)
            grads.append(torch.cat([x.detach().reshape(-1) for x in g]))
        env.close()
        var = torch.stack(grads).double().var(dim=0).mean()
        return float(torch.log10(var))

    def evaluate(
        self, n_episodes: int = 10, seed: int = 10_000, deterministic: bool = False
    ) -> float:
        """Mean return of ``n_episodes`` episodes on a fresh copy of the env."""
        env = fresh_env(self.env_id, self.env)
        return mean_return(env, lambda obs: self.act(obs, deterministic), n_episodes, seed)

    # ---- persistence --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "agent": self.name,
            "hparams": {**self.hparams, "hidden": list(self.hparams["hidden"])},
            "env_id": self.env_id,
            "policy": self.policy.state_dict(),
            "critic": self._critic.state_dict(),
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "num_steps": self.num_steps,
            "episode": self.episode,
            "episode_returns": list(self.episode_returns),
            "episode_lengths": list(self.episode_lengths),
            "grad_var_log": [list(x) for x in self.grad_var_log],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the learner (networks, optimizers, noise generator, history) atomically."""
        return save_atomic(self.state_dict(), path)

    def load_state_dict(self, s: dict) -> None:
        if s.get("agent") != self.name or s["hparams"]["estimator"] != self.estimator:
            raise ValueError(
                f"checkpoint holds {s.get('agent')!r} / {s['hparams'].get('estimator')!r}, "
                f"not {self.name!r} / {self.estimator!r}"
            )
        self.policy.load_state_dict(s["policy"])
        self._critic.load_state_dict(s["critic"])
        self.policy_optimizer.load_state_dict(s["policy_optimizer"])
        self.critic_optimizer.load_state_dict(s["critic_optimizer"])
        self.generator.set_state(s["generator"].cpu())
        self.num_steps, self.episode = int(s["num_steps"]), int(s["episode"])
        self.episode_returns = [float(r) for r in s["episode_returns"]]
        self.episode_lengths = [int(n) for n in s["episode_lengths"]]
        self.grad_var_log = [(int(e), float(v)) for e, v in s["grad_var_log"]]

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: gym.Env | None = None, device: str = "cpu"
    ) -> PolicyGradient:
        """A learner from :meth:`save` (``weights_only=True``); ``env`` if it was not an id.
        Training continues with the next episode exactly as an uninterrupted run (on CPU)."""
        s = torch.load(path, map_location=device, weights_only=True)
        hp = {**s["hparams"], "hidden": tuple(s["hparams"]["hidden"])}
        if env is None and s["env_id"] is None:
            raise ValueError("the learner was built on an environment object: pass env=")
        agent = cls(env if env is not None else s["env_id"], device=device, **hp)
        agent.load_state_dict(s)
        return agent
