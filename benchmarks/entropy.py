"""Benchmark: cost of AR-DAE entropy gradients and AR-DAE score error versus training steps.

Two measurements, in one process (paper 000, AR-DAE):

1. Cost (000 App. E.1 energy fitting, and the 10-D maximum-entropy sizes of section 6.4):
   an ``ImplicitSampler(d, noise_dim=10, hidden=(256, 256, 256))`` and an
   ``ARDAE(d, hidden=(256, 256, 256), delta=0.1, n_sigma=10)`` in the residual and the
   gradient parameterization.  Per setting, interleaved round by round:
   (a) one sampler forward + backward pass (``sampler.sample(B).sum().backward()``),
   (b) one AR-DAE update (loss + backward + Adam step on a drawn batch of B samples),
   (c) one entropy-surrogate gradient: sample, ``ardae.score(x)``, ``entropy_surrogate`` and
   its backward through the sampler, and (s) ``ardae.score`` alone.  Reported: medians and the
   median over rounds of the paired ratios (b)/(a), (c)/(a), (s)/(a).
2. Error versus training steps: AR-DAE on ``two_gaussians_1d()`` (000 section 4.2 / Fig. 3,
   App. D.1: gradient parameterization, softplus MLP, δ = 0.05, n_σ = 10, batch 256, Adam lr
   1e-3 halved every 1k steps) with E_p|∇log p - f(x; σ=0)| over 1000 fixed samples, and on a
   2-D mixture (4 Gaussians at (±2, 0), (0, ±2), std 0.8; E.1's residual parameterization and
   δ = 0.1) with the relative error E||f - ∇log p|| / E||∇log p||.  Peer: plain denoising score
   matching at a fixed σ = δ (``ResidualDAE``, same network and schedule) at the same steps;
   also AR-DAE with antithetic noise pairs.  References: the optimal f*(x; σ = δ)
   (``optimal_dae``), the floor a single-σ DAE can reach, and the σ-blind limit
   (``sigma_blind_dae``), where an AR-DAE that ignores its σ input converges.

Usage::

    python3 benchmarks/entropy.py [--quick] [--out benchmarks/results] [--seed 0]

Writes ``entropy.json``, ``entropy.md`` and ``entropy_error_vs_steps.png`` under ``--out`` and
prints the markdown.  All timings use ``torch.set_num_threads(1)`` and ``time.perf_counter``
after a warm-up; training runs single-threaded too.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from _common import fmt_num, load_average, machine_info, write_results

from stochgrad.entropy import (
    ARDAE,
    ResidualDAE,
    entropy_surrogate,
    optimal_dae,
    sigma_blind_dae,
)
from stochgrad.samplers import ImplicitSampler
from stochgrad.targets.mixture import GaussianMixture, two_gaussians_1d

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run; ``full()`` and ``quick()`` are the two presets."""

    mode: str
    """"full" or "quick"."""
    seed: int = 0
    """Seed of every random draw."""
    cost_settings: tuple[tuple[int, int], ...] = ((2, 256), (2, 1024), (10, 128))
    """(d, batch) pairs for the cost measurement; each in both parameterizations."""
    cost_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the sampler and the AR-DAE in the cost measurement (000 App. E.1)."""
    noise_dim: int = 10
    """d_ε of the implicit sampler (000 App. E.1)."""
    cost_delta: float = 0.1
    """AR-DAE δ in the cost measurement (000 App. E.1)."""
    n_sigma: int = 10
    """σ draws per sample per AR-DAE update."""
    cost_repeats: int = 15
    """Timed rounds per setting (median reported); each round times (a), (b), (c), (s)."""
    cost_warmup: int = 3
    """Untimed rounds before timing."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the DAEs in the error-vs-steps runs (000 App. D.1)."""
    steps_1d: tuple[int, ...] = (0, 100, 250, 500, 1000, 2000, 5000)
    """Training steps at which the 1-D error is logged (the last is the training length)."""
    steps_2d: tuple[int, ...] = (0, 100, 250, 500, 1000, 2000, 5000)
    """Training steps at which the 2-D error is logged."""
    delta_1d: float = 0.05
    """AR-DAE δ and ResidualDAE σ on the 1-D mixture (000 App. D.1)."""
    delta_2d: float = 0.1
    """AR-DAE δ and ResidualDAE σ on the 2-D mixture (000 App. E.1)."""
    batch: int = 256
    """Samples of p per training step."""
    lr: float = 1e-3
    """Initial Adam learning rate."""
    lr_halve_every: int = 1000
    """Halve the learning rate every this many steps."""
    eval_samples: int = 1000
    """Fixed samples of p for the expected error."""

    @staticmethod
    def full(seed: int = 0) -> BenchConfig:
        return BenchConfig("full", seed)

    @staticmethod
    def quick(seed: int = 0) -> BenchConfig:
        return BenchConfig(
            "quick",
            seed,
            cost_repeats=5,
            cost_warmup=1,
            hidden=(64, 64),
            steps_1d=(0, 100, 250, 500, 1000),
            steps_2d=(0, 100, 250, 500, 1000),
        )


def mixture_2d() -> GaussianMixture:
    """4 equally weighted Gaussians at (±2, 0), (0, ±2), std 0.8."""
    means = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    return GaussianMixture(means, 0.8)


# ================================================================================================
# 1. cost
# ================================================================================================


def cost_row(cfg: BenchConfig, d: int, batch: int, parameterization: str) -> dict:
    torch.manual_seed(cfg.seed)
    sampler = ImplicitSampler(d, noise_dim=cfg.noise_dim, hidden=cfg.cost_hidden)
    ardae = ARDAE(
        d,
        hidden=cfg.cost_hidden,
        parameterization=parameterization,
        delta=cfg.cost_delta,
        n_sigma=cfg.n_sigma,
    )
    opt = torch.optim.Adam(ardae.parameters(), lr=1e-3, betas=(0.5, 0.999))  # 000 App. E.1
    with torch.no_grad():
        x_fixed = sampler.sample(batch)

    def sampler_pass() -> None:  # (a)
        sampler.zero_grad(set_to_none=True)
        sampler.sample(batch).sum().backward()

    def ardae_update() -> None:  # (b)
        loss = ardae.loss(x_fixed)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def surrogate_pass() -> None:  # (c)
        sampler.zero_grad(set_to_none=True)
        x = sampler.sample(batch)
        entropy_surrogate(x, ardae.score(x)).backward()

    def score_only() -> None:  # (s)
        ardae.score(x_fixed)

    fns = {"a": sampler_pass, "b": ardae_update, "c": surrogate_pass, "s": score_only}
    for _ in range(cfg.cost_warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(cfg.cost_repeats):  # interleaved: each round sees the same machine load
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    t = {k: np.array(v) for k, v in times.items()}
    return {
        "d": d,
        "batch": batch,
        "parameterization": parameterization,
        "time_ms": {k: float(np.median(v)) * 1e3 for k, v in t.items()},
        "ratio": {f"{k}_over_a": float(np.median(t[k] / t["a"])) for k in ("b", "c", "s")},
        "repeats": cfg.cost_repeats,
    }


def run_cost(cfg: BenchConfig) -> list[dict]:
    # process-wide warm-up (allocator, dispatcher, autograd) before any timing
    cost_row(BenchConfig("warmup", cfg.seed, cost_repeats=1, cost_warmup=1), 2, 64, "gradient")
    rows = []
    for d, batch in cfg.cost_settings:
        for par in ("residual", "gradient"):
            rows.append(cost_row(cfg, d, batch, par))
            r = rows[-1]
            print(
                f"  cost d={d} B={batch} {par}: (b)/(a) {r['ratio']['b_over_a']:.1f}, "
                f"(c)/(a) {r['ratio']['c_over_a']:.2f}",
                flush=True,
            )
    return rows


# ================================================================================================
# 2. error versus training steps
# ================================================================================================


def score_error(
    score: torch.Tensor, x: torch.Tensor, mixture: GaussianMixture, relative: bool
) -> float:
    """E_p|∇log p - f| (1-D) or E||f - ∇log p|| / E||∇log p|| (``relative``) on samples x."""
    true = mixture.score(x)
    diff = (score.double() - true).norm(dim=-1).mean().item()
    return diff / true.norm(dim=-1).mean().item() if relative else diff


def train_curve(
    model: torch.nn.Module,
    cfg: BenchConfig,
    mixture: GaussianMixture,
    x_eval: torch.Tensor,
    steps: tuple[int, ...],
    relative: bool,
    seed: int,
) -> dict:
    """Train ``model`` with Adam (lr halved every ``lr_halve_every``), logging the error."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_halve_every, gamma=0.5)
    errors, train_time, done = {}, 0.0, 0
    for target in sorted(steps):
        t0 = time.perf_counter()
        for _ in range(target - done):
            loss = model.loss(mixture.sample(cfg.batch).float())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"DAE loss is {loss.item()} during training")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        train_time += time.perf_counter() - t0
        done = target
        errors[str(target)] = score_error(model.score(x_eval.float()), x_eval, mixture, relative)
    return {
        "errors": errors,
        "train_time_s": train_time,
        "ms_per_step": train_time / max(done, 1) * 1e3,
    }


PROBLEMS = ("mog1d", "mog2d")
MODELS = ("ardae", "ardae_antithetic", "resdae")


def problem(cfg: BenchConfig, key: str) -> dict:
    """Mixture, δ, parameterization, logged steps and metric of one error-vs-steps problem."""
    if key == "mog1d":
        return {
            "mixture": two_gaussians_1d(),
            "delta": cfg.delta_1d,
            "parameterization": "gradient",
            "steps": cfg.steps_1d,
            "relative": False,
            "index": 0,
            "description": "p = 0.5 N(2, 0.5²) + 0.5 N(-2, 0.5²) (000 section 4.2, Fig. 3)",
            "metric": "E_p|∇log p(x) - f(x)|",
        }
    return {
        "mixture": mixture_2d(),
        "delta": cfg.delta_2d,
        "parameterization": "residual",
        "steps": cfg.steps_2d,
        "relative": True,
        "index": 1,
        "description": "4 equally weighted Gaussians at (±2, 0), (0, ±2), std 0.8",
        "metric": "E||f(x) - ∇log p(x)|| / E||∇log p(x)||",
    }


def eval_samples(cfg: BenchConfig, prob: dict) -> torch.Tensor:
    gen = torch.Generator().manual_seed(cfg.seed + 1000 + prob["index"])
    return prob["mixture"].sample(cfg.eval_samples, generator=gen)


def make_model(cfg: BenchConfig, prob: dict, name: str) -> torch.nn.Module:
    torch.manual_seed(cfg.seed + 10 * prob["index"])  # same initial MLP up to the σ input
    d, delta, par = prob["mixture"].dim, prob["delta"], prob["parameterization"]
    if name.startswith("ardae"):
        return ARDAE(
            d,
            hidden=cfg.hidden,
            activation="softplus",
            parameterization=par,
            delta=delta,
            n_sigma=cfg.n_sigma,
            antithetic=name == "ardae_antithetic",
        )
    return ResidualDAE(d, delta, hidden=cfg.hidden, activation="softplus", parameterization=par)


def error_job(cfg: BenchConfig, key: str, name: str) -> tuple[str, str, dict]:
    """One training run (also the body of a worker process)."""
    torch.set_num_threads(1)
    prob = problem(cfg, key)
    out = train_curve(
        make_model(cfg, prob, name),
        cfg,
        prob["mixture"],
        eval_samples(cfg, prob),
        prob["steps"],
        prob["relative"],
        cfg.seed + 10 * prob["index"] + 1,
    )
    print(
        f"  {key} {name}: "
        + ", ".join(f"{s}: {e:.4f}" for s, e in out["errors"].items())
        + f" ({out['train_time_s']:.0f} s)",
        flush=True,
    )
    return key, name, out


def step_cost(cfg: BenchConfig, prob: dict, rounds: int = 10, warmup: int = 2) -> dict:
    """ms per training step of AR-DAE and ResidualDAE, interleaved in this process."""
    models = {name: make_model(cfg, prob, name) for name in MODELS}
    opts = {name: torch.optim.Adam(m.parameters(), lr=cfg.lr) for name, m in models.items()}
    x = prob["mixture"].sample(cfg.batch).float()
    times: dict[str, list[float]] = {name: [] for name in MODELS}
    for r in range(warmup + rounds):
        for name, model in models.items():
            t0 = time.perf_counter()
            loss = model.loss(x)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            if r >= warmup:
                times[name].append(time.perf_counter() - t0)
    med = {name: float(np.median(v)) * 1e3 for name, v in times.items()}
    return {
        "ms_per_step": med,
        "ardae_over_resdae": float(np.median(np.array(times["ardae"]) / np.array(times["resdae"]))),
    }


def run_errors(cfg: BenchConfig, jobs: int) -> dict:
    out = {}
    for key in PROBLEMS:
        prob = problem(cfg, key)
        x_eval = eval_samples(cfg, prob)
        fstar = score_error(
            optimal_dae(x_eval, prob["delta"], prob["mixture"]),
            x_eval,
            prob["mixture"],
            prob["relative"],
        )
        blind = score_error(
            sigma_blind_dae(x_eval, prob["delta"], prob["mixture"]),
            x_eval,
            prob["mixture"],
            prob["relative"],
        )
        out[key] = {k: prob[k] for k in ("description", "metric", "delta", "parameterization")}
        out[key].update(
            dim=prob["mixture"].dim,
            steps=list(prob["steps"]),
            fstar_at_delta=fstar,
            sigma_blind_at_delta=blind,
            step_cost=step_cost(cfg, prob),
            models={},
        )
    # longest runs first: the 1-D AR-DAE (double backward on B·n_σ rows) dominates
    order = [(k, n) for n in MODELS for k in PROBLEMS]
    if jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            results = [f.result() for f in [pool.submit(error_job, cfg, k, n) for k, n in order]]
    else:
        results = [error_job(cfg, k, n) for k, n in order]
    for key, name, res in results:
        out[key]["models"][name] = res
    for key in PROBLEMS:  # fixed order in the JSON
        out[key]["models"] = {n: out[key]["models"][n] for n in MODELS}
    return out


def plot_errors(errors: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, len(errors), figsize=(5.2 * len(errors), 4))
    labels = {
        "ardae": "AR-DAE f(x; σ=0)",
        "ardae_antithetic": "AR-DAE, antithetic u, f(x; σ=0)",
        "resdae": "ResidualDAE (DSM) at σ = δ",
    }
    colors = {"ardae": "tab:red", "ardae_antithetic": "tab:green", "resdae": "tab:blue"}
    for ax, (key, prob) in zip(np.atleast_1d(axes), errors.items()):
        for name, model in prob["models"].items():
            steps = [int(s) for s in model["errors"] if int(s) > 0]
            ax.plot(
                steps,
                [model["errors"][str(s)] for s in steps],
                marker="o",
                ms=3,
                color=colors[name],
                label=labels[name],
            )
            if "0" in model["errors"]:
                ax.axhline(
                    model["errors"]["0"],
                    color=colors[name],
                    lw=0.7,
                    ls=":",
                    label=f"{name} at initialization",
                )
        for key, color, ls, label in (
            ("fstar_at_delta", "k", "--", f"optimal f*(x; σ = δ = {prob['delta']})"),
            ("sigma_blind_at_delta", "0.4", "-.", "σ-blind AR-DAE limit (σ²-weighted f*)"),
        ):
            ax.axhline(prob[key], color=color, ls=ls, lw=1, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training steps")
        ax.set_ylabel(prob["metric"])
        ax.set_title(f"{key}: {prob['parameterization']} param., δ = {prob['delta']}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ================================================================================================
# output
# ================================================================================================

PEER_NOTE = (
    "No installable peer library: `kscore` (spectral Stein score estimator, Shi et al. "
    "2018) is not on PyPI (`pip download --no-deps kscore`: no matching distribution), "
    "and no PyPI package for score estimation of implicit distributions was found in the "
    "package lists. The standard approach, denoising score matching at one fixed small "
    "σ (stochgrad's `ResidualDAE`, the paper's resDAE), is the peer here."
)


def markdown(result: dict) -> str:
    m, s = result["machine"], result["settings"]
    lines = [
        f"# AR-DAE: cost and score error ({s['mode']} run)",
        "",
        (
            f"torch {m['torch']}, {m['cpu_count']} CPUs, torch.set_num_threads("
            f"{m['torch_threads']}) for every timing and every training run (1-min load "
            f"average {fmt_num(m['load_average_1min']['start'])} at start, "
            f"{fmt_num(m['load_average_1min']['end'])} at end); float32; times are medians after "
            "warm-up (time.perf_counter)."
        ),
        "",
        "## Cost of an AR-DAE update and of an entropy-surrogate gradient",
        "",
        (
            f"ImplicitSampler(d, noise_dim={s['noise_dim']}, hidden={tuple(s['cost_hidden'])}), "
            f"ARDAE(d, hidden={tuple(s['cost_hidden'])}, delta={s['cost_delta']}, "
            f"n_sigma={s['n_sigma']}), Adam(betas=(0.5, 0.999)) as in 000 App. E.1; d = 2 is "
            "the energy-fitting setting, d = 10 the size of the maximum-entropy experiment "
            "(section 6.4)."
        ),
        "",
        (
            "| d | batch | AR-DAE param. | (a) sampler fwd+bwd | (b) AR-DAE update | "
            "(c) surrogate grad | (s) score only | (b)/(a) | (c)/(a) | (s)/(a) |"
        ),
        "|" + "---|" * 10,
    ]
    for r in result["cost"]:
        t, q = r["time_ms"], r["ratio"]
        lines.append(
            f"| {r['d']} | {r['batch']} | {r['parameterization']} | {t['a']:.2f} ms | "
            f"{t['b']:.2f} ms | {t['c']:.2f} ms | {t['s']:.2f} ms | "
            f"{q['b_over_a']:.1f} | {q['c_over_a']:.2f} | {q['s_over_a']:.2f} |"
        )
    lines += ["", *[f"- {n}" for n in result["cost_notes"]], ""]
    for key, prob in result["errors"].items():
        ms = prob["models"]
        title = "1-D mixture (000 Fig. 3 setting)" if key == "mog1d" else "2-D mixture"
        lines += [
            f"## Score error versus training steps: {title}",
            "",
            (
                f"{prob['description']}; metric {prob['metric']} over "
                f"{s['eval_samples']} fixed samples of p. {prob['parameterization']} "
                f"parameterization, hidden {tuple(s['hidden'])} softplus, δ = {prob['delta']}, "
                f"n_σ = {s['n_sigma']}, batch {s['batch']}, Adam lr {s['lr']} halved every "
                f"{s['lr_halve_every']} steps. References: optimal f*(x; σ = δ) error "
                f"**{prob['fstar_at_delta']:.4f}**; σ-blind AR-DAE limit (the loss minimizer "
                f"among f that ignore σ) **{prob['sigma_blind_at_delta']:.4f}**."
            ),
            "",
            (
                "| steps | AR-DAE f(x; σ=0) | AR-DAE antithetic | ResidualDAE (DSM, σ = δ) | "
                "AR-DAE / f*(δ) | antithetic / f*(δ) | ResidualDAE / f*(δ) |"
            ),
            "|---|---|---|---|---|---|---|",
        ]
        for step in prob["steps"]:
            a, t, r = (ms[n]["errors"][str(step)] for n in MODELS)
            f = prob["fstar_at_delta"]
            lines.append(
                f"| {step} | {a:.4f} | {t:.4f} | {r:.4f} | {a / f:.2f} | {t / f:.2f} | "
                f"{r / f:.2f} |"
            )
        sc = prob["step_cost"]
        ratio = sc["ardae_over_resdae"]
        last = prob["steps"][-1]
        lines += [
            "",
            (
                f"- One training step (single thread, interleaved in the main process): "
                f"AR-DAE {sc['ms_per_step']['ardae']:.1f} ms, ResidualDAE "
                f"{sc['ms_per_step']['resdae']:.1f} ms, ratio {ratio:.1f} (AR-DAE evaluates "
                f"the network on n_σ = {s['n_sigma']} noisy copies of each sample, "
                "ResidualDAE on one). At equal compute, AR-DAE after "
                f"{last / ratio:.0f} steps costs as much as ResidualDAE after {last}."
            ),
            (
                f"- Wall time of the training runs: AR-DAE "
                f"{ms['ardae']['train_time_s']:.0f} s, antithetic "
                f"{ms['ardae_antithetic']['train_time_s']:.0f} s, ResidualDAE "
                f"{ms['resdae']['train_time_s']:.0f} s (worker processes, not a timing)."
            ),
            "",
        ]
    lines += [
        "## Notes",
        "",
        *[f"- {n}" for n in result["error_notes"]],
        "",
        f"Figure: `{result['figure']}`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="processes for the (untimed) training runs; 1 = in this process",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    load_start = load_average()
    start = time.perf_counter()
    cfg = BenchConfig.quick(args.seed) if args.quick else BenchConfig.full(args.seed)
    print(f"entropy benchmark ({cfg.mode}): cost", flush=True)
    cost = run_cost(cfg)
    cost_s = time.perf_counter() - start
    print("error versus training steps", flush=True)
    errors = run_errors(cfg, args.jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = args.out / "entropy_error_vs_steps.png"
    plot_errors(errors, figure)
    try:
        figure_name = str(figure.resolve().relative_to(REPO))
    except ValueError:
        figure_name = str(figure)

    by = {(r["d"], r["batch"], r["parameterization"]): r for r in cost}
    e1 = by.get((2, 1024, "residual"))
    cost_notes = [
        (
            "(a) `sampler.sample(B).sum().backward()`; (b) `ardae.loss(x)` on a drawn batch of B "
            "samples (B·n_σ network evaluations), backward and an Adam step; (c) "
            "`x = sampler.sample(B)`, `entropy_surrogate(x, ardae.score(x)).backward()`, so (c) "
            "contains (a) and (c)/(a) - 1 is the overhead of the entropy gradient; (s) "
            "`ardae.score(x)` alone on a drawn batch. Ratios are medians over "
            f"{cfg.cost_repeats} rounds of the per-round ratio; each round times (a), (b), (c), (s) "
            f"back to back after {cfg.cost_warmup} warm-up rounds."
        ),
        (
            "The gradient parameterization computes f = ∇ψ by autograd, so its score needs a "
            "backward pass through ψ and its update a double backward."
        ),
    ]
    if e1 is not None:
        step = 5 * e1["time_ms"]["b"] + e1["time_ms"]["c"]
        cost_notes.append(
            f"One generator step of 000 App. E.1 (N_d = 5 AR-DAE updates, then one surrogate "
            f"gradient; d = 2, B = 1024, residual) costs about 5·(b) + (c) = {step:.0f} ms, "
            f"{step / e1['time_ms']['a']:.0f}x a plain sampler pass (the energy term, not "
            "timed here, adds roughly one more sampler-sized pass)."
        )
    error_notes = [
        (
            "AR-DAE's error is of f(x; σ = 0), which no single-σ DAE is trained on; f*(x; σ = δ) is "
            "the best any DAE trained at the fixed σ = δ can do, so the ResidualDAE curve is "
            "bounded below by it. AR-DAE is not: in the limit of a network that resolves σ it "
            "reaches ∇log p. A network that ignores σ converges instead to the σ-blind limit "
            "(`sigma_blind_dae`: the AR-DAE loss weights the denoising loss at σ by σ², so its "
            "minimizer is the σ²-weighted average of f*(x; σ), about 3x f*(δ)'s error for small "
            "δ). AR-DAE below that line extrapolates in σ; above it, optimization error dominates."
        ),
        (
            "AR-DAE antithetic (not in the paper): each (σ, u) is paired with (σ, -u), n_σ / 2 "
            "pairs, so the same number of network evaluations; the objective is unchanged and "
            "the O(σ) noise of its gradient cancels (App. C)."
        ),
        (
            "ResidualDAE = denoising score matching with loss rescaling at one σ (000 eq. 2 without "
            "the σ input): same MLP, same schedule, same data batches count; it sees one noise draw "
            f"per sample and AR-DAE n_σ = {cfg.n_sigma}; the step-cost ratio under each table "
            "converts equal steps to equal compute."
        ),
        (
            "One training run per model (no repetitions, no standard errors): single curves are "
            "noisy (they need not decrease monotonically), so read them for orders of magnitude, "
            "not for small differences."
        ),
        PEER_NOTE,
    ]
    if cfg.mode == "quick":
        error_notes.insert(
            0,
            "Quick run: hidden (64, 64) instead of (256, 256, 256), at most "
            "1000 steps; numbers are not comparable with the paper's.",
        )
    result = {
        "machine": machine_info(load_start),
        "settings": {**asdict(cfg), "dtype": "float32"},
        "cost": cost,
        "cost_notes": cost_notes,
        "errors": errors,
        "error_notes": error_notes,
        "peer": {"library": None, "reason": PEER_NOTE, "baseline": "stochgrad.ResidualDAE"},
        "figure": figure_name,
        "wall_time_s": {"cost": cost_s, "total": time.perf_counter() - start},
    }
    write_results(args.out, "entropy", result, markdown(result))
    print(
        f"wrote {args.out / 'entropy.json'}, {args.out / 'entropy.md'} and {figure} "
        f"in {result['wall_time_s']['total']:.0f} s"
    )


if __name__ == "__main__":
    main()
