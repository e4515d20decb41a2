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
    _accumulate_grads,
    _gemm,
    _min_q_input_grad,
    _relu_mlp_layers,
    _twin_q_forward,
    _weight_grad,
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
        """One gradient step of critic, actor and temperature on a replay minibatch (the
        gradients written out for ReLU networks, by autograd otherwise; the same maths)."""
        b = self.buffer.sample(self.hparams["batch_size"], self.generator)
        alpha = self.alpha
        with torch.no_grad():  # soft Bellman target with the clipped double Q
            next_a, next_log_p = self.actor(b.next_obs)
            next_v = self.critic_target.min_q(b.next_obs, next_a) - alpha * next_log_p
            target = b.reward + self.hparams["gamma"] * (1 - b.done) * next_v
        self.critic_opt.zero_grad(set_to_none=True)  # Σ_i mean((Q_i - target)²), written out
        critic_loss = twin_q_mse_backward(self.critic, b.obs, b.action, target)
        self.critic_opt.step()

        self.actor_opt.zero_grad(set_to_none=True)  # E[α log π(a|s) - Q(s, a)], written out
        actor_loss, log_p = _actor_loss_backward(self.actor, self.critic, b.obs, alpha)
        self.actor_opt.step()
        out = {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}
        if self.auto_alpha:  # J(α) = E[-log α (log π + target entropy)]: ∂J/∂log α in closed form
            self.alpha_opt.zero_grad(set_to_none=True)
            self.log_alpha.grad = -(log_p + self.target_entropy).mean()
            self.alpha_opt.step()
        polyak_update(self.critic_target, self.critic, self.hparams["tau"])
        out["alpha"] = self.alpha
        out["entropy"] = -log_p.mean().item()
        return out


@torch.no_grad()
def _actor_loss_backward(
    actor: SquashedGaussianActor, critic: TwinQ, obs: Tensor, alpha: float
) -> tuple[Tensor, Tensor]:
    """SAC's actor loss J = mean(α log π(a|s) - min(Q1, Q2)(s, a)), a = tanh(μ + σ ε) · scale +
    bias reparameterized, and its gradient in the actor's parameters (added to ``.grad``; the
    critic held fixed), written out for ReLU networks; returns (J, log π ``[n]``).  Draws ε
    as the actor's forward pass does; other networks go through autograd.

    With t = tanh u and z = (u - μ)/σ = ε: ∂log π/∂u = -z/σ + 2t (the Gaussian and the log-det
    term), ∂log π/∂μ = z/σ, ∂log π/∂log σ = z² - 1, u = μ + σ ε; so with
    G = ∂J/∂a · scale · (1 - t²) + (2α/n) t:  ∂J/∂μ = G, ∂J/∂log σ = G σ ε - α/n (times the
    clamp's indicator)."""
    layers = _relu_mlp_layers(actor.net)
    heads = (_relu_mlp_layers(critic.q1), _relu_mlp_layers(critic.q2))
    if layers is None or heads[0] is None or heads[1] is None:
        with torch.enable_grad():
            action, log_p = actor(obs)
            loss = (alpha * log_p - min_q_of_action(critic, obs, action)).mean()
            loss.backward()
        return loss.detach(), log_p.detach()
    hs = [obs]
    for lin in layers[:-1]:
        hs.append(_gemm(hs[-1], lin.weight, lin.bias, True))
    mean, raw = _gemm(hs[-1], layers[-1].weight, layers[-1].bias, False).chunk(2, -1)
    log_std = raw.clamp(actor.log_std_min, actor.log_std_max)
    std = log_std.exp()
    eps = torch.randn_like(mean)
    u = torch.addcmul(mean, std, eps)
    log_p = actor.log_prob_of(u, eps, log_std)
    t = torch.tanh(u)
    qs, hidden = _twin_q_forward(heads, obs, t * actor.scale + actor.bias)
    n = obs.shape[0]  # ∂J/∂a = -∂ min Q/∂a / n, each head on its minimum rows only
    _, grad_a = _min_q_input_grad(heads, qs, hidden, qs[0].new_full((n,), -1 / n), obs.shape[1])
    loss = (alpha * log_p - torch.minimum(*qs)).mean()
    g_u = grad_a * actor.scale * (1 - t * t) + (2 * alpha / n) * t
    inside = (raw >= actor.log_std_min) & (raw <= actor.log_std_max)  # clamp's derivative
    g_log_std = (g_u * std * eps - alpha / n) * inside
    g = torch.cat([g_u, g_log_std], -1)  # ∂J/∂(μ, raw log σ): [n, 2 act_dim]
    grads = []
    for k in reversed(range(len(layers))):
        if k < len(layers) - 1:
            g = torch.ops.aten.threshold_backward(g, hs[k + 1], 0)  # relu'
        grads += [(layers[k].bias, g.sum(0)), (layers[k].weight, _weight_grad(g, hs[k]))]
        if k > 0:
            g = _gemm(g, layers[k].weight.t(), None, False)
    _accumulate_grads(grads)
    return loss, log_p
