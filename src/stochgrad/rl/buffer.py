"""Replay buffer with preallocated tensors (a ring of ``capacity`` transitions)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """A minibatch of transitions: obs ``[n, obs_dim]``, action ``[n, act_dim]``, reward ``[n]``,
    next_obs ``[n, obs_dim]``, done ``[n]`` (1.0 where the episode terminated, not truncated)."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    done: Tensor


class ReplayBuffer:
    """Transitions in preallocated tensors on ``device``; the oldest are overwritten when full.

    ``done`` must mark termination only (a time-limit truncation still bootstraps).  The whole
    state (tensors, position, size) is in :meth:`state_dict`, for checkpoints.
    """

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        act_dim: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        for name, value in (("capacity", capacity), ("obs_dim", obs_dim), ("act_dim", act_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.capacity, self.device = capacity, torch.device(device)
        make = lambda *shape: torch.zeros(capacity, *shape, dtype=dtype, device=self.device)
        self.obs, self.next_obs = make(obs_dim), make(obs_dim)
        self.action, self.reward, self.done = make(act_dim), make(), make()
        self.pos, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action, reward, next_obs, done) -> None:
        """Store one transition, or ``k`` of them given with a leading dimension ``[k, ...]``."""
        obs = torch.as_tensor(obs, dtype=self.obs.dtype, device=self.device)
        k = 1 if obs.dim() == 1 else obs.shape[0]
        rows = (self.pos + torch.arange(k, device=self.device)) % self.capacity
        for buf, value in (
            (self.obs, obs),
            (self.action, action),
            (self.reward, reward),
            (self.next_obs, next_obs),
            (self.done, done),
        ):
            value = torch.as_tensor(value, dtype=buf.dtype, device=self.device)
            buf[rows] = value.reshape(k, *buf.shape[1:])
        self.pos = (self.pos + k) % self.capacity
        self.size = min(self.size + k, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty: add transitions before sampling")
        idx = torch.randint(self.size, (batch_size,), generator=generator, device=self.device)
        return Batch(self.obs[idx], self.action[idx], self.reward[idx], self.next_obs[idx],
                     self.done[idx])  # fmt: skip

    def state_dict(self) -> dict:
        """The stored transitions (filled part only), position and size."""
        n = self.size
        return {
            "obs": self.obs[:n].clone(),
            "action": self.action[:n].clone(),
            "reward": self.reward[:n].clone(),
            "next_obs": self.next_obs[:n].clone(),
            "done": self.done[:n].clone(),
            "pos": self.pos,
            "size": n,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s content (same capacity and dimensions)."""
        n = int(state["size"])
        if n > self.capacity:
            raise ValueError(f"the state holds {n} transitions, more than capacity {self.capacity}")
        for name in ("obs", "action", "reward", "next_obs", "done"):
            buf = getattr(self, name)
            value = state[name]
            if tuple(value.shape[1:]) != tuple(buf.shape[1:]):
                raise ValueError(
                    f"{name} has shape {tuple(value.shape)}, expected [n, "
                    f"{', '.join(map(str, buf.shape[1:]))}]"
                )
            buf[:n] = value.to(buf.device, buf.dtype)
        self.pos, self.size = int(state["pos"]), n
