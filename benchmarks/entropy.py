"""Benchmark: cost of AR-DAE entropy gradients, and AR-DAE against the best fixed-σ residual DAE
at equal noisy-sample budget and equal wall time.

Two measurements (paper 000, AR-DAE):

1. Cost (000 App. E.1 energy fitting, and the 10-D maximum-entropy sizes of section 6.4):
   an ``ImplicitSampler(d, noise_dim=10, hidden=(256, 256, 256))`` and an
   ``ARDAE(d, hidden=(256, 256, 256), delta=0.1, n_sigma=10)`` in the residual and the
   gradient parameterization.  Per setting, interleaved round by round:
   (a) one sampler forward + backward pass (``sampler.sample(B).sum().backward()``),
   (b) one AR-DAE update (loss + backward + Adam step on a drawn batch of B samples),
   (c) one entropy-surrogate gradient: sample, ``ardae.score(x)``, ``entropy_surrogate`` and
   its backward through the sampler, and (s) ``ardae.score`` alone.  Reported: medians and the
   median over rounds of the paired ratios (b)/(a), (c)/(a), (s)/(a).
2. Equal-budget score error: on a 1-D mixture (000 section 4.2, gradient parameterization,
   δ = 0.05), a 2-D isotropic mixture and a 2-D anisotropic mixture with full covariances
   (residual parameterization, δ = 0.1), every model sees batch x n_σ = 256 x 10 noisy samples
   per step: AR-DAE as 256 samples x 10 draws of (σ, u), ``ResidualDAE`` as 2,560 samples x one
   u, at σ ∈ {δ/2, δ, 2δ, 4δ}.  AR-DAE variants: the paper's; antithetic pairs; σ fed as σ/δ;
   a wider σ prior N(0, (kδ)²); the budget spent as batch x n_σ / 2 samples x one antithetic
   pair; each read out at σ = 0 and by Richardson extrapolation (``extrapolate=(0.5, 1)``).
   Added after the sweep with ``train_job`` (``--square-factors``, ``--res-anti-factors``): σ²
   as the σ input, and the ResidualDAE with the same antithetic pairs.  The best ResidualDAE σ and the best AR-DAE variant are chosen
   on a validation sample, errors reported on a separate test sample, mean ± s.e. over seeds.
   Exact references: f*(x; σ) (``optimal_dae``) and the σ-blind limit (``sigma_blind_dae``).
   Per-step wall time of every model is measured interleaved in one process, which converts
   equal steps into equal wall time.

Usage::

    python3 benchmarks/entropy.py [--quick] [--out benchmarks/results] [--part all|cost|errors]
        [--device cpu|cuda] [--workers N] [--deadline-s S] [--seeds 0,1,2]
    python3 benchmarks/entropy.py --report-from JOBS.jsonl [--steps-json STEPS.json]

``--part errors`` keeps the cost block of an existing ``entropy.json`` under ``--out``.  Every
finished training run is appended to ``entropy_jobs.jsonl`` under ``--out`` as it ends, so a run
cut by a time limit can still be reported with ``--report-from``.  Writes ``entropy.json``,
``entropy.md`` and ``entropy_error_vs_steps.png``.  CPU timings use
``torch.set_num_threads(1)``; training runs are single-threaded too.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

try:
    from _common import fmt_num, load_average, machine_info, write_results
except ImportError:  # imported as benchmarks.entropy
    from benchmarks._common import fmt_num, load_average, machine_info, write_results

from stochgrad.entropy import (
    ARDAE,
    ResidualDAE,
    entropy_surrogate,
    optimal_dae,
    sigma_blind_dae,
)
from stochgrad.samplers import ImplicitSampler
from stochgrad.targets.mixture import GaussianMixture, anisotropic_mixture_2d, two_gaussians_1d

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run; ``full()`` and ``quick()`` are the two presets."""

    mode: str
    """"full" or "quick"."""
    seed: int = 0
    """Seed of the cost measurement."""
    cost_settings: tuple[tuple[int, int], ...] = ((2, 256), (2, 1024), (10, 128))
    """(d, batch) pairs for the cost measurement; each in both parameterizations."""
    cost_hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the sampler and the AR-DAE in the cost measurement (000 App. E.1)."""
    noise_dim: int = 10
    """d_ε of the implicit sampler (000 App. E.1)."""
    cost_delta: float = 0.1
    """AR-DAE δ in the cost measurement (000 App. E.1)."""
    n_sigma: int = 10
    """σ draws per sample per AR-DAE update; ResidualDAE gets batch x n_sigma samples."""
    cost_repeats: int = 15
    """Timed rounds per setting (median reported); each round times (a), (b), (c), (s)."""
    cost_warmup: int = 3
    """Untimed rounds before timing."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the DAEs in the equal-budget runs (000 App. D.1)."""
    steps: tuple[int, ...] = (0, 250, 500, 1000, 1500, 2000, 3000, 4000)
    """Training steps at which the error is logged (the last is the training length)."""
    batch: int = 256
    """Samples of p per AR-DAE step (each with n_sigma noise draws)."""
    lr: float = 1e-3
    """Initial Adam learning rate."""
    lr_halve_every: int = 1000
    """Halve the learning rate every this many steps (000 App. D.1)."""
    eval_samples: int = 2000
    """Fixed samples of p for the test error and, independently drawn, the validation error."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    """Training seeds of every model."""
    res_sigma_factors: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    """ResidualDAE σ = factor x δ."""
    wide_factors: tuple[float, ...] = (2.0, 4.0)
    """AR-DAE σ prior N(0, (kδ)²) for these k (antithetic, σ/(kδ) input)."""
    res_anti_factors: tuple[float, ...] = ()
    """ResidualDAE with antithetic pairs (batch x n_σ / 2 samples x (u, -u)) at these factors
    (run on CPU after the main sweep; empty in the sweep itself)."""
    square_factors: tuple[float, ...] = ()
    """AR-DAE with (σ/(kδ))² as the σ input, n_σ = 2 antithetic, for these k (run on CPU after
    the main sweep; empty in the sweep itself)."""
    step_cost_rounds: int = 10
    """Interleaved timed rounds per model for the per-step wall time."""

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
            hidden=(32, 32),
            steps=(0, 20, 40),
            batch=32,
            n_sigma=4,
            eval_samples=200,
            seeds=(0, 1),
            res_sigma_factors=(1.0, 2.0),
            wide_factors=(4.0,),
            step_cost_rounds=3,
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
# 2. equal-budget score error
# ================================================================================================

PROBLEMS = ("mog1d", "mog2d", "mog2d_aniso")
READOUTS = {"sigma0": None, "richardson": (0.5, 1.0)}
"""AR-DAE score read-outs: f(x̃; σ = 0) (the paper's) and ``extrapolate=(0.5, 1)``."""


def problem(key: str) -> dict:
    """Mixture, δ, parameterization and metric of one problem."""
    if key == "mog1d":
        return {
            "mixture": two_gaussians_1d(),
            "delta": 0.05,
            "parameterization": "gradient",
            "relative": False,
            "index": 0,
            "description": "1-D: p = 0.5 N(2, 0.5²) + 0.5 N(-2, 0.5²) (000 section 4.2, Fig. 3)",
            "metric": "E_p|∇log p(x) - f(x)|",
        }
    if key == "mog2d":
        return {
            "mixture": mixture_2d(),
            "delta": 0.1,
            "parameterization": "residual",
            "relative": True,
            "index": 1,
            "description": "2-D isotropic: 4 equal Gaussians at (±2, 0), (0, ±2), std 0.8",
            "metric": "E||f(x) - ∇log p(x)|| / E||∇log p(x)||",
        }
    if key == "mog2d_aniso":
        return {
            "mixture": anisotropic_mixture_2d(),
            "delta": 0.1,
            "parameterization": "residual",
            "relative": True,
            "index": 2,
            "description": (
                "2-D anisotropic (`anisotropic_mixture_2d`): 3 Gaussians, full covariances with "
                "variances 1 and 0.05 along rotated axes, weights 0.4/0.35/0.25"
            ),
            "metric": "E||f(x) - ∇log p(x)|| / E||∇log p(x)||",
        }
    raise ValueError(f"unknown problem {key!r}")


def model_specs(cfg: BenchConfig) -> dict[str, dict]:
    """name -> kind and options: AR-DAE prior scale and ResidualDAE σ in units of the problem's
    δ (``k``), antithetic pairs, σ/(kδ) input (``feat``), σ draws per sample (``nsig``)."""
    n = cfg.n_sigma
    specs: dict[str, dict] = {
        "ardae": {"kind": "ardae", "k": 1.0, "anti": False, "feat": False, "nsig": n},
        "ardae_anti": {"kind": "ardae", "k": 1.0, "anti": True, "feat": False, "nsig": n},
        "ardae_anti_feat": {"kind": "ardae", "k": 1.0, "anti": True, "feat": True, "nsig": n},
    }
    for k in cfg.wide_factors:
        specs[f"ardae_anti_feat_k{k:g}"] = {
            "kind": "ardae",
            "k": k,
            "anti": True,
            "feat": True,
            "nsig": n,
        }
    if cfg.wide_factors:  # the wide prior without antithetic pairs
        k = max(cfg.wide_factors)
        specs[f"ardae_feat_k{k:g}"] = {
            "kind": "ardae",
            "k": k,
            "anti": False,
            "feat": True,
            "nsig": n,
        }
    for k in cfg.wide_factors:  # the same budget spent on batch x n_σ / 2 samples, one pair each
        specs[f"ardae_anti_feat_k{k:g}_n2"] = {
            "kind": "ardae",
            "k": k,
            "anti": True,
            "feat": True,
            "nsig": 2,
        }
    for k in cfg.square_factors:  # σ² fed instead of σ (``sigma_input="square"``)
        specs[f"ardae_anti_sq_k{k:g}_n2"] = {
            "kind": "ardae",
            "k": k,
            "anti": True,
            "feat": True,
            "nsig": 2,
            "square": True,
        }
    for f in cfg.res_sigma_factors:
        specs[f"resdae_s{f:g}"] = {"kind": "resdae", "k": f, "nsig": 1}
    for f in cfg.res_anti_factors:  # the fixed-σ DAE with the same antithetic pairs
        specs[f"resdae_anti_s{f:g}"] = {"kind": "resdae", "k": f, "nsig": 2, "anti": True}
    return specs


class AntitheticResidualDAE(ResidualDAE):
    """``ResidualDAE`` whose loss pairs every u with -u at the same x (as ``ARDAE(antithetic=
    True)`` does): batch/2 samples of x, each with (u, -u); same expectation of the loss."""

    def loss(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        x = x.detach()
        u = torch.randn_like(x)
        x2, u2 = torch.cat([x, x]), torch.cat([u, -u])
        return (u2 + self.sigma * self.f(x2 + self.sigma * u2)).pow(2).sum(-1).mean()


def batch_size(cfg: BenchConfig, spec: dict) -> int:
    """Samples of p per step: batch x n_σ noisy samples for every model."""
    return cfg.batch * cfg.n_sigma // spec["nsig"]


def describe(name: str, spec: dict) -> str:
    if spec["kind"] == "resdae":
        anti = ", antithetic (not in the paper)" if spec.get("anti") else ""
        return f"ResidualDAE, σ = {spec['k']:g}δ{anti}"
    parts = ["AR-DAE"]
    parts.append("antithetic" if spec["anti"] else "")
    sq = spec.get("square", False)
    parts.append(f"(σ/({spec['k']:g}δ)){'²' if sq else ''} input" if spec["feat"] else "σ input")
    parts.append(f"σ ~ N(0, ({spec['k']:g}δ)²)" if spec["k"] != 1 else "σ ~ N(0, δ²)")
    parts.append(f"n_σ = {spec['nsig']}")
    return ", ".join(p for p in parts if p)


def make_model(cfg: BenchConfig, key: str, name: str) -> torch.nn.Module:
    prob, spec = problem(key), model_specs(cfg)[name]
    d, delta, par = prob["mixture"].dim, prob["delta"], prob["parameterization"]
    if spec["kind"] == "resdae":
        cls = AntitheticResidualDAE if spec.get("anti") else ResidualDAE
        return cls(d, spec["k"] * delta, hidden=cfg.hidden, parameterization=par)
    scale = spec["k"] * delta
    return ARDAE(
        d,
        hidden=cfg.hidden,
        parameterization=par,
        delta=scale,
        n_sigma=spec["nsig"],
        antithetic=spec["anti"],
        sigma_feature_scale=1 / scale if spec["feat"] else 1.0,
        sigma_input="square" if spec.get("square") else "signed",
    )


def eval_sets(cfg: BenchConfig, key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(test, validation) samples of p, fixed across seeds and models."""
    prob = problem(key)
    gens = [torch.Generator().manual_seed(1000 * j + prob["index"]) for j in (1, 2)]
    return tuple(prob["mixture"].sample(cfg.eval_samples, generator=g) for g in gens)


def score_error(score: torch.Tensor, x: torch.Tensor, true: torch.Tensor, relative: bool) -> float:
    """E|∇log p - f| (absolute) or E||f - ∇log p|| / E||∇log p|| (``relative``)."""
    diff = (score.double().cpu() - true).norm(dim=-1).mean().item()
    return diff / true.norm(dim=-1).mean().item() if relative else diff


def readouts(model: torch.nn.Module, x: torch.Tensor, device: str) -> dict[str, torch.Tensor]:
    """Score estimates at x: ResidualDAE's f(x); AR-DAE's f(x; 0) and its Richardson read-out."""
    xd = x.float().to(device)
    if isinstance(model, ResidualDAE):
        with torch.enable_grad() if model.f.parameterization == "gradient" else torch.no_grad():
            return {"sigma0": model.score(xd).detach()}
    out = {}
    for name, ext in READOUTS.items():
        model.extrapolate = ext
        out[name] = model.score(xd)
    model.extrapolate = None
    return out


def sigma_use(model: ARDAE, x: torch.Tensor, mixture: GaussianMixture, device: str) -> float:
    """How much of the exact change f*(x; δ) - f*(x; 0) the network's f(x; δ) - f(x; 0) carries:
    the regression coefficient <Δf, Δf*> / <Δf*, Δf*> (1: resolves σ; 0: σ-blind)."""
    xd = x.float().to(device)
    exact = optimal_dae(x, model.delta, mixture) - mixture.score(x)
    learned = (model.score(xd, sigma=model.delta) - model.score(xd, sigma=0.0)).double().cpu()
    return float((learned * exact).sum() / (exact * exact).sum())


def train_job(cfg: BenchConfig, key: str, name: str, seed: int, device: str = "cpu") -> dict:
    """Train one model, logging test and validation errors; also a worker process's body."""
    torch.set_num_threads(1)
    prob, spec = problem(key), model_specs(cfg)[name]
    mixture, relative = prob["mixture"], prob["relative"]
    x_test, x_val = eval_sets(cfg, key)
    true_test, true_val = mixture.score(x_test), mixture.score(x_val)
    torch.manual_seed(10_000 * seed + 100 * prob["index"])  # same initial MLP up to the σ input
    model = make_model(cfg, key, name).to(device)
    batch = batch_size(cfg, spec)  # equal noisy budget
    gen = torch.Generator().manual_seed(10_000 * seed + 100 * prob["index"] + 7)
    torch.manual_seed(10_000 * seed + 100 * prob["index"] + 13)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_halve_every, gamma=0.5)
    log: dict[str, dict] = {}
    done, train_time, chunk = 0, 0.0, 250
    data = None
    for target in sorted(cfg.steps):
        t0 = time.perf_counter()
        loss = None
        while done < target:
            if done % chunk == 0 or data is None:  # pre-drawn batches: one transfer per chunk
                n = min(chunk, max(cfg.steps) - done)
                data = mixture.sample(n * batch, generator=gen).float().to(device)
                data = data.view(n, batch, mixture.dim)
            loss = model.loss(data[done % chunk])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
        if device != "cpu":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
        if loss is not None and not torch.isfinite(loss):
            raise FloatingPointError(f"{key} {name} seed {seed}: loss {loss.item()} at {done}")
        entry = {}
        for split, x, true in (("test", x_test, true_test), ("val", x_val, true_val)):
            for ro, est in readouts(model, x, device).items():
                entry[f"{split}_{ro}"] = score_error(est, x, true, relative)
        if spec["kind"] == "ardae":
            entry["sigma_use"] = sigma_use(model, x_test, mixture, device)
        entry["train_time_s"] = train_time
        log[str(target)] = entry
    return {"problem": key, "model": name, "seed": seed, "device": device, "log": log}


def step_cost(cfg: BenchConfig, key: str, device: str, warmup: int = 3) -> dict:
    """Median wall time of one training step of every model, interleaved round by round."""
    specs = model_specs(cfg)
    models = {n: make_model(cfg, key, n).to(device) for n in specs}
    opts = {n: torch.optim.Adam(m.parameters(), lr=cfg.lr) for n, m in models.items()}
    mixture = problem(key)["mixture"]
    xs = {n: mixture.sample(batch_size(cfg, s)).float().to(device) for n, s in specs.items()}
    times: dict[str, list[float]] = {n: [] for n in specs}
    for r in range(warmup + cfg.step_cost_rounds):
        for n, model in models.items():
            if device != "cpu":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = model.loss(xs[n])
            opts[n].zero_grad(set_to_none=True)
            loss.backward()
            opts[n].step()
            if device != "cpu":
                torch.cuda.synchronize()
            if r >= warmup:
                times[n].append(time.perf_counter() - t0)
    return {n: float(np.median(v)) * 1e3 for n, v in times.items()}


def references(cfg: BenchConfig, key: str) -> dict:
    """Test errors of f*(x; σ) at δ and at every ResidualDAE σ, and of the σ-blind limits."""
    prob = problem(key)
    mixture, delta, rel = prob["mixture"], prob["delta"], prob["relative"]
    x_test, _ = eval_sets(cfg, key)
    true = mixture.score(x_test)
    factors = sorted({1.0, *cfg.res_sigma_factors})
    fstar = {
        f"{f:g}": score_error(optimal_dae(x_test, f * delta, mixture), x_test, true, rel)
        for f in factors
    }
    blind = {
        f"{k:g}": score_error(sigma_blind_dae(x_test, k * delta, mixture), x_test, true, rel)
        for k in sorted({1.0, *cfg.wide_factors})
    }
    return {"fstar": fstar, "sigma_blind": blind}


def job_list(cfg: BenchConfig) -> list[tuple[str, str, int]]:
    """(problem, model, seed), seed by seed so that a cut run has whole seeds; the slow 1-D
    gradient-parameterization AR-DAE runs first within a seed."""
    names = list(model_specs(cfg))
    order = sorted(names, key=lambda n: not n.startswith("ardae"))
    return [(k, n, s) for s in cfg.seeds for k in PROBLEMS for n in order]


def _worker(args: tuple) -> dict | str:
    cfg, key, name, seed, device = args
    try:
        return train_job(cfg, key, name, seed, device)
    except Exception as exc:  # noqa: BLE001 (reported, the sweep goes on)
        return f"{key} {name} seed {seed}: {type(exc).__name__}: {exc}"


def run_sweep(cfg: BenchConfig, device: str, workers: int, deadline_s: float, jobs_path: Path):
    """Run every job (in ``workers`` processes), appending each result to ``jobs_path``."""
    jobs = [(cfg, k, n, s, device) for k, n, s in job_list(cfg)]
    start = time.perf_counter()
    jobs_path.parent.mkdir(parents=True, exist_ok=True)
    results, failures = [], []
    with jobs_path.open("a") as fh:

        def keep(res: dict | str) -> None:
            if isinstance(res, str):
                failures.append(res)
                print("  FAILED", res, flush=True)
                return
            results.append(res)
            fh.write(json.dumps(res) + "\n")
            fh.flush()
            last = res["log"][str(max(cfg.steps))]
            print(
                f"  {res['problem']} {res['model']} seed {res['seed']}: "
                f"{last['test_sigma0']:.4f} ({last['train_time_s']:.0f} s, "
                f"{time.perf_counter() - start:.0f} s total)",
                flush=True,
            )

        if workers <= 1:
            for job in jobs:
                if time.perf_counter() - start > deadline_s:
                    break
                keep(_worker(job))
        else:
            import multiprocessing as mp

            pool = mp.get_context("spawn").Pool(workers)
            try:
                pending = pool.imap_unordered(_worker, jobs)
                for _ in jobs:
                    remaining = deadline_s - (time.perf_counter() - start)
                    if remaining <= 0:
                        break
                    try:
                        keep(pending.next(timeout=remaining))
                    except mp.TimeoutError:
                        break
            finally:
                pool.terminate()
                pool.join()
    return results, failures


# ------------------------------------------------------------------------------------------------
# aggregation
# ------------------------------------------------------------------------------------------------


def _mean_se(values: list[float]) -> tuple[float, float | None]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else None)


def _loglog_interp(steps: list[int], values: list[float], at: float) -> float:
    """log error linear in log steps between logged points (clamped to the logged range)."""
    s = np.log([max(x, 1) for x in steps])
    return float(np.exp(np.interp(math.log(max(at, 1)), s, np.log(values))))


def _timing_twin(name: str) -> str:
    """The swept model whose step costs the same: the σ² input adds one elementwise square, the
    antithetic ResidualDAE one concatenation (models added after the timed sweep)."""
    return name.replace("ardae_anti_sq_k", "ardae_anti_feat_k").replace("resdae_anti_", "resdae_")


def aggregate(cfg: BenchConfig, records: list[dict], step_ms: dict, refs: dict) -> dict:
    """Per problem: every model's error (mean ± s.e. over the seeds it finished) at every step;
    the best ResidualDAE σ and best AR-DAE variant/read-out by validation error at the last step
    over the seeds every model finished; paired differences (over the seeds both finished) at
    equal steps and at equal wall time."""
    specs, last = model_specs(cfg), str(max(cfg.steps))
    steps = sorted(cfg.steps)
    out = {}
    for key in PROBLEMS:
        recs = [r for r in records if r["problem"] == key]
        table: dict[str, dict] = {}
        devices: dict[str, dict] = {}
        for r in recs:
            table.setdefault(r["model"], {})[r["seed"]] = r["log"]
            devices.setdefault(r["model"], {})[r["seed"]] = r.get("device", "cpu")
        names = [n for n in specs if n in table]
        # selection seeds: those every model of the timed sweep finished (the variants added
        # afterwards, σ² input and antithetic ResidualDAE, have fewer seeds)
        swept = [
            n
            for n in names
            if not specs[n].get("square")
            and not (specs[n].get("anti") and specs[n]["kind"] == "resdae")
        ]
        common = sorted(set.intersection(*(set(table[n]) for n in swept))) if swept else []
        variants = {}  # "model:readout" -> (model, readout)
        for n in names:
            for ro in ["sigma0"] if specs[n]["kind"] == "resdae" else list(READOUTS):
                variants[f"{n}:{ro}"] = (n, ro)
        rows = {}
        for v, (n, ro) in variants.items():
            seeds = sorted(table[n])
            row = {"model": n, "readout": ro, "description": describe(n, specs[n])}
            row["seeds"] = seeds
            row["devices"] = sorted(set(devices[n].values()))
            row["ms_per_step"] = step_ms.get(key, {}).get(n)
            twin = _timing_twin(n)
            if row["ms_per_step"] is None and twin in step_ms.get(key, {}):
                row["ms_per_step"], row["ms_from"] = step_ms[key][twin], twin
            row["noisy_samples_per_step"] = cfg.batch * cfg.n_sigma
            row["samples_per_step"] = batch_size(cfg, specs[n])
            for split in ("test", "val"):
                row[split] = {
                    str(st): _mean_se([table[n][sd][str(st)][f"{split}_{ro}"] for sd in seeds])
                    for st in steps
                }
            row["val_common_last"] = float(
                np.mean([table[n][sd][last][f"val_{ro}"] for sd in common if sd in table[n]])
            )
            row["test_last_by_seed"] = {str(sd): table[n][sd][last][f"test_{ro}"] for sd in seeds}
            if specs[n]["kind"] == "ardae":
                row["sigma_use_last"] = _mean_se([table[n][sd][last]["sigma_use"] for sd in seeds])
            row["train_time_s"] = _mean_se([table[n][sd][last]["train_time_s"] for sd in seeds])
            rows[v] = row
        kinds = {v: specs[variants[v][0]] for v in rows}
        res = [v for v in rows if kinds[v]["kind"] == "resdae" and not kinds[v].get("anti")]
        res_anti = [v for v in rows if kinds[v]["kind"] == "resdae" and kinds[v].get("anti")]
        ard = [v for v in rows if kinds[v]["kind"] == "ardae"]
        if not common or not res or not ard:
            continue
        best_res = min(res, key=lambda v: rows[v]["val_common_last"])
        best_ard = min(ard, key=lambda v: rows[v]["val_common_last"])
        comparisons = {}
        pairs = [("paper", "ardae:sigma0", best_res), ("best", best_ard, best_res)]
        if res_anti:  # the fixed-σ DAE with the same antithetic pairs (not in the selection)
            best_res_anti = min(res_anti, key=lambda v: rows[v]["val_common_last"])
            pairs.append(("best_vs_antithetic_resdae", best_ard, best_res_anti))
        for label, a, r in pairs:
            if a not in rows:
                continue
            (na, roa), (nr, _) = variants[a], variants[r]
            paired = sorted(set(table[na]) & set(table[nr]))
            diff = [
                table[na][sd][last][f"test_{roa}"] - table[nr][sd][last]["test_sigma0"]
                for sd in paired
            ]
            # equal wall time: the slower model read at the step the faster one's run allows
            ra, rr = rows[a]["ms_per_step"], rows[r]["ms_per_step"]
            eq = []
            for sd in paired if ra and rr else []:  # no timing: no equal-time comparison
                ea = [table[na][sd][str(st)][f"test_{roa}"] for st in steps]
                er = [table[nr][sd][str(st)]["test_sigma0"] for st in steps]
                if ra >= rr:
                    eq.append(_loglog_interp(steps, ea, steps[-1] * rr / ra) - er[-1])
                else:
                    eq.append(ea[-1] - _loglog_interp(steps, er, steps[-1] * ra / rr))
            comparisons[label] = {
                "ardae": a,
                "resdae": r,
                "seeds": paired,
                "diff_equal_steps": _mean_se(diff),
                "diff_equal_time": _mean_se(eq) if eq else None,
                "time_ratio_ardae_over_resdae": ra / rr if ra and rr else None,
            }
        prob = problem(key)
        out[key] = {
            "description": prob["description"],
            "metric": prob["metric"],
            "delta": prob["delta"],
            "parameterization": prob["parameterization"],
            "seeds": sorted({sd for n in names for sd in table[n]}),
            "selection_seeds": common,
            "references": refs.get(key),
            "rows": rows,
            "best_resdae": best_res,
            "best_ardae": best_ard,
            "comparisons": comparisons,
        }
    return out


def plot_errors(agg: dict, cfg: BenchConfig, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(agg), figsize=(5.4 * len(agg), 4.2), squeeze=False)
    for ax, (key, p) in zip(axes[0], agg.items()):
        steps = [s for s in cfg.steps if s > 0]
        show = {"ardae:sigma0": ("tab:red", "AR-DAE (paper)"), p["best_ardae"]: ("tab:green", "")}
        show[p["best_resdae"]] = ("tab:blue", "")
        for v, (color, label) in show.items():
            row = p["rows"][v]
            m = np.array([row["test"][str(s)][0] for s in steps])
            se = np.array([row["test"][str(s)][1] or 0.0 for s in steps])
            ax.errorbar(
                steps,
                m,
                yerr=se,
                color=color,
                marker="o",
                ms=3,
                capsize=2,
                label=label or f"{row['description']} [{row['readout']}]",
            )
        refs = p["references"]
        ax.axhline(refs["fstar"]["1"], color="k", ls="--", lw=1, label="f*(x; σ = δ)")
        ax.axhline(refs["sigma_blind"]["1"], color="0.4", ls="-.", lw=1, label="σ-blind limit")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training steps (batch x n_σ noisy samples each)")
        ax.set_ylabel(p["metric"])
        ax.set_title(f"{key}, δ = {p['delta']}", fontsize=9)
        ax.legend(fontsize=6)
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


def _pm(ms: tuple[float, float | None] | None, digits: int = 4) -> str:
    if ms is None:
        return "n/a"
    m, se = ms
    return f"{m:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def _label(row: dict) -> str:
    ro = {"sigma0": "f(x; 0)", "richardson": "Richardson (0.5δ, δ)"}[row["readout"]]
    return row["description"] + ("" if row["model"].startswith("resdae") else f", {ro}")


def cost_markdown(result: dict) -> list[str]:
    m, s = result["cost_machine"], result["cost_settings"]
    carried = (
        " (Kept from an earlier run of this benchmark: the last run measured only the "
        "equal-budget part.)"
        if result.get("cost_carried_over")
        else ""
    )
    lines = [
        "## Cost of an AR-DAE update and of an entropy-surrogate gradient",
        "",
        (
            f"torch {m['torch']}, {m['cpu_count']} CPUs, torch.set_num_threads("
            f"{m['torch_threads']}) (1-min load average {fmt_num(m['load_average_1min']['start'])}"
            f" at start, {fmt_num(m['load_average_1min']['end'])} at end); float32; medians "
            f"after warm-up. ImplicitSampler(d, noise_dim={s['noise_dim']}, "
            f"hidden={tuple(s['cost_hidden'])}), ARDAE(d, hidden={tuple(s['cost_hidden'])}, "
            f"delta={s['cost_delta']}, n_sigma={s['n_sigma']}), Adam(betas=(0.5, 0.999)) as in "
            "000 App. E.1; d = 2 is the energy-fitting setting, d = 10 the size of the "
            "maximum-entropy experiment (section 6.4)." + carried
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
    return lines + ["", *[f"- {n}" for n in result["cost_notes"]], ""]


def errors_markdown(result: dict) -> list[str]:
    s, agg = result["error_settings"], result["errors"]
    last = str(max(s["steps"]))
    mid = str(sorted(s["steps"])[len(s["steps"]) // 2])
    budget = s["batch"] * s["n_sigma"]
    lines = [
        "## AR-DAE against the best fixed-σ residual DAE at equal noisy-sample budget",
        "",
        (
            f"Every model sees {s['batch']} x {s['n_sigma']} = {budget} noisy samples per step "
            f"(AR-DAE: {budget} / n_σ samples x n_σ draws of (σ, u), n_σ = {s['n_sigma']} as in "
            f"the paper or 2 (one antithetic pair); ResidualDAE: {budget} samples x one u), hidden {tuple(s['hidden'])} softplus, "
            f"Adam lr {s['lr']} halved every {s['lr_halve_every']} steps, {last} steps, float32; "
            f"seeds {result['error_seeds']}. Errors on {s['eval_samples']} fixed test samples of "
            "p, mean ± s.e. over seeds. The best ResidualDAE σ (of "
            f"{', '.join(f'{f:g}δ' for f in s['res_sigma_factors'])}) and the best AR-DAE "
            "variant/read-out are chosen by the same error on an independent validation sample "
            f"of {s['eval_samples']}, at the last step. Training device: {result['error_device']}."
        ),
        "",
        (
            "| problem | steps | noisy samples/step | ms/step AR-DAE paper / best AR-DAE / best "
            "ResidualDAE | AR-DAE (paper) | best AR-DAE variant | best ResidualDAE | f*(δ) | "
            "f* at best ResidualDAE σ | σ-blind limit (δ) | best AR-DAE - best ResidualDAE, "
            "equal steps | same, equal wall time | ResidualDAE with antithetic pairs (not in "
            "the paper) | best AR-DAE - it, equal steps |"
        ),
        "|" + "---|" * 14,
    ]
    for key, p in agg.items():
        rows, refs = p["rows"], p["references"]
        br, ba = rows[p["best_resdae"]], rows[p["best_ardae"]]
        paper = rows["ardae:sigma0"]
        cmp_ = p["comparisons"]["best"]
        ms = "/".join(
            "n/a" if r["ms_per_step"] is None else f"{r['ms_per_step']:.1f}"
            for r in (paper, ba, br)
        )
        sig = br["model"].removeprefix("resdae_s")
        anti = "n/a | n/a"
        if "best_vs_antithetic_resdae" in p["comparisons"]:
            c2 = p["comparisons"]["best_vs_antithetic_resdae"]
            r2 = rows[c2["resdae"]]
            anti = (
                f"{_pm(r2['test'][last])} (σ = {r2['model'].removeprefix('resdae_anti_s')}δ, "
                f"{len(r2['seeds'])} seeds) | {_pm(c2['diff_equal_steps'])} "
                f"(seeds {c2['seeds']})"
            )
        lines.append(
            f"| {key} | {last} | {budget} | {ms} | {_pm(paper['test'][last])} | "
            f"{_pm(ba['test'][last])} ({_label(ba)}) | {_pm(br['test'][last])} (σ = {sig}δ) | "
            f"{refs['fstar']['1']:.4f} | {refs['fstar'][sig]:.4f} | "
            f"{refs['sigma_blind']['1']:.4f} | {_pm(cmp_['diff_equal_steps'])} | "
            f"{_pm(cmp_['diff_equal_time'])} | {anti} |"
        )
    lines += [""]
    for key, p in agg.items():
        refs = p["references"]
        lines += [
            f"### {key}: {p['description']}",
            "",
            (
                f"Metric {p['metric']}; δ = {p['delta']}; {p['parameterization']} "
                f"parameterization; seeds {p['seeds']} (best models chosen on seeds "
                f"{p['selection_seeds']}, which every model finished). Exact f*(x; σ) error at σ = "
                + ", ".join(f"{k}δ: {v:.4f}" for k, v in refs["fstar"].items())
                + "; σ-blind limit for σ ~ N(0, (kδ)²), k = "
                + ", ".join(f"{k}: {v:.4f}" for k, v in refs["sigma_blind"].items())
                + "."
            ),
            "",
            (
                f"| model | read-out | samples x draws per step | ms/step | seeds | test error, "
                f"step {mid} | test error, step {last} | validation error, step {last} | "
                "σ use (Δf / Δf*) |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for v, row in p["rows"].items():
            mark = " **(best)**" if v in (p["best_resdae"], p["best_ardae"]) else ""
            use = _pm(row["sigma_use_last"], 2) if "sigma_use_last" in row else ""
            ms = "n/a" if row["ms_per_step"] is None else f"{row['ms_per_step']:.1f}"
            ms = f"≈{ms} ({row['ms_from']})" if "ms_from" in row else ms
            lines.append(
                f"| {row['description']}{mark} | {row['readout']} | {row['samples_per_step']} x "
                f"{row['noisy_samples_per_step'] // row['samples_per_step']} | {ms} | "
                f"{len(row['seeds'])} ({'+'.join(row['devices'])}) | "
                f"{_pm(row['test'][mid])} | {_pm(row['test'][last])} | "
                f"{_pm(row['val'][last])} | {use} |"
            )
        c = p["comparisons"]
        lines += [""]
        for label in ("paper", "best", "best_vs_antithetic_resdae"):
            if label in c:
                x = c[label]
                lines.append(
                    f"- {x['ardae']} - {x['resdae']} (paired over seeds {x['seeds']}): equal steps "
                    f"{_pm(x['diff_equal_steps'])}, equal wall time {_pm(x['diff_equal_time'])} "
                    f"(time per step ratio {fmt_num(x['time_ratio_ardae_over_resdae'])})."
                )
        lines.append("")
    lines += ["### Notes", "", *[f"- {n}" for n in result["error_notes"]], ""]
    return lines


ERROR_NOTES = [
    (
        "Equal budget: AR-DAE's loss evaluates the network on batch x n_σ noisy points, so the "
        "ResidualDAE gets batch x n_σ samples per step (the earlier version of this benchmark gave "
        "it n_σ times fewer). Per-step wall times are measured interleaved in one process on the "
        "training device; the equal-wall-time difference reads the slower model's curve "
        "(log-log interpolated between logged steps) at the step where it has used the other "
        "model's time for the full run."
    ),
    (
        "σ use: the regression coefficient of the network's f(x; δ) - f(x; 0) on the exact "
        "f*(x; δ) - f*(x; 0) over the test samples (δ = the model's prior scale): 1 means the "
        "network resolves σ as the exact smoothed score does, 0 means it ignores σ (then it "
        "converges to the σ-blind limit)."
    ),
    (
        "Richardson read-out (`ARDAE(extrapolate=(0.5, 1))`): f(0) ≈ (4 f(δ/2) - f(δ)) / 3, exact "
        "for f quadratic in σ; it reads the network where the σ²-weighted loss constrains it."
    ),
    (
        "What an AR-DAE that resolves σ can gain at best: the DSM target -u/σ has variance d/σ², "
        "so the loss's σ² weight is the inverse-variance weight, and for f(y; σ) = a(y) + σ² b(y) "
        "the AR-DAE loss is a weighted least-squares fit whose intercept a = f(y; 0) has variance "
        "E[σ⁶] / (E[σ²] E[σ⁶] - E[σ⁴]²) = 2.5 / s² per noisy sample for σ ~ N(0, s²), against "
        "1/σ² for a fixed-σ DAE, which is biased by f*(σ) - f*(0) ≈ σ² b instead. So AR-DAE "
        "with prior scale s = kδ is as noisy as a fixed-σ DAE at σ = kδ / 1.58 without its "
        "bias: it can only win where the best fixed σ is held down by bias, and only if the "
        "network resolves σ (σ use near 1); the part 1 - (σ use) of the smoothing bias at s "
        "stays in its f(x; 0)."
    ),
    (
        "Selection by validation error against the exact score is an oracle neither method has in "
        "practice; it is applied to both families alike (ResidualDAE: each σ of the grid; "
        "AR-DAE: each variant x 2 read-outs; AR-DAE has more candidates, so selection noise "
        "favours it slightly). The per-problem tables list every candidate."
    ),
    PEER_NOTE,
]


def markdown(result: dict) -> str:
    lines = ["# AR-DAE: cost and score error at equal budget", ""]
    if result.get("cost"):
        lines += cost_markdown(result)
    if result.get("errors"):
        lines += errors_markdown(result)
    return "\n".join(lines)


COST_NOTES = [
    (
        "(a) `sampler.sample(B).sum().backward()`; (b) `ardae.loss(x)` on a drawn batch of B "
        "samples (B·n_σ network evaluations), backward and an Adam step; (c) "
        "`x = sampler.sample(B)`, `entropy_surrogate(x, ardae.score(x)).backward()`, so (c) "
        "contains (a) and (c)/(a) - 1 is the overhead of the entropy gradient; (s) "
        "`ardae.score(x)` alone on a drawn batch. Ratios are medians over the rounds of the "
        "per-round ratio; each round times (a), (b), (c), (s) back to back after warm-up rounds."
    ),
    (
        "The gradient parameterization computes f = ∇ψ, so its score needs a backward pass "
        "through ψ and its update a second-order pass."
    ),
]


def load_jobs(*paths: Path) -> list[dict]:
    """Finished runs from JSONL files; a later record of the same run replaces an earlier one."""
    recs = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                recs[(r["problem"], r["model"], r["seed"])] = r
    return list(recs.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cost measurement")
    parser.add_argument("--seeds", type=str, default=None, help="training seeds, e.g. 0,1,2")
    parser.add_argument("--part", choices=("all", "cost", "errors"), default="all")
    parser.add_argument("--device", default="cpu", help="training device of the error runs")
    parser.add_argument("--workers", type=int, default=2, help="processes for the error runs")
    parser.add_argument("--deadline-s", type=float, default=float("inf"))
    parser.add_argument(
        "--square-factors",
        type=str,
        default=None,
        help="k of the AR-DAE variants with the σ² input, e.g. 2 (runs added with train_job)",
    )
    parser.add_argument(
        "--res-anti-factors",
        type=str,
        default=None,
        help="σ/δ of the antithetic ResidualDAE runs added with train_job, e.g. 0.5,1",
    )
    parser.add_argument(
        "--extra-jobs",
        type=Path,
        action="append",
        default=[],
        help="further JSONL files of finished runs (e.g. seeds run on another device)",
    )
    parser.add_argument("--device-name", default=None, help="the training device, in words")
    parser.add_argument(
        "--report-from",
        type=Path,
        default=None,
        help="a folder with entropy_jobs.jsonl and entropy_step_cost.json: report, do not train",
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    cfg = BenchConfig.quick(args.seed) if args.quick else BenchConfig.full(args.seed)
    if args.seeds:
        cfg = replace(cfg, seeds=tuple(int(s) for s in args.seeds.split(",")))
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "entropy.json"
    result = json.loads(previous.read_text()) if previous.exists() else {}
    if "cost" in result and "cost_machine" not in result:  # previous layout of this file
        result["cost_machine"] = result.get("machine")
        result["cost_settings"] = result.get("settings")
    result.pop("settings", None)
    result.pop("machine", None)
    result.pop("peer", None)
    result.pop("error_notes", None)
    start = time.perf_counter()

    if args.part in ("all", "cost") and args.report_from is None:
        load_start = load_average()
        print(f"entropy benchmark ({cfg.mode}): cost", flush=True)
        result["cost"] = run_cost(cfg)
        result["cost_machine"] = machine_info(load_start)
        result["cost_settings"] = {
            k: v
            for k, v in asdict(cfg).items()
            if k.startswith("cost") or k in ("noise_dim", "n_sigma", "seed")
        }
        result["cost_notes"] = COST_NOTES
        result["cost_carried_over"] = False
    elif "cost" in result:
        result["cost_carried_over"] = True  # kept from the previous run of this benchmark

    if args.part in ("all", "errors"):
        src = args.report_from or args.out
        cost_path = src / "entropy_step_cost.json"
        if args.report_from is None:
            load_start = load_average()
            device = args.device
            print(f"per-step wall time on {device}", flush=True)
            step_ms = {k: step_cost(cfg, k, device) for k in PROBLEMS}
            cost_path.write_text(
                json.dumps(
                    {
                        "device": device,
                        "machine": machine_info(load_start),
                        "settings": asdict(cfg),
                        "ms_per_step": step_ms,
                    },
                    indent=1,
                )
            )
            print(
                f"training {len(job_list(cfg))} runs on {device}, {args.workers} workers",
                flush=True,
            )
            _, failures = run_sweep(
                cfg, device, args.workers, args.deadline_s, args.out / "entropy_jobs.jsonl"
            )
            result["error_failures"] = failures
        info = json.loads(cost_path.read_text())
        records = load_jobs(src / "entropy_jobs.jsonl", *args.extra_jobs)
        cfg = replace(
            cfg,
            **{
                k: tuple(v) if isinstance(v, list) else v
                for k, v in info["settings"].items()
                if k
                in (
                    "hidden",
                    "steps",
                    "batch",
                    "n_sigma",
                    "lr",
                    "lr_halve_every",
                    "eval_samples",
                    "seeds",
                    "res_sigma_factors",
                    "wide_factors",
                    "mode",
                )
            },
        )
        if args.res_anti_factors:
            cfg = replace(
                cfg, res_anti_factors=tuple(float(k) for k in args.res_anti_factors.split(","))
            )
        if args.square_factors:
            cfg = replace(
                cfg, square_factors=tuple(float(k) for k in args.square_factors.split(","))
            )
        refs = {k: references(cfg, k) for k in PROBLEMS}
        agg = aggregate(cfg, records, info["ms_per_step"], refs)
        result["errors"] = agg
        result["error_settings"] = {
            k: v for k, v in asdict(cfg).items() if not k.startswith("cost")
        }
        result["error_device"] = args.device_name or (
            f"{info['device']} ({info['machine']['platform']})"
        )
        result["error_machine"] = info["machine"]
        result["error_seeds"] = sorted({s for p in agg.values() for s in p["seeds"]})
        result["error_notes"] = ERROR_NOTES
        figure = args.out / "entropy_error_vs_steps.png"
        if agg:
            plot_errors(agg, cfg, figure)
            try:
                result["figure"] = str(figure.resolve().relative_to(REPO))
            except ValueError:
                result["figure"] = figure.name
    result["wall_time_s"] = time.perf_counter() - start
    write_results(args.out, "entropy", result, markdown(result))


if __name__ == "__main__":
    main()
