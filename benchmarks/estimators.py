"""Benchmark: speed, variance and bias of the gradient estimators, stochgrad vs storchastic.

Two problems, measured in one run (stochgrad in this process, storchastic in a subprocess
because it monkey-patches torch and keeps global state at import):

1. Toy (003 section 6.1): f(b) = (b - t)^2, t = 0.499, b ~ Bernoulli(sigmoid(θ)) at θ = 0,
   exact gradient p(1 - p)(1 - 2t) = 0.0005.  Per estimator: time of one single-sample
   estimate (+ ``torch.autograd.grad``), time per sample when 10^4 are computed in one batch,
   variance and bias (in standard errors) from N independent single-sample estimates.
2. Discrete-VAE-sized: 200 Bernoulli latents, batch 24, logits from a fixed random
   Linear(784, 200) encoder on binarized MNIST rows, f(b) = -log p(x|b) with a fixed random
   Linear(200, 784) Bernoulli decoder.  Per estimator: time of one estimate for the whole
   batch (forward + backward to the logits), time per row in a 1008-row batch, and the mean
   over the 24 x 200 logits of the per-logit variance across R repeated estimates.

Usage::

    python3 benchmarks/estimators.py [--quick] [--out benchmarks/results] [--seed 0]

Writes ``estimators.json`` and ``estimators.md`` under ``--out`` and prints the markdown.
All timings use ``torch.set_num_threads(1)`` and ``time.perf_counter`` after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import fmt_num, load_average, machine_info, write_results
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "binarized_mnist.npz"
TARGET = 0.499
THETA = 0.0


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run; ``full()`` and ``quick()`` are the two presets."""

    mode: str
    """"full" or "quick"."""
    seed: int = 0
    """Seed of every random draw (estimator rows reseed with seed + row index)."""
    toy_var_samples: int = 100_000
    """Independent single-sample estimates for the toy variance and bias."""
    toy_time_repeats: int = 500
    """Timed single-sample estimates on the toy (median reported)."""
    toy_vec_batch: int = 10_000
    """Estimates per call for the vectorized timing."""
    vec_repeats: int = 10
    """Timed vectorized calls (median reported)."""
    warmup: int = 20
    """Untimed calls before timing."""
    baseline_warmup: int = 300
    """Calls that settle the moving-average baselines before measuring (storch's starts at 0)."""
    train_steps: int = 500
    """Steps of variance_loss training for the "(trained)" rows, at fixed θ = 0."""
    train_lr: float = 0.01
    """Adam learning rate of the control-variate parameters."""
    vae_repeats: int = 200
    """Repeated whole-batch estimates for the VAE variance (each one is also timed)."""
    vae_vec_rows: int = 1008
    """Rows (42 copies of the 24-row batch) for the VAE vectorized timing."""
    same_graph_rounds: int = 600
    """Interleaved rounds of the comparison with the hand-written graphs (5x on the toy)."""
    same_graph_calls: int = 1
    """Calls per side and round at VAE size (3x on the toy): short rounds, so that most pairs
    run undisturbed by other processes."""

    @staticmethod
    def full(seed: int = 0) -> BenchConfig:
        return BenchConfig("full", seed)

    @staticmethod
    def quick(seed: int = 0) -> BenchConfig:
        return BenchConfig(
            "quick",
            seed,
            toy_var_samples=20_000,
            toy_time_repeats=100,
            vec_repeats=3,
            warmup=5,
            train_steps=200,
            vae_repeats=40,
            vae_vec_rows=240,
            same_graph_rounds=100,
            same_graph_calls=1,
        )


def project_relative(path: Path) -> str:
    """``path`` relative to the project root (results never record absolute paths)."""
    return os.path.relpath(Path(path).resolve(), REPO)


def strip_paths(text: str) -> str:
    """Tracebacks without absolute paths: project files relative, installed packages by name."""
    import re
    import site

    for prefix in sorted({*site.getsitepackages(), site.getusersitepackages()}, key=len)[::-1]:
        text = text.replace(prefix.rstrip("/") + "/", "<site-packages>/")
    text = text.replace(str(REPO) + "/", "")
    return re.sub(r'File "/[^"]*/(lib/python[^"]*)"', r'File "<python>/\1"', text)


def exact_toy_grad(theta: float = THETA, t: float = TARGET) -> float:
    """d/dθ E[(b - t)^2] = p (1 - p)(1 - 2t), p = sigmoid(θ)."""
    p = 1.0 / (1.0 + math.exp(-theta))
    return p * (1 - p) * (1 - 2 * t)


def toy_f(b: Tensor) -> Tensor:
    """[batch, 1] -> [batch]."""
    return (b - TARGET).pow(2).sum(-1)


def median_ms(times: list[float]) -> float:
    return float(np.median(times)) * 1e3


def timed(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def grad_stats(g: Tensor, exact: float | None) -> dict[str, float]:
    """Mean, variance, log10 variance and bias z = (mean - exact)/s.e. of estimates ``g: [N]``."""
    g = g.detach().double()
    n = g.numel()
    var = g.var().item()
    out = {
        "n_estimates": n,
        "mean": g.mean().item(),
        "variance": var,
        "log10_variance": math.log10(var) if var > 0 else float("-inf"),
    }
    if exact is not None:
        out["bias_z"] = (g.mean().item() - exact) / math.sqrt(var / n) if var > 0 else float("nan")
    return out


def vae_variance(grads: Tensor) -> dict[str, float]:
    """grads: [R, 24, 200] per-example gradients w.r.t. the logits from R repeated estimates."""
    var = grads.double().var(dim=0).mean().item()
    return {"n_estimates": grads.shape[0], "variance": var, "log10_variance": math.log10(var)}


def make_vae_problem(cfg: BenchConfig, mnist: Path) -> dict:
    """Fixed data, encoder logits and decoder weights shared by both libraries."""
    gen = torch.Generator().manual_seed(cfg.seed)
    if mnist.is_file():
        train = np.load(mnist)["train"]
        rows = torch.randperm(train.shape[0], generator=gen)[:24].numpy()
        x = torch.from_numpy(train[np.sort(rows)].astype(np.float32))
        source = f"binarized MNIST train rows from {project_relative(mnist)}"
    else:
        x = (torch.rand(24, 784, generator=gen) < 0.13).float()
        source = f"random binary data (MNIST file not found at {project_relative(mnist)})"
    torch.manual_seed(cfg.seed)
    encoder, decoder = nn.Linear(784, 200), nn.Linear(200, 784)
    with torch.no_grad():
        logits = encoder(x)
    return {
        "x": x,
        "logits": logits,
        "dec_w": decoder.weight.detach().clone(),
        "dec_b": decoder.bias.detach().clone(),
        "source": source,
    }


def vae_objective(problem: dict) -> Callable[[Tensor], Tensor]:
    """f(b) = -log p(x|b), b: [rows, 200] with rows a multiple of 24 -> [rows]."""
    x, w, bias = problem["x"], problem["dec_w"], problem["dec_b"]

    def f(b: Tensor) -> Tensor:
        xb = x.repeat(b.shape[0] // x.shape[0], 1)
        out = F.linear(b, w, bias)
        return (F.softplus(out) - xb * out).sum(-1)  # BCE-with-logits, summed over pixels

    return f


# ================================================================================================
# stochgrad
# ================================================================================================


def stochgrad_rows(cfg: BenchConfig, problem: dict) -> dict[str, dict[str, dict]]:
    from stochgrad.estimators import (
        BernoulliRelaxation,
        ConcreteControlVariate,
        MovingAverageBaseline,
        NeuralControlVariate,
        RelaxedInput,
        dlax,
        mlp,
        reinforce,
        relax,
        variance_loss,
    )

    def toy_cv(scale: float = 1.0):
        net = nn.Sequential(RelaxedInput("bernoulli", 0.5), mlp(1, (10,), 1, nn.Tanh))
        return NeuralControlVariate(net, scale=scale)

    def train(estimator, cv: nn.Module) -> None:
        """variance_loss (single-sample Σ ĝ², 003 eq. 11) at fixed θ = 0, Adam on φ."""
        params = [p for p in cv.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.train_lr)
        theta = torch.full((1, 1), THETA, requires_grad=True)
        for _ in range(cfg.train_steps):
            loss, _ = variance_loss(estimator(BernoulliRelaxation(logits=theta)), theta)
            for p, g in zip(params, torch.autograd.grad(loss, params)):
                p.grad = g
            opt.step()

    # ---- toy ----------------------------------------------------------------------------------
    exact = exact_toy_grad()
    toy: dict[str, dict] = {}
    for _ in range(200):  # process-wide warm-up (allocator, dispatcher) before any timing
        leaf = torch.zeros(1, 1, requires_grad=True)
        torch.autograd.grad(reinforce(BernoulliRelaxation(logits=leaf), toy_f).surrogate, leaf)

    def toy_row(name: str, build, trained: bool = False) -> None:
        torch.manual_seed(cfg.seed + len(toy))
        estimator, cv, baseline = build()
        if trained:
            train(estimator, cv)
        if baseline is not None:  # settle the moving average with single-sample estimates
            leaf = torch.full((1, 1), THETA)
            for _ in range(cfg.baseline_warmup):
                baseline.update(estimator(BernoulliRelaxation(logits=leaf)).f)

        def one(batch: int) -> Tensor:
            leaf = torch.full((batch, 1), THETA, requires_grad=True)
            est = estimator(BernoulliRelaxation(logits=leaf))
            (g,) = torch.autograd.grad(est.surrogate if batch == 1 else est.per_example.sum(), leaf)
            if baseline is not None and batch == 1:
                baseline.update(est.f)
            return g

        single = timed(lambda: one(1), cfg.toy_time_repeats, cfg.warmup)
        vec = timed(lambda: one(cfg.toy_vec_batch), cfg.vec_repeats, 2)
        if baseline is not None:  # a constant baseline for the N independent estimates
            frozen = baseline.value.clone()
            estimator_n = estimator
            estimator = lambda d: estimator_n(d, frozen)
        leaf = torch.full((cfg.toy_var_samples, 1), THETA, requires_grad=True)
        est = estimator(BernoulliRelaxation(logits=leaf))
        (g,) = torch.autograd.grad(est.per_example.sum(), leaf)
        toy[name] = {
            "time_ms": median_ms(single),
            "time_per_sample_us": median_ms(vec) * 1e3 / cfg.toy_vec_batch,
            **grad_stats(g.squeeze(1), exact),
        }

    def b_reinforce():
        return (lambda d: reinforce(d, toy_f)), None, None

    def b_baseline():
        ma = MovingAverageBaseline(decay=0.95)

        def estimator(d, value=None):
            return reinforce(d, toy_f, ma() if value is None else value)

        return estimator, None, ma

    def b_rebar():
        cv = ConcreteControlVariate("bernoulli", eta=1.0, temperature=0.5)
        return (lambda d: relax(d, toy_f, cv)), cv, None

    def b_relax():
        cv = toy_cv(1.0)
        return (lambda d: relax(d, toy_f, cv)), cv, None

    def b_dlax():
        cv = toy_cv(1.0)
        return (lambda d: dlax(d, toy_f, cv)), cv, None

    toy_row("reinforce", b_reinforce)
    toy_row("reinforce + moving-average baseline", b_baseline)
    toy_row("rebar (untrained: η=1, λ=0.5)", b_rebar)
    toy_row("rebar (trained η, λ)", b_rebar, trained=True)
    toy_row("relax (untrained, scale 1)", b_relax)
    toy_row("relax (trained φ)", b_relax, trained=True)
    toy_row("dlax (untrained, scale 1)", b_dlax)
    toy_row("dlax (trained φ)", b_dlax, trained=True)

    # ---- discrete VAE -------------------------------------------------------------------------
    f = vae_objective(problem)
    logits0 = problem["logits"]
    vae: dict[str, dict] = {}

    def vae_row(name: str, build) -> None:
        torch.manual_seed(cfg.seed + 100 + len(vae))
        estimator, baseline = build()

        def one(rows: int) -> Tensor:
            leaf = logits0.repeat(rows // 24, 1).requires_grad_(True)
            est = estimator(BernoulliRelaxation(logits=leaf))
            (g,) = torch.autograd.grad(est.per_example.sum(), leaf)  # per-example ĝ
            if baseline is not None:
                baseline.update(est.f)
            return g

        for _ in range(cfg.warmup if baseline is None else cfg.baseline_warmup):
            one(24)
        grads, times = [], []
        for _ in range(cfg.vae_repeats):
            t0 = time.perf_counter()
            g = one(24)
            times.append(time.perf_counter() - t0)
            grads.append(g)
        vec = timed(lambda: one(cfg.vae_vec_rows), cfg.vec_repeats, 1)
        vae[name] = {
            "time_ms": median_ms(times),
            "time_per_sample_us": median_ms(vec) * 1e3 / cfg.vae_vec_rows,
            **vae_variance(torch.stack(grads)),
        }

    def v_reinforce():
        return (lambda d: reinforce(d, f)), None

    def v_baseline():
        ma = MovingAverageBaseline(decay=0.95)
        return (lambda d: reinforce(d, f, ma())), ma

    def v_rebar():
        cv = ConcreteControlVariate("bernoulli", eta=1.0, temperature=0.5)
        return (lambda d: relax(d, f, cv)), None

    def v_relax():
        cv = ConcreteControlVariate("bernoulli") + NeuralControlVariate(
            mlp(200, (200,), 1), scale=1.0
        )
        return (lambda d: relax(d, f, cv)), None

    def v_dlax():
        cv = ConcreteControlVariate("bernoulli") + NeuralControlVariate(
            mlp(200, (200,), 1), scale=1.0
        )
        return (lambda d: dlax(d, f, cv)), None

    vae_row("reinforce", v_reinforce)
    vae_row("reinforce + moving-average baseline", v_baseline)
    vae_row("rebar (untrained: η=1, λ=0.5)", v_rebar)
    vae_row("relax (untrained: REBAR term + MLP r_ρ, scale 1)", v_relax)
    vae_row("dlax (untrained, same control variate as relax)", v_dlax)
    return {"toy": toy, "vae": vae}


# ================================================================================================
# the limit: the same graphs written by hand in plain PyTorch (issue 9 section 6)
# ================================================================================================

EPS32 = torch.finfo(torch.float32).eps


def _hand_noise(shape: torch.Size, gen: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=gen).clamp_(EPS32, 1 - EPS32)


def _hand_conditional(leaf: Tensor, b: Tensor, u: Tensor) -> Tensor:
    """z̃ ~ p(z | b, θ) with tied noise (003 App. A, intervals as in relaxations.py)."""
    p1, p0 = torch.sigmoid(leaf), torch.sigmoid(-leaf)
    top = b > 0.5
    with torch.no_grad():
        v = torch.where(top, (u - p0) / p1, u / p0).clamp_(EPS32, 1 - EPS32)
    log_u = torch.where(top, torch.log(p0 + v * p1), torch.log(v) + F.logsigmoid(-leaf))
    log_1mu = torch.where(top, F.logsigmoid(leaf) + torch.log1p(-v), torch.log1p(-v * p0))
    return leaf + log_u - log_1mu


def _hand_cv_pair(z1: Tensor, z2: Tensor, f, eta, log_lam, net, scale) -> tuple[Tensor, Tensor]:
    """c = η f(σ_λ(z)) [+ s · net(z)] at z1 and z2 (the net on both in one call)."""
    c1 = c2 = 0.0
    if eta is not None:
        lam = log_lam.exp()
        c1, c2 = eta * f(torch.sigmoid(z1 / lam)), eta * f(torch.sigmoid(z2 / lam))
    if net is not None:
        both = scale * net(torch.cat([z1, z2])).squeeze(-1)
        c1, c2 = c1 + both[: z1.shape[0]], c2 + both[z1.shape[0] :]
    return c1, c2


def hand_estimate(
    name: str, leaf: Tensor, f, gen: torch.Generator, baseline=None, cv: tuple = ()
) -> Tensor:
    """ĝ (per example) w.r.t. Bernoulli logits ``leaf`` for reinforce / relax / dlax, by hand.

    ``cv = (eta, log_lam, net, scale)``; ĝ keeps its φ-dependence (the variance objective needs
    it), exactly as the library's surrogate does.
    """
    u = _hand_noise(leaf.shape, gen)
    if name == "reinforce":  # 003 eq. 2; the sample needs no graph
        b = (leaf.detach() + torch.log(u) - torch.log1p(-u) > 0).to(leaf.dtype)
        log_p = -F.binary_cross_entropy_with_logits(leaf, b, reduction="none").sum(-1)
        fb = f(b)
        per = (fb if baseline is None else fb - baseline) * log_p
        return torch.autograd.grad(per.sum(), leaf)[0]
    z = leaf + torch.log(u) - torch.log1p(-u)  # 003 App. A
    b = (z.detach() > 0).to(leaf.dtype)
    log_p = -F.binary_cross_entropy_with_logits(leaf, b, reduction="none").sum(-1)
    fb = f(b)
    if name == "relax":  # 003 eq. 10, tied noise
        c, c_tilde = _hand_cv_pair(z, _hand_conditional(leaf, b, u), f, *cv)
        per = (fb - c_tilde) * (log_p - log_p.detach()) + c - c_tilde
    else:  # dlax, 004 eq. 7 with c's pathwise term through z only
        z_fixed = z.detach()
        y = z_fixed - leaf
        log_p_z = (-F.softplus(y) - F.softplus(-y)).sum(-1)
        c, c_fixed = _hand_cv_pair(z, z_fixed, f, *cv)
        per = fb * log_p - c_fixed * (log_p_z - log_p_z.detach()) + c - c_fixed
    return torch.autograd.grad(per.sum(), leaf)[0]


def hand_lax(leaf: Tensor, f, net, scale) -> Tensor:
    """LAX (003 eq. 8) on Normal(leaf, 1) latents, by hand."""
    dist = torch.distributions.Normal(leaf, 1.0)
    b = dist.rsample()
    b_fixed = b.detach()
    log_p = dist.log_prob(b_fixed).sum(-1)
    fb = f(b_fixed)
    c, c_fixed = _hand_cv_pair(b, b_fixed, f, None, None, net, scale)
    per = (fb - c_fixed) * (log_p - log_p.detach()) + c - c_fixed
    return torch.autograd.grad(per.sum(), leaf)[0]


def same_graph_rows(cfg: BenchConfig, problem: dict) -> dict[str, dict[str, dict]]:
    """Each estimator against the same graph by hand: same noise, same f, interleaved rounds.

    Before timing, both sides run once on the same noise and must give the same ĝ.
    """
    from _common import interleaved_ratios

    from stochgrad.estimators import (
        BernoulliRelaxation,
        ConcreteControlVariate,
        NeuralControlVariate,
        dlax,
        lax,
        mlp,
        reinforce,
        relax,
        reparameterization,
    )

    f_vae = vae_objective(problem)
    logits0 = problem["logits"]
    torch.manual_seed(cfg.seed)
    concrete = ConcreteControlVariate("bernoulli", eta=1.0, temperature=0.5)
    net = NeuralControlVariate(mlp(200, (200,), 1), scale=1.0)
    toy_concrete = ConcreteControlVariate("bernoulli", eta=1.0, temperature=0.5)
    cv_concrete = (concrete.eta, concrete.log_temperature, None, None)
    cv_full = (concrete.eta, concrete.log_temperature, net.net, net.scale)
    baseline = torch.tensor(540.0)  # a fixed number near E[f]

    def ours_fn(estimator, logits, f, cv=None, base=None):
        def run(gen):
            leaf = logits.clone().requires_grad_(True)
            dist = BernoulliRelaxation(logits=leaf)
            if estimator is reinforce:
                est = reinforce(dist, f, base, generator=gen)
            else:
                est = estimator(dist, f, cv, generator=gen)
            return torch.autograd.grad(est.per_example.sum(), leaf)[0]

        return run

    def hand_fn(name, logits, f, cv=(), base=None):
        def run(gen):
            leaf = logits.clone().requires_grad_(True)
            return hand_estimate(name, leaf, f, gen, base, cv)

        return run

    def normal_ours(estimator):
        def run(gen):
            leaf = logits0.clone().requires_grad_(True)
            dist = torch.distributions.Normal(leaf, 1.0)
            est = lax(dist, f_vae, net) if estimator is lax else reparameterization(dist, f_vae)
            return torch.autograd.grad(est.per_example.sum(), leaf)[0]

        return run

    def normal_hand(name):
        def run(gen):
            leaf = logits0.clone().requires_grad_(True)
            if name == "lax":
                return hand_lax(leaf, f_vae, net.net, net.scale)
            b = torch.distributions.Normal(leaf, 1.0).rsample()
            return torch.autograd.grad(f_vae(b).sum(), leaf)[0]

        return run

    toy_logits = torch.full((1, 1), THETA)
    toy_cv = (toy_concrete.eta, toy_concrete.log_temperature, None, None)
    rows = {
        "toy": {
            "reinforce": (
                ours_fn(reinforce, toy_logits, toy_f),
                hand_fn("reinforce", toy_logits, toy_f),
            ),
            "rebar": (
                ours_fn(relax, toy_logits, toy_f, toy_concrete),
                hand_fn("relax", toy_logits, toy_f, toy_cv),
            ),
        },
        "vae": {
            "reinforce": (ours_fn(reinforce, logits0, f_vae), hand_fn("reinforce", logits0, f_vae)),
            "reinforce + number baseline": (
                ours_fn(reinforce, logits0, f_vae, base=540.0),
                hand_fn("reinforce", logits0, f_vae, base=baseline),
            ),
            "rebar": (
                ours_fn(relax, logits0, f_vae, concrete),
                hand_fn("relax", logits0, f_vae, cv_concrete),
            ),
            "relax (REBAR term + MLP)": (
                ours_fn(relax, logits0, f_vae, concrete + net),
                hand_fn("relax", logits0, f_vae, cv_full),
            ),
            "dlax (REBAR term + MLP)": (
                ours_fn(dlax, logits0, f_vae, concrete + net),
                hand_fn("dlax", logits0, f_vae, cv_full),
            ),
            "lax (Normal latents, MLP)": (normal_ours(lax), normal_hand("lax")),
            "reparameterization (Normal latents)": (
                normal_ours(reparameterization),
                normal_hand("reparameterization"),
            ),
        },
    }
    out: dict[str, dict[str, dict]] = {}
    for problem_name, pairs in rows.items():
        timed_pairs = {}
        for name, (ours, hand) in pairs.items():
            torch.manual_seed(cfg.seed)
            g_ours = ours(torch.Generator().manual_seed(cfg.seed))
            torch.manual_seed(cfg.seed)
            g_hand = hand(torch.Generator().manual_seed(cfg.seed))
            torch.testing.assert_close(g_ours, g_hand, rtol=1e-4, atol=1e-4, msg=name)
            gens = (
                torch.Generator().manual_seed(cfg.seed),
                torch.Generator().manual_seed(cfg.seed),
            )
            timed_pairs[name] = (
                lambda ours=ours, g=gens[0]: ours(g),
                lambda hand=hand, g=gens[1]: hand(g),
            )
        toy = problem_name == "toy"  # short calls: more rounds, a few calls per round
        out[problem_name] = interleaved_ratios(
            timed_pairs,
            rounds=cfg.same_graph_rounds * (5 if toy else 1),
            calls=cfg.same_graph_calls * (3 if toy else 1),
            warmup=cfg.warmup,
        )
    return out


def readme_step_rows(cfg: BenchConfig) -> dict[str, dict]:
    """The README's RELAX training step: ĝ and the decoder's gradient from variance_loss's one
    pass (``params=``) against the earlier form, variance_loss then a second first-order pass."""
    from _common import interleaved_ratios

    from stochgrad.estimators import (
        BernoulliRelaxation,
        ConcreteControlVariate,
        NeuralControlVariate,
        mlp,
        relax,
        variance_loss,
    )

    torch.manual_seed(cfg.seed)
    x = torch.rand(24, 784).round()
    encoder, decoder = nn.Linear(784, 200), nn.Linear(200, 784)

    def f(b: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(decoder(b), x, reduction="none").sum(-1)

    cv = ConcreteControlVariate("bernoulli") + NeuralControlVariate(mlp(200, (200,), 1))
    enc, dec, phi = list(encoder.parameters()), list(decoder.parameters()), list(cv.parameters())

    def two_passes() -> None:
        logits = encoder(x)
        est = relax(BernoulliRelaxation(logits=logits), f, cv)
        var_loss, _ = variance_loss(est, logits)
        var_loss.backward(inputs=phi, retain_graph=True)
        est.surrogate.backward(inputs=[*enc, *dec])

    def one_pass() -> None:
        logits = encoder(x)
        est = relax(BernoulliRelaxation(logits=logits), f, cv)
        var_loss, (g, *g_dec) = variance_loss(est, logits, params=dec)
        logits.backward(g.detach())
        for p, g_p in zip(dec, g_dec):
            p.grad = g_p.detach()
        var_loss.backward(inputs=phi)

    return interleaved_ratios(
        {"one pass / two passes": (one_pass, two_passes)},
        rounds=cfg.same_graph_rounds // 2,
        calls=1,
        warmup=cfg.warmup,
    )


# ================================================================================================
# storchastic (runs in a subprocess: `--storchastic-worker DIR`)
# ================================================================================================


def storchastic_rows(cfg: BenchConfig, problem: dict, done: dict, save: Callable[[], None]) -> bool:
    """Same problems with storchastic's estimators.  Imports storch: call only in a subprocess.

    Fills ``done[problem][estimator]`` in a fixed order, skipping rows already there, and calls
    ``save()`` after each.  Returns False right after a row that raised: storchastic keeps
    global state (``storch.wrappers``) that a crash can leave dirty, so the caller starts a
    fresh process for the remaining rows.  Returns True when every row is done.

    Distributions are built as ``Bernoulli(probs=sigmoid(θ))``: storchastic's RELAX/REBAR train
    their parameters on the gradient flowing into ``probs`` only (``tensor.grad['probs']``).
    """
    import storch
    from torch.distributions import Bernoulli

    methods = storch.method

    class Head(nn.Module):
        """A control-variate MLP d_in -> hidden -> 1 on storchastic's relaxed sample."""

        def __init__(self, d_in: int, hidden: int, act: type[nn.Module], squeeze: bool) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(d_in, hidden), act(), nn.Linear(hidden, 1))
            self.squeeze = squeeze  # storch's REBAR adds c_φ to a cost with a trailing 1-dim

        def forward(self, x):
            out = self.net(x)
            return out.squeeze(-1) if self.squeeze else out

    def relaxed(method, temperature: float = 0.5):
        method.temperature.data.fill_(temperature)  # λ = 0.5 as in our rows (default 1.0)
        return method

    def grads_for(method, theta: Tensor, f, update: bool = False) -> Tensor:
        """One storch estimate on a [rows, d] leaf (rows independent, plate "data")."""
        rows = theta.shape[0]
        logits = storch.denote_independent(theta, 0, "data")
        b = method(Bernoulli(probs=torch.sigmoid(logits)))
        storch.add_cost(f(b, rows), "cost")
        storch.backward(update_estimator_params=update)
        g = theta.grad.detach() * rows  # storch averages over the "data" plate
        theta.grad = None
        return g

    def train(method, f, d_in: int) -> None:
        """storchastic's own variance training (update_parameters) with Adam on its parameters."""
        opt = torch.optim.Adam(method.parameters(), lr=cfg.train_lr)
        for _ in range(cfg.train_steps):
            grads_for(method, torch.full((1, d_in), THETA, requires_grad=True), f, update=True)
            opt.step()
            opt.zero_grad()

    def toy_f_st(b, rows: int):
        return ((b - TARGET) ** 2).sum(-1)

    logits0 = problem["logits"]
    x_rows: dict[int, Tensor] = {}

    def vae_f_st(b, rows: int):
        """-log p(x|b); b carries plates ("z", "data"), x gets the same "data" plate."""
        if rows not in x_rows:
            x_rows[rows] = problem["x"].repeat(rows // 24, 1)
        x = storch.denote_independent(x_rows[rows], 0, "data")
        out = F.linear(b, problem["dec_w"], problem["dec_b"])
        return (F.softplus(out) - x * out).sum(-1)  # same formula as vae_objective

    def toy_row(i: int, name: str, make) -> dict:
        torch.manual_seed(cfg.seed + i)
        method = make()
        if "trained" in name and "untrained" not in name:
            train(method, toy_f_st, 1)

        def one(rows: int) -> Tensor:
            return grads_for(method, torch.full((rows, 1), THETA, requires_grad=True), toy_f_st)

        for _ in range(cfg.baseline_warmup if "baseline" in name else 0):
            one(1)  # settle the moving average (storch's starts at 0)
        single = timed(lambda: one(1), cfg.toy_time_repeats, cfg.warmup)
        vec = timed(lambda: one(cfg.toy_vec_batch), cfg.vec_repeats, 1)
        g = one(cfg.toy_var_samples).squeeze(1)
        return {
            "time_ms": median_ms(single),
            "time_per_sample_us": median_ms(vec) * 1e3 / cfg.toy_vec_batch,
            **grad_stats(g, exact_toy_grad()),
        }

    def vae_row(i: int, name: str, make) -> dict:
        torch.manual_seed(cfg.seed + 100 + i)
        method = make()

        def one(rows: int) -> Tensor:
            return grads_for(method, logits0.repeat(rows // 24, 1).requires_grad_(True), vae_f_st)

        for _ in range(cfg.baseline_warmup if "baseline" in name else cfg.warmup):
            one(24)
        grads, times = [], []
        for _ in range(cfg.vae_repeats):
            t0 = time.perf_counter()
            grads.append(one(24))
            times.append(time.perf_counter() - t0)
        vec = timed(lambda: one(cfg.vae_vec_rows), cfg.vec_repeats, 1)
        return {
            "time_ms": median_ms(times),
            "time_per_sample_us": median_ms(vec) * 1e3 / cfg.vae_vec_rows,
            **vae_variance(torch.stack(grads)),
        }

    toy_tanh = lambda: Head(1, 10, nn.Tanh, True)
    specs = {
        "toy": (
            toy_row,
            {
                "reinforce": lambda: methods.ScoreFunction("z", baseline_factory="none"),
                "reinforce + moving-average baseline": lambda: methods.ScoreFunction(
                    "z", baseline_factory="moving_average"
                ),
                "rebar (untrained: η=1, λ=0.5)": lambda: relaxed(methods.REBAR("z")),
                "rebar (trained η, λ)": lambda: relaxed(methods.REBAR("z")),
                "relax (untrained, scale 1)": lambda: relaxed(methods.RELAX("z", c_phi=toy_tanh())),
                "relax (trained φ)": lambda: relaxed(methods.RELAX("z", c_phi=toy_tanh())),
                "lax": lambda: methods.LAX("z", in_dim=1),
                "arm": lambda: methods.ARM("z"),
                "disarm": lambda: methods.DisARM("z"),
                "gumbel-softmax (biased, τ=1)": lambda: methods.GumbelSoftmax("z"),
            },
        ),
        "vae": (
            vae_row,
            {
                "reinforce": lambda: methods.ScoreFunction("z", baseline_factory="none"),
                "reinforce + moving-average baseline": lambda: methods.ScoreFunction(
                    "z", baseline_factory="moving_average"
                ),
                "rebar (untrained: η=1, λ=0.5)": lambda: relaxed(methods.REBAR("z")),
                "relax (untrained: REBAR term + MLP r_ρ, scale 1)": lambda: relaxed(
                    methods.REBAR("z", c_phi=Head(200, 200, nn.ReLU, False))
                ),
                "lax": lambda: methods.LAX("z", in_dim=200),
                "arm": lambda: methods.ARM("z"),
                "disarm": lambda: methods.DisARM("z"),
                "gumbel-softmax (biased, τ=1)": lambda: methods.GumbelSoftmax("z"),
            },
        ),
    }

    warm = methods.ScoreFunction("z", baseline_factory="none")
    for _ in range(200):  # process-wide warm-up before any timing
        grads_for(warm, torch.zeros(1, 1, requires_grad=True), toy_f_st)
    for key, (measure, rows) in specs.items():
        for i, (name, make) in enumerate(rows.items()):
            if name in done.setdefault(key, {}):
                continue
            try:
                done[key][name] = measure(i, name, make)
            except Exception as exc:  # noqa: BLE001  (a crash is a result: record it, restart)
                done[key][name] = {
                    "error": f"{type(exc).__name__}: {exc}".strip(),
                    "traceback_tail": strip_paths(traceback.format_exc(limit=-3)),
                }
                save()
                return False
            save()
    return True


def storchastic_worker(workdir: Path) -> None:
    """Entry point of the subprocess: read config, problem and rows done; add the others."""
    torch.set_num_threads(1)
    cfg = BenchConfig(**json.loads((workdir / "config.json").read_text()))
    problem = torch.load(workdir / "problem.pt", weights_only=True)
    result_file = workdir / "storchastic.json"
    out = (
        json.loads(result_file.read_text())
        if result_file.is_file()
        else {
            "imported_in": "subprocess (storch monkey-patches torch at import); a fresh process "
            "after each estimator that raised",
            "rows": {},
            "processes": 0,
        }
    )
    out["processes"] += 1

    def save() -> None:
        result_file.write_text(json.dumps(out))

    try:
        from importlib.metadata import version

        import storch  # noqa: F401

        out["version"] = version("storchastic")
        out["pyro_ppl_version"] = version("pyro-ppl")
    except Exception as exc:  # noqa: BLE001  (any import failure: report it, keep going)
        out.update(available=False, reason=f"import failed: {type(exc).__name__}: {exc}")
        save()
        return
    out["available"] = True
    out["complete"] = storchastic_rows(cfg, problem, out["rows"], save)
    if out["complete"] and "lax_on_gaussian" not in out:  # last: LAX where it should apply
        out["lax_on_gaussian"] = storchastic_lax_probe()
    save()


def storchastic_lax_probe() -> str:
    """storchastic's LAX on a reparameterizable Normal (its intended use): result or error."""
    import storch
    from torch.distributions import Normal

    mu = torch.zeros(1, requires_grad=True)
    try:
        b = storch.method.LAX("z", in_dim=1)(Normal(mu, torch.ones(1)))
        storch.add_cost(((b - TARGET) ** 2).sum(-1), "cost")
        storch.backward()
        return f"ran: gradient {mu.grad.item():.4g}"
    except Exception as exc:  # noqa: BLE001  (the error string is the result)
        return f"{type(exc).__name__}: {exc}"


def run_storchastic(cfg: BenchConfig, problem: dict, timeout_s: float) -> dict:
    """Run storchastic's rows in subprocesses (a fresh one after each crash)."""
    deadline = time.perf_counter() + timeout_s
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "config.json").write_text(json.dumps(asdict(cfg)))
        torch.save(
            {k: v for k, v in problem.items() if isinstance(v, Tensor)}, workdir / "problem.pt"
        )
        result_file = workdir / "storchastic.json"
        n_done = -1
        while True:
            try:
                proc = subprocess.run(
                    [sys.executable, __file__, "--storchastic-worker", str(workdir)],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=max(1.0, deadline - time.perf_counter()),
                )
            except subprocess.TimeoutExpired:
                out = json.loads(result_file.read_text()) if result_file.is_file() else {}
                out.setdefault("available", False)
                out["reason"] = f"timed out after {timeout_s:.0f} s"
                return out
            if not result_file.is_file():
                lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
                return {
                    "available": False,
                    "reason": f"worker exited {proc.returncode}: "
                    f"{lines[-1] if lines else 'no output'}",
                }
            out = json.loads(result_file.read_text())
            done_now = sum(len(v) for v in out.get("rows", {}).values())
            if not out.get("available") or out.get("complete") or done_now == n_done:
                return out
            n_done = done_now


# ================================================================================================
# report
# ================================================================================================

PAPER_TOY = {
    "reinforce": "reference",
    "rebar (untrained: η=1, λ=0.5)": "≈ REINFORCE",
    "rebar (trained η, λ)": "≈ REINFORCE",
    "relax (trained φ)": "orders of magnitude below REINFORCE",
}


def _fmt(cell: dict | None, key: str) -> str:
    if cell is None:
        return "n/a"
    if "error" in cell:
        return "—"
    value = cell.get(key)
    if value is None:
        return "—"
    if key == "time_ms":
        return f"{value:.3f} ms"
    if key == "time_per_sample_us":
        return f"{value:.2f} µs"
    if key == "bias_z":
        return f"{value:+.1f}"
    return f"{value:.2f}"


def _time_cell(cell: dict | None) -> str:
    if cell is not None and "error" in cell:
        err = cell["error"].replace("|", "/").replace("\n", " ")
        return "error: " + (err if len(err) <= 110 else err[:107] + "…")
    return _fmt(cell, "time_ms")


SAME_GRAPH_GOAL = 1.2
SAME_GRAPH_NOTE = (
    "Each estimator against the same graph written by hand in plain PyTorch (hand_estimate, "
    "hand_lax): same uniform noise (generators seeded alike; both sides give the same ĝ before "
    "timing), same f, same control-variate modules, ĝ per example w.r.t. the logits with its "
    "φ-dependence kept (as the variance objective needs). Interleaved rounds in one process "
    "(the side that goes first alternates; each side's timed calls follow one untimed call of "
    "the same side); ratio = ours / hand per round, median and quartiles over rounds. Clock: "
    "CPU time of the calling thread (time.thread_time; torch runs on this one thread), so "
    "time spent descheduled by other processes on a loaded machine does not count. VAE size: 200 Bernoulli units x batch 24, linear decoder f; LAX and "
    "reparameterization on Normal(logits, 1) latents of the same size with the same f."
)


def same_graph_markdown(result: dict) -> list[str]:
    sg = result["same_graph"]
    lines = [
        "## Against the limit: the same graph written by hand",
        "",
        sg["description"],
        "",
        (
            "| problem | estimator | stochgrad (ms) | by hand (ms) | ratio (median) | ratio "
            f"quartiles | ratio of fastest rounds | within {sg['goal']}x |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for problem, rows in sg["problems"].items():
        for name, r in rows.items():
            ok = "yes" if r["ratio_median"] <= sg["goal"] else "no"
            lines.append(
                f"| {problem} | {name} | {r['ours_ms']:.3f} | {r['hand_ms']:.3f} | "
                f"{r['ratio_median']:.3f} | {r['ratio_q25']:.2f}-{r['ratio_q75']:.2f} | "
                f"{r['ratio_of_minima']:.3f} | {ok} |"
            )
    first = {k: next(iter(rows.values())) for k, rows in sg["problems"].items()}
    lines += [
        "",
        (
            f"- Toy: {first['toy']['rounds']} rounds of {first['toy']['calls_per_round']} calls "
            f"per side; VAE size: {first['vae']['rounds']} rounds of "
            f"{first['vae']['calls_per_round']} call per side. Times are medians of the per-call "
            "times over rounds. "
            "Under load from other processes only the ratios (same round, same machine state) "
            "are meaningful; the goal is judged on the median ratio. 'ratio of fastest rounds' "
            "= fastest round of ours / fastest round by hand, the pair least disturbed by other "
            "processes."
        ),
        "",
    ]
    for name, r in result["readme_step"].items():
        lines += [
            (
                "README training step (RELAX, 784-200 encoder/decoder, batch 24, variance "
                f"objective): {name} = {r['ratio_median']:.3f} (quartiles "
                f"{r['ratio_q25']:.2f}-{r['ratio_q75']:.2f}, fastest rounds "
                f"{r['ratio_of_minima']:.3f}; {r['ours_ms']:.2f} ms against {r['hand_ms']:.2f} ms "
                f"per step, {r['rounds']} interleaved rounds): the second first-order pass that "
                "variance_loss(params=) saves is a small part of a step dominated by the "
                "double-backward of the variance objective."
            ),
            "",
        ]
    return lines


def markdown(result: dict) -> str:
    st = result["storchastic"]
    available = st.get("available", False)
    cols = ["time", "µs/sample (vec.)", "log10 var"]
    lines = [
        f"# Gradient estimators: stochgrad vs storchastic ({result['settings']['mode']} run)",
        "",
        f"torch {result['machine']['torch']}, {result['machine']['cpu_count']} CPUs, "
        f"torch.set_num_threads({result['machine']['torch_threads']}) for every timing "
        f"(1-min load average {fmt_num(result['machine']['load_average_1min']['start'])} at "
        f"start, {fmt_num(result['machine']['load_average_1min']['end'])} at end); "
        "float32; times are medians after warm-up (time.perf_counter). "
        + (
            f"storchastic {st.get('version')} ran in a subprocess, after nothing else: "
            "it monkey-patches torch at import."
            if available
            else f"storchastic: unavailable ({st.get('reason')})."
        ),
        "",
    ]
    lines += same_graph_markdown(result)
    for key, title in (
        ("toy", "Toy problem (003 section 6.1)"),
        ("vae", "Discrete-VAE-sized problem"),
    ):
        prob = result["problems"][key]
        lines += [f"## {title}", "", prob["description"], ""]
        names = list(prob["estimators"])
        toy = key == "toy"
        header = ["estimator"] + [f"stochgrad {c}" for c in cols]
        if toy:
            header.insert(4, "stochgrad bias (s.e.)")
        if available:
            header += [f"storchastic {c}" for c in cols] + (
                ["storchastic bias (s.e.)"] if toy else []
            )
        else:
            header += [f"storchastic: unavailable ({st.get('reason')})"]
        if toy:
            header += ["paper (003 Fig. 1)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name in names:
            row = prob["estimators"][name]
            ours, theirs = row.get("stochgrad"), row.get("storchastic")
            cells = [
                name,
                _time_cell(ours),
                _fmt(ours, "time_per_sample_us"),
                _fmt(ours, "log10_variance"),
            ]
            if toy:
                cells.append(_fmt(ours, "bias_z"))
            if available:
                cells += [
                    _time_cell(theirs),
                    _fmt(theirs, "time_per_sample_us"),
                    _fmt(theirs, "log10_variance"),
                ]
                if toy:
                    cells.append(_fmt(theirs, "bias_z"))
            else:
                cells.append("—")
            if toy:
                cells.append(PAPER_TOY.get(name, ""))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- {note}" for note in prob["notes"]]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 2 minutes)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--mnist",
        type=Path,
        default=Path(os.environ.get("STOCHGRAD_MNIST", DEFAULT_MNIST)),
        help="binarized_mnist.npz (env STOCHGRAD_MNIST); random data if missing",
    )
    parser.add_argument("--no-storchastic", action="store_true", help="skip the peer library")
    parser.add_argument("--storchastic-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.storchastic_worker is not None:
        storchastic_worker(args.storchastic_worker)
        return

    torch.set_num_threads(1)
    load_start = load_average()
    cfg = BenchConfig.quick(args.seed) if args.quick else BenchConfig.full(args.seed)
    start = time.perf_counter()
    problem = make_vae_problem(cfg, args.mnist)
    ours = stochgrad_rows(cfg, problem)
    same_graph = same_graph_rows(cfg, problem)
    readme_step = readme_step_rows(cfg)
    ours_s = time.perf_counter() - start
    if args.no_storchastic:
        st = {"available": False, "reason": "skipped with --no-storchastic"}
    else:
        st = run_storchastic(cfg, problem, timeout_s=540 if not args.quick else 150)
    theirs = st.pop("rows", None) or {}

    def merge(key: str) -> dict:
        peer = theirs.get(key, {})
        names = list(ours[key]) + [n for n in peer if n not in ours[key]]
        return {n: {"stochgrad": ours[key].get(n), "storchastic": peer.get(n)} for n in names}

    exact = exact_toy_grad()
    toy_notes = [
        (
            f"Exact gradient p(1-p)(1-2t) = {exact:.6g} at θ = {THETA}, t = {TARGET}. Variance and "
            f"bias from {cfg.toy_var_samples:,} independent single-sample estimates (one vectorized "
            "call on an [N, 1] leaf); bias = (mean - exact)/standard error; time = one single-sample "
            f"estimate + torch.autograd.grad (median of {cfg.toy_time_repeats}); µs/sample = one call "
            f"computing {cfg.toy_vec_batch:,} estimates / {cfg.toy_vec_batch:,}."
        ),
        (
            "Paper reference (003 Fig. 1, qualitative, read from the figure during training rather "
            "than at a fixed θ): REBAR's gradient variance is about REINFORCE's; RELAX's trained "
            "control variate lowers it by orders of magnitude."
        ),
        (
            f'"trained" rows: {cfg.train_steps} Adam steps (lr {cfg.train_lr}) at fixed θ = 0 on '
            "the single-sample variance objective (stochgrad: variance_loss; storchastic: its own "
            "update_parameters). Untrained rows use fresh parameters: η = 1, λ = 0.5 (storchastic's "
            "temperature set to 0.5 from its default 1.0), control-variate MLP 1-10(tanh)-1."
        ),
        (
            "Moving-average baselines (decay 0.95) are settled over "
            f"{cfg.baseline_warmup} single-sample estimates first; stochgrad's is then held constant "
            "for the N estimates. storchastic's moving average folds the current cost into its own "
            "baseline before use, which shrinks a single-sample estimate by the factor 0.95 (biased)."
        ),
        (
            "With one unit at p = 1/2 a constant baseline equal to E[f] makes REINFORCE exact "
            "(ĝ = (f(b) - c)(b - p) is the same for b = 0 and 1), so the baseline rows' tiny variance "
            "only measures how close the moving average got to E[f]; it is not a general ranking."
        ),
        (
            "storchastic rows use Bernoulli(probs=sigmoid(θ)) because its RELAX/REBAR train on the "
            "gradient reaching `probs`; its RELAX feeds c_φ the relaxed sample σ_λ(z). storchastic "
            "has no DLAX (stochgrad's LAX, like storchastic's, needs a reparameterizable "
            "distribution). "
            "storchastic's LAX on a Normal, where it should apply: "
            f"{st.get('lax_on_gaussian', 'not run')}. Multi-sample estimators (ScoreFunctionWOR, "
            "UnorderedSet*, RaoBlackwellSF, Expect) are not single-sample estimators and are not "
            "measured. After an estimator raised, the remaining storchastic rows run in a fresh "
            "process (its global state can be left dirty by a crash)."
        ),
    ]
    vae_notes = [
        (
            f"Data: {problem['source']}. Encoder Linear(784, 200) and decoder Linear(200, 784) are "
            f"random (seed {cfg.seed}) and frozen; f(b) = BCE-with-logits summed over 784 pixels, "
            "[24]. Gradients are per example (the sum over the batch) with respect to the 24 x 200 "
            "logits."
        ),
        (
            f"variance = mean over the 4,800 logits of the per-logit variance across "
            f"{cfg.vae_repeats} repeated whole-batch estimates; time = median of the same "
            f"{cfg.vae_repeats} calls (forward + backward to the logits) after warm-up; µs/sample = "
            f"one call on {cfg.vae_vec_rows} rows / {cfg.vae_vec_rows}. No bias column: there is no "
            "closed-form gradient, and a REINFORCE reference precise enough to test the others would "
            "need far more estimates than this run affords (its per-logit variance is ~10^4.9). "
            f"Moving-average baselines are settled over {cfg.baseline_warmup} whole-batch estimates "
            "and keep updating during the measured calls."
        ),
        (
            "All control variates are untrained. stochgrad relax = ConcreteControlVariate() + "
            "NeuralControlVariate(mlp(200, (200,), 1)); storchastic relax = its REBAR with "
            "c_φ = MLP 200-200(relu)-1 on the relaxed sample (c = η[f(σ_λ(z)) + c_φ(σ_λ(z))])."
        ),
    ]
    result = {
        "machine": machine_info(load_start),
        "settings": {**asdict(cfg), "dtype": "float32", "theta": THETA, "target": TARGET},
        "storchastic": st,
        "problems": {
            "toy": {
                "description": "f(b) = (b - 0.499)^2, b ~ Bernoulli(sigmoid(θ)), θ = 0, "
                "one Bernoulli unit.",
                "exact_grad": exact,
                "notes": toy_notes,
                "paper_reference": toy_notes[1],
                "estimators": merge("toy"),
            },
            "vae": {
                "description": "200 Bernoulli latents, batch 24, logits = fixed random "
                "encoder of binarized MNIST, f(b) = -log p(x|b) with a fixed "
                "random linear Bernoulli decoder (784 pixels).",
                "data": problem["source"],
                "notes": vae_notes,
                "estimators": merge("vae"),
            },
        },
        "same_graph": {
            "goal": SAME_GRAPH_GOAL,
            "description": SAME_GRAPH_NOTE,
            "problems": same_graph,
        },
        "readme_step": readme_step,
        "wall_time_s": {"stochgrad": ours_s, "total": time.perf_counter() - start},
    }
    for prob in result["problems"].values():  # JSON has no Infinity/NaN
        for row in prob["estimators"].values():
            for cell in row.values():
                for k, v in (cell or {}).items():
                    if isinstance(v, float) and not math.isfinite(v):
                        cell[k] = None
    write_results(args.out, "estimators", result, markdown(result))
    print(
        f"wrote {args.out / 'estimators.json'} and {args.out / 'estimators.md'} "
        f"in {result['wall_time_s']['total']:.0f} s"
    )


if __name__ == "__main__":
    main()
