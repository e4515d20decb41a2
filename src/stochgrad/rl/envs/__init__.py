"""Environments of the RL experiments, registered with Gymnasium on import."""

import gymnasium as gym

from .multigoal import GOALS, MultiGoalEnv, segments_intersect

if "stochgrad/MultiGoal-v0" not in gym.registry:
    gym.register("stochgrad/MultiGoal-v0", entry_point=MultiGoalEnv)

__all__ = ["GOALS", "MultiGoalEnv", "segments_intersect"]
