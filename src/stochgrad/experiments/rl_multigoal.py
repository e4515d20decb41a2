"""Experiment ``rl-multigoal``: which goals maximum-entropy agents reach in the multigoal
environment, and whether they get around an obstacle (002 section 4.2, App. J: Figs. 6, 7, 12,
13, 16).

For every agent (``sac``, ``s2ac-phi``, ``s2ac-phi-theta``, ``s2ac-amortized``) and every entropy
weight α of the grid, one agent is trained on ``stochgrad/MultiGoal-v0`` (no obstacle) with the
settings of 002 Table 3, then tested from the origin:

* ``n_test`` stochastic test episodes (``act(obs, deterministic=False)``, 002: 20): the goal each
  reaches (G1 = (5, 0) right, G2 = (-4, 3), G3 = (-4, -3) left, or none within the 30 steps),
  the one at which the environment ends it (:func:`reached_goal` finds it from positions);
* ``n_test`` more with the Fig. 7 obstacle added at test time only (the authors' code trains
  without it): the episodes that hit it, and whether they still reach a goal afterwards;
* the policy's entropy estimate ``agent.entropy`` (nats, action space) on a grid of
  ``entropy_grid`` x ``entropy_grid`` states spanning [-7, 7]² (Fig. 13).

One run is one seed (every agent of the run starts from that seed); the paper's 20 seeds are a
sweep, ``stochgrad run rl-multigoal --seeds 0-19``, and ``stochgrad report`` gives each metric's
mean ± standard error over the seeds.  Metrics (``{a}`` as in ``alpha_0.5``, ``alpha_20``):

* ``goal_frac.{agent}.alpha_{a}.{g1,g2,g3,none}``: fraction of the seed's test episodes that end
  at that goal (Fig. 12); ``left_frac`` = g2 + g3; ``left_gain.{agent}``: left_frac at the
  largest α minus at the smallest (002's claim: > 0 for S2AC, no consistent trend for SAC);
  ``left_share``: left_frac / (1 - none), the left goals' share among the episodes that reach
  one (not reported for a seed where none does), which a large α's undirected episodes do not
  dilute;
* ``hit_frac.{agent}.alpha_{a}``: fraction of the obstacle episodes that hit it;
  ``reach_after_obstacle.{agent}.alpha_{a}``: among those, the fraction that reach a goal after
  the hit (Fig. 16).  Not reported for a seed where no episode hits the obstacle (a run's
  metrics must be finite; the report's n then counts the seeds that have it);
* ``mean_entropy.{agent}.alpha_{a}``: mean entropy over the state grid; ``entropy_contrast``:
  mean over the left half (x < 0) minus the right half (x > 0) (Fig. 13: brighter on the left
  for S2AC as α grows);
* ``test_return.{agent}.alpha_{a}``: mean return of the test episodes without the obstacle.

Choices where 002 is silent (stated in the config's field docstrings): the training length
(the authors' code: 50,000 steps, the first 10,000 with uniform random actions), the α grid
(1, 5, 10, 20: four panels, Fig. 13d is α = 20 and App. J names 10 and 20 as the large ones),
q^0 = N(0, 0.3 I) read as a covariance.

Runs survive interruption: each training writes the agent's own checkpoint
(``agents/{agent}-alpha_{a}.step{n}.pt``) at an episode boundary every ``checkpoint_every`` steps
and, with it, the runner's checkpoint, which also holds the test results of the finished
trainings; ``stochgrad resume DIR`` skips those and continues the interrupted one from its
checkpoint, ending bit for bit where an uninterrupted CPU run ends.  The trained agents stay in
``agents/{agent}-alpha_{a}.pt`` (``agent_class(name).load(path)``).

Figures: ``trajectories.png`` (Fig. 6), ``goal_distribution.png`` (Fig. 12, this seed's
fractions with binomial standard errors over its test episodes), ``obstacle_trajectories.png``
(Figs. 7: green = reached a goal after hitting the obstacle, red = hit it and did not, blue =
never hit), ``obstacle_reach.png`` (Fig. 16) and ``entropy_heatmap.png`` (Fig. 13).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from ..rl import AGENTS, OffPolicyAgent, agent_class, make_agent
from ..rl.envs.multigoal import BOUND, GOAL_RADIUS, GOALS, OBSTACLE, MultiGoalEnv
from ..runner.config import require_positive
from ..runner.registry import Headline, register
from ._mnist_common import fork_rng, stable_seed

ENV_ID = "stochgrad/MultiGoal-v0"
GOAL_NAMES = ("g1", "g2", "g3")
OUTCOMES = (*GOAL_NAMES, "none")
AGENT_DIR = "agents"


@dataclass(frozen=True)
class RlMultigoalConfig:
    """Settings of 002 Table 3 (multigoal) and App. J (defaults)."""

    agents: tuple[str, ...] = AGENTS
    """Agents, from sac, s2ac-phi, s2ac-phi-theta, s2ac-amortized (002 Figs. 6, 12, 17)."""
    alphas: tuple[float, ...] = (1.0, 5.0, 10.0, 20.0)
    """Entropy weights α (fixed, not learned).  002 does not list its grid: Figs. 6, 12, 13 and
    16 have four columns, Fig. 13d is α = 20 and App. J names α ∈ {10, 20} as the large ones;
    the two smaller values (1, 5) are our reading."""
    total_steps: int = 50_000
    """Environment steps per training, one update per step after ``learning_starts`` (002 does
    not say; the authors' code trains the multigoal agents for 50,000 steps)."""
    learning_starts: int = 10_000
    """Uniform random actions before the first update (the authors' code: 10,000 exploration
    steps, though its updates already start at step 1,000)."""
    hidden: int = 256
    """Units per hidden layer of every network (002 Table 3)."""
    layers: int = 2
    """Hidden layers of every network, ReLU (002 Table 3)."""
    lr: float = 3e-4
    """Adam learning rate of every network (002 Table 3)."""
    batch_size: int = 100
    """Replay minibatch (002 Table 3)."""
    gamma: float = 0.8
    """Discount factor γ (002 Table 3)."""
    tau: float = 0.005
    """Target smoothing coefficient, one target update per step (002 Table 3)."""
    buffer_size: int = 1_000_000
    """Replay buffer size |D| (002 Table 3)."""
    n_particles: int = 10
    """SVGD particles m of the S2AC agents (002 Table 3)."""
    n_steps: int = 10
    """SVGD steps L of the S2AC agents (002 Table 3, every variant)."""
    step_size: float = 0.01
    """SVGD learning rate ε (002 Table 3), in 002's form a += ε (1/m) Σ_j [k ∇Q + α ∇k] (the
    α-weighted closed form of 002 section 3.3), as the S2AC agents take it."""
    q0_std: float = math.sqrt(0.3)
    """Standard deviation of S2AC(φ)'s fixed q^0 (002 Table 3: N(0, 0.3 I), read as a
    covariance)."""
    particle_range: float = 3.0
    """t: q^0_θ's particles lie within μ ± tσ (002 Table 3)."""
    n_test: int = 20
    """Test episodes per trained agent, without and with the obstacle (002 App. J: 20)."""
    entropy_grid: int = 29
    """States per axis of the entropy grid on [-7, 7]² (Fig. 13; 29: spacing 0.5)."""
    checkpoint_every: int = 5000
    """Save the agent and the run at the first episode boundary after every this many steps."""


PRESETS: dict[str, dict[str, Any]] = {
    # the paper: `--seeds 0-19`.  One seed costs about 21 hours on one CPU thread: 12 S2AC
    # trainings of 40,000 updates (measured 0.20 s per step for s2ac-phi-theta and -amortized,
    # 0.07 s for s2ac-phi, 256-unit networks, L = 10) and 4 SAC trainings (4.5 ms per step):
    # a GPU (--device cuda) or a cluster (--backend ray)
    "paper": {},
    # under 60 s on one loaded CPU thread: SAC and S2AC(φ, θ) at one α, 600 steps, tiny nets
    "quick": {
        "agents": ("sac", "s2ac-phi-theta"),
        "alphas": (1.0,),
        "total_steps": 600,
        "learning_starts": 200,
        "hidden": 32,
        "n_steps": 3,
        "n_test": 10,
        "entropy_grid": 8,
        "checkpoint_every": 200,
    },
    # budget: `--seeds 0,1` took about 80 minutes on 2 loaded CPU cores (2 workers, one seed
    # each): SAC and S2AC(φ, θ) at α = 1, 5 and 20 (5: SAC at α = 20 reaches few goals, a middle
    # value shows the trend), 15,000 steps
    # (SAC at α = 1, 64 units: 9 of 20 test episodes reach a goal after 12,000 steps, all
    # after 20,000), 64-unit networks, Table 3's SVGD (L = 10, m = 10).  Measured per training
    # step (one thread, interleaved rounds, load average 3-4): sac 1.6 ms, s2ac-phi 16 ms,
    # s2ac-phi-theta 47 ms, s2ac-amortized 46 ms; seed 0 took 30 minutes on one core (load
    # average 4-5).
    "medium": {
        "agents": ("sac", "s2ac-phi-theta"),
        "alphas": (1.0, 5.0, 20.0),
        "total_steps": 15_000,
        "learning_starts": 1000,
        "hidden": 64,
        "entropy_grid": 15,
        "checkpoint_every": 2500,
    },
}


def alpha_key(alpha: float) -> str:
    """Metric-name form of α, e.g. 0.5 -> 'alpha_0.5', 20.0 -> 'alpha_20'."""
    return "alpha_" + np.format_float_positional(alpha, trim="-")


# ---- classifying test episodes ----------------------------------------------------------------


def reached_goal(
    positions: np.ndarray, goals: np.ndarray | None = None, radius: float = GOAL_RADIUS
) -> tuple[int, int]:
    """(goal index, step) of the first position within ``radius`` of a goal, or (-1, -1).

    positions ``[T + 1, 2]``: the start (step 0) then the position after each step; goals
    ``[n_goals, 2]`` (default: the maximum-entropy goals G1, G2, G3).  The environment ends an
    episode at the first goal it reaches, so this is the episode's goal; on its float32
    observations it can disagree with the environment's own test (float64 positions) only at a
    distance within float32 rounding of ``radius`` (:func:`run_episodes` takes the
    environment's word).
    """
    goals = np.asarray(GOALS["maxent"] if goals is None else goals, dtype=np.float64)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions must have shape [T, 2], got {pos.shape}")
    dist = np.linalg.norm(pos[:, None, :] - goals[None], axis=-1)  # [T + 1, n_goals]
    hit = np.flatnonzero((dist <= radius).any(1))
    if hit.size == 0:
        return -1, -1
    t = int(hit[0])
    return int(dist[t].argmin()), t


def reached_after_hit(goal_step: int, hit_step: int) -> bool:
    """Whether an episode that hit the obstacle (first at step ``hit_step`` >= 1) reached a goal
    after it (``goal_step`` > ``hit_step``); False when it never hit it (``hit_step`` = -1)."""
    return hit_step >= 1 and goal_step > hit_step


@dataclass
class Episodes:
    """Test episodes of one agent: positions ``[n, T + 1, 2]`` (NaN after the end), the goal
    index per episode (-1: none) and its step, the first obstacle hit's step (-1: none) and the
    return."""

    positions: Tensor
    goal: Tensor
    goal_step: Tensor
    hit_step: Tensor
    ret: Tensor

    def state(self) -> dict[str, Tensor]:
        return {k: getattr(self, k) for k in ("positions", "goal", "goal_step", "hit_step", "ret")}

    @classmethod
    def from_state(cls, s: dict[str, Tensor]) -> Episodes:
        return cls(**{k: s[k] for k in ("positions", "goal", "goal_step", "hit_step", "ret")})

    def goal_fractions(self) -> dict[str, float]:
        """Fraction of the episodes per outcome g1, g2, g3, none."""
        n = len(self.goal)
        out = {g: float((self.goal == i).sum()) / n for i, g in enumerate(GOAL_NAMES)}
        out["none"] = float((self.goal < 0).sum()) / n
        return out

    def reach_after(self) -> tuple[int, int]:
        """(episodes that hit the obstacle, of which reached a goal after the hit)."""
        hit = [int(h) for h in self.hit_step]
        reached = sum(
            reached_after_hit(int(g), h) for g, h in zip(self.goal_step, hit, strict=True)
        )
        return sum(h >= 1 for h in hit), reached


def run_episodes(agent: OffPolicyAgent, n: int, obstacle: bool) -> Episodes:
    """``n`` stochastic test episodes from the origin, the actions of all running episodes
    drawn in one batched ``agent.act`` call per step; the goal of an episode is the one the
    environment ended it at (``info["goal"]``)."""
    envs = [MultiGoalEnv(obstacle=obstacle) for _ in range(n)]
    max_steps = envs[0].max_steps
    obs = np.stack([env.reset(seed=i)[0] for i, env in enumerate(envs)])
    positions = np.full((n, max_steps + 1, 2), np.nan)
    positions[:, 0] = obs
    hit_step = np.full(n, -1)
    goal, goal_step = np.full(n, -1), np.full(n, -1)
    ret = np.zeros(n)
    running = np.ones(n, dtype=bool)
    for t in range(1, max_steps + 1):
        idx = np.flatnonzero(running)
        if idx.size == 0:
            break
        actions = agent.act(obs[idx], deterministic=False)
        for i, action in zip(idx, actions, strict=True):
            obs[i], reward, terminated, truncated, info = envs[i].step(action)
            positions[i, t] = obs[i]
            ret[i] += reward
            if info["hit_obstacle"] and hit_step[i] < 0:
                hit_step[i] = t
            if info["goal"] >= 0:  # the environment ends an episode at a goal
                goal[i], goal_step[i] = info["goal"], t
            running[i] = not (terminated or truncated)
    return Episodes(*map(torch.from_numpy, (positions, goal, goal_step, hit_step, ret)))


def state_grid(n: int, device: torch.device | str = "cpu") -> Tensor:
    """``n * n`` states spanning [-7, 7]², row-major with y descending (an image's rows),
    ``[n * n, 2]``."""
    axis = torch.linspace(-BOUND, BOUND, n, device=device)
    y, x = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([x, y], -1).reshape(-1, 2)


# ---- training ----------------------------------------------------------------------------------


def agent_kwargs(cfg: RlMultigoalConfig, name: str, alpha: float, seed: int, device) -> dict:
    """Constructor arguments of agent ``name`` at entropy weight ``alpha`` (002 Table 3); every
    agent of a run gets the run's seed."""
    kw: dict[str, Any] = {
        "alpha": float(alpha), "seed": seed, "hidden": (cfg.hidden,) * cfg.layers,
        "lr": cfg.lr, "gamma": cfg.gamma, "tau": cfg.tau, "batch_size": cfg.batch_size,
        "buffer_size": cfg.buffer_size, "learning_starts": cfg.learning_starts, "device": device,
    }  # fmt: skip
    if name != "sac":
        kw.update(
            n_particles=cfg.n_particles,
            n_steps=cfg.n_steps,
            step_size=cfg.step_size,
            q0_std=cfg.q0_std,
            particle_range=cfg.particle_range,
        )
    return kw


class _Progress:
    """Advances one ``ctx.progress`` bar over every environment step of the run."""

    def __init__(self, ctx, total: int, done: int) -> None:
        self._it = iter(ctx.progress(total, desc="rl-multigoal"))
        self.advance(done)

    def advance(self, n: int) -> None:
        for _ in range(n):
            next(self._it, None)

    def close(self) -> None:
        for _ in self._it:
            pass


def _check(cfg: RlMultigoalConfig) -> None:
    require_positive(cfg, "total_steps", "hidden", "layers", "lr", "batch_size", "gamma")
    require_positive(cfg, "tau", "buffer_size", "n_particles", "step_size", "q0_std")
    require_positive(cfg, "particle_range", "n_test", "checkpoint_every")
    a = cfg.agents
    if not a or len(set(a)) != len(a) or not set(a) <= set(AGENTS):
        raise ValueError(f"agents: expected distinct names from {AGENTS}, got {a}")
    al = cfg.alphas
    if not al or len(set(al)) != len(al) or not all(x > 0 for x in al):
        raise ValueError(f"alphas: expected distinct values > 0, got {al}")
    if len({alpha_key(x) for x in al}) != len(al):
        raise ValueError(f"alphas: two values share a metric name: {al}")
    if cfg.learning_starts < 0 or cfg.learning_starts >= cfg.total_steps:
        raise ValueError(
            f"learning_starts must lie in [0, total_steps = {cfg.total_steps}), got "
            f"{cfg.learning_starts}"
        )
    if cfg.n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {cfg.n_steps}")
    if cfg.n_particles < 2:
        raise ValueError(f"n_particles must be >= 2, got {cfg.n_particles}")
    if cfg.entropy_grid < 2:
        raise ValueError(f"entropy_grid must be >= 2, got {cfg.entropy_grid}")
    if not cfg.gamma <= 1 or not cfg.tau <= 1:
        raise ValueError(f"gamma and tau must lie in (0, 1], got {cfg.gamma} and {cfg.tau}")


def memory_estimate(cfg: RlMultigoalConfig) -> float:
    """Peak bytes: one agent's preallocated replay buffer (8 floats per transition, at most
    total_steps filled by the checkpoint's copy) and the entropy grid's particles."""
    buffer = 4 * 8 * (cfg.buffer_size + min(cfg.buffer_size, cfg.total_steps))
    grid = 4 * 8 * cfg.entropy_grid**2 * 10 * cfg.n_particles * cfg.hidden
    return buffer + grid + 100e6


HEADLINES = {
    "left_gain.s2ac-phi-theta": Headline(
        paper="Figs. 6, 12: with higher α more S2AC trajectories reach the left goals G2/G3",
        meaning="fraction of test episodes at G2 or G3 at the largest α minus at the smallest",
        quick="not measured: one α, 600 training steps",
    ),
    "left_gain.sac": Headline(
        paper="Figs. 6, 12: SAC shows no consistent trend towards the left goals",
        meaning="fraction of test episodes at G2 or G3 at the largest α minus at the smallest",
        quick="not measured: one α, 600 training steps",
    ),
}


@register(
    "rl-multigoal",
    RlMultigoalConfig,
    PRESETS,
    "S2AC paper section 4.2 / App. J: reached goals, obstacle and entropy of SAC and S2AC "
    "agents in the multigoal environment for several α",
    headlines=HEADLINES,
    memory=memory_estimate,
)
def run(cfg: RlMultigoalConfig, ctx) -> dict[str, float]:
    _check(cfg)
    agent_dir = Path(ctx.out_dir) / AGENT_DIR
    pairs = [(name, float(a)) for name in cfg.agents for a in cfg.alphas]
    keys = [f"{name}-{alpha_key(a)}" for name, a in pairs]
    state = ctx.load_checkpoint()
    if state is None:  # a fresh start: no agent file of an earlier run may be picked up
        shutil.rmtree(agent_dir, ignore_errors=True)
        state = {"done": {}, "current": None}
    agent_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict[str, Any]] = state["done"]
    current: dict[str, Any] | None = state["current"]
    grid = state_grid(cfg.entropy_grid, ctx.device)
    progress = _Progress(
        ctx,
        len(pairs) * cfg.total_steps,
        sum(cfg.total_steps for k in keys if k in done) + (int(current["steps"]) if current else 0),
    )
    for index, ((name, alpha), key) in enumerate(zip(pairs, keys, strict=True)):
        if key in done:
            continue
        agent = _train(cfg, ctx, name, alpha, key, index, agent_dir, done, current, progress)
        current = None
        with fork_rng(ctx.device):
            torch.manual_seed(stable_seed(ctx.seed, "test", key))
            plain = run_episodes(agent, cfg.n_test, obstacle=False)
            blocked = run_episodes(agent, cfg.n_test, obstacle=True)
            entropy = agent.entropy(grid.to(agent.device)).double().cpu()
        done[key] = {"plain": plain.state(), "obstacle": blocked.state(), "entropy": entropy}
        ctx.save_checkpoint({"done": done, "current": None}, (index + 1) * cfg.total_steps)
        for old in agent_dir.glob(f"{key}.step*.pt"):
            old.unlink()
    progress.close()
    results = {
        key: (
            Episodes.from_state(done[key]["plain"]),
            Episodes.from_state(done[key]["obstacle"]),
            done[key]["entropy"],
        )
        for key in keys
    }
    metrics = _metrics(cfg, pairs, keys, results)
    with ctx.figures():
        _figures(ctx, cfg, pairs, keys, results)
    return metrics


def _train(cfg, ctx, name, alpha, key, index, agent_dir, done, current, progress):
    """Train agent ``name`` at ``alpha``, from its checkpoint when the run was interrupted in
    this training; writes the agent's and the run's checkpoints together."""
    start = index * cfg.total_steps
    if current is not None and current["key"] == key:
        if not (agent_dir / current["file"]).exists():
            raise ValueError(
                f"{agent_dir / current['file']} is missing: the run's checkpoint continues "
                f"{key} from it; restore it, or start the run again"
            )
        agent = agent_class(name).load(agent_dir / current["file"], device=str(ctx.device))
        if agent.num_steps != int(current["steps"]):
            raise ValueError(
                f"{agent_dir / current['file']} holds step {agent.num_steps}, the run's "
                f"checkpoint says {current['steps']}"
            )
    else:
        agent = make_agent(name, ENV_ID, **agent_kwargs(cfg, name, alpha, ctx.seed, ctx.device))
    last = {"save": agent.num_steps, "log": agent.num_steps}

    def at_episode_end(a: OffPolicyAgent) -> None:
        progress.advance(a.num_steps - last["log"])
        last["log"] = a.num_steps
        ctx.log(start + a.num_steps, **{f"return.{key}": a.episode_returns[-1]})
        if a.num_steps - last["save"] >= cfg.checkpoint_every and a.num_steps < cfg.total_steps:
            file = f"{key}.step{a.num_steps}.pt"
            a.save(agent_dir / file)
            ctx.save_checkpoint(
                {"done": done, "current": {"key": key, "file": file, "steps": a.num_steps}},
                start + a.num_steps,
            )
            for old in agent_dir.glob(f"{key}.step*.pt"):
                if old.name != file:
                    old.unlink()
            last["save"] = a.num_steps

    agent.learn(cfg.total_steps - agent.num_steps, callback=at_episode_end)
    progress.advance(agent.num_steps - last["log"])
    agent.save(agent_dir / f"{key}.pt")
    return agent


# ---- metrics and figures -------------------------------------------------------------------------


def _metrics(cfg, pairs, keys, results) -> dict[str, float]:
    m: dict[str, float] = {}
    left_x = state_grid(cfg.entropy_grid, "cpu")[:, 0]
    for (name, alpha), key in zip(pairs, keys, strict=True):
        plain, blocked, entropy = results[key]
        tag = f"{name}.{alpha_key(alpha)}"
        fracs = plain.goal_fractions()
        for outcome in OUTCOMES:
            m[f"goal_frac.{tag}.{outcome}"] = fracs[outcome]
        m[f"left_frac.{tag}"] = fracs["g2"] + fracs["g3"]
        if fracs["none"] < 1:
            m[f"left_share.{tag}"] = m[f"left_frac.{tag}"] / (1 - fracs["none"])
        m[f"test_return.{tag}"] = float(plain.ret.mean())
        n_hit, n_reached = blocked.reach_after()
        m[f"hit_frac.{tag}"] = n_hit / len(blocked.goal)
        if n_hit:
            m[f"reach_after_obstacle.{tag}"] = n_reached / n_hit
        m[f"mean_entropy.{tag}"] = float(entropy.mean())
        m[f"entropy_contrast.{tag}"] = float(
            entropy[left_x < 0].mean() - entropy[left_x > 0].mean()
        )
    if len(cfg.alphas) > 1:
        lo, hi = alpha_key(min(cfg.alphas)), alpha_key(max(cfg.alphas))
        for name in cfg.agents:
            m[f"left_gain.{name}"] = m[f"left_frac.{name}.{hi}"] - m[f"left_frac.{name}.{lo}"]
    return m


def _draw_env(ax, obstacle: bool = False) -> None:
    for gx, gy in GOALS["maxent"]:
        ax.add_patch(plt.Circle((gx, gy), GOAL_RADIUS, color="tab:red", alpha=0.5))
    if obstacle:
        (x0, y0), (x1, y1) = OBSTACLE
        ax.plot([x0, x1], [y0, y1], color="tab:red", linewidth=3)
    ax.set(xlim=(-BOUND, BOUND), ylim=(-BOUND, BOUND), aspect="equal", xticks=[], yticks=[])


def _grid_axes(cfg, size: float = 2.2):
    fig, axes = plt.subplots(
        len(cfg.agents),
        len(cfg.alphas),
        figsize=(size * len(cfg.alphas), size * len(cfg.agents)),
        squeeze=False,
    )
    for i, name in enumerate(cfg.agents):
        axes[i, 0].set_ylabel(name)
    for j, alpha in enumerate(cfg.alphas):
        axes[0, j].set_title(f"α = {alpha:g}")
    return fig, axes


def _figures(ctx, cfg, pairs, keys, results) -> None:
    """trajectories, goal_distribution, obstacle_trajectories, obstacle_reach and
    entropy_heatmap (002 Figs. 6, 12, 7, 16, 13)."""
    cell = {
        (name, float(a)): (i, j)
        for i, name in enumerate(cfg.agents)
        for j, a in enumerate(cfg.alphas)
    }
    for fname, which in (("trajectories", 0), ("obstacle_trajectories", 1)):
        fig, axes = _grid_axes(cfg)
        for pair, key in zip(pairs, keys, strict=True):
            ax = axes[cell[pair]]
            ep: Episodes = results[key][which]
            _draw_env(ax, obstacle=which == 1)
            for k in range(len(ep.goal)):
                p = ep.positions[k].numpy()
                color = "tab:blue"
                if which == 1 and int(ep.hit_step[k]) >= 1:
                    ok = reached_after_hit(int(ep.goal_step[k]), int(ep.hit_step[k]))
                    color = "tab:green" if ok else "tab:red"
                ax.plot(p[:, 0], p[:, 1], color=color, linewidth=0.8, alpha=0.8)
        fig.tight_layout()
        ctx.save_figure(fig, fname)

    fig, axes = plt.subplots(
        1, len(cfg.agents), figsize=(3.2 * len(cfg.agents), 2.8), squeeze=False
    )
    width = 0.8 / len(cfg.alphas)
    for ax, name in zip(axes[0], cfg.agents, strict=True):
        for j, alpha in enumerate(cfg.alphas):
            ep = results[keys[pairs.index((name, float(alpha)))]][0]
            frac = np.array([ep.goal_fractions()[o] for o in OUTCOMES])
            se = np.sqrt(frac * (1 - frac) / len(ep.goal))
            x = np.arange(len(OUTCOMES)) + (j - (len(cfg.alphas) - 1) / 2) * width
            ax.bar(x, frac, width, yerr=se, capsize=2, label=f"α = {alpha:g}")
        ax.set(xticks=range(len(OUTCOMES)), xticklabels=[o.upper() for o in OUTCOMES])
        ax.set(title=name, ylim=(0, 1), ylabel="fraction of test episodes")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "goal_distribution")

    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(pairs), 2.8))
    for i, name in enumerate(cfg.agents):
        for j, alpha in enumerate(cfg.alphas):
            n_hit, n_ok = results[keys[pairs.index((name, float(alpha)))]][1].reach_after()
            p = n_ok / n_hit if n_hit else 0.0
            se = math.sqrt(p * (1 - p) / n_hit) if n_hit else 0.0
            x = i + (j - (len(cfg.alphas) - 1) / 2) * width
            ax.bar(x, p, width, yerr=se, capsize=2, color=f"C{j}", label=f"α = {alpha:g}")
            ax.text(x, 0.02, f"{n_hit}", ha="center", fontsize=6)
    ax.set(xticks=range(len(cfg.agents)), xticklabels=cfg.agents, ylim=(0, 1.05))
    ax.set(ylabel="reached a goal after hitting", title="obstacle (n hit at the bar's foot)")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[: len(cfg.alphas)], labels[: len(cfg.alphas)], fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "obstacle_reach")

    fig, axes = _grid_axes(cfg, size=2.6)
    n = cfg.entropy_grid
    for pair, key in zip(pairs, keys, strict=True):
        ax = axes[cell[pair]]
        # each panel on its own colour scale: Fig. 13 compares left and right within a panel
        image = ax.imshow(
            results[key][2].reshape(n, n).numpy(),
            extent=(-BOUND, BOUND, -BOUND, BOUND),
            cmap="viridis",
        )
        _draw_env(ax)
        fig.colorbar(image, ax=ax, shrink=0.75, label="entropy (nats)")
    fig.tight_layout()
    ctx.save_figure(fig, "entropy_heatmap")
