"""Benchmark: cost of tracking the SVGD log-density (paper 002, Theorems 3.1 and 3.3).

Time of one SVGD step (fixed bandwidth) in five variants, measured side by side in this process:

- ``plain``: ``stochgrad.entropy.svgd_step`` with the update only (``log_det="none"``);
- ``closed_form``: ``svgd_step`` with the closed-form log-determinant of 002's Theorem 3.3
  (``self_term="dropped"``; ``"frozen"`` costs the same);
- ``hessian``: the closed form with ``self_term="hessian"`` (the library default), which adds
  ``tr ∇s(a_i)`` by ``d`` autograd passes through the score;
- ``exact``: ``svgd_step`` with ``log|det(I + ε ∇h)|`` from the autograd Jacobian (``d``
  vectorized backward passes through the kernel, then ``slogdet``; ``self_term="dropped"``);
- ``hand``: the same update written by hand in plain PyTorch, as a user would (Gram-matrix
  distances, ``exp``, two kernel products), no log-density;
- ``hand_clamped``: ``hand`` with the kernel exponent clamped at -87 before ``exp`` (no float32
  subnormals): the fastest plain step we know how to write, the limit.

for one particle set ``[1, m, d]`` with m in {10, 100, 1000} and d in {2, 6, 17}, and the RL
shape ``[256, 10, 6]`` (S2AC: 256 states, m = 10 particles, 6-D actions), on two targets: a
Gaussian with a random covariance (score ``-Σ⁻¹ x``: the cheapest score, so the log-density's
overhead is largest) and an S2AC-like energy, a 2 x 256 ELU MLP whose score comes from autograd
(``energy=``). The goal (issue 9): ``closed_form`` within 1.3x of the faster hand-written step.

Usage::

    python3 benchmarks/svgd.py [--quick] [--out benchmarks/results] [--seed 0] [--render]

Writes ``svgd.json`` and ``svgd.md`` under ``--out`` and prints the markdown. All timings use
``torch.set_num_threads(1)``, float32 and ``time.perf_counter``; the variants are interleaved
round by round after a warm-up, and we report medians over rounds and the median of the paired
per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _common import fmt_num, load_average, machine_info, write_results
from svgd_marginal import load_markdown
from torch import nn

from stochgrad.entropy import svgd_step
from stochgrad.entropy.svgd import DEFAULT_SELF_TERM, resolve_score, squared_distances
from stochgrad.targets import Gaussian

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("plain", "closed_form", "hessian", "exact", "hand", "hand_clamped")
LOG_DET = {
    "plain": "none",
    "closed_form": "closed_form",
    "hessian": "closed_form",
    "exact": "exact",
}
SELF_TERM = {"plain": "dropped", "closed_form": "dropped", "hessian": "hessian", "exact": "dropped"}
MAX_RATIO = 1.3  # issue 9: a closed-form step costs at most 1.3x a hand-written plain step
SHAPES = [(1, m, d) for m in (10, 100, 1000) for d in (2, 6, 17)] + [(256, 10, 6)]


def hand_step(a: torch.Tensor, score, eps: float, sigma: float, clamp: bool) -> torch.Tensor:
    """One plain SVGD step written by hand: a_i + ε/m Σ_j [k_ij s_j + k_ij (a_i - a_j)/σ²]."""
    s = score(a)
    sq = a.pow(2).sum(-1, keepdim=True)
    r2 = (sq + sq.transpose(-1, -2) - 2 * a @ a.transpose(-1, -2)).clamp_min(0)
    e = r2 * (-0.5 / sigma**2)
    k = torch.exp(e.clamp_min(-87.0) if clamp else e)
    h = k @ s + (a * k.sum(-1, keepdim=True) - k @ a) / sigma**2
    return a + (eps / a.shape[-2]) * h


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


def time_size(kind: str, shape: tuple[int, int, int], rounds: int, seed: int) -> dict:
    batch, m, d = shape
    score = make_target(kind, d, seed)
    a = 2 * torch.randn(batch, m, d, generator=torch.Generator().manual_seed(seed + 1))
    eps, bandwidth = 0.1, 1.0

    def call(variant: str) -> torch.Tensor:
        if variant.startswith("hand"):
            return hand_step(a, score, eps, bandwidth, clamp=variant == "hand_clamped")
        return svgd_step(a, score, eps, bandwidth, LOG_DET[variant], self_term=SELF_TERM[variant])[
            0
        ]

    same = (call("closed_form") - call("hand_clamped")).abs().max().item()
    subnormal = ((squared_distances(a) / (2 * bandwidth**2)) > 87.3).float().mean().item()
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
    med = {v: statistics.median(x) for v, x in samples.items()}

    def ratio(num: str, den: str) -> float:
        return statistics.median(x / y for x, y in zip(samples[num], samples[den], strict=True))

    best_hand = "hand_clamped" if med["hand_clamped"] <= med["hand"] else "hand"
    return {
        "target": kind, "shape": list(shape), "inner": inner, "time_ms": med,
        "ratio": {"closed_form_over_plain": ratio("closed_form", "plain"),
                  "exact_over_plain": ratio("exact", "plain"),
                  "hessian_over_closed_form": ratio("hessian", "closed_form"),
                  "hessian_over_hand_best": ratio("hessian", best_hand),
                  "plain_over_hand_best": ratio("plain", best_hand),
                  "closed_form_over_hand": ratio("closed_form", "hand"),
                  "closed_form_over_hand_clamped": ratio("closed_form", "hand_clamped"),
                  "closed_form_over_hand_best": ratio("closed_form", best_hand)},
        "kernel_exponents_below_-87": subnormal,
        "max_abs_diff_update_vs_hand_clamped": same,
    }  # fmt: skip


def markdown(result: dict, marginal: str | None = None) -> str:
    mach, s = result["machine"], result["settings"]
    load = mach["load_average_1min"]
    lines = [
        f"# SVGD: cost of the tracked log-density and its accuracy ({s['mode']} run)",
        "",
        "## Speed of one step against a hand-written plain step",
        "",
        (
            f"torch {mach['torch']}, {mach['cpu_count']} CPUs, torch.set_num_threads("
            f"{mach['torch_threads']}), float32; particles [batch, m, d], ε = 0.1, fixed "
            f"bandwidth σ = 1; medians over {s['rounds']} interleaved rounds after warm-up; "
            "ratios are medians of per-round ratios. `gaussian`: score -Σ⁻¹x (cheapest score); "
            "`mlp`: 2 x 256 ELU energy, score by autograd. `hand`: the plain update written by "
            "hand; `hand_clamped`: the same with the kernel exponent clamped before exp; `best` "
            "is the faster of the two. `< -87`: share of kernel exponents that give float32 "
            f"subnormals without the clamp. The machine is shared and loaded (1-min load average "
            f"{fmt_num(load['start'])} at start, {fmt_num(load['end'])} at the end, on "
            f"{mach['cpu_count']} cores shared with other jobs): absolute times are noisy, the "
            "paired per-round ratios less so."
        ),
        "",
        (
            "| target | shape | plain (ours) | closed form | hessian | exact | hand | hand clamped "
            "| < -87 | plain / best hand | closed / hand | closed / best hand | hessian / best hand "
            "| exact / plain |"
        ),
        "|" + "---|" * 14,
    ]
    for r in result["rows"]:
        t, q = r["time_ms"], r["ratio"]
        lines.append(
            f"| {r['target']} | {r['shape']} | {t['plain']:.3f} ms | {t['closed_form']:.3f} ms | "
            f"{t['hessian']:.3f} ms | {t['exact']:.3f} ms | {t['hand']:.3f} ms | "
            f"{t['hand_clamped']:.3f} ms | {r['kernel_exponents_below_-87']:.0%} | "
            f"{q['plain_over_hand_best']:.2f} | {q['closed_form_over_hand']:.2f} | "
            f"**{q['closed_form_over_hand_best']:.2f}** | {q['hessian_over_hand_best']:.2f} | "
            f"{q['exact_over_plain']:.1f} |"
        )
    worst = result["max_closed_form_over_hand_best"]
    n_over = sum(r["ratio"]["closed_form_over_hand_best"] > MAX_RATIO for r in result["rows"])
    verdict = "met" if worst <= MAX_RATIO else f"missed at {n_over} of {len(result['rows'])} shapes"
    lines += [
        "",
        (
            f"Largest closed-form / best hand-written ratio: **{worst:.2f}** (goal {MAX_RATIO:g}: "
            f"{verdict}). Our step clamps the kernel exponent at 0.9 log(tiny) of the dtype "
            "(no subnormals), builds the kernel in place from one baddbmm when no gradient is "
            "needed, and takes the update and the trace from one product k @ [s - c/σ², c, "
            "c·(s - c/σ²)] and the row sums of k (c: centred particles). At m = 10 a step is "
            "about 20 small tensor operations against the hand-written step's 17, a few "
            "microseconds each on this machine, so the smallest shapes carry the per-operation "
            "overhead of the log-density and the centring. The `hessian` variant (the library "
            "default, chosen for accuracy in svgd_marginal below) adds d autograd passes through "
            "the score (double backward for an energy), which the 1.3x goal does not cover."
        ),
        "",
    ]
    if marginal:
        lines += [marginal, ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 1 minute)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite svgd.md from svgd.json and svgd_marginal.json (no timing)",
    )
    args = parser.parse_args()
    if args.render:
        result = json.loads((args.out / "svgd.json").read_text())
        write_results(args.out, "svgd", result, markdown(result, load_markdown(args.out)))
        return

    torch.set_num_threads(1)
    load_start = load_average()
    start = time.perf_counter()
    rounds = 5 if args.quick else 15
    rows = []
    for kind in ("gaussian", "mlp"):
        for shape in SHAPES:
            row = time_size(kind, shape, rounds, args.seed)
            rows.append(row)
            t = row["time_ms"]
            print(
                f"{kind:8s} {shape}: plain {t['plain']:.3f} ms, closed {t['closed_form']:.3f} ms, "
                f"hand {t['hand']:.3f} / {t['hand_clamped']:.3f} ms",
                flush=True,
            )
    result = {
        "benchmark": "svgd",
        "settings": {"mode": "quick" if args.quick else "full", "rounds": rounds,
                     "seed": args.seed, "step_size": 0.1, "bandwidth": 1.0, "dtype": "float32",
                     "self_term": SELF_TERM, "default_self_term": DEFAULT_SELF_TERM},
        "machine": machine_info(load_start),
        "rows": rows,
        "max_closed_form_over_hand_best": max(
            r["ratio"]["closed_form_over_hand_best"] for r in rows),
        "wall_time_s": time.perf_counter() - start,
    }  # fmt: skip
    write_results(args.out, "svgd", result, markdown(result, load_markdown(args.out)))


if __name__ == "__main__":
    main()
