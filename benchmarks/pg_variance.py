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


def paired_variances(a2c, relax, samples: int, seed: int) -> dict:
    """Var ĝ (summed over the policy's parameters) of both estimators on the same episodes."""
    grads = {"a2c": [], "relax": []}
    gen = torch.Generator().manual_seed(seed)
    for i in range(samples):
        episode = a2c.rollout(a2c.env, seed * 1000 + i, gen)
        for name, agent in (("a2c", a2c), ("relax", relax)):
            g, _, _ = agent.policy_gradient(episode)
            grads[name].append(torch.cat([x.detach().reshape(-1) for x in g]).double())
    out = {}
    for name, gs in grads.items():
        g = torch.stack(gs)
        sq = (g - g.mean(0)).pow(2).sum(-1)  # ||ĝ - ḡ||² per episode
        out[name] = (sq.mean().item(), sq.std().item() / math.sqrt(samples))
    # paired difference of squared deviations: same episodes, so their noise partly cancels
    d = torch.stack(
        [
            (torch.stack(grads["a2c"]) - torch.stack(grads["a2c"]).mean(0)).pow(2).sum(-1),
            (torch.stack(grads["relax"]) - torch.stack(grads["relax"]).mean(0)).pow(2).sum(-1),
        ]
    )
    diff = d[0] - d[1]
    out["z_a2c_minus_relax"] = diff.mean().item() / (diff.std().item() / math.sqrt(samples))
    return out


def run(seed: int, episodes: int, every: int, samples: int, lr: float, cv_lr: float) -> dict:
    from stochgrad.rl import PolicyGradient

    a2c = PolicyGradient(ENV, "a2c", lr=lr, cv_lr=cv_lr, seed=seed)
    relax = PolicyGradient(ENV, "relax", lr=lr, cv_lr=cv_lr, seed=seed)
    relax.policy = a2c.policy  # one policy; RELAX only trains its critic on A2C's episodes
    points, start = [], time.perf_counter()
    while a2c.episode <= episodes:
        if a2c.episode % every == 0:
            v = paired_variances(a2c, relax, samples, seed=10_000 + a2c.episode)
            v["episode"] = a2c.episode
            v["mean_return_last_20"] = statistics.fmean(a2c.episode_returns[-20:] or [0.0])
            points.append(v)
        episode = a2c.rollout(a2c.env, a2c._episode_seed(a2c.episode), a2c.generator)
        _, critic_loss, _ = relax.policy_gradient(episode)  # RELAX's critic: variance objective
        params = list(relax._critic.parameters())
        grads = torch.autograd.grad(critic_loss, params, allow_unused=True)
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.detach()
        relax.critic_optimizer.step()
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    load0 = load_average()
    runs = {
        s: run(s, args.episodes, args.every, args.samples, args.lr, args.cv_lr) for s in args.seeds
    }
    episodes = [p["episode"] for p in runs[args.seeds[0]]["points"]]
    rows, summary = [], []
    for k, ep in enumerate(episodes):
        pts = [runs[s]["points"][k] for s in args.seeds]
        log_ratio = [math.log10(p["relax"][0] / p["a2c"][0]) for p in pts]
        summary.append(
            {
                "episode": ep,
                "log10_var_a2c": statistics.fmean(math.log10(p["a2c"][0]) for p in pts),
                "log10_var_relax": statistics.fmean(math.log10(p["relax"][0]) for p in pts),
                "log10_ratio_relax_to_a2c": statistics.fmean(log_ratio),
                "log10_ratio_per_seed": log_ratio,
                "paired_z_per_seed": [p["z_a2c_minus_relax"] for p in pts],
                "mean_return_last_20": statistics.fmean(p["mean_return_last_20"] for p in pts),
            }
        )
        s = summary[-1]
        rows.append(
            f"| {ep} | {s['mean_return_last_20']:.0f} | {s['log10_var_a2c']:.2f} | "
            f"{s['log10_var_relax']:.2f} | {s['log10_ratio_relax_to_a2c']:+.2f} | "
            + ", ".join(f"{z:.1f}" for z in s["paired_z_per_seed"])
            + " |"
        )
    all_ratios = [r for s in summary[1:] for r in s["log10_ratio_per_seed"]]
    result = {
        "env": ENV,
        "settings": vars(args),
        "summary": summary,
        "runs": {str(s): r for s, r in runs.items()},
        "mean_log10_ratio_after_start": statistics.fmean(all_ratios) if all_ratios else None,
        "machine": machine_info(load0),
    }
    n_params = sum(p.numel() for p in _policy_params())
    walls = ", ".join(f"{r['wall_s']:.0f} s" for r in runs.values())
    intro = (
        f"One policy trained by A2C (lr {args.lr}, V's Adam step {args.cv_lr}, 10-10 ReLU "
        f"networks, one episode per update, γ 0.99); RELAX's c = V(s) + ĉ(z, s) trained on the "
        f"same episodes by its variance objective (Adam {args.cv_lr}) without moving θ. Every "
        f"{args.every} episodes both estimators' ĝ on the same {args.samples} fresh episodes "
        f"(identical actions). Var ĝ = mean over episodes of ||ĝ - ḡ||², summed over the "
        f"policy's {n_params} parameters. Seeds {args.seeds}; mean over seeds. Paired z: "
        f"(A2C - RELAX) squared deviations, per seed (positive: RELAX lower)."
    )
    header = (
        "| episode | return (last 20) | log10 Var A2C | log10 Var RELAX "
        "| log10 ratio RELAX/A2C | paired z per seed |"
    )
    ratio = result["mean_log10_ratio_after_start"]
    md = [
        "# Policy-gradient variance of A2C and RELAX at the same policy (CartPole-v0)",
        "",
        intro,
        "",
        header,
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"Mean log10 ratio RELAX/A2C after episode 0: {ratio:+.3f}" if ratio is not None else "",
        "",
        f"Wall time per seed: {walls}; load average at start {load0}.",
    ]
    write_results(OUT, "pg_variance", result, "\n".join(md) + "\n")


def _policy_params():
    from stochgrad.rl import PolicyGradient

    return list(PolicyGradient(ENV, "a2c").policy.parameters())


if __name__ == "__main__":
    main()
