"""Soft actor-critic (Haarnoja et al. 2018): a tanh-squashed Gaussian actor, twin Q critics with
Polyak-averaged targets, optional automatic temperature.  One readable file built from
:mod:`stochgrad.rl.buffer` and :mod:`stochgrad.rl.networks`.

    agent = SAC("Pendulum-v1", seed=0)
    agent.learn(10_000)
    action = agent.act(obs, deterministic=True)
    agent.save("sac.pt"); agent = SAC.load("sac.pt")
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .buffer import ReplayBuffer
from .networks import SquashedGaussianActor, TwinQ, polyak_update


class SAC:
    """SAC on a Gymnasium environment with a Box action space.

    env: an id for ``gym.make`` or an environment.  alpha: the entropy weight α, or ``"auto"``
    (learned so that the policy's entropy tracks ``target_entropy``, default -act_dim).
    learning_starts: uniform random actions before the first update; then one update per step.
    """

    def __init__(
        self,
        env: str | gym.Env,
        *,
        hidden: tuple[int, ...] = (256, 256),
        lr: float = 3e-4,
        gamma: float = 0.99,
        tau: float = 0.005,
        batch_size: int = 256,
        buffer_size: int = 1_000_000,
        learning_starts: int = 1000,
        alpha: float | str = "auto",
        target_entropy: float | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        self.env_id = env if isinstance(env, str) else None
        self.env = gym.make(env) if isinstance(env, str) else env
        space = self.env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"SAC needs a Box action space, got {type(space).__name__}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        if alpha != "auto" and not (isinstance(alpha, (int, float)) and alpha >= 0):
            raise ValueError(f"alpha must be a number >= 0 or 'auto', got {alpha!r}")
        self.hparams = {
            "hidden": tuple(hidden), "lr": lr, "gamma": gamma, "tau": tau,
            "batch_size": batch_size, "buffer_size": buffer_size,
            "learning_starts": learning_starts, "alpha": alpha,
            "target_entropy": target_entropy, "seed": seed,
        }  # fmt: skip
        self.device = torch.device(device)
        obs_dim = int(np.prod(self.env.observation_space.shape))
        act_dim = int(np.prod(space.shape))
        torch.manual_seed(seed)
        low = torch.as_tensor(space.low, dtype=torch.float32)
        high = torch.as_tensor(space.high, dtype=torch.float32)
        self.actor = SquashedGaussianActor(obs_dim, act_dim, hidden, low=low, high=high)
        self.critic = TwinQ(obs_dim, act_dim, hidden)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr, fused=True)
        self.auto_alpha = alpha == "auto"
        self.target_entropy = float(-act_dim if target_entropy is None else target_entropy)
        init = 0.0 if self.auto_alpha else math.log(max(float(alpha), 1e-30))
        self.log_alpha = torch.tensor(init, device=self.device, requires_grad=self.auto_alpha)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=lr) if self.auto_alpha else None
        self.fixed_alpha = None if self.auto_alpha else float(alpha)
        self.buffer = ReplayBuffer(buffer_size, obs_dim, act_dim, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.num_steps = 0
        self.episode = 0
        self._episode_return, self.episode_returns = 0.0, []
        self._reset()

    def _reset(self) -> None:
        """Start episode ``self.episode`` from its own seed (environment and warm-up actions),
        so that a checkpoint taken at an episode boundary determines everything after it."""
        episode_seed = (self.hparams["seed"] * 1_000_003 + self.episode) % 2**32
        self._obs, _ = self.env.reset(seed=episode_seed)
        self.env.action_space.seed(episode_seed)
        self._episode_return = 0.0

    @property
    def alpha(self) -> float:
        return (
            self.fixed_alpha
            if self.fixed_alpha is not None
            else float(self.log_alpha.detach().exp())
        )

    def _tensor(self, obs: Any) -> Tensor:
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = False) -> np.ndarray:
        """An action for one observation (or a batch ``[n, obs_dim]``), as a numpy array."""
        x = self._tensor(obs)
        single = x.dim() == 1
        action, _ = self.actor(x[None] if single else x, deterministic=deterministic)
        action = action.cpu().numpy()
        return action[0] if single else action

    def update(self) -> dict[str, float]:
        """One gradient step of critic, actor and temperature on a replay minibatch."""
        b = self.buffer.sample(self.hparams["batch_size"], self.generator)
        alpha = self.alpha
        with torch.no_grad():  # soft Bellman target with the clipped double Q
            next_a, next_log_p = self.actor(b.next_obs)
            next_v = self.critic_target.min_q(b.next_obs, next_a) - alpha * next_log_p
            target = b.reward + self.hparams["gamma"] * (1 - b.done) * next_v
        q1, q2 = self.critic(b.obs, b.action)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        action, log_p = self.actor(b.obs)  # E[α log π(a|s) - Q(s, a)], a reparameterized
        self.critic.requires_grad_(False)  # the actor's loss needs ∂Q/∂a, not ∂Q/∂ω
        actor_loss = (alpha * log_p - self.critic.min_q(b.obs, action)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.critic.requires_grad_(True)
        self.actor_opt.step()
        out = {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}
        if self.auto_alpha:  # J(α) = E[-α (log π + target entropy)]
            alpha_loss = -(self.log_alpha * (log_p.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
        polyak_update(self.critic_target, self.critic, self.hparams["tau"])
        out["alpha"] = self.alpha
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(f"SAC update at step {self.num_steps} gave {out}")
        return out

    def learn(
        self,
        total_steps: int,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 10_000,
    ) -> SAC:
        """Interact for ``total_steps`` more environment steps, one update per step once the
        buffer holds ``learning_starts`` transitions.  With ``checkpoint``, :meth:`save` there
        at the first episode boundary after every ``checkpoint_every`` steps: ``SAC.load`` and
        ``learn`` of the remaining steps then continue exactly as an uninterrupted run."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps must be an int >= 0, got {total_steps!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        last_save = self.num_steps
        for _ in range(total_steps):
            if self.num_steps < self.hparams["learning_starts"]:
                action = self.env.action_space.sample()
            else:
                action = self.act(self._obs)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(self._obs, action, reward, next_obs, float(terminated))
            self._episode_return += float(reward)
            self._obs = next_obs
            self.num_steps += 1
            if self.num_steps >= self.hparams["learning_starts"]:
                self.update()
            if terminated or truncated:
                self.episode_returns.append(self._episode_return)
                self.episode += 1
                self._reset()
                if checkpoint is not None and self.num_steps - last_save >= checkpoint_every:
                    self.save(checkpoint)
                    last_save = self.num_steps
        return self

    def evaluate(self, n_episodes: int = 10, seed: int = 10_000) -> float:
        """Mean return of ``n_episodes`` deterministic episodes on a fresh copy of the env."""
        env = gym.make(self.env_id) if self.env_id else copy.deepcopy(self.env)
        total = 0.0
        for i in range(n_episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(self.act(obs, deterministic=True))
                total += float(reward)
                done = terminated or truncated
        return total / n_episodes

    # ---- persistence ----------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "hparams": {**self.hparams, "hidden": list(self.hparams["hidden"])},
            "env_id": self.env_id,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "log_alpha": self.log_alpha.detach(),
            "alpha_opt": None if self.alpha_opt is None else self.alpha_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "num_steps": self.num_steps,
            "episode": self.episode,
            "episode_returns": list(self.episode_returns),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the whole agent (networks, optimizers, buffer, RNG, step) atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], env: gym.Env | None = None, device="cpu") -> SAC:
        """An agent from :meth:`save` (``weights_only=True``); ``env`` if it was not an id.
        The environment starts the episode after the last finished one, from its seed (a save
        in the middle of an episode loses that episode's remaining steps)."""
        s = torch.load(path, map_location=device, weights_only=True)
        hp = {**s["hparams"], "hidden": tuple(s["hparams"]["hidden"])}
        if env is None and s["env_id"] is None:
            raise ValueError("the agent was built on an environment object: pass env=")
        agent = cls(env if env is not None else s["env_id"], device=device, **hp)
        agent.actor.load_state_dict(s["actor"])
        agent.critic.load_state_dict(s["critic"])
        agent.critic_target.load_state_dict(s["critic_target"])
        agent.actor_opt.load_state_dict(s["actor_opt"])
        agent.critic_opt.load_state_dict(s["critic_opt"])
        with torch.no_grad():
            agent.log_alpha.copy_(s["log_alpha"])
        if agent.alpha_opt is not None:
            agent.alpha_opt.load_state_dict(s["alpha_opt"])
        agent.buffer.load_state_dict(s["buffer"])
        agent.generator.set_state(s["generator"].cpu())
        torch.set_rng_state(s["torch_rng"].cpu())
        agent.num_steps = int(s["num_steps"])
        agent.episode = int(s["episode"])
        agent._reset()  # the episode that followed the checkpoint, from its seed
        agent.episode_returns = [float(r) for r in s["episode_returns"]]
        return agent
