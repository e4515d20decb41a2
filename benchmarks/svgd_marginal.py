"""Benchmark: does SVGD's closed-form entropy follow the particles' actual marginal entropy?

002 (S2AC) tracks ``log q^L(a_i^L) = log q^0(a_i^0) - Σ_l ε tr ∇h(a_i^l)`` and reads the policy's
entropy as ``-mean_i log q^L(a_i^L)`` (eq. 11). The policy is the distribution of ONE particle
after L steps, with the initial particles i.i.d. from q^0: the marginal of a particle. We
measure that marginal directly: run ``n_sets`` independent particle sets, keep particle 0 of
each (i.i.d. draws of the marginal, since the dynamics is permutation-equivariant) and estimate
their entropy by the Kozachenko-Leonenko k-nearest-neighbour estimator (k = 4, scipy's
cKDTree) and by a Gaussian fit (an upper bound for a given covariance). The k-NN estimate at
step 0, where the marginal is q^0 with known entropy, calibrates the estimator.

Compared with it, per (target, kernel width, step count), the three ``self_term`` variants of
``stochgrad.entropy.svgd`` (module docstring): ``frozen`` (j = i kept as a frozen particle),
``dropped`` (002's Theorem 3.3, j ≠ i) and ``hessian`` (j ≠ i plus tr ∇s(a_i)/m). One
trajectory per (target, width) serves all three: the particle update does not depend on the
variant, and per step ``dropped = frozen - ε d/(m σ²)``, ``hessian = dropped + ε tr∇s(a_i)/m``
(identities tested in tests/test_svgd_variants.py). The frozen term and the particles come from
``svgd_step``, tr∇s from ``score_jacobian_trace``, σ from ``bandwidth_heuristic``.

Also recorded: the mean move per step in kernel widths over the last tenth of the steps before
each checkpoint, its ratio to the first step's move (``settling``, on which ``svgd`` warns:
below ``SETTLED_FRACTION``), and per variant the drift ratio ``|entropy change per step| / (d ·
movement)`` (median over the last tenth of the steps).

Usage::

    python3 benchmarks/svgd_marginal.py [--quick] [--out benchmarks/results] [--seed 0]

Writes ``svgd_marginal.json`` and ``svgd_marginal.md``; ``benchmarks/svgd.py`` copies the
table into ``svgd.md``. float64, one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import load_average, machine_info, write_results
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from stochgrad.entropy import svgd_step
from stochgrad.entropy.svgd import (
    DEFAULT_SELF_TERM,
    SELF_TERMS,
    SETTLED_FRACTION,
    bandwidth_heuristic,
    score_jacobian_trace,
    squared_distances,
)
from stochgrad.targets import Gaussian, paper_gaussian
from stochgrad.targets.mixture import GaussianMixture

REPO = Path(__file__).resolve().parents[1]
F64 = torch.float64
WIDTHS = (0.5, 1.0, 3.0, 5.0, "median", "authors")
TOLERANCE = 0.2  # nats, issue 9 acceptance 2


def knn_entropy(x: np.ndarray, k: int = 4) -> float:
    """Kozachenko-Leonenko entropy estimate (nats) of i.i.d. samples ``x: [n, d]``."""
    n, d = x.shape
    dist, _ = cKDTree(x).query(x, k + 1)
    log_ball = d / 2 * math.log(math.pi) - gammaln(d / 2 + 1)
    return float(digamma(n) - digamma(k) + log_ball + d * np.mean(np.log(dist[:, -1])))


def gaussian_fit_entropy(x: np.ndarray) -> float:
    """Entropy of the Gaussian with the samples' covariance (an upper bound), nats."""
    d = x.shape[1]
    cov = np.atleast_2d(np.cov(x.T))
    return 0.5 * (d * math.log(2 * math.pi * math.e) + np.linalg.slogdet(cov)[1])


def random_cov(d: int, seed: int, lo: float = 0.3, hi: float = 3.0) -> torch.Tensor:
    """Random rotation of diag(eigenvalues log-spaced in [lo, hi])."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=F64, generator=g))
    ev = torch.exp(torch.linspace(math.log(lo), math.log(hi), d, dtype=F64))
    return q @ torch.diag(ev) @ q.T


class Mixture2D(GaussianMixture):
    """0.5 N((-1.5, 0), 0.8² I) + 0.5 N((1.5, 0), 0.8² I); entropy by Monte Carlo."""

    def __init__(self) -> None:
        super().__init__(torch.tensor([[-1.5, 0.0], [1.5, 0.0]], dtype=F64), 0.8)

    def entropy(self) -> float:
        x = self.sample(400_000, generator=torch.Generator().manual_seed(123))
        return float(-self.log_prob(x).mean())


def make_targets() -> dict:
    return {
        "gauss1d": Gaussian(torch.tensor([0.5], dtype=F64), torch.tensor([[2.0]], dtype=F64)),
        "paper2d": paper_gaussian(),
        "mix2d": Mixture2D(),
        "gauss3d": Gaussian(torch.zeros(3, dtype=F64), random_cov(3, 3)),
        "gauss6d": Gaussian(torch.zeros(6, dtype=F64), random_cov(6, 6)),
    }


def run_one(name, target, width, m, n_sets, eps, init_var, checkpoints, seed) -> list[dict]:
    """One trajectory of ``n_sets`` sets; a row per checkpoint."""
    d = target.dim
    gen = torch.Generator().manual_seed(seed)
    a = math.sqrt(init_var) * torch.randn(n_sets, m, d, dtype=F64, generator=gen)
    lp0 = -0.5 * a.pow(2).sum(-1) / init_var - 0.5 * d * math.log(2 * math.pi * init_var)
    h_q0 = 0.5 * d * math.log(2 * math.pi * math.e * init_var)
    total = {v: torch.zeros(n_sets, m, dtype=F64) for v in SELF_TERMS}
    change = {v: [] for v in SELF_TERMS}  # per step, [n_sets]
    moves: list[torch.Tensor] = []
    sigmas: list[float] = []
    rows = []
    for step in range(max(checkpoints) + 1):
        if step in checkpoints:
            x0 = a[:, 0, :].numpy()
            tail = slice(len(moves) - max(1, len(moves) // 10), None) if moves else None
            row = {
                "target": name, "d": d, "m": m, "width": str(width), "steps": step,
                "h_target": target.entropy(), "h_knn": knn_entropy(x0),
                "h_gauss_fit": gaussian_fit_entropy(x0),
                "sigma": statistics.fmean(sigmas[-10:]) if sigmas else float("nan"),
                "move_per_step": float(torch.stack(moves[tail]).mean()) if moves else 0.0,
                "first_move": float(moves[0].mean()) if moves else 0.0,
            }  # fmt: skip
            if step == 0:
                row["h_q0"] = h_q0
            for v in SELF_TERMS:
                row[f"est.{v}"] = float((total[v] - lp0).mean())
                if moves:
                    ch, mv = torch.stack(change[v][tail]), torch.stack(moves[tail])
                    ratio = (ch.abs() / (d * mv)).median(0).values
                    row[f"drift_ratio.{v}"] = float(ratio.median())
            rows.append(row)
        if step == max(checkpoints):
            break
        r2 = squared_distances(a)
        sigma = bandwidth_heuristic(r2, width) if isinstance(width, str) else torch.full(
            (n_sets,), float(width), dtype=F64)  # fmt: skip
        new, ld = svgd_step(a, target.score, eps, width, "closed_form", self_term="frozen")
        _, score_tr = score_jacobian_trace(target.score, a)
        self_frozen = eps * d / (m * sigma.view(-1, 1) ** 2)
        lds = {"frozen": ld, "dropped": ld - self_frozen}
        lds["hessian"] = lds["dropped"] + eps * score_tr / m
        for v in SELF_TERMS:
            total[v] = total[v] + lds[v]
            change[v].append(lds[v].mean(-1))
        moves.append((new - a).norm(dim=-1).mean(-1) / sigma)
        sigmas.append(float(sigma.mean()))
        a = new
    return rows


def settling(row: dict) -> float:
    """Mean move per step over the last tenth of the steps / the first step's (means over sets;
    ``svgd`` uses the median over sets of the per-set ratio)."""
    return row["move_per_step"] / row["first_move"]


def summary(rows: list[dict]) -> dict:
    """Per variant: largest |estimate - marginal (kNN)| over all rows after step 0, rows within
    the tolerance, and the same over the rows where ``svgd`` would not warn (settling >=
    ``SETTLED_FRACTION``)."""
    out = {}
    for v in SELF_TERMS:
        err = [abs(r[f"est.{v}"] - r["h_knn"]) for r in rows if r["steps"] > 0]
        ok = [
            abs(r[f"est.{v}"] - r["h_knn"])
            for r in rows
            if r["steps"] > 0 and settling(r) >= SETTLED_FRACTION
        ]
        out[v] = {
            "max_abs_err_all": max(err),
            "rows_all": len(err),
            "rows_within_tolerance": sum(e <= TOLERANCE for e in err),
            "max_abs_err_unwarned": max(ok) if ok else None,
            "rows_unwarned": len(ok),
            "rows_unwarned_within_tolerance": sum(e <= TOLERANCE for e in ok),
        }
    return out


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = [
        f"## Closed-form SVGD entropy against the particles' marginal entropy ({s['mode']} run)",
        "",
        (
            f"{s['n_sets']} independent particle sets of m particles per (target, width); ε = "
            f"{s['step_size']}, q^0 = N(0, {s['init_variance']} I); float64; seed {s['seed']}. "
            "`marginal (kNN)`: Kozachenko-Leonenko estimate (k = 4) on particle 0 of every set "
            "(i.i.d. draws of one particle's marginal; its error at step 0, where the marginal "
            "is q^0, is shown as `exact`); `gauss fit`: entropy of a Gaussian with their "
            "covariance (an upper bound). Variant columns: estimate -mean log q^L minus the kNN "
            "value (nats). `move`: mean move per step in kernel widths over the last tenth of "
            "the steps; `settling`: that move over the first step's; `svgd` warns below "
            f"{SETTLED_FRACTION:g} (marked *). Widths: fixed σ, `median` (Liu & Wang), "
            "`authors` (S2AC code, σ² = mean r²/(4 log(m+1))). Library default variant: "
            f"`{DEFAULT_SELF_TERM}`."
        ),
        "",
        (
            "| target | m | width | L | σ | move | settling | H target | marginal (kNN) | "
            "gauss fit | frozen - kNN | dropped - kNN | hessian - kNN |"
        ),
        "|" + "---|" * 13,
    ]
    for r in result["rows"]:
        if r["steps"] == 0:
            lines.append(
                f"| {r['target']} | {r['m']} | - | 0 | - | - | - | {r['h_target']:.2f} | "
                f"{r['h_knn']:.2f} (exact {r['h_q0']:.2f}) | {r['h_gauss_fit']:.2f} | | | |"
            )
            continue
        q = settling(r)
        star = "*" if q < SETTLED_FRACTION else ""
        errs = [f"{r[f'est.{v}'] - r['h_knn']:+.2f}" for v in SELF_TERMS]
        lines.append(
            f"| {r['target']} | {r['m']} | {r['width']} | {r['steps']} | {r['sigma']:.2f} | "
            f"{r['move_per_step']:.1e} | {q:.2f}{star} | {r['h_target']:.2f} | "
            f"{r['h_knn']:.2f} | {r['h_gauss_fit']:.2f} | " + " | ".join(errs) + " |"
        )
    head = (
        "| variant | rows | max abs err | rows within 0.2 | rows unwarned | unwarned within 0.2 "
        "| max abs err unwarned |"
    )
    lines += ["", head, "|---|---|---|---|---|---|---|"]
    for v, q in result["summary"].items():
        unw = q["max_abs_err_unwarned"]
        lines.append(
            f"| {v} | {q['rows_all']} | {q['max_abs_err_all']:.2f} | "
            f"{q['rows_within_tolerance']} | {q['rows_unwarned']} | "
            f"{q['rows_unwarned_within_tolerance']} | {'n/a' if unw is None else f'{unw:.2f}'} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 sets, 2 targets, <= 300 steps")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--targets", default=None, help="comma-separated subset")
    parser.add_argument(
        "--render",
        type=Path,
        default=None,
        help="re-render this finished svgd_marginal.json with the current warning rule (adds "
        "the first step's move to rows of runs that did not record it: one step per width)",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    load_start, start = load_average(), time.perf_counter()
    targets = make_targets()
    eps, init_var = 0.1, 4.0
    if args.render:
        result = json.loads(args.render.read_text())
        s = result["settings"]
        names = list(dict.fromkeys(r["target"] for r in result["rows"]))
        for i, (name, m) in enumerate(_cells(names)):
            for width in WIDTHS:
                todo = [r for r in result["rows"] if r["target"] == name and r["m"] == m
                        and r["width"] == str(width) and "first_move" not in r]  # fmt: skip
                if todo:
                    first = run_one(name, targets[name], width, m, s["n_sets"], s["step_size"],
                                    s["init_variance"], (0, 1), s["seed"] + 100 * i)[1]  # fmt: skip
                    for r in todo:
                        r["first_move"] = first["move_per_step"]
        result["settings"].update(settled_fraction=SETTLED_FRACTION, tolerance=TOLERANCE)
        result["default_self_term"] = DEFAULT_SELF_TERM
        result["summary"] = summary(result["rows"])
        write_results(args.out, "svgd_marginal", result, markdown(result))
        return
    names = args.targets.split(",") if args.targets else list(targets)
    if args.quick:
        names, n_sets, checkpoints = names[:2], 200, (0, 10, 100, 300)
    else:
        n_sets, checkpoints = 1000, (0, 10, 30, 100, 300, 1000)
    rows = []
    for i, (name, m) in enumerate(_cells(names)):
        for j, width in enumerate(WIDTHS):
            t0 = time.perf_counter()
            new = run_one(name, targets[name], width, m, n_sets, eps, init_var,
                          checkpoints, args.seed + 100 * i)  # fmt: skip
            rows += new if j == 0 else new[1:]  # one step-0 (q^0) row per target
            print(f"{name} m={m} width={width}: {time.perf_counter() - t0:.0f} s", flush=True)
    result = {
        "benchmark": "svgd_marginal",
        "settings": {"mode": "quick" if args.quick else "full", "n_sets": n_sets,
                     "step_size": eps, "init_variance": init_var, "seed": args.seed,
                     "checkpoints": list(checkpoints), "knn_k": 4, "dtype": "float64",
                     "settled_fraction": SETTLED_FRACTION, "tolerance": TOLERANCE},
        "default_self_term": DEFAULT_SELF_TERM,
        "machine": machine_info(load_start),
        "rows": rows,
        "summary": summary(rows),
        "wall_time_s": time.perf_counter() - start,
    }  # fmt: skip
    write_results(args.out, "svgd_marginal", result, markdown(result))


def _cells(names: list[str]) -> list[tuple[str, int]]:
    """(target, m) per cell: m = 50 for each target, and m = 10 for gauss6d (S2AC's m)."""
    return [(n, 50) for n in names] + ([("gauss6d", 10)] if "gauss6d" in names else [])


def load_markdown(out: Path) -> str | None:
    """The table of a finished run, for ``benchmarks/svgd.py``'s ``svgd.md``."""
    path = out / "svgd_marginal.json"
    return markdown(json.loads(path.read_text())) if path.exists() else None


if __name__ == "__main__":
    main()
