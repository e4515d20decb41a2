"""SAC throughput (issue 12): environment steps per second with one gradient update per step,
and why the libraries differ.

Ours (`stochgrad.rl.SAC`) against stable-baselines3's SAC and its JAX port SBX (when installed),
with the same networks (256x256), batch (256), learning rate, buffer and environment
(Pendulum-v1), one CPU thread and core for all (XLA included), after the same uniform warm-up.
Every comparison runs in this one process in interleaved rounds (the machine is shared), and
medians are reported:

1. steps/s of ours, ours with MKL's sgemm for every product, ours at an older commit
   (``--baseline-src``: the ``src`` of another checkout, loaded under another name), SB3, SBX;
   wall time, and CPU time of the process (which does not count time taken by other processes);
2. the matmul FLOPs of one update of each library (ours and SB3: torch's FlopCounterMode; SBX:
   XLA's cost analysis of the compiled update), i.e. whether they do the same work;
3. one 256x256x256 float32 product on one thread: MKL (torch's default), oneDNN, XLA;
4. the update's CPU time: ours against ours with MKL and ours at the older commit, and
   S2AC(φ, θ) against our SAC;
5. with ``--compile-probe``: torch.compile (inductor) of the plain autograd critic loss and
   gradient against ours, eager (compile time included in the JSON).

Results: benchmarks/results/rl.{json,md}.

    git worktree add /tmp/base 35b180e
    python3 benchmarks/rl.py [--quick] [--baseline-src /tmp/base/src] [--compile-probe]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from _common import interleaved_ratios, load_average, machine_info, write_results

OUT = Path(__file__).resolve().parent / "results"
ENV = "Pendulum-v1"
HIDDEN = 256
BATCH = 256
WARMUP = 1000
ISSUE = {"sb3_steps_per_s": 87, "sbx_steps_per_s": 220}  # the issue's numbers, same setting


def ours(steps: int, mkl: bool = False):
    from stochgrad.rl import SAC, networks

    agent = SAC(ENV, seed=0, hidden=(HIDDEN, HIDDEN), batch_size=BATCH, learning_starts=WARMUP)
    agent.learn(WARMUP)  # uniform actions, then one update per step
    if not mkl:
        return lambda: agent.learn(steps)

    def run():  # every product through MKL, as before the oneDNN path
        networks._ONEDNN = False
        try:
            agent.learn(steps)
        finally:
            networks._ONEDNN = networks.torch.backends.mkldnn.is_available()

    return run


def load_baseline(src: str):
    """The ``stochgrad`` package under ``src`` (another checkout), imported as
    ``stochgrad_base``; returns (its SAC class, the checkout's commit)."""
    import importlib
    import importlib.util
    import subprocess
    import sys

    pkg = os.path.join(src, "stochgrad")
    spec = importlib.util.spec_from_file_location(
        "stochgrad_base", os.path.join(pkg, "__init__.py"), submodule_search_locations=[pkg]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["stochgrad_base"] = module
    spec.loader.exec_module(module)
    git = ["git", "-C", src, "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, check=True, capture_output=True, text=True).stdout.strip()
    return importlib.import_module("stochgrad_base.rl.sac").SAC, commit


def sb3_agent():
    from stable_baselines3 import SAC

    net = {"net_arch": [HIDDEN, HIDDEN]}
    agent = SAC("MlpPolicy", ENV, policy_kwargs=net, batch_size=BATCH, learning_starts=WARMUP,
                seed=0, device="cpu", verbose=0)  # fmt: skip
    agent.learn(WARMUP + 1)
    return agent


def sbx_agent():
    from sbx import SAC

    net = {"net_arch": [HIDDEN, HIDDEN]}
    agent = SAC("MlpPolicy", ENV, policy_kwargs=net, batch_size=BATCH, learning_starts=WARMUP,
                seed=0, verbose=0)  # fmt: skip
    agent.learn(WARMUP + 1)  # includes JIT compilation
    return agent


def one_core() -> None:
    """One thread for every library: torch's setting, XLA's flags (before JAX is imported) and
    the process pinned to one core (XLA would otherwise use every core: SBX measured 374
    steps/s on 2 cores against 219 on one, here)."""
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)


def throughput(runners: dict, rounds: int, steps: int) -> dict:
    """steps/s per runner in interleaved rounds, by wall time and by process CPU time: medians,
    and the first runner's rate over each one's, round by round (median and quartiles)."""
    import numpy as np

    rates = {clock: {name: [] for name in runners} for clock in ("wall", "cpu")}
    for r in range(rounds):
        order = list(runners.items())
        for name, run in order if r % 2 == 0 else order[::-1]:
            w0, c0 = time.perf_counter(), time.process_time()
            run()
            rates["wall"][name].append(steps / (time.perf_counter() - w0))
            rates["cpu"][name].append(steps / (time.process_time() - c0))
    first = next(iter(runners))
    out = {name: {} for name in runners}
    for clock, per_runner in rates.items():
        for name, v in per_runner.items():
            ratio = np.array(per_runner[first]) / np.array(v)
            out[name][f"{clock}_steps_per_s"] = statistics.median(v)
            out[name][f"{clock}_ratio_first_over_this"] = [
                float(np.median(ratio)), float(np.quantile(ratio, 0.25)),
                float(np.quantile(ratio, 0.75)),
            ]  # fmt: skip
            out[name][f"{clock}_rounds"] = v
    return out


def flop_counts(sb3, sbx) -> dict:
    """Matmul FLOPs of one update (batch 256) of each library."""
    from torch.utils.flop_counter import FlopCounterMode

    from stochgrad.rl import SAC, networks

    out = {}
    agent = SAC(ENV, seed=0, hidden=(HIDDEN, HIDDEN), batch_size=BATCH, learning_starts=300)
    agent.learn(301)
    networks._ONEDNN = False  # the counter sees aten's matmuls; the oneDNN path does the same
    try:
        with FlopCounterMode(display=False) as fc:
            agent.update()
    finally:
        networks._ONEDNN = torch.backends.mkldnn.is_available()
    out["stochgrad"] = {"flops": fc.get_total_flops(), "counted": "torch FlopCounterMode"}
    if sb3 is not None:
        with FlopCounterMode(display=False) as fc:
            sb3.train(gradient_steps=1, batch_size=BATCH)
        out["stable-baselines3"] = {
            "flops": fc.get_total_flops(),
            "counted": "torch FlopCounterMode",
        }
    if sbx is not None:
        captured = {}
        original = sbx._train

        def capture(*args):
            captured["args"] = args
            return original(*args)

        sbx._train = capture
        try:
            sbx.train(gradient_steps=1, batch_size=BATCH)
        finally:
            del sbx._train
        cls = type(sbx)
        compiled = cls._train.__func__.lower(cls, *captured["args"]).compile()
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        hlo = compiled.as_text()
        out["sbx"] = {
            "flops": float(cost["flops"]),
            "counted": "XLA cost_analysis of the compiled update (elementwise ops included)",
            "dot_ops_in_hlo": hlo.count(" dot("),
        }
    return out


def gemm_speeds(rounds: int, calls: int) -> dict:
    """One [256, 256] x [256, 256] float32 product on one thread, per backend."""
    x, w = torch.randn(HIDDEN, HIDDEN), torch.randn(HIDDEN, HIDDEN)
    fns = {"torch (MKL sgemm)": lambda: torch.mm(x, w)}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise") and torch.backends.mkldnn.is_available():
        fns["torch (oneDNN)"] = lambda: torch.ops.mkldnn._linear_pointwise(
            x, w, None, "none", [], ""
        )
    try:
        import jax
        import jax.numpy as jnp

        jx, jw = jnp.asarray(x.numpy()), jnp.asarray(w.numpy())
        dot = jax.jit(lambda a, b: a @ b)
        fns["XLA (jax.jit)"] = lambda: dot(jx, jw).block_until_ready()
    except ImportError:
        pass
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            t0 = time.process_time()
            for _ in range(calls):
                fn()
            times[name].append((time.process_time() - t0) / calls)
    flops = 2 * HIDDEN**3
    return {
        name: {"us": statistics.median(v) * 1e6, "gflop_per_s": flops / statistics.median(v) / 1e9}
        for name, v in times.items()
    }


def update_costs(rounds: int, calls: int, baseline=None) -> tuple[dict, str | None]:
    """CPU time of one update: ours vs ours with MKL (and vs the baseline commit's SAC), and
    S2AC(φ, θ) vs our SAC."""
    from stochgrad.rl import SAC, make_agent, networks

    sac = SAC(ENV, seed=0, hidden=(HIDDEN, HIDDEN), batch_size=BATCH, learning_starts=WARMUP)
    sac.learn(WARMUP + 10)

    def sac_mkl():
        networks._ONEDNN = False
        try:
            sac.update()
        finally:
            networks._ONEDNN = torch.backends.mkldnn.is_available()

    pairs = {"sac / sac with MKL for every product": (sac.update, sac_mkl)}
    if baseline is not None:
        base_cls, commit = baseline
        base = base_cls(ENV, seed=0, hidden=(HIDDEN, HIDDEN), batch_size=BATCH,
                        learning_starts=WARMUP)  # fmt: skip
        base.learn(WARMUP + 10)
        pairs[f"sac / sac at {commit}"] = (sac.update, base.update)
    note = None
    try:
        s2ac = make_agent("s2ac-phi-theta", ENV, hidden=(HIDDEN, HIDDEN), batch_size=BATCH,
                          learning_starts=WARMUP, seed=0)  # fmt: skip
        s2ac.learn(WARMUP + 10)
        pairs["s2ac-phi-theta / sac"] = (s2ac.update, sac.update)
    except (ImportError, ValueError) as err:
        note = f"S2AC not measured: {err}"
    return interleaved_ratios(pairs, rounds=rounds, calls=calls), note


def compile_probe(rounds: int, calls: int) -> dict:
    """The critic's loss and gradient (256x256 twin Q, batch 256): torch.compile (inductor) of
    the plain autograd version, and eager autograd, each against ours (eager, written out)."""
    import torch.nn.functional as F

    from stochgrad.rl.networks import TwinQ, twin_q_mse_backward

    critic = TwinQ(3, 1, (HIDDEN, HIDDEN))
    obs, act, target = torch.randn(BATCH, 3), torch.randn(BATCH, 1), torch.randn(BATCH)

    def plain_loss(obs, act, target):
        x = torch.cat([obs, act], -1)
        q1, q2 = critic.q1(x).squeeze(-1), critic.q2(x).squeeze(-1)
        return F.mse_loss(q1, target) + F.mse_loss(q2, target)

    def step(loss_fn):
        def run():
            critic.zero_grad(set_to_none=True)
            loss_fn(obs, act, target).backward()

        return run

    def ours():
        critic.zero_grad(set_to_none=True)
        twin_q_mse_backward(critic, obs, act, target)

    out = {}
    try:
        compiled = torch.compile(plain_loss)
        t0 = time.perf_counter()
        step(compiled)()
        out["compile_s"] = time.perf_counter() - t0
        pairs = {"torch.compile (inductor) / ours": (step(compiled), ours)}
    except Exception as err:  # noqa: BLE001 - the probe reports why compile failed
        out["compile_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        pairs = {}
    pairs["eager autograd / ours"] = (step(plain_loss), ours)
    out["ratios"] = interleaved_ratios(pairs, rounds=rounds, calls=calls)
    return out


RATIO_HEADER = "| comparison | ms (first) | ms (second) | ratio: median [quartiles] |"


def _table(title: str, header: str, rows: list[str]) -> list[str]:
    """A markdown section: title, header, separator, rows."""
    return ["", f"## {title}", "", header, "|" + "---|" * header.count(" | ") + "---|", *rows]


def _ratio_rows(ratios: dict) -> list[str]:
    return [
        f"| {name} | {u['ours_ms']:.2f} | {u['hand_ms']:.2f} | {u['ratio_median']:.2f} "
        f"[{u['ratio_q25']:.2f}, {u['ratio_q75']:.2f}] |"
        for name, u in ratios.items()
    ]


def main() -> None:
    one_core()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 rounds of 100 steps)")
    parser.add_argument("--baseline-src", help="src/ of an older checkout to compare with")
    parser.add_argument("--compile-probe", action="store_true", help="time torch.compile too")
    args = parser.parse_args()
    rounds, steps = (2, 100) if args.quick else (9, 600)
    load_start = load_average()
    missing, sb3, sbx = {}, None, None
    runners = {"stochgrad": ours(steps), "stochgrad, MKL for every product": ours(steps, mkl=True)}
    baseline = load_baseline(args.baseline_src) if args.baseline_src else None
    if baseline is not None:
        base_cls, commit = baseline
        base = base_cls(ENV, seed=0, hidden=(HIDDEN, HIDDEN), batch_size=BATCH,
                        learning_starts=WARMUP)  # fmt: skip
        base.learn(WARMUP)
        runners[f"stochgrad at {commit}"] = lambda: base.learn(steps)
    try:
        sb3 = sb3_agent()
        runners["stable-baselines3"] = lambda: sb3.learn(steps, reset_num_timesteps=False)
    except ImportError as e:
        missing["stable-baselines3"] = str(e)
    try:
        sbx = sbx_agent()
        runners["sbx"] = lambda: sbx.learn(steps, reset_num_timesteps=False)
    except ImportError as e:
        missing["sbx"] = str(e)
    rates = throughput(runners, rounds, steps)
    gemm = gemm_speeds(rounds=3 if args.quick else 7, calls=50 if args.quick else 200)
    updates, s2ac_note = update_costs(
        rounds=3 if args.quick else 7, calls=5 if args.quick else 20, baseline=baseline
    )
    flops = flop_counts(sb3, sbx)
    probe = (
        compile_probe(3 if args.quick else 7, 5 if args.quick else 20)
        if args.compile_probe
        else None
    )
    result = {
        "setting": {"env": ENV, "hidden": [HIDDEN, HIDDEN], "batch": BATCH, "warmup": WARMUP,
                    "steps_per_round": steps, "rounds": rounds, "threads": 1, "cores": 1,
                    "s2ac": "s2ac-phi-theta, its defaults (alpha 1, 10 particles, 3 SVGD "
                            "steps) with hidden 256x256 and batch 256"},
        "steps_per_s": rates,
        "update_flops": flops,
        "gemm_256_float32": gemm,
        "update_cpu_time": updates,
        "compile_probe": probe,
        "baseline_commit": baseline[1] if baseline else None,
        "s2ac_note": s2ac_note,
        "missing": missing,
        "issue": ISSUE,
        "machine": machine_info(load_start),
    }  # fmt: skip
    lines = [
        "# SAC throughput: environment steps per second, one update per step (`benchmarks/rl.py`)",
        "",
        (
            f"{ENV}, {HIDDEN}x{HIDDEN} networks, batch {BATCH}, {WARMUP} uniform warm-up steps, "
            f"one thread on one core for every library, in one process; median of {rounds} "
            f"interleaved rounds of {steps} steps.  The machine is shared (2 cores, other jobs "
            "running): wall time counts the time other processes take, the process CPU time "
            f"does not.  The issue quotes about {ISSUE['sb3_steps_per_s']} steps/s for SB3 and "
            f"{ISSUE['sbx_steps_per_s']} for SBX on this setting (another run, another load).  "
            "Ratios: median [quartiles] over rounds of ours / library in the same round."
        ),
        "",
        "| library | steps/s (wall) | ours / it (wall) | steps/s (CPU time) | ours / it (CPU) |",
        "|---|---|---|---|---|",
    ]
    for name, r in rates.items():
        w, c = r["wall_ratio_first_over_this"], r["cpu_ratio_first_over_this"]
        lines.append(
            f"| {name} | {r['wall_steps_per_s']:.0f} | {w[0]:.2f} [{w[1]:.2f}, {w[2]:.2f}] | "
            f"{r['cpu_steps_per_s']:.0f} | {c[0]:.2f} [{c[1]:.2f}, {c[2]:.2f}] |"
        )
    for name, why in missing.items():
        lines.append(f"| {name} | not installed ({why.splitlines()[0]}) | - | - | - |")
    gf = {name: g["gflop_per_s"] for name, g in gemm.items()}
    if len(gf) == 3:
        mkl, onednn, xla = gf.values()
        lines += [
            "",
            (
                f"Why SBX was faster: it does the same matmul work (table below), but MKL's sgemm "
                f"runs its AVX2 path on this AMD CPU ({mkl:.0f} GFLOP/s on one thread) where XLA "
                f"runs AVX-512 ({xla:.0f}).  Ours now sends the 256x256 products to oneDNN "
                f"({onednn:.0f} GFLOP/s), runs the critic's and the actor's backward passes "
                "written out (no autograd graph), and backpropagates min(Q1, Q2) through each "
                "head only on the rows where it is the minimum (one head's pass instead of two)."
            ),
        ]
    lines += _table(
        "Same work?  Matmul FLOPs of one update (batch 256)",
        "| library | MFLOP per update | counted by |",
        [f"| {name} | {f['flops'] / 1e6:.1f} | {f['counted']} |" for name, f in flops.items()],
    )
    lines += _table(
        "One 256x256x256 float32 product, one thread (median of interleaved rounds)",
        "| backend | µs | GFLOP/s |",
        [f"| {n} | {g['us']:.0f} | {g['gflop_per_s']:.0f} |" for n, g in gemm.items()],
    )
    lines += _table("Update cost (CPU time of the thread, interleaved rounds)", RATIO_HEADER,
                    _ratio_rows(updates))  # fmt: skip
    if s2ac_note:
        lines.append(f"\n{s2ac_note}")
    if probe is not None:
        lines += _table(
            "torch.compile as the lever?  The critic's loss and gradient alone (CPU time)",
            RATIO_HEADER,
            _ratio_rows(probe["ratios"]),
        )
        if "compile_s" in probe:
            lines.append(f"\nCompiling took {probe['compile_s']:.0f} s (inductor, default mode).")
        else:
            lines.append(f"\ntorch.compile failed: {probe['compile_error']}")
    load = result["machine"]["load_average_1min"]
    lines += [
        "",
        (
            f"Load average {load['start']:.2f} at start, {load['end']:.2f} at the end; torch "
            f"{result['machine']['torch']}, {result['machine']['cpu_count']} CPUs."
        ),
    ]
    markdown = "\n".join(lines) + "\n"
    if args.quick:
        print(markdown)
    else:
        write_results(OUT, "rl", result, markdown)


if __name__ == "__main__":
    main()
