"""Soft actor-critic (Haarnoja et al. 2018): a tanh-squashed Gaussian actor, twin Q critics with
Polyak-averaged targets, optional automatic temperature.  One readable file built from
:mod:`stochgrad.rl.agent` (loop, buffer, checkpoints) and :mod:`stochgrad.rl.networks`.

    agent = SAC("Pendulum-v1", seed=0)
    agent.learn(10_000)
    action = agent.act(obs, deterministic=True)
    agent.save("sac.pt"); agent = SAC.load("sac.pt")
"""

from __future__ import annotations

import copy
import math
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor

from .agent import OffPolicyAgent
from .networks import (
    SquashedGaussianActor,
    TwinQ,
    min_q_of_action,
    polyak_update,
    twin_q_mse_backward,
)


class SAC(OffPolicyAgent):
    """SAC on a Gymnasium environment with a Box action space.

    alpha: the entropy weight α, or ``"auto"`` (learned so that the policy's entropy tracks
    ``target_entropy``, default -act_dim).  Other arguments: :class:`OffPolicyAgent`.
    """

    name = "sac"

    def __init__(
        self,
        env: str | gym.Env,
        *,
        alpha: float | str = "auto",
        target_entropy: float | None = None,
        **kwargs: Any,
    ) -> None:
        if alpha != "auto" and not (
            isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha >= 0
        ):
            raise ValueError(f"alpha must be a number >= 0 or 'auto', got {alpha!r}")
        super().__init__(env, alpha=alpha, target_entropy=target_entropy, **kwargs)

    def _build(self) -> None:
        hp, dev = self.hparams, self.device
        self.actor = SquashedGaussianActor(
            self.obs_dim, self.act_dim, hp["hidden"], low=self.low, high=self.high
        ).to(dev)
        self.critic = TwinQ(self.obs_dim, self.act_dim, hp["hidden"]).to(dev)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=hp["lr"], fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=hp["lr"], fused=True)
        alpha = hp["alpha"]
        self.auto_alpha = alpha == "auto"
        te = hp["target_entropy"]
        self.target_entropy = float(-self.act_dim if te is None else te)
        init = 0.0 if self.auto_alpha else math.log(max(float(alpha), 1e-30))
        self.log_alpha = torch.tensor(init, device=dev, requires_grad=self.auto_alpha)
        self.alpha_opt = (
            torch.optim.Adam([self.log_alpha], lr=hp["lr"]) if self.auto_alpha else None
        )
        self.fixed_alpha = None if self.auto_alpha else float(alpha)

    def _state_objects(self) -> dict[str, Any]:
        return {
            "actor": self.actor, "critic": self.critic, "critic_target": self.critic_target,
            "actor_opt": self.actor_opt, "critic_opt": self.critic_opt,
            "log_alpha": self.log_alpha, "alpha_opt": self.alpha_opt,
        }  # fmt: skip

    @property
    def alpha(self) -> float:
        return (
            self.fixed_alpha
            if self.fixed_alpha is not None
            else float(self.log_alpha.detach().exp())
        )

    def _policy(self, obs: Tensor, deterministic: bool) -> Tensor:
        return self.actor(obs, deterministic=deterministic)[0]

    @torch.no_grad()
    def entropy(self, obs: Tensor, n_samples: int = 100) -> Tensor:
        """H(π(·|s)) ≈ -mean of log π(a|s) over ``n_samples`` actions; ``[batch, obs]`` ->
        ``[batch]`` (nats, in action space)."""
        x = obs.to(self.device, torch.float32)
        _, log_p = self.actor(x.repeat_interleave(n_samples, 0))
        return -log_p.view(-1, n_samples).mean(-1)

    def update(self) -> dict[str, float]:
        """One gradient step of critic, actor and temperature on a replay minibatch."""
        b = self.buffer.sample(self.hparams["batch_size"], self.generator)
        alpha = self.alpha
        with torch.no_grad():  # soft Bellman target with the clipped double Q
            next_a, next_log_p = self.actor(b.next_obs)
            next_v = self.critic_target.min_q(b.next_obs, next_a) - alpha * next_log_p
            target = b.reward + self.hparams["gamma"] * (1 - b.done) * next_v
        self.critic_opt.zero_grad(set_to_none=True)  # Σ_i mean((Q_i - target)²), written out
        critic_loss = twin_q_mse_backward(self.critic, b.obs, b.action, target)
        self.critic_opt.step()

        action, log_p = self.actor(b.obs)  # E[α log π(a|s) - Q(s, a)], a reparameterized
        # the actor's loss needs ∂Q/∂a, not ∂Q/∂ω: each head backpropagates its minimum rows only
        actor_loss = (alpha * log_p - min_q_of_action(self.critic, b.obs, action)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        log_p = log_p.detach()
        out = {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}
        if self.auto_alpha:  # J(α) = E[-log α (log π + target entropy)]: ∂J/∂log α in closed form
            self.alpha_opt.zero_grad(set_to_none=True)
            self.log_alpha.grad = -(log_p + self.target_entropy).mean()
            self.alpha_opt.step()
        polyak_update(self.critic_target, self.critic, self.hparams["tau"])
        out["alpha"] = self.alpha
        out["entropy"] = -log_p.mean().item()
        return out
