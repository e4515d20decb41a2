"""Maximum-entropy RL (002, Haarnoja et al. 2018): agents and their shared parts.

- :class:`OffPolicyAgent`: the interaction loop, replay buffer, evaluation and checkpoints;
- :class:`ReplayBuffer` (preallocated tensors, checkpointable state);
- :class:`TwinQ` critics, :func:`polyak_update` for targets;
- :class:`SquashedGaussianActor` (tanh bounds with the log-det correction);
- ``stochgrad.rl.envs``: the multigoal environment ``stochgrad/MultiGoal-v0``;
- :class:`PolicyGradient` (``rl/pg.py``): on-policy A2C, RELAX and LAX, one update per episode;
- agents: :class:`~stochgrad.rl.sac.SAC` and :class:`~stochgrad.rl.s2ac.S2AC` (variants
  ``phi``, ``phi-theta``, ``amortized``), built by name with :func:`make_agent`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from . import envs  # noqa: F401 - registers stochgrad/MultiGoal-v0 with Gymnasium
from .agent import OffPolicyAgent
from .buffer import Batch, ReplayBuffer
from .networks import SquashedGaussianActor, TwinQ, polyak_update, squashed_log_prob
from .pg import PG_ESTIMATORS, PolicyGradient, episodes_to_solve
from .sac import SAC

AGENTS = ("sac", "s2ac-phi", "s2ac-phi-theta", "s2ac-amortized")


def make_agent(name: str, env: str | gym.Env, **kwargs: Any) -> OffPolicyAgent:
    """An agent by name (one of :data:`AGENTS`); ``kwargs`` go to its constructor."""
    if name == "sac":
        return SAC(env, **kwargs)
    if name in AGENTS:
        from .s2ac import S2AC

        return S2AC(env, variant=name.removeprefix("s2ac-"), **kwargs)
    raise ValueError(f"agent must be one of {AGENTS}, got {name!r}")


def agent_class(name: str) -> type[OffPolicyAgent]:
    """The class behind an agent name (for ``load``)."""
    if name == "sac":
        return SAC
    if name in AGENTS:
        from .s2ac import S2AC

        return S2AC
    raise ValueError(f"agent must be one of {AGENTS}, got {name!r}")


__all__ = [
    "AGENTS",
    "PG_ESTIMATORS",
    "SAC",
    "Batch",
    "OffPolicyAgent",
    "PolicyGradient",
    "ReplayBuffer",
    "SquashedGaussianActor",
    "TwinQ",
    "agent_class",
    "episodes_to_solve",
    "make_agent",
    "polyak_update",
    "squashed_log_prob",
]
