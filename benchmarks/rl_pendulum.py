"""Learning on Pendulum-v1 (issue 12, acceptance 1): `sac` and `s2ac-phi-theta` at the same
budget, the issue's bar being a mean return above -400 (a random policy scores about -1200).

Both agents: 64x64 ReLU networks, Adam 3e-4, 1000 uniform warm-up steps, one update per step,
`steps` environment steps in all, evaluated every 1000 steps on 5 deterministic episodes (the
same evaluation seeds for every run). SAC: batch 256, automatic temperature. S2AC(φ, θ): 002
Table 4 (batch 100, m = 10 particles, L = 3 SVGD steps, ε = 0.1, t = 3) with α = 1; acting with
it costs one SVGD run per step, so its wall time is quoted next to SAC's. One torch thread.

    python3 benchmarks/rl_pendulum.py [--steps 8000] [--seeds 0 1 2]

Results: benchmarks/results/rl_pendulum.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _common import load_average, machine_info, write_results

OUT = Path(__file__).resolve().parent / "results"
BAR = -400.0
AGENTS = {
    "sac": {},
    "s2ac-phi-theta": {"alpha": 1.0},
}


def run(name: str, seed: int, steps: int) -> dict:
    from stochgrad.rl import make_agent

    agent = make_agent(
        name, "Pendulum-v1", seed=seed, hidden=(64, 64), learning_starts=1000, **AGENTS[name]
    )
    curve, start = [], time.perf_counter()
    while agent.num_steps < steps:
        agent.learn(min(1000, steps - agent.num_steps))
        curve.append((agent.num_steps, agent.evaluate(5)))
    return {"curve": curve, "final": curve[-1][1], "wall_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    load0 = load_average()
    runs = {name: {s: run(name, s, args.steps) for s in args.seeds} for name in AGENTS}
    rows = []
    result = {"steps": args.steps, "seeds": args.seeds, "bar": BAR, "runs": {}, "summary": {}}
    for name, by_seed in runs.items():
        finals = [r["final"] for r in by_seed.values()]
        walls = [r["wall_s"] for r in by_seed.values()]
        mean = statistics.fmean(finals)
        se = statistics.stdev(finals) / len(finals) ** 0.5 if len(finals) > 1 else float("nan")
        passed = sum(f > BAR for f in finals)
        result["runs"][name] = {str(s): r for s, r in by_seed.items()}
        result["summary"][name] = {
            "final_mean": mean, "final_se": se, "above_bar": passed,
            "wall_s_median": statistics.median(walls),
        }  # fmt: skip
        rows.append(
            f"| {name} | {mean:.0f} ± {se:.0f} | {', '.join(f'{f:.0f}' for f in finals)} | "
            f"{passed}/{len(finals)} | {statistics.median(walls):.0f} |"
        )
    curves = []
    for name, by_seed in runs.items():
        for s, r in by_seed.items():
            curves.append(
                f"| {name} | {s} | " + " | ".join(f"{v:.0f}" for _, v in r["curve"]) + " |"
            )
    first = next(iter(next(iter(runs.values())).values()))["curve"]
    n_evals = len(first)
    head = " | ".join(str(step) for step, _ in first)
    result["machine"] = machine_info(load0)
    md = (
        f"# Pendulum-v1: return after {args.steps} steps (issue 12, acceptance 1)\n\n"
        f"64x64 networks, 1000 uniform warm-up steps, one update per step, one torch thread; "
        f"final = mean of 5 deterministic evaluation episodes; mean ± s.e. over seeds "
        f"{args.seeds}. Bar: > {BAR:.0f}. Machine load (1 min) at start {load0}: wall times "
        "are indicative only.\n\n"
        "| agent | final return | per seed | above the bar | wall s (median) |\n"
        "| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n\n"
        f"Evaluation after each 1000 steps:\n\n| agent | seed | {head} |\n"
        f"| --- | --- | {' | '.join('---' for _ in range(n_evals))} |\n" + "\n".join(curves) + "\n"
    )
    write_results(OUT, "rl_pendulum", result, md)


if __name__ == "__main__":
    main()
