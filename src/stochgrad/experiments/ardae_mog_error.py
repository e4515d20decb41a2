"""Experiment ``ardae-mog-error``: approximation error of DAE score estimates on a 1-D mixture
(000 section 4.2, Fig. 3, App. D.1-D.2, Fig. S1-S2).

p = 0.5 N(2, 0.5²) + 0.5 N(-2, 0.5²).  For every σ in ``sigmas`` we train a regular DAE and a
residual DAE (each from scratch, and annealed: initialised from the model of the previous,
larger σ, starting at σ = 1), one AR-DAE (σ ~ N(0, δ²)) conditioned on σ, one on |σ| and (not
in the paper) one with antithetic noise pairs, and report E_p |∇ log p(x) - f(x)| over
``eval_samples`` samples, with the optimal f*(x; σ) of Prop. 1 and the σ-blind limit
(``sigma_blind_dae``: where an AR-DAE that ignores σ converges) as references.  Means and
standard errors are over ``repetitions``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ..entropy import ARDAE, RegularDAE, ResidualDAE, optimal_dae, sigma_blind_dae
from ..runner.config import require_positive
from ..runner.registry import Headline, register
from ..targets import two_gaussians_1d

METHODS = (
    "regdae",
    "resdae",
    "regdae_annealed",
    "resdae_annealed",
    "ardae",
    "ardae_abs",
    "ardae_antithetic",
)
"""``ardae_antithetic`` is not in the paper: AR-DAE with (σ, u), (σ, -u) pairs (see ``ARDAE``)."""


@dataclass(frozen=True)
class MogErrorConfig:
    """Settings of 000 App. D.1 (defaults) for the 1-D mixture error analysis."""

    sigmas: tuple[float, ...] = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
    """Noise levels at which the DAEs are trained and every model is evaluated."""
    methods: tuple[str, ...] = METHODS
    """Which models to train (f* is always evaluated)."""
    iterations: int = 10_000
    """Training iterations per model (per σ for regDAE/resDAE and each annealing stage)."""
    batch: int = 256
    """Samples of p per iteration."""
    lr: float = 1e-3
    """Initial Adam learning rate."""
    lr_halve_every: int = 1000
    """Halve the learning rate every this many iterations."""
    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden widths: [1+1, 256] + [256, 256] x 2 + [256, 1]."""
    activation: str = "softplus"
    """Activation of every network."""
    delta: float = 0.05
    """AR-DAE prior scale: σ ~ N(0, δ²)."""
    n_sigma: int = 10
    """σ draws per sample and iteration for AR-DAE."""
    sigma_feature_scale: float = 1.0
    """AR-DAE sees σ multiplied by this as its input (paper: 1; 1/δ makes the input O(1))."""
    eval_samples: int = 1000
    """Samples of p for the expected error."""
    repetitions: int = 5
    """Independent repetitions (new networks and data) for standard errors."""


PRESETS = {
    "paper": {},
    "quick": {
        "sigmas": (0.5, 0.05, 0.005),
        "iterations": 500,
        "lr_halve_every": 500,
        "hidden": (64, 64),
        "repetitions": 2,
        "lr": 3e-3,
    },
}


def sigma_key(sigma: float) -> str:
    """Metric-name form of σ, e.g. 0.05 -> 'sigma_0.05'."""
    return "sigma_" + np.format_float_positional(sigma, trim="-")


def make_model(method: str, sigma: float, cfg: MogErrorConfig) -> nn.Module:
    if method.startswith("regdae"):
        return RegularDAE(1, sigma, hidden=cfg.hidden, activation=cfg.activation)
    if method.startswith("resdae"):
        return ResidualDAE(
            1, sigma, hidden=cfg.hidden, activation=cfg.activation, parameterization="gradient"
        )
    return ARDAE(
        1,
        hidden=cfg.hidden,
        activation=cfg.activation,
        parameterization="gradient",
        delta=cfg.delta,
        n_sigma=cfg.n_sigma,
        sigma_input="abs" if method == "ardae_abs" else "signed",
        sigma_feature_scale=cfg.sigma_feature_scale,
        antithetic=method == "ardae_antithetic",
    )


def train(model: nn.Module, cfg: MogErrorConfig, mixture) -> nn.Module:
    """Adam, learning rate halved every ``lr_halve_every`` iterations (App. D.1)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_halve_every, gamma=0.5)
    for _ in range(cfg.iterations):
        loss = model.loss(mixture.sample(cfg.batch).float())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"DAE loss is {loss.item()} during training")
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model


def expected_error(score: torch.Tensor, x: torch.Tensor, mixture) -> float:
    """E_p |∇ log p(x) - f(x)|, ``x`` ``[n, 1]`` samples of p."""
    return (mixture.score(x) - score.double()).abs().mean().item()


def model_error(model: nn.Module, x: torch.Tensor, mixture, **kwargs) -> float:
    """Expected error of a trained (float32) model's score."""
    return expected_error(model.score(x.float(), **kwargs), x, mixture)


def memory_estimate(cfg: MogErrorConfig) -> float:
    """A lower bound of the peak bytes: one AR-DAE forward on batch x n_σ noisy samples keeps
    two float32 activations per hidden unit for its backward pass."""
    return 4 * 2 * cfg.batch * cfg.n_sigma * sum(cfg.hidden)


@register(
    "ardae-mog-error",
    MogErrorConfig,
    PRESETS,
    "AR-DAE paper section 4.2 / Fig. 3: score error of regDAE, resDAE, AR-DAE on a 1-D MoG",
    headlines={
        "error.ardae.sigma0": Headline(
            paper="Fig. 3: AR-DAE at σ = 0 has a small error, close to the optimal f*(δ); "
            "regular and residual DAEs get worse as σ shrinks",
            meaning="E_p |∇ log p(x) - f(x)| of AR-DAE evaluated at σ = 0 "
            "(compare error.regdae.sigma_* and error.fstar.delta)",
            quick="yes: below a tenth of the regular DAE's error at the smallest σ and below "
            "the residual DAE's (tested), with 500 of the paper's 10000 iterations",
        ),
    },
    memory=memory_estimate,
)
def run(cfg: MogErrorConfig, ctx) -> dict[str, float]:
    with ctx.device:  # tensors and modules are created on the run's device
        return _run(cfg, ctx)


def _run(cfg: MogErrorConfig, ctx) -> dict[str, float]:
    unknown = sorted(set(cfg.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; choose from {METHODS}")
    if not cfg.sigmas or min(cfg.sigmas) <= 0:
        raise ValueError(f"sigmas must be positive numbers, got {cfg.sigmas}")
    require_positive(cfg, "iterations", "batch", "eval_samples", "repetitions", "n_sigma")
    if cfg.sigma_feature_scale <= 0:
        raise ValueError(f"sigma_feature_scale must be > 0, got {cfg.sigma_feature_scale}")
    mixture = two_gaussians_1d()
    sigmas = sorted(cfg.sigmas, reverse=True)
    # errors[name][sigma_key] = list over repetitions
    state = ctx.load_checkpoint() or {"errors": {}, "done": []}
    errors: dict[str, dict[str, list[float]]] = state["errors"]
    done: list[str] = state["done"]

    def record(name: str, key: str, value: float) -> None:
        errors.setdefault(name, {}).setdefault(key, []).append(value)

    units = [(r, m) for r in range(cfg.repetitions) for m in ("fstar", *cfg.methods)]
    for rep, method in ctx.progress(units, desc="ardae-mog-error"):
        unit = f"{rep}:{method}"
        if unit in done:
            continue
        torch.manual_seed(
            ctx.seed * 1000 + rep * 17 + METHODS.index(method)
            if method in METHODS
            else ctx.seed * 1000 + rep * 17 + 99
        )
        x_eval = mixture.sample(cfg.eval_samples)
        if method == "fstar":
            record(
                "fstar",
                "delta",
                expected_error(optimal_dae(x_eval, cfg.delta, mixture), x_eval, mixture),
            )
            # where a σ-blind AR-DAE converges: the σ²-weighted average of f*(·; σ)
            record(
                "sigma_blind",
                "delta",
                expected_error(sigma_blind_dae(x_eval, cfg.delta, mixture), x_eval, mixture),
            )
            for s in sigmas:
                record(
                    "fstar",
                    sigma_key(s),
                    expected_error(optimal_dae(x_eval, s, mixture), x_eval, mixture),
                )
        elif method.startswith("ardae"):
            model = train(make_model(method, cfg.delta, cfg), cfg, mixture)
            record(method, "sigma0", model_error(model, x_eval, mixture))
            for s in sigmas:
                record(method, sigma_key(s), model_error(model, x_eval, mixture, sigma=s))
        elif method.endswith("_annealed"):
            model = None
            stages = sigmas if sigmas[0] >= 1.0 else [1.0, *sigmas]
            for s in stages:
                fresh = make_model(method, s, cfg)
                if model is not None:
                    fresh.load_state_dict(model.state_dict())
                model = train(fresh, cfg, mixture)
                if s in sigmas:
                    record(method, sigma_key(s), model_error(model, x_eval, mixture))
        else:
            for s in sigmas:
                model = train(make_model(method, s, cfg), cfg, mixture)
                record(method, sigma_key(s), model_error(model, x_eval, mixture))
        done.append(unit)
        row = {f"error.{method}.{k}": v[-1] for k, v in errors.get(method, {}).items()}
        ctx.log(len(done), **row)
        ctx.save_checkpoint({"errors": errors, "done": done}, len(done))

    metrics: dict[str, float] = {}
    for name, per_sigma in errors.items():
        for key, values in per_sigma.items():
            metrics[f"error.{name}.{key}"] = float(np.mean(values))
            metrics[f"error_se.{name}.{key}"] = (
                float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
            )
    dae_errors = [
        v
        for k, v in metrics.items()
        if k.startswith("error.")
        and k.split(".")[1] in ("regdae", "resdae", "regdae_annealed", "resdae_annealed")
    ]
    for name in ("ardae", "ardae_antithetic"):
        if name in cfg.methods:
            error0 = metrics[f"error.{name}.sigma0"]
            if dae_errors:
                metrics[f"{name}_sigma0_minus_best_dae"] = error0 - min(dae_errors)
            metrics[f"{name}_sigma0_minus_fstar_delta"] = error0 - metrics["error.fstar.delta"]
    with ctx.figures():
        _figures(cfg, ctx, sigmas, metrics, mixture)
    return metrics


def _figures(cfg: MogErrorConfig, ctx, sigmas, metrics, mixture) -> None:
    styles = {
        "regdae": ("tab:orange", "--"),
        "regdae_annealed": ("tab:orange", "-"),
        "resdae": ("tab:blue", "--"),
        "resdae_annealed": ("tab:blue", "-"),
        "ardae": ("tab:red", "-"),
        "ardae_abs": ("tab:purple", "-"),
        "ardae_antithetic": ("tab:green", "-"),
        "fstar": ("k", ":"),
    }

    def curve(ax, name, label=None):
        keys = [sigma_key(s) for s in sigmas]
        if f"error.{name}.{keys[0]}" not in metrics:
            return
        mean = np.array([metrics[f"error.{name}.{k}"] for k in keys])
        se = np.array([metrics[f"error_se.{name}.{k}"] for k in keys])
        color, ls = styles[name]
        ax.plot(sigmas, mean, ls=ls, color=color, marker="o", ms=3, label=label or name)
        ax.fill_between(sigmas, mean - se, mean + se, color=color, alpha=0.15)

    for fname, names in (
        (
            "error_vs_sigma",
            (
                "regdae",
                "regdae_annealed",
                "resdae",
                "resdae_annealed",
                "ardae",
                "ardae_antithetic",
                "fstar",
            ),
        ),
        ("sigma_conditioning", ("ardae", "ardae_abs", "fstar")),
    ):
        fig, ax = plt.subplots(figsize=(7.5, 4))
        for name in names:
            curve(ax, name)
        at_zero = ("ardae_abs",) if fname == "sigma_conditioning" else ("ardae_antithetic",)
        for name in ("ardae", *at_zero):
            if f"error.{name}.sigma0" in metrics:
                ax.axhline(
                    metrics[f"error.{name}.sigma0"],
                    color=styles[name][0],
                    lw=0.8,
                    ls="-.",
                    label=f"{name} at σ=0",
                )
        for key, color, label in (
            ("error.fstar.delta", "k", "f* at σ=δ"),
            ("error.sigma_blind.delta", "0.5", "σ-blind AR-DAE limit"),
        ):
            if key in metrics:
                ax.axhline(metrics[key], color=color, lw=0.8, ls=":", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("σ")
        ax.set_ylabel("E_p |∇log p(x) - f(x)|")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
        fig.tight_layout()
        ctx.save_figure(fig, fname)

    # Fig. S1: the density and f*(x; σ) for several σ
    x = torch.linspace(-4.5, 4.5, 400, dtype=torch.float64)[:, None]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    xs = x[:, 0].cpu().numpy()
    a1.plot(xs, mixture.log_prob(x).exp().cpu().numpy())
    a1.set_title("p(x)")
    a2.plot(xs, mixture.score(x)[:, 0].cpu().numpy(), "k-.", label="∇log p")
    for s in (0.1, 0.5, 1.0, 2.0):
        a2.plot(xs, optimal_dae(x, s, mixture)[:, 0].cpu().numpy(), label=f"f*, σ={s}")
    a2.set_ylim(-10, 10)
    a2.legend(fontsize=7)
    fig.tight_layout()
    ctx.save_figure(fig, "optimal_dae")
