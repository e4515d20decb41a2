"""Environment steps per second of SAC with one gradient update per step (issue 12).

Ours (`stochgrad.rl.SAC`) against stable-baselines3's SAC and its JAX port SBX (when installed),
with the same networks (256x256), batch (256), learning rate, buffer and environment
(Pendulum-v1), one CPU thread and core for all (XLA included), after the same uniform warm-up; rounds interleave the libraries
so that the machine's load affects them alike.  Results: benchmarks/results/rl.{json,md}.

    python3 benchmarks/rl.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from _common import load_average, machine_info

OUT = Path(__file__).resolve().parent / "results"
ENV = "Pendulum-v1"
HIDDEN = 256
BATCH = 256
WARMUP = 1000


def ours(steps: int):
    from stochgrad.rl import SAC

    agent = SAC(ENV, seed=0, hidden=(HIDDEN, HIDDEN), batch_size=BATCH, learning_starts=WARMUP)
    agent.learn(WARMUP)  # uniform actions, then one update per step
    return lambda: agent.learn(steps)


def sb3(steps: int):
    from stable_baselines3 import SAC

    net = {"net_arch": [HIDDEN, HIDDEN]}
    agent = SAC("MlpPolicy", ENV, policy_kwargs=net, batch_size=BATCH, learning_starts=WARMUP,
                seed=0, device="cpu", verbose=0)  # fmt: skip
    agent.learn(WARMUP + 1)
    return lambda: agent.learn(steps, reset_num_timesteps=False)


def sbx(steps: int):
    from sbx import SAC

    net = {"net_arch": [HIDDEN, HIDDEN]}
    agent = SAC("MlpPolicy", ENV, policy_kwargs=net, batch_size=BATCH, learning_starts=WARMUP,
                seed=0, verbose=0)  # fmt: skip
    agent.learn(WARMUP + 1)  # includes JIT compilation
    return lambda: agent.learn(steps, reset_num_timesteps=False)


def one_core() -> None:
    """One thread for every library: torch's setting, XLA's flags (before JAX is imported) and
    the process pinned to one core (XLA would otherwise use every core: SBX measured 374
    steps/s on 2 cores against 219 on one, here)."""
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)


def main() -> None:
    one_core()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 rounds of 100 steps)")
    args = parser.parse_args()
    rounds, steps = (2, 100) if args.quick else (5, 1000)
    load_start = load_average()
    runners, missing = {}, {}
    for name, make in (("stochgrad", ours), ("stable-baselines3", sb3), ("sbx", sbx)):
        try:
            runners[name] = make(steps)
        except ImportError as e:
            missing[name] = str(e)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(steps / (time.perf_counter() - start))
    result = {
        "setting": {"env": ENV, "hidden": [HIDDEN, HIDDEN], "batch": BATCH, "warmup": WARMUP,
                    "steps_per_round": steps, "rounds": rounds, "threads": 1},
        "steps_per_s": {n: statistics.median(v) for n, v in times.items()},
        "all_rounds": times,
        "missing": missing,
        "paper_and_issue": {"sb3_steps_per_s_issue": 87, "sbx_steps_per_s_issue": 220},
        "machine": machine_info(load_start),
    }  # fmt: skip
    ours_rate = result["steps_per_s"]["stochgrad"]
    lines = [
        "# SAC throughput: environment steps per second, one update per step (`benchmarks/rl.py`)",
        "",
        (
            f"{ENV}, {HIDDEN}x{HIDDEN} networks, batch {BATCH}, {WARMUP} uniform warm-up steps, "
            f"one thread, median of {rounds} interleaved rounds of {steps} steps.  The issue "
            "quotes about 87 steps/s for SB3 and 220 for SBX on this setting."
        ),
        "",
        "| library | steps/s | ours / library |",
        "|---|---|---|",
    ]
    for name, rate in result["steps_per_s"].items():
        lines.append(f"| {name} | {rate:.0f} | {ours_rate / rate:.2f} |")
    for name, why in missing.items():
        lines.append(f"| {name} | not installed ({why.splitlines()[0]}) | - |")
    load = result["machine"]["load_average_1min"]
    machine = f"Load average {load['start']} at start, {load['end']} at the end; torch "
    lines += ["", machine + f"{result['machine']['torch']}."]
    if not args.quick:
        OUT.mkdir(exist_ok=True)
        (OUT / "rl.json").write_text(json.dumps(result, indent=2))
        (OUT / "rl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
