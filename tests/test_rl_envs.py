"""The multigoal environment of 002 App. J: Gymnasium's checker, dynamics, reward, goals, the
obstacle of Fig. 7."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from stochgrad.rl.envs import MultiGoalEnv, segments_intersect


@pytest.mark.parametrize("kwargs", [{}, {"goals": "base"}, {"obstacle": True}])
def test_multigoal_passes_gymnasium_checker(kwargs):
    check_env(gym.make("stochgrad/MultiGoal-v0", **kwargs).unwrapped, skip_render_check=True)


def test_dynamics_reward_and_goals():
    env = MultiGoalEnv()
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs, [0, 0])
    obs, r, term, trunc, info = env.step(np.array([1.0, 0.5], dtype=np.float32))
    assert np.allclose(obs, [1.0, 0.5])
    # -30 ||a||^2 - min_g ||s' - g||^2, nearest goal (5, 0)
    assert r == pytest.approx(-30 * 1.25 - (16 + 0.25))
    assert not term and not trunc and info["goal"] == -1
    for _ in range(3):
        obs, r, term, trunc, info = env.step(np.array([1.0, -0.5 / 3], dtype=np.float32))
    assert np.allclose(obs, [4.0, 0.0], atol=1e-6) and not term
    obs, r, term, trunc, info = env.step(np.array([0.8, 0.0], dtype=np.float32))
    assert term and info["goal"] == 0
    assert r == pytest.approx(-30 * 0.64 - 0.04 + 10)


def test_actions_are_clipped_and_episodes_truncate_at_30_steps():
    env = MultiGoalEnv()
    env.reset(seed=0)
    obs, *_ = env.step(np.array([3.0, -3.0]))
    assert np.allclose(obs, [1.0, -1.0])
    env.reset()
    for t in range(30):
        obs, _, term, trunc, _ = env.step(np.array([0.0, 1.0]))  # up to the wall at 7
        assert not term and trunc == (t == 29)
    assert np.allclose(obs, [0.0, 7.0])


def test_obstacle_blocks_the_way_to_the_upper_left_goal():
    env = MultiGoalEnv(obstacle=True)
    env.reset(seed=0)
    obs, *_, info = env.step(np.array([-1.0, 0.75]))  # towards (-4, 3): not there yet
    assert not info["hit_obstacle"] and np.allclose(obs, [-1.0, 0.75])
    obs, *_, info = env.step(np.array([-1.0, 0.75]))  # would cross the segment at x = -1.14
    assert info["hit_obstacle"] and np.allclose(obs, [-1.0, 0.75])
    obs, *_, info = env.step(np.array([1.0, -0.75]))  # back is free
    assert not info["hit_obstacle"] and np.allclose(obs, [0.0, 0.0])
    free = MultiGoalEnv()
    free.reset(seed=0)
    free.step(np.array([-1.0, 0.75]))
    obs, *_, info = free.step(np.array([-1.0, 0.75]))
    assert not info["hit_obstacle"] and np.allclose(obs, [-2.0, 1.5])


def test_segments_intersect():
    p = np.array
    assert segments_intersect(p([0, 0]), p([2, 2]), p([0, 2]), p([2, 0]))
    assert not segments_intersect(p([0, 0]), p([1, 0]), p([0, 1]), p([1, 1]))
    assert segments_intersect(p([0, 0]), p([2, 0]), p([1, 0]), p([3, 0]))  # collinear overlap
    assert not segments_intersect(p([0, 0]), p([1, 0]), p([2, 0]), p([3, 0]))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="goals"):
        MultiGoalEnv(goals="x")
    with pytest.raises(ValueError, match="max_steps"):
        MultiGoalEnv(max_steps=0)
