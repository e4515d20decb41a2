"""Experiment ``rl-action-time``: time per action selection of SAC, S2AC(φ, θ) and the amortized
S2AC(φ, θ, ψ) at the observation and action sizes of four MuJoCo tasks (002 section 4.3 (2),
Table 1; settings of App. K, Table 4).

What is timed is ``agent.act(obs, deterministic=False)`` on one observation, the call the RL
loop makes every environment step (numpy in, numpy out): SAC samples its tanh-Gaussian actor;
S2AC(φ, θ) draws m particles from q^0_θ and moves them by L SVGD steps on exp(Q/α) (each step
takes ∇_a Q by autograd); S2AC(φ, θ, ψ) runs one pass of f_ψ(s, z). With ``batch_size`` > 0 the
same agents also act on a batch of observations in one call.

- MuJoCo is not needed: every task is a stand-in Gymnasium environment with Box spaces of the
  task's sizes (:data:`ENV_SIZES`); action selection never steps the environment. Table 1 gives
  Ant 111 state dimensions (Ant-v2); Gymnasium's Ant-v5 has 105 by default: we use 111. Table 1's
  Hopper state size is lost in our copy of the paper; we use Hopper's 11.
- The networks are untrained (seeded initializations): the cost of these calls does not depend
  on the weights (fixed-size network passes, L SVGD steps, q^0 candidates drawn independently
  of them). Every agent is warmed by ``warmup_calls`` calls before timing.
- All agents of all tasks live in one process and are timed in interleaved rounds: in each
  round, for every task, every agent (in an order rotated by one each round) makes one untimed
  call and then ``calls`` individually timed ones. ``action_ms.{agent}.{env}`` is the median over
  rounds of each round's median call; ``ratio_to_sac.{agent}.{env}`` the median over rounds of
  the per-round ratio to SAC's time in the same task (the machine's load hits both alike);
  ``extra_ms.{agent}.{env}`` the median per-round difference to SAC, comparable with the
  paper's absolute differences. Batched: ``batch_action_ms`` (per call of ``batch_size``
  observations) and ``batch_ratio_to_sac``.
- Clock: the CPU time of the calling thread on CPU (with one torch thread all the work runs
  there, and time descheduled by other processes does not count), wall time on CUDA.

Writes ``action_time.json`` (per-round times, quartiles of the ratios, the paper's Table 1,
device and machine facts), ``action_time.md`` and ``fig_action_time.png`` (ours next to Table 1).
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from ..entropy.svgd import BANDWIDTH_HEURISTICS, DEFAULT_SELF_TERM
from ..rl import make_agent
from ..runner.config import require_positive
from ..runner.registry import Headline, register

AGENTS = ("sac", "s2ac-phi-theta", "s2ac-amortized")
"""The agents of 002 Table 1 that this library has (SQL is not implemented)."""
LABELS = {"sac": "SAC", "s2ac-phi-theta": "S2AC(φ,θ)", "s2ac-amortized": "S2AC(φ,θ,ψ)"}
ENV_SIZES = {"hopper": (11, 3), "walker2d": (17, 6), "halfcheetah": (17, 6), "ant": (111, 8)}
"""Task -> (observation size, action size) of 002 Table 1 (Hopper's state: Gymnasium's 11)."""
PAPER_TABLE1 = {
    "sac": {"hopper": 0.723, "walker2d": 0.714, "halfcheetah": 0.731, "ant": 0.708},
    "sql": {"hopper": 0.839, "walker2d": 0.828, "halfcheetah": 0.815, "ant": 0.836},
    "s2ac-phi-theta": {"hopper": 3.267, "walker2d": 4.622, "halfcheetah": 4.583, "ant": 5.917},
    "s2ac-amortized": {"hopper": 0.850, "walker2d": 0.817, "halfcheetah": 0.830, "ant": 0.837},
}
"""002 Table 1, "action selection run-time on MuJoCo" (units not stated; ms by their size)."""
CLOCKS = ("auto", "thread_time", "perf_counter")


@dataclass(frozen=True)
class ActionTimeConfig:
    """Settings of 002 Table 1 and Table 4 (defaults) and of the timing."""

    agents: tuple[str, ...] = AGENTS
    """Agents to time; ``sac`` is required (the yardstick of every ratio)."""
    envs: tuple[str, ...] = ("hopper", "walker2d", "halfcheetah", "ant")
    """Tasks whose sizes (ENV_SIZES) the stand-in environments take."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layers of every network (Table 4: 2 x 256, ReLU)."""
    n_particles: int = 10
    """m, SVGD particles per state (Table 4)."""
    n_steps: int = 3
    """L, SVGD steps of S2AC(φ, θ) (Table 4)."""
    step_size: float = 0.1
    """ε, SVGD step size (Table 4)."""
    alpha: float = 1.0
    """Entropy weight α of every agent (Table 4: 1.0) except on Ant."""
    alpha_ant: float = 0.2
    """α on Ant (Table 4)."""
    bandwidth: str = "authors"
    """SVGD kernel bandwidth: a heuristic (median, authors, paper) or a number."""
    self_term: str = DEFAULT_SELF_TERM
    """S2AC's log-density variant (stochgrad.entropy.svgd); act() skips the log-density."""
    deterministic: bool = False
    """act(obs, deterministic): False is the call made while collecting experience."""
    warmup_calls: int = 20
    """Untimed calls of every agent before the rounds (single and batched)."""
    rounds: int = 100
    """Interleaved rounds."""
    calls: int = 50
    """Timed single-observation calls per agent, task and round."""
    batch_size: int = 100
    """Observations per batched call (Table 4's batch size); 0 skips the batched timing."""
    batch_calls: int = 2
    """Timed batched calls per agent, task and round."""
    clock: str = "auto"
    """auto (thread_time on CPU, perf_counter on CUDA), thread_time or perf_counter."""


PRESETS = {
    "paper": {},
    "medium": {"rounds": 30, "calls": 30, "batch_calls": 1, "warmup_calls": 10},
    "quick": {"rounds": 8, "calls": 12, "batch_calls": 1, "warmup_calls": 5},
}


def _bandwidth(cfg: ActionTimeConfig) -> str | float:
    """The configured bandwidth: a heuristic's name or a positive number."""
    if cfg.bandwidth in BANDWIDTH_HEURISTICS:
        return cfg.bandwidth
    try:
        value = float(cfg.bandwidth)
    except ValueError:
        value = float("nan")
    if not value > 0 or not np.isfinite(value):
        raise ValueError(
            f"bandwidth must be one of {BANDWIDTH_HEURISTICS} or a number > 0, got "
            f"{cfg.bandwidth!r}"
        )
    return value


def _check(cfg: ActionTimeConfig) -> None:
    unknown = [a for a in cfg.agents if a not in AGENTS]
    if unknown or "sac" not in cfg.agents or len(set(cfg.agents)) != len(cfg.agents):
        raise ValueError(f"agents must be distinct names from {AGENTS}, sac included, "
                         f"got {cfg.agents}")  # fmt: skip
    unknown = [e for e in cfg.envs if e not in ENV_SIZES]
    if not cfg.envs or unknown or len(set(cfg.envs)) != len(cfg.envs):
        raise ValueError(f"envs must be distinct names from {tuple(ENV_SIZES)}, got {cfg.envs}")
    if not cfg.hidden or min(cfg.hidden) < 1:
        raise ValueError(f"hidden must be non-empty layer sizes >= 1, got {cfg.hidden}")
    # n_particles, n_steps, step_size, alpha and self_term are checked by the agents (same names)
    require_positive(cfg, "warmup_calls", "rounds", "calls", "batch_calls", "alpha_ant")
    if cfg.batch_size < 0:
        raise ValueError(f"batch_size must be >= 0 (0: no batched timing), got {cfg.batch_size}")
    if cfg.clock not in CLOCKS:
        raise ValueError(f"clock must be one of {CLOCKS}, got {cfg.clock!r}")
    _bandwidth(cfg)


class SizedEnv(gym.Env):
    """A stand-in environment with a task's Box spaces (actions in [-1, 1], as on MuJoCo);
    observations are zeros and every step ends nothing. Action selection never steps it."""

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.float32), {}

    def step(self, action):
        return np.zeros(self.observation_space.shape, np.float32), 0.0, False, False, {}


def build_agent(cfg: ActionTimeConfig, agent: str, env: str, device: torch.device, seed: int):
    """``agent`` with Table 4's settings on the stand-in of task ``env`` (replay buffer of one
    transition: nothing is learnt)."""
    obs_dim, act_dim = ENV_SIZES[env]
    alpha = cfg.alpha_ant if env == "ant" else cfg.alpha
    common = {"hidden": cfg.hidden, "buffer_size": 1, "seed": seed, "device": device}
    if agent == "sac":
        return make_agent("sac", SizedEnv(obs_dim, act_dim), alpha=alpha, **common)
    return make_agent(
        agent, SizedEnv(obs_dim, act_dim), alpha=alpha, n_particles=cfg.n_particles,
        n_steps=cfg.n_steps, step_size=cfg.step_size, bandwidth=_bandwidth(cfg),
        self_term=cfg.self_term, **common,
    )  # fmt: skip


def _median_call(fn: Callable[[], object], calls: int, now: Callable[[], float]) -> float:
    """Median seconds of ``calls`` individually timed calls of ``fn``."""
    times = np.empty(calls)
    for i in range(calls):
        t0 = now()
        fn()
        times[i] = now() - t0
    return float(np.median(times))


@register(
    "rl-action-time",
    ActionTimeConfig,
    PRESETS,
    "S2AC paper section 4.3 / Table 1: action-selection time of SAC, S2AC(φ,θ), S2AC(φ,θ,ψ)",
    headlines={
        "ratio_to_sac.s2ac-phi-theta.hopper": Headline(
            paper="Table 1: S2AC(φ,θ) 3.267 vs SAC 0.723 (4.5x; Walker2d 6.5x, HalfCheetah "
            "6.3x, Ant 8.4x), growing with the action size",
            meaning="time of one act(obs) of S2AC(φ,θ) (m = 10, L = 3) over SAC's, median of "
            "per-round ratios in one process (other tasks: ratio_to_sac.*)",
            quick="the ordering (tested), not the ratio: ours is several times the paper's, "
            "as our SAC acts in ~0.08 ms (paper 0.72) while S2AC(φ,θ)'s extra_ms is of the "
            "paper's size (2.5-5.2 ms); see action_time.md",
        ),
        "ratio_to_sac.s2ac-amortized.hopper": Headline(
            paper="Table 1: S2AC(φ,θ,ψ) 0.850 vs SAC 0.723 (1.18x; 1.13-1.18x on all four)",
            meaning="time of one act(obs) of the amortized f_ψ over SAC's, same rounds",
            quick="about SAC's cost or less; cheaper than S2AC(φ,θ) (tested)",
        ),
    },
)
def run(cfg: ActionTimeConfig, ctx) -> dict[str, float]:
    _check(cfg)
    dev = ctx.device
    clock = cfg.clock if cfg.clock != "auto" else "thread_time" if dev.type == "cpu" else (
        "perf_counter"
    )  # fmt: skip
    now = getattr(time, clock)
    load_start = _load_average()
    rng = np.random.default_rng(ctx.seed)
    agents = {(a, e): build_agent(cfg, a, e, dev, ctx.seed) for e in cfg.envs for a in cfg.agents}
    # a few fixed observations per task, cycled through (their values do not change the cost)
    pools = {e: rng.standard_normal((8, ENV_SIZES[e][0])).astype(np.float32) for e in cfg.envs}
    batches = {
        e: rng.standard_normal((max(cfg.batch_size, 1), ENV_SIZES[e][0])).astype(np.float32)
        for e in cfg.envs
    }
    det = cfg.deterministic

    def single(key: tuple[str, str]) -> Callable[[], object]:
        agent, pool, i = agents[key], pools[key[1]], [0]

        def call() -> object:
            i[0] = (i[0] + 1) % len(pool)
            return agent.act(pool[i[0]], deterministic=det)

        return call

    calls = {key: single(key) for key in agents}
    batched = {
        key: (lambda ag=ag, b=batches[key[1]]: ag.act(b, deterministic=det))
        for key, ag in agents.items()
    }
    for key in agents:  # warm: first calls allocate, build autograd graphs, load kernels
        for _ in range(cfg.warmup_calls):
            calls[key]()
        if cfg.batch_size:
            for _ in range(min(cfg.warmup_calls, 3)):
                batched[key]()

    # ---- interleaved rounds ---------------------------------------------------------------
    per_round: dict[str, dict[tuple[str, str], list[float]]] = {"single": {}, "batch": {}}
    for key in agents:
        per_round["single"][key], per_round["batch"][key] = [], []
    n_agents = len(cfg.agents)
    for r in ctx.progress(range(cfg.rounds), desc="rl-action-time rounds"):
        order = [cfg.agents[(r + k) % n_agents] for k in range(n_agents)]
        for e in cfg.envs:
            for a in order:
                calls[(a, e)]()  # untimed: the timed calls start with this agent's data warm
                per_round["single"][(a, e)].append(_median_call(calls[(a, e)], cfg.calls, now))
                if cfg.batch_size:
                    per_round["batch"][(a, e)].append(
                        _median_call(batched[(a, e)], cfg.batch_calls, now)
                    )
        ctx.log(r + 1, **{f"action_ms.{a}.{e}": 1e3 * per_round["single"][(a, e)][-1]
                          for a, e in agents})  # fmt: skip

    # ---- summary ----------------------------------------------------------------------------
    metrics: dict[str, float] = {}
    table: dict[str, dict] = {}
    for kind, prefix in (("single", ""), ("batch", "batch_")):
        if kind == "batch" and not cfg.batch_size:
            continue
        for (a, e), times in per_round[kind].items():
            t = np.asarray(times)
            sac = np.asarray(per_round[kind][("sac", e)])
            row = {"ms": 1e3 * float(np.median(t)), "round_ms": (1e3 * t).tolist()}
            metrics[f"{prefix}action_ms.{a}.{e}"] = row["ms"]
            if a != "sac":
                ratio = t / sac
                q25, q50, q75 = np.quantile(ratio, [0.25, 0.5, 0.75])
                row.update(ratio_to_sac=float(q50), ratio_q25=float(q25), ratio_q75=float(q75))
                row["extra_ms"] = 1e3 * float(np.median(t - sac))
                metrics[f"{prefix}ratio_to_sac.{a}.{e}"] = float(q50)
                metrics[f"{prefix}extra_ms.{a}.{e}"] = row["extra_ms"]
            table.setdefault(kind, {}).setdefault(a, {})[e] = row
    facts = _machine(dev, clock, load_start)
    paper_ratios = {
        a: {e: PAPER_TABLE1[a][e] / PAPER_TABLE1["sac"][e] for e in ENV_SIZES}
        for a in PAPER_TABLE1
        if a != "sac"
    }
    out = {
        "what": "time per agent.act call; medians over rounds of per-round medians; ratios: "
        "medians of per-round ratios to SAC in the same task",
        "machine": facts,
        "env_sizes": {e: list(ENV_SIZES[e]) for e in cfg.envs},
        "batch_size": cfg.batch_size,
        "measured": table,
        "paper_table1_ms": PAPER_TABLE1,
        "paper_ratio_to_sac": paper_ratios,
    }
    (ctx.out_dir / "action_time.json").write_text(json.dumps(out, indent=1, ensure_ascii=False))
    (ctx.out_dir / "action_time.md").write_text(_markdown(cfg, table, paper_ratios, facts))
    with ctx.figures():
        _figure(cfg, ctx, metrics, paper_ratios)
    return metrics


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _machine(dev: torch.device, clock: str, load_start: float | None) -> dict:
    """Device, CPU and load facts recorded next to the timings."""
    facts = {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "clock": f"time.{clock}",
        "load_average_1min": {"start": load_start, "end": _load_average()},
    }
    return facts


def _markdown(cfg: ActionTimeConfig, table: dict, paper_ratios: dict, facts: dict) -> str:
    load = facts["load_average_1min"]
    lines = [
        "# rl-action-time: time per action selection (002 Table 1)",
        "",
        (
            f"One `act(obs)` call per action (single observation, deterministic={cfg.deterministic}); "
            f"{cfg.rounds} interleaved rounds x {cfg.calls} calls; m = {cfg.n_particles}, "
            f"L = {cfg.n_steps}, ε = {cfg.step_size}, bandwidth {cfg.bandwidth}, self_term "
            f"{cfg.self_term}, hidden {list(cfg.hidden)}; untrained networks. Device "
            f"{facts['device']}{' (' + facts['device_name'] + ')' if facts['device_name'] else ''}, "
            f"{facts['torch_threads']} torch thread(s), clock {facts['clock']}, load average "
            f"{_fmt(load['start'])} -> {_fmt(load['end'])} on {facts['cpu_count']} cores. Only the "
            "ratios (same process, same rounds) are comparable across machines and loads."
        ),
        "",
        "| task (obs, act) | agent | ours ms | paper ms | ours / SAC [IQR] | paper / SAC |"
        + " ours - SAC ms | paper - SAC ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in cfg.envs:
        o, d = ENV_SIZES[e]
        for a in cfg.agents:
            row, paper = table["single"][a][e], PAPER_TABLE1[a][e]
            ratio = pr = "1"
            extra = pextra = ""
            if a != "sac":
                ratio = (
                    f"{row['ratio_to_sac']:.2f} [{row['ratio_q25']:.2f}, {row['ratio_q75']:.2f}]"
                )
                pr = f"{paper_ratios[a][e]:.2f}"
                extra = f"{row['extra_ms']:.3f}"
                pextra = f"{paper - PAPER_TABLE1['sac'][e]:.3f}"
            lines.append(f"| {e} ({o}, {d}) | {LABELS[a]} | {row['ms']:.3f} | {paper:.3f} "
                         f"| {ratio} | {pr} | {extra} | {pextra} |")  # fmt: skip
    if cfg.batch_size:
        lines += [
            "",
            f"Batched: one `act` call on {cfg.batch_size} observations ({cfg.batch_calls} timed "
            + "per round; the paper reports no batched times).",
            "",
            "| task | agent | ms per call | us per observation | ours / SAC [IQR] |",
            "|---|---|---:|---:|---:|",
        ]
        for e in cfg.envs:
            for a in cfg.agents:
                row = table["batch"][a][e]
                ratio = "1"
                if a != "sac":
                    ratio = (f"{row['ratio_to_sac']:.2f} [{row['ratio_q25']:.2f}, "
                             f"{row['ratio_q75']:.2f}]")  # fmt: skip
                lines.append(f"| {e} | {LABELS[a]} | {row['ms']:.3f} "
                             f"| {1e3 * row['ms'] / cfg.batch_size:.2f} | {ratio} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _figure(cfg: ActionTimeConfig, ctx, metrics: dict, paper_ratios: dict) -> None:
    others = [a for a in cfg.agents if a != "sac"]
    fig, axes = plt.subplots(1, max(len(others), 1), figsize=(5.5 * max(len(others), 1), 3.8),
                             squeeze=False)  # fmt: skip
    x = np.arange(len(cfg.envs))
    for ax, a in zip(axes[0], others):
        ours = [metrics[f"ratio_to_sac.{a}.{e}"] for e in cfg.envs]
        paper = [paper_ratios[a][e] for e in cfg.envs]
        for shift, values, label in ((-0.2, ours, "ours (one process, interleaved rounds)"),
                                     (0.2, paper, "002 Table 1")):  # fmt: skip
            bars = ax.bar(x + shift, values, 0.4, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_xticks(x, [f"{e}\n{ENV_SIZES[e]}" for e in cfg.envs])
        ax.set_ylim(0, 1.25 * max(ours + paper))
        ax.set_ylabel("action time / SAC's")
        ax.set_title(f"{LABELS[a]} / SAC (dashed: SAC)")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    ctx.save_figure(fig, "fig_action_time")
