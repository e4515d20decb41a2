"""Benchmark: cost of tracking the SVGD log-density (paper 002, Theorems 3.1 and 3.3).

Time of one SVGD step (``stochgrad.entropy.svgd_step``, one particle set ``[1, m, d]``, fixed
bandwidth) in three variants, measured side by side in this process:

- ``plain``: the update only (``log_det="none"``);
- ``closed_form``: the update and the closed-form log-determinant (Theorem 3.3);
- ``exact``: the update and ``log|det(I + ε ∇h)|`` from the autograd Jacobian (``d`` vectorized
  backward passes through the kernel, then ``slogdet``).

for m in {10, 100, 1000} and d in {2, 6, 17}, on two targets: a Gaussian with a random
covariance (score ``-Σ⁻¹ x``: the cheapest score, so the log-density's overhead is largest) and
an S2AC-like energy, a 2 x 256 ELU MLP whose score comes from autograd (``energy=``).

Usage::

    python3 benchmarks/svgd.py [--quick] [--out benchmarks/results] [--seed 0]

Writes ``svgd.json`` and ``svgd.md`` under ``--out`` and prints the markdown. All timings use
``torch.set_num_threads(1)``, float32 and ``time.perf_counter``; the variants are interleaved
round by round after a warm-up, and we report medians over rounds and the median of the paired
per-round ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from _common import load_average, machine_info, write_results
from torch import nn

from stochgrad.entropy import svgd_step
from stochgrad.entropy.svgd import resolve_score
from stochgrad.targets import Gaussian

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "closed_form", "exact")
LOG_DET = {"plain": "none", "closed_form": "closed_form", "exact": "exact"}
MAX_RATIO = 2.0  # issue #5: the closed form costs at most 2x a plain step


def make_target(kind: str, d: int, seed: int):
    """Score function of the ``gaussian`` or ``mlp`` target in d dimensions (float32)."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        a = torch.randn(d, d, generator=gen)
        p = Gaussian(torch.zeros(d), a @ a.T / d + 0.5 * torch.eye(d))
        return p.score
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(d, 256), nn.ELU(), nn.Linear(256, 256), nn.ELU(), nn.Linear(256, 1)
    )
    for q in net.parameters():
        q.requires_grad_(False)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return net(x).squeeze(-1) + 0.5 * x.pow(2).sum(-1)  # a confining, multimodal energy

    return resolve_score(None, energy)


def time_size(kind: str, m: int, d: int, rounds: int, seed: int) -> dict:
    score = make_target(kind, d, seed)
    a = 2 * torch.randn(1, m, d, generator=torch.Generator().manual_seed(seed + 1))
    eps, bandwidth = 0.1, 1.0

    def call(variant: str) -> None:
        svgd_step(a, score, eps, bandwidth, LOG_DET[variant])

    # inner repetitions so that one measurement lasts >= ~20 ms (timer resolution, noise)
    start = time.perf_counter()
    call("plain")
    call("plain")
    one = max((time.perf_counter() - start) / 2, 1e-6)
    inner = max(1, min(200, int(0.02 / one)))
    for variant in VARIANTS:  # warm-up
        for _ in range(2):
            call(variant)
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            t0 = time.perf_counter()
            for _ in range(inner):
                call(variant)
            samples[variant].append((time.perf_counter() - t0) / inner * 1e3)
    med = {v: statistics.median(s) for v, s in samples.items()}
    ratio = {
        f"{v}_over_plain": statistics.median(
            x / p for x, p in zip(samples[v], samples["plain"], strict=True)
        )
        for v in ("closed_form", "exact")
    }
    return {"target": kind, "m": m, "d": d, "inner": inner, "time_ms": med, "ratio": ratio}


def markdown(result: dict) -> str:
    mach, s = result["machine"], result["settings"]
    lines = [
        f"# SVGD step: cost of the tracked log-density ({s['mode']} run)",
        "",
        (
            f"torch {mach['torch']}, {mach['cpu_count']} CPUs, torch.set_num_threads("
            f"{mach['torch_threads']}), float32; one particle set [1, m, d], ε = 0.1, fixed "
            f"bandwidth; medians over {s['rounds']} interleaved rounds after warm-up; ratios are "
            "medians of per-round ratios. `gaussian`: score -Σ⁻¹x (cheapest score); `mlp`: "
            "2 x 256 ELU energy, score by autograd."
        ),
        "",
        (
            "| target | m | d | plain step | + closed form | + exact Jacobian | closed / plain | "
            "exact / plain |"
        ),
        "|" + "---|" * 8,
    ]
    for r in result["rows"]:
        t, q = r["time_ms"], r["ratio"]
        lines.append(
            f"| {r['target']} | {r['m']} | {r['d']} | {t['plain']:.3f} ms | "
            f"{t['closed_form']:.3f} ms | {t['exact']:.3f} ms | "
            f"{q['closed_form_over_plain']:.2f} | {q['exact_over_plain']:.1f} |"
        )
    worst = result["max_closed_form_over_plain"]
    lines += [
        "",
        (
            f"Largest closed-form / plain ratio: **{worst:.2f}** (limit {MAX_RATIO:g}: "
            f"{'pass' if worst <= MAX_RATIO else 'FAIL'}). The closed form adds one column (c·s) to the "
            "kernel matrix product of the plain step and one elementwise pass over the m x m kernel; "
            "the exact log-det needs d backward passes and a d x d determinant per particle."
        ),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 1 minute)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(1)
    load_start = load_average()
    start = time.perf_counter()
    rounds = 5 if args.quick else 15
    rows = []
    for kind in ("gaussian", "mlp"):
        for m in (10, 100, 1000):
            for d in (2, 6, 17):
                row = time_size(kind, m, d, rounds, args.seed)
                rows.append(row)
                t = row["time_ms"]
                print(
                    f"{kind:8s} m={m:4d} d={d:2d}: plain {t['plain']:.3f} ms, closed "
                    f"{t['closed_form']:.3f} ms, exact {t['exact']:.3f} ms",
                    flush=True,
                )
    result = {
        "benchmark": "svgd",
        "settings": {"mode": "quick" if args.quick else "full", "rounds": rounds,
                     "seed": args.seed, "step_size": 0.1, "bandwidth": 1.0, "dtype": "float32"},
        "machine": machine_info(load_start),
        "rows": rows,
        "max_closed_form_over_plain": max(r["ratio"]["closed_form_over_plain"] for r in rows),
        "wall_time_s": time.perf_counter() - start,
    }  # fmt: skip
    write_results(args.out, "svgd", result, markdown(result))


if __name__ == "__main__":
    main()
