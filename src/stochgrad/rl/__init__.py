"""Maximum-entropy RL (issue 12, in progress): the shared parts so far.

- :class:`ReplayBuffer` (preallocated tensors, checkpointable state);
- :class:`TwinQ` critics, :func:`polyak_update` for targets;
- :class:`SquashedGaussianActor` (tanh bounds with the log-det correction);
- ``stochgrad.rl.envs``: the multigoal environment ``stochgrad/MultiGoal-v0``;
- :class:`~stochgrad.rl.sac.SAC` (``learn``, ``act``, ``evaluate``, ``save``/``load``).
"""

from .buffer import Batch, ReplayBuffer
from .networks import SquashedGaussianActor, TwinQ, polyak_update, squashed_log_prob
from .sac import SAC

__all__ = [
    "SAC",
    "Batch",
    "ReplayBuffer",
    "SquashedGaussianActor",
    "TwinQ",
    "polyak_update",
    "squashed_log_prob",
]
