"""What every off-policy agent shares: the environment and its seeding, the replay buffer, the
interaction loop with warm-up actions and one update per step, evaluation episodes, and
checkpoints (networks, optimizers, buffer, RNG states and step, written atomically, loaded with
``weights_only=True``).  An agent subclasses :class:`OffPolicyAgent` and writes only its maths:
``_policy`` (actions for a batch of observations) and ``update`` (one gradient step).

Determinism: each episode is reset from its own seed (``seed``, episode index), so a checkpoint
taken at an episode boundary determines the rest of the run; ``load`` + ``learn`` of the
remaining steps ends bit-identical to an uninterrupted run on CPU.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from .buffer import ReplayBuffer


def resolve_agent_device(device: str | torch.device) -> torch.device:
    """The torch device for an agent; ValueError naming ``device`` if it cannot be used."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r}: torch.cuda.is_available() is False (this torch build "
                f"{torch.__version__} has no usable CUDA device here); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    return dev


class OffPolicyAgent:
    """Base of the off-policy agents (SAC, S2AC) on a Gymnasium env with a Box action space.

    env: an id for ``gym.make`` or an environment.  learning_starts: uniform random actions
    before the first update; then one update per environment step.  Subclasses set ``name``,
    build their networks in ``_build`` and list what a checkpoint holds in ``_state_objects``.
    """

    name: ClassVar[str] = "agent"

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
        seed: int = 0,
        device: str | torch.device = "cpu",
        **hparams: Any,
    ) -> None:
        self.env_id = env if isinstance(env, str) else None
        self.env = make_env(env) if isinstance(env, str) else env
        space = self.env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise TypeError(f"{type(self).__name__} needs a Box action space, got {space}")
        if not 0 < gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        if not 0 < tau <= 1:
            raise ValueError(f"tau must lie in (0, 1], got {tau}")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        for key, value in (("batch_size", batch_size), ("buffer_size", buffer_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if not isinstance(learning_starts, int) or learning_starts < 0:
            raise ValueError(f"learning_starts must be an int >= 0, got {learning_starts!r}")
        self.hparams: dict[str, Any] = {
            "hidden": tuple(hidden), "lr": lr, "gamma": gamma, "tau": tau,
            "batch_size": batch_size, "buffer_size": buffer_size,
            "learning_starts": learning_starts, "seed": seed, **hparams,
        }  # fmt: skip
        self.device = resolve_agent_device(device)
        self.obs_dim = int(np.prod(self.env.observation_space.shape))
        self.act_dim = int(np.prod(space.shape))
        self.low = torch.as_tensor(space.low, dtype=torch.float32, device="cpu").reshape(-1)
        self.high = torch.as_tensor(space.high, dtype=torch.float32, device="cpu").reshape(-1)
        if not bool(torch.isfinite(self.low).all() and torch.isfinite(self.high).all()):
            raise ValueError("the action space must be bounded (tanh policies map onto it)")
        torch.manual_seed(seed)
        with torch.device(self.device):  # every network and tensor of the agent on its device
            self._build()
        self.buffer = ReplayBuffer(buffer_size, self.obs_dim, self.act_dim, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.num_steps = 0
        self.episode = 0
        self._episode_return, self.episode_returns = 0.0, []
        self._reset()

    # ---- what an agent defines --------------------------------------------------------------

    def _build(self) -> None:
        """Create networks and optimizers on ``self.device``."""
        raise NotImplementedError

    def _policy(self, obs: Tensor, deterministic: bool) -> Tensor:
        """Actions ``[batch, act_dim]`` (within the bounds) for observations ``[batch, obs]``."""
        raise NotImplementedError

    def update(self) -> dict[str, float]:
        """One gradient step on a replay minibatch; returns scalar diagnostics."""
        raise NotImplementedError

    def _state_objects(self) -> dict[str, Any]:
        """Name -> module / optimizer / tensor that a checkpoint must restore."""
        raise NotImplementedError

    # ---- shared -------------------------------------------------------------------------------

    def _reset(self) -> None:
        """Start episode ``self.episode`` from its own seed (environment and warm-up actions),
        so that a checkpoint taken at an episode boundary determines everything after it."""
        episode_seed = (self.hparams["seed"] * 1_000_003 + self.episode) % 2**32
        self._obs, _ = self.env.reset(seed=episode_seed)
        self.env.action_space.seed(episode_seed)
        self._episode_return = 0.0

    def _tensor(self, obs: Any) -> Tensor:
        return torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)

    def act(self, obs: Any, deterministic: bool = False) -> np.ndarray:
        """An action for one observation (or a batch ``[n, obs_dim]``), as a numpy array."""
        x = self._tensor(obs)
        single = x.dim() == 1
        with torch.no_grad():
            action = self._policy(x[None] if single else x, deterministic)
        action = action.detach().cpu().numpy()
        return action[0] if single else action

    def _explore_action(self, obs: Any) -> np.ndarray:
        """The action taken while learning (after the warm-up): :meth:`act` by default."""
        return self.act(obs)

    def _checked_update(self) -> dict[str, float]:
        out = self.update()
        if not all(math.isfinite(v) for v in out.values()):
            raise FloatingPointError(
                f"{self.name} update at step {self.num_steps} gave {out}: training diverged "
                "(the last checkpoint, if any, is kept as it was)"
            )
        return out

    def learn(
        self,
        total_steps: int,
        checkpoint: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 10_000,
        callback: Any = None,
    ) -> OffPolicyAgent:
        """Interact for ``total_steps`` more environment steps, one update per step once the
        buffer holds ``learning_starts`` transitions.  With ``checkpoint``, :meth:`save` there
        at the first episode boundary after every ``checkpoint_every`` steps: ``load`` and
        ``learn`` of the remaining steps then continue exactly as an uninterrupted run.
        ``callback(agent)`` is called at every episode boundary (e.g. a progress bar)."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
            raise ValueError(f"total_steps must be an int >= 0, got {total_steps!r}")
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        last_save = self.num_steps
        for _ in range(total_steps):
            if self.num_steps < self.hparams["learning_starts"]:
                action = self.env.action_space.sample()
            else:
                action = self._explore_action(self._obs)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(self._obs, action, reward, next_obs, float(terminated))
            self._episode_return += float(reward)
            self._obs = next_obs
            self.num_steps += 1
            if self.num_steps >= self.hparams["learning_starts"]:
                self._checked_update()
            if terminated or truncated:
                self.episode_returns.append(self._episode_return)
                self.episode += 1
                self._reset()
                if checkpoint is not None and self.num_steps - last_save >= checkpoint_every:
                    self.save(checkpoint)
                    last_save = self.num_steps
                if callback is not None:
                    callback(self)
        return self

    def evaluate(
        self, n_episodes: int = 10, seed: int = 10_000, deterministic: bool = True
    ) -> float:
        """Mean return of ``n_episodes`` episodes on a fresh copy of the env."""
        env = fresh_env(self.env_id, self.env)
        return mean_return(env, lambda obs: self.act(obs, deterministic), n_episodes, seed)

    # ---- persistence --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        objects = {}
        for key, obj in self._state_objects().items():
            if isinstance(obj, Tensor):
                objects[key] = obj.detach().clone()
            else:
                objects[key] = None if obj is None else obj.state_dict()
        return {
            "agent": self.name,
            "hparams": {**self.hparams, "hidden": list(self.hparams["hidden"])},
            "env_id": self.env_id,
            "objects": objects,
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "num_steps": self.num_steps,
            "episode": self.episode,
            "episode_returns": list(self.episode_returns),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the whole agent (networks, optimizers, buffer, RNG, step) atomically."""
        return save_atomic(self.state_dict(), path)

    def load_state_dict(self, s: dict) -> None:
        if s.get("agent") != self.name:
            raise ValueError(f"checkpoint holds agent {s.get('agent')!r}, not {self.name!r}")
        for key, obj in self._state_objects().items():
            if obj is None:
                continue
            if isinstance(obj, Tensor):
                with torch.no_grad():
                    obj.copy_(s["objects"][key])
            else:
                obj.load_state_dict(s["objects"][key])
        self.buffer.load_state_dict(s["buffer"])
        try:
            self.generator.set_state(s["generator"].cpu())
        except RuntimeError:  # saved with a generator of another device kind (cpu <-> cuda)
            warnings.warn(
                "the checkpoint's replay-sampling generator was saved on another device kind; "
                "it is reseeded from (seed, step): training continues, not bit-identically",
                RuntimeWarning,
                stacklevel=2,
            )
            self.generator.manual_seed(self.hparams["seed"] * 1_000_003 + int(s["num_steps"]))
        torch.set_rng_state(s["torch_rng"].cpu())
        self.num_steps = int(s["num_steps"])
        self.episode = int(s["episode"])
        self._reset()  # the episode that followed the checkpoint, from its seed
        self.episode_returns = [float(r) for r in s["episode_returns"]]

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: gym.Env | None = None, device: str = "cpu"
    ) -> OffPolicyAgent:
        """An agent from :meth:`save` (``weights_only=True``); ``env`` if it was not an id.
        The environment starts the episode after the last finished one, from its seed (a save
        in the middle of an episode loses that episode's remaining steps)."""
        s = torch.load(path, map_location=device, weights_only=True)
        hp = {**s["hparams"], "hidden": tuple(s["hparams"]["hidden"])}
        if env is None and s["env_id"] is None:
            raise ValueError("the agent was built on an environment object: pass env=")
        agent = cls(env if env is not None else s["env_id"], device=device, **hp)
        agent.load_state_dict(s)
        return agent


def fresh_env(env_id: str | None, env: gym.Env) -> gym.Env:
    """A new instance of an agent's environment: ``make_env(env_id)``, else a deep copy."""
    return make_env(env_id) if env_id else copy.deepcopy(env)


def make_env(env_id: str) -> gym.Env:
    """``gym.make(env_id)`` without Gymnasium's "out of date" warning: an older version
    (CartPole-v0, the papers' 200-step task) is chosen on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        return gym.make(env_id)


def mean_return(env: gym.Env, act: Any, n_episodes: int, seed: int) -> float:
    """Mean undiscounted return of ``n_episodes`` episodes of ``act(obs)`` from seeds
    ``seed, seed + 1, ...``; closes ``env``."""
    total = 0.0
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / n_episodes


def save_atomic(state: dict, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to a temporary file, then rename it over ``path`` (never half-written)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def frozen(module: nn.Module):
    """Context: ``module``'s parameters need no gradient (an actor loss needs ∂Q/∂a only)."""
    return _Frozen(module)


class _Frozen:
    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> nn.Module:
        self.module.requires_grad_(False)
        return self.module

    def __exit__(self, *exc: object) -> None:
        self.module.requires_grad_(True)
