"""Experiment rl-multigoal (002 section 4.2, App. J): the quick preset end to end, a run killed
in the middle of a training and resumed, goal classification on hand-made trajectories, and
config errors."""

import numpy as np
import pytest
from _experiment_helpers import quick_run as run_quick
from _experiment_helpers import read_rows, sigkill_after_checkpoint_then_resume

from stochgrad.experiments.rl_multigoal import (
    OUTCOMES,
    Episodes,
    RlMultigoalConfig,
    agent_kwargs,
    alpha_key,
    reached_after_hit,
    reached_goal,
    run_episodes,
    state_grid,
)
from stochgrad.rl import OffPolicyAgent, agent_class
from stochgrad.rl.envs import MultiGoalEnv
from stochgrad.runner import RunContext, resume, run_experiment

FIGURES = (
    "trajectories",
    "goal_distribution",
    "obstacle_trajectories",
    "obstacle_reach",
    "entropy_heatmap",
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return run_quick("rl-multigoal", tmp_path_factory)


def test_quick_preset_writes_metrics_figures_and_agents(quick_run):
    out, results, cpu = quick_run
    assert results["status"] == "ok" and cpu < 60
    assert not results.get("warnings")
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 1000
    m = results["metrics"]
    cfg = results["config"]
    trained_agents = {}
    for agent in cfg["agents"]:
        tag = f"{agent}.alpha_1"
        fracs = [m[f"goal_frac.{tag}.{o}"] for o in OUTCOMES]
        assert sum(fracs) == pytest.approx(1.0)
        assert all(f * cfg["n_test"] == round(f * cfg["n_test"]) for f in fracs)
        assert m[f"left_frac.{tag}"] == pytest.approx(fracs[1] + fracs[2])
        if fracs[3] < 1:
            share = (fracs[1] + fracs[2]) / (fracs[0] + fracs[1] + fracs[2])
            assert m[f"left_share.{tag}"] == pytest.approx(share)
        assert 0 <= m[f"hit_frac.{tag}"] <= 1
        if m[f"hit_frac.{tag}"] > 0:
            assert 0 <= m[f"reach_after_obstacle.{tag}"] <= 1
        else:
            assert f"reach_after_obstacle.{tag}" not in m
        # a 2-D action in [-1, 1]² has at most log 4 nats
        assert m[f"mean_entropy.{tag}"] < np.log(4) + 0.1
        trained = agent_class(agent).load(out / "agents" / f"{agent}-alpha_1.pt")
        assert trained.num_steps == cfg["total_steps"]
        trained_agents[agent] = trained
    # the goals the environment ended the episodes at are the ones read from the positions
    for agent in cfg["agents"]:
        for obstacle in (False, True):
            ep = run_episodes(trained_agents[agent], 6, obstacle)
            for k in range(6):
                p = ep.positions[k].numpy()
                found = reached_goal(p[~np.isnan(p[:, 0])])
                assert found == (int(ep.goal[k]), int(ep.goal_step[k]))
    rows = read_rows(out)
    assert any("return.sac-alpha_1" in r for r in rows)
    assert not list((out / "agents").glob("*.step*.pt"))  # step checkpoints are cleaned up


TINY = [
    "agents=sac,s2ac-phi-theta",
    "total_steps=240",
    "learning_starts=60",
    "checkpoint_every=60",
    "hidden=16",
    "n_steps=2",
    "n_test=4",
    "entropy_grid=3",
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(directory, results) of the TINY run, seed 3, uninterrupted."""
    out = tmp_path_factory.mktemp("full")
    return out, run_experiment("rl-multigoal", "quick", TINY, seed=3, out_dir=out, device="cpu")


def test_resume_skips_finished_trainings_and_continues_the_interrupted_one(
    tmp_path, monkeypatch, uninterrupted
):
    """Killed right after a checkpoint in the middle of the second training (S2AC), resumed:
    the same metrics and the same logged rows as an uninterrupted run."""
    full_dir, full = uninterrupted
    original = RunContext.save_checkpoint
    trained = []

    def save_then_die(self, state, step):
        original(self, state, step)
        current = state["current"]
        if current and current["key"].startswith("s2ac") and not self.resumed:
            raise KeyboardInterrupt

    def counting_learn(self, total_steps, *args, **kwargs):
        trained.append((self.name, self.num_steps, total_steps))
        return learn(self, total_steps, *args, **kwargs)

    learn = OffPolicyAgent.learn
    monkeypatch.setattr(RunContext, "save_checkpoint", save_then_die)
    monkeypatch.setattr(OffPolicyAgent, "learn", counting_learn)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_experiment("rl-multigoal", "quick", TINY, seed=3, out_dir=cut, device="cpu")
    assert list((cut / "agents").glob("s2ac-phi-theta-alpha_1.step*.pt"))
    trained.clear()
    assert resume(cut)["metrics"] == full["metrics"]
    # sac was not trained again; S2AC continued from its checkpoint (step >= 60)
    assert len(trained) == 1 and trained[0][0] == "s2ac" and trained[0][1] >= 60
    assert sum(trained[0][1:]) == 240
    assert read_rows(cut) == read_rows(full_dir)


def test_sigkill_during_s2ac_training_then_stochgrad_resume(tmp_path, uninterrupted):
    """`stochgrad run` killed by SIGKILL at an arbitrary moment of the S2AC training (after
    its first checkpoint), then `stochgrad resume DIR`: the uninterrupted run's metrics and
    rows."""
    full_dir, full = uninterrupted
    out = tmp_path / "killed"
    sets = [a for item in TINY for a in ("--set", item)]
    args = ["run", "rl-multigoal", "--seed", "3", "--device", "cpu", "--out", str(out), *sets]
    results = sigkill_after_checkpoint_then_resume(
        args, out, "agents/s2ac-*.step*.pt", "S2AC", settle=0.1
    )
    assert results["metrics"] == full["metrics"]
    assert read_rows(out) == read_rows(full_dir)


def test_reached_goal_on_hand_made_trajectories():
    line = np.linspace(0, 1, 6)[:, None]
    to_g1 = line * np.array([4.6, 0.0])  # ends 0.4 from G1 = (5, 0)
    assert reached_goal(to_g1) == (0, 5)
    to_g2 = line * np.array([-3.7, 2.7])  # ends 0.42 from G2 = (-4, 3)
    assert reached_goal(to_g2) == (1, 5)
    to_g3 = np.array([[0, 0], [-2, -1.5], [-4, -2.5], [-4, -2.4]])  # 0.5 from G3: counts
    assert reached_goal(to_g3) == (2, 2)
    near_miss = line * np.array([4.49, 0.0])  # 0.51 from G1
    assert reached_goal(near_miss) == (-1, -1)
    assert reached_goal(np.zeros((1, 2))) == (-1, -1)
    # the first goal reached decides, not the last position
    through = np.array([[0, 0], [-4, 2.8], [-4, 0], [-4, -3]])
    assert reached_goal(through) == (1, 1)
    with pytest.raises(ValueError, match="positions"):
        reached_goal(np.zeros((4, 3)))


def test_reached_goal_agrees_with_the_environment():
    """Scripted episodes towards each goal: the goal read from the observations is the one the
    environment ended the episode at."""
    for goal_index, target in enumerate(((5.0, 0.0), (-4.0, 3.0), (-4.0, -3.0))):
        env = MultiGoalEnv()
        obs, _ = env.reset(seed=0)
        positions = [obs]
        done = False
        while not done:
            step = np.clip(np.asarray(target) - obs, -0.63, 0.63)  # no tie at the radius
            obs, _, terminated, truncated, info = env.step(step)
            positions.append(obs)
            done = terminated or truncated
        assert terminated and info["goal"] == goal_index
        assert reached_goal(np.stack(positions)) == (goal_index, len(positions) - 1)


def test_reach_after_obstacle_counts_only_episodes_that_hit():
    assert reached_after_hit(goal_step=7, hit_step=3)
    assert not reached_after_hit(goal_step=-1, hit_step=3)  # hit, never reached
    assert not reached_after_hit(goal_step=5, hit_step=-1)  # reached without hitting
    import torch

    ep = Episodes(
        positions=torch.zeros(4, 31, 2),
        goal=torch.tensor([1, -1, 0, 2]),
        goal_step=torch.tensor([9, -1, 4, 12]),
        hit_step=torch.tensor([2, 5, -1, -1]),
        ret=torch.zeros(4),
    )
    assert ep.reach_after() == (2, 1)
    assert ep.goal_fractions() == {"g1": 0.25, "g2": 0.25, "g3": 0.25, "none": 0.25}


def test_names_grid_and_svgd_step():
    assert [alpha_key(a) for a in (0.5, 1.0, 20.0, 0.1)] == [
        "alpha_0.5",
        "alpha_1",
        "alpha_20",
        "alpha_0.1",
    ]
    grid = state_grid(3)  # row-major, y descending: row 0 is the top of the heatmap
    assert grid.tolist()[:3] == [[-7.0, 7.0], [0.0, 7.0], [7.0, 7.0]]
    assert grid.tolist()[-1] == [7.0, -7.0]
    cfg = RlMultigoalConfig()
    assert agent_kwargs(cfg, "s2ac-phi", 20.0, 0, "cpu")["step_size"] == 0.01  # 002's ε
    assert "step_size" not in agent_kwargs(cfg, "sac", 20.0, 0, "cpu")


@pytest.mark.parametrize(
    "item, field",
    [
        ("agents=sac,ppo", "agents"),
        ("agents=sac,sac", "agents"),
        ("alphas=0.0", "alphas"),
        ("alphas=1.0,1.0", "alphas"),
        ("learning_starts=600", "learning_starts"),
        ("n_test=0", "n_test"),
        ("n_particles=1", "n_particles"),
        ("gamma=1.5", "gamma"),
        ("entropy_grid=1", "entropy_grid"),
        ("step_size=0.0", "step_size"),
        ("total_steps=0", "total_steps"),
    ],
)
def test_bad_config_names_the_field(tmp_path, item, field):
    with pytest.raises(ValueError, match=field):
        run_experiment("rl-multigoal", "quick", [item], out_dir=tmp_path)
