"""The multigoal environment of 002 section 4.2 and App. J (after Haarnoja et al. 2017).

A 2-D point mass starts at the origin; an action a ∈ [-1, 1]² moves it, s' = clip(s + a, ±7).
The reward is -30 ‖a‖² - min_g ‖s' - g‖² (the action cost and the distance to the nearest
goal), plus 10 on reaching a goal (within 0.5), which ends the episode; episodes are truncated
after 30 steps.  Goals: (5, 0) on the right and (-4, 3), (-4, -3) on the left (the maximum-
entropy variant of the S2AC authors' code: the left side has two paths, so more future entropy
for the same reward); ``goals="base"`` gives Soft Q-learning's (±5, 0), (0, ±5).

Where 002 is silent we follow the S2AC notes (IMPLEMENTATION_NOTES.md) and fix these choices:
the reward is computed at the new position s'; a goal ends the episode; the observation is the
position (float32).  The optional obstacle of Fig. 7 ("placed diagonally at [-1, 1]") is a
segment of length 2 centred at (-1, 1) along the diagonal (1, 1): a move that would cross it
leaves the agent where it was, and ``info["hit_obstacle"]`` records that it happened.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

GOALS = {
    "maxent": ((5.0, 0.0), (-4.0, 3.0), (-4.0, -3.0)),
    "base": ((5.0, 0.0), (-5.0, 0.0), (0.0, 5.0), (0.0, -5.0)),
}
BOUND = 7.0  # positions are clipped to [-7, 7]²
GOAL_RADIUS = 0.5
GOAL_REWARD = 10.0
ACTION_COST = 30.0
OBSTACLE = (
    (-1.0 - 1 / np.sqrt(2), 1.0 - 1 / np.sqrt(2)),
    (-1.0 + 1 / np.sqrt(2), 1.0 + 1 / np.sqrt(2)),
)


def _cross(o: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def segments_intersect(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the segments pq and ab meet (touching counts)."""
    d1, d2 = _cross(a, b, p), _cross(a, b, q)
    d3, d4 = _cross(p, q, a), _cross(p, q, b)
    if ((d1 > 0) != (d2 > 0) or d1 == 0 or d2 == 0) and (
        (d3 > 0) != (d4 > 0) or d3 == 0 or d4 == 0
    ):
        if d1 == d2 == 0:  # collinear: overlap of the projections
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            return bool(np.all(np.maximum(p, q) >= lo) and np.all(np.minimum(p, q) <= hi))
        return True
    return False


class MultiGoalEnv(gym.Env):
    """Gymnasium environment ``stochgrad/MultiGoal-v0``; see the module docstring.

    goals: ``"maxent"`` (002, default) or ``"base"`` (Soft Q-learning); obstacle: add the
    Fig. 7 obstacle; max_steps: the time limit (30).
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, goals: str = "maxent", obstacle: bool = False, max_steps: int = 30):
        if goals not in GOALS:
            raise ValueError(f"goals must be one of {sorted(GOALS)}, got {goals!r}")
        if not isinstance(max_steps, int) or max_steps < 1:
            raise ValueError(f"max_steps must be a positive int, got {max_steps!r}")
        self.goals = np.asarray(GOALS[goals], dtype=np.float64)
        self.obstacle = obstacle
        self.max_steps = max_steps
        self.observation_space = spaces.Box(-BOUND, BOUND, shape=(2,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._pos = np.zeros(2)
        self._t = 0
        return self._pos.astype(np.float32), {}

    def step(self, action: Any):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        new = np.clip(self._pos + a, -BOUND, BOUND)
        hit = self.obstacle and segments_intersect(self._pos, new, *map(np.asarray, OBSTACLE))
        if hit:
            new = self._pos
        self._pos, self._t = new, self._t + 1
        dist = np.linalg.norm(self.goals - new, axis=1)
        reached = bool(dist.min() <= GOAL_RADIUS)
        reward = -ACTION_COST * float(a @ a) - float(dist.min() ** 2) + GOAL_REWARD * reached
        info = {"goal": int(dist.argmin()) if reached else -1, "hit_obstacle": bool(hit)}
        return new.astype(np.float32), reward, reached, self._t >= self.max_steps, info
