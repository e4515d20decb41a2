"""Policy-gradient variance of A2C and RELAX at the same policy, along one training run (issue
13: what RELAX's control variate buys on CartPole, separated from how training then unfolds).

Comparing each method's log-variance along its own run (003 Fig. 4) mixes two effects: the
estimator's variance at a given policy, and which policies the run visits (a longer episode
has a larger summed gradient).  Here one policy is trained by A2C; RELAX's control variate
c = V(s) + ĉ(z, s) is trained alongside on the same episodes by its variance objective, with θ
not moved by it (a "shadow" critic).  Every ``every`` episodes both estimators' ĝ are drawn on
the same ``samples`` fresh episodes of the current policy (same env seeds and Gumbel noise: the
actions are identical, only the estimator differs), so their variances and their ratio are
measured at equal θ and equal episodes.

    python3 benchmarks/pg_variance.py [--episodes 400] [--every 25] [--samples 50] [--seeds 0 1 2]

Two RELAX critics are compared with A2C: c = V + ĉ all fitted by the variance objective (the
papers), and V fitted by A2C's squared error with ĉ by the variance objective.

Results: benchmarks/results/pg_variance.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch
from _common import load_average, machine_info, write_results

OUT = Path(__file__).resolve().parent / "results"
ENV = "CartPole-v0"
SHADOWS = {
    "relax": ("relax", "variance", 1),
    "relax-v-mse": ("relax", "squared-error", 1),
    "a2c-xK": ("a2c", "squared-error", None),
    "relax-xK": ("relax", "variance", None),
    "relax-v-mse-xK": ("relax", "squared-error", None),
}
"""Critics trained alongside the A2C run, name -> (estimator, value_objective, critic steps per
episode; None: ``--critic-steps``): RELAX's c = V + ĉ all by Σ ĝ² (003 eq. 11), or V by
squared error and ĉ by Σ ĝ² (``value_objective="squared-error"``); the ``-xK`` ones take K
steps on each episode, A2C's V included, to separate what V's fit and what ĉ contribute."""


def sq_deviations(grads: list[torch.Tensor]) -> torch.Tensor:
    """||ĝ - ḡ||² per episode; its mean is Var ĝ summed over the parameters."""
    g = torch.stack(grads)
    return (g - g.mean(0)).pow(2).sum(-1)


def paired_variances(agents: dict, samples: int, seed: int) -> dict:
    """Var ĝ of every estimator on the same ``samples`` episodes of the shared policy."""
    grads: dict[str, list[torch.Tensor]] = {name: [] for name in agents}
    gen = torch.Generator().manual_seed(seed)
    a2c = agents["a2c"]
    for i in range(samples):
        episode = a2c.rollout(a2c.env, seed * 1000 + i, gen)
        for name, agent in agents.items():
            g, _, _ = agent.policy_gradient(episode, critic=False)  # ĝ alone
            grads[name].append(torch.cat([x.detach().reshape(-1) for x in g]).double())
    sq = {name: sq_deviations(gs) for name, gs in grads.items()}
    out: dict = {
        name: (d.mean().item(), d.std().item() / math.sqrt(samples)) for name, d in sq.items()
    }
    for name in SHADOWS:  # paired: same episodes, so their noise partly cancels
        diff = sq["a2c"] - sq[name]
        sd = diff.std().item()
        out[f"z_a2c_minus_{name}"] = diff.mean().item() / (sd / math.sqrt(samples)) if sd else 0.0
    return out


def critic_step(agent, episode: dict) -> None:
    """One step of the agent's critic alone on the episode (θ is not moved)."""
    agent.critic_step(agent.policy_gradient(episode)[1])


def run(
    seed: int, episodes: int, every: int, samples: int, lr: float, cv_lr: float, k: int
) -> dict:
    from stochgrad.rl import PolicyGradient

    a2c = PolicyGradient(ENV, "a2c", lr=lr, cv_lr=cv_lr, seed=seed)
    agents = {"a2c": a2c}
    steps = {}
    for name, (estimator, objective, n) in SHADOWS.items():
        agents[name] = PolicyGradient(
            ENV, estimator, lr=lr, cv_lr=cv_lr, seed=seed, value_objective=objective
        )
        agents[name].policy = a2c.policy  # one policy: the shadows train only their critics
        steps[name] = k if n is None else n
    points, start = [], time.perf_counter()
    while a2c.episode <= episodes:
        if a2c.episode % every == 0:
            v = paired_variances(agents, samples, seed=10_000 + a2c.episode)
            v["episode"] = a2c.episode
            v["mean_return_last_20"] = statistics.fmean(a2c.episode_returns[-20:] or [0.0])
            points.append(v)
        episode = a2c.rollout(a2c.env, a2c._episode_seed(a2c.episode), a2c.generator)
        for name in SHADOWS:
            for _ in range(steps[name]):
                critic_step(agents[name], episode)
        a2c.update(episode)
        a2c.episode_returns.append(float(episode["rewards"].sum()))
        a2c.episode += 1
    return {"points": points, "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--cv-lr", type=float, default=0.01)
    parser.add_argument("--critic-steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    load0 = load_average()
    runs = {
        s: run(s, args.episodes, args.every, args.samples, args.lr, args.cv_lr, args.critic_steps)
        for s in args.seeds
    }
    names = ["a2c", *SHADOWS]
    episodes = [p["episode"] for p in runs[args.seeds[0]]["points"]]
    rows, summary = [], []
    for k, ep in enumerate(episodes):
        pts = [runs[s]["points"][k] for s in args.seeds]
        row = {
            "episode": ep,
            "mean_return_last_20": statistics.fmean(p["mean_return_last_20"] for p in pts),
        }
        for name in names:
            row[f"log10_var.{name}"] = statistics.fmean(math.log10(p[name][0]) for p in pts)
        for name in SHADOWS:
            row[f"log10_ratio_per_seed.{name}"] = [
                math.log10(p[name][0] / p["a2c"][0]) for p in pts
            ]
            row[f"paired_z_per_seed.{name}"] = [p[f"z_a2c_minus_{name}"] for p in pts]
        summary.append(row)
        cells = [f"{row['log10_var.a2c']:.2f}"]
        cells += [f"{statistics.fmean(row[f'log10_ratio_per_seed.{n}']):+.2f}" for n in SHADOWS]
        rows.append(f"| {ep} | {row['mean_return_last_20']:.0f} | " + " | ".join(cells) + " |")
    overall, spread = {}, {}
    for name in SHADOWS:
        ratios = [r for row in summary[1:] for r in row[f"log10_ratio_per_seed.{name}"]]
        overall[name] = statistics.fmean(ratios)
        spread[name] = statistics.stdev(ratios) / math.sqrt(len(ratios))
    result = {
        "env": ENV,
        "settings": vars(args),
        "summary": summary,
        "runs": {str(s): r for s, r in runs.items()},
        "mean_log10_ratio_to_a2c_after_start": overall,
        "se_log10_ratio_to_a2c_after_start": spread,
        "machine": machine_info(load0),
    }
    n_params = sum(p.numel() for p in _policy_params())
    walls = ", ".join(f"{r['wall_s']:.0f} s" for r in runs.values())
    k = args.critic_steps
    intro = (
        f"One policy trained by A2C (lr {args.lr}, V's Adam step {args.cv_lr}, 10-10 ReLU "
        f"networks, one episode per update, γ 0.99, Monte-Carlo returns). Critics trained on "
        f"the same episodes without moving θ (Adam {args.cv_lr}): `relax` fits all of "
        f"c = V(s) + ĉ(z, s) by the variance objective Σ ĝ² (003 eq. 11); `relax-v-mse` fits V "
        f"by squared error and ĉ by Σ ĝ²; the `-xK` ones take K = {k} critic steps on each "
        f"episode instead of one (`a2c-xK`: A2C's V alone). Every {args.every} episodes every "
        f"estimator's ĝ is taken on the same {args.samples} fresh episodes of the current policy "
        f"(identical actions: only the estimator differs). Var ĝ = mean over episodes of "
        f"||ĝ - ḡ||², summed over the policy's {n_params} parameters. Columns after the first "
        f"variance: log10 (Var / Var of A2C as trained), mean over seeds {args.seeds}; "
        f"negative = lower variance than A2C."
    )
    header = "| episode | A2C return (last 20) | log10 Var A2C | " + " | ".join(SHADOWS) + " |"
    summary_rows = [
        f"| {n} | {SHADOWS[n][0]} | {SHADOWS[n][1]} | {SHADOWS[n][2] or k} | "
        f"{overall[n]:+.3f} ± {spread[n]:.3f} | {10 ** overall[n]:.2f} |"
        for n in SHADOWS
    ]
    md = [
        "# Policy-gradient variance of A2C and RELAX at the same policy (CartPole-v0)",
        "",
        intro,
        "",
        header,
        "| --- | --- | --- | " + " | ".join("---" for _ in SHADOWS) + " |",
        *rows,
        "",
        (
            "Over all points after episode 0 and all seeds (mean ± s.e. of the per-point log10 "
            "ratios; the points of one run are not independent, so the s.e. is optimistic):"
        ),
        "",
        (
            "| critic | estimator | V fitted by | critic steps per episode | log10 Var ratio to A2C "
            "| Var ratio |"
        ),
        "| --- | --- | --- | --- | --- | --- |",
        *summary_rows,
        "",
        f"Wall time per seed: {walls}; load average at start {load0}.",
    ]
    write_results(OUT, "pg_variance", result, "\n".join(md) + "\n")


def _policy_params():
    from stochgrad.rl import PolicyGradient

    return list(PolicyGradient(ENV, "a2c").policy.parameters())


if __name__ == "__main__":
    main()
