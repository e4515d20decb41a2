"""Experiment ``vae-discrete``: binary-latent VAEs on binarized MNIST, the encoder trained with
NVIL, Concrete, REBAR or RELAX gradients (003 section 6.2, App. C.1, Tables 1-3, Figs. 2-3;
004 Table 1 for the nonlinear model).

Every (model, estimator) pair is trained side by side, one epoch each in turn, from the same
initial model (one seed per model) and with common random numbers: the same evaluation
noise, and for nvil, rebar and relax the same shuffles and the same noise u for the samples
(concrete, which has no warm-up, draws from the same stream without the warm-up's share), so
that differences between estimators are less a matter of luck.  Settings (defaults) follow 003 App. C.1 and
the authors' code (IMPLEMENTATION_NOTES.md): Adam with β2 = 0.99999, batch 24, 2,000,000
iterations (≈ 960 epochs of 50,000 images), control variates at 10x the model's learning rate
with weight decay on r_ρ, and 1,000 steps that train only the estimator's parameters first.

After every epoch: the ELBO of the training and validation sets (one sample per image, fixed
evaluation noise), and every ``var_every`` epochs the encoder gradient variance at the current
(fixed) parameters from ``var_samples`` independent minibatch estimates (Fig. 3's curves).
Model selection uses the validation ELBO only (003 App. C.1: "the models which achieve the
highest ELBO on the validation data"); the test set is read once, at the end, for the selected
parameters.  ``epochs_to_rebar_best`` is Table 3's count; -1 means "never reached".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ..estimators import NeuralControlVariate
from ..runner.config import require_positive
from ..runner.registry import Headline, register
from ..vae import (
    ALL_ESTIMATORS,
    ESTIMATORS,
    MODELS,
    DiscreteEstimator,
    estimate_gradients,
    make_model,
    step,
)
from ._mnist_common import SUBSET, fork_rng, load_static_mnist, warn_if_subset
from ._mnist_common import generator as _generator
from ._mnist_common import stable_seed as _seed

NOT_REACHED = -1  # epochs_to_rebar_best when an estimator never reaches REBAR's best


@dataclass(frozen=True)
class VaeDiscreteConfig:
    """Settings of 003 App. C.1 and the authors' code (defaults)."""

    models: tuple[str, ...] = MODELS
    """Models: linear1, linear2 (003 Tables 1-3) and nonlinear (004 Table 1)."""
    estimators: tuple[str, ...] = ESTIMATORS
    """Encoder gradient estimators: nvil, concrete, rebar, relax (003 Table 1); "muprop" may be
    added (Gu et al. 2016, 003's MuProp baseline)."""
    data_path: str = ""
    """Binarized MNIST .npz (train 50000 / valid 10000 / test 10000); "" reads $STOCHGRAD_MNIST,
    else the packaged subset (2000 / 500 / 500); "subset" always the packaged subset."""
    n_train: int = 0
    """Use n_train training images, a fixed random choice (0: all)."""
    n_valid: int = 0
    """Use n_valid validation images, a fixed random choice (0: all)."""
    n_test: int = 0
    """Use n_test test images, a fixed random choice (0: all; the file orders them, apparently
    by digit)."""
    n_train_eval: int = 0
    """Training images (the first ones) whose ELBO is evaluated after each epoch (0: all)."""
    epochs: int = 960
    """Training epochs: 2,000,000 iterations x 24 / 50,000 images (003 App. C.1)."""
    batch: int = 24
    """Minibatch size (003 App. C.1)."""
    lr: float = 5e-4
    """Adam learning rate of the model, from 003's REBAR grid {5e-3, 1e-3, 5e-4, 1e-4, 5e-5}
    (the paper does not say which value won)."""
    beta2: float = 0.99999
    """Adam β2 of model and estimator (notes)."""
    cv_lr_scale: float = 10.0
    """Estimator parameters' learning rate / model's (notes: 10; 003 grid {1, 10}); also used
    for NVIL's baseline."""
    cv_weight_decay: float = 1e-4
    """Weight decay (Adam L2) on RELAX's network r_ρ (003 grid {1e-3, 1e-4})."""
    temperature: float = 0.5
    """Initial concrete temperature λ (notes); fixed for concrete."""
    cv_layers: int = 2
    """ReLU layers of 200 units in RELAX's r_ρ (003 App. C.1: 2 or 4)."""
    cv_width: int = 200
    """Units per layer of r_ρ."""
    baseline_hidden: int = 100
    """Tanh units of NVIL's baseline network."""
    warmup_steps: int = 1000
    """Steps that train only the estimator's parameters before the model moves (notes)."""
    var_every: int = 1
    """Measure the encoder gradient variance every this many epochs."""
    var_samples: int = 100
    """Independent minibatch gradient estimates per variance measurement."""
    iwae_samples: int = 100
    """K of the importance-weighted bound of the selected model on valid and test (notes'
    validation bound; 0: skip)."""
    eval_chunk: int = 2000
    """Rows per forward pass in evaluations."""


PRESETS = {
    "paper": {},
    # about 25 s on one CPU thread: the packaged subset, linear1, 12 epochs of 83 steps
    "quick": {
        "models": ("linear1",),
        "data_path": SUBSET,
        "epochs": 12,
        "warmup_steps": 100,
        "var_every": 3,
        "var_samples": 30,
        "iwae_samples": 20,
    },
    # budget: 2 seeds on 2 CPU cores (one thread each) in about 45 minutes, so that it and
    # vae-mnist's medium preset fit about 3 hours together.  linear1 and linear2 with all four
    # estimators on the full set (give $STOCHGRAD_MNIST or data_path), 25 of the paper's 960
    # epochs: measured 43 s of warm-up and 98 s per epoch for the 8 pairs on one thread (load
    # average 1.3-1.8).  On the packaged subset (no full file given) it runs 25x fewer steps
    # per epoch and overfits the 2,000 images.
    "medium": {
        "models": ("linear1", "linear2"),
        "epochs": 25,
        "n_train_eval": 10_000,
        "var_every": 2,
        "var_samples": 50,
        "iwae_samples": 0,
    },
}


@torch.no_grad()
def mean_elbo(model, x: Tensor, seed: int, chunk: int) -> float:
    """Mean one-sample ELBO over the rows of ``x`` ``[n, 784]`` with noise from ``seed``."""
    g = _generator(x.device, seed)
    total = 0.0
    for i in range(0, x.shape[0], chunk):
        total += model.elbo(x[i : i + chunk], g).double().sum().item()
    return total / x.shape[0]


@torch.no_grad()
def mean_iwae(model, x: Tensor, n_samples: int, seed: int, chunk: int) -> float:
    """Mean importance-weighted bound with ``n_samples`` samples over the rows of ``x``."""
    g = _generator(x.device, seed)
    rows = max(1, chunk // n_samples)
    total = 0.0
    for i in range(0, x.shape[0], rows):
        total += model.iwae_bound(x[i : i + rows], n_samples, g).double().sum().item()
    return total / x.shape[0]


def encoder_grad_log10_var(model, estimator, x: Tensor, n: int, seed: int) -> float:
    """log10 of the mean over encoder parameters of Var(ĝ), ĝ the estimator's minibatch gradient
    of -ELBO on ``x`` ``[batch, 784]`` at fixed parameters, from ``n`` >= 2 estimates."""
    g = _generator(x.device, seed)
    enc = list(model.encoders.parameters())
    total = sq = None
    for _ in range(n):
        model.zero_grad(set_to_none=True)
        estimate_gradients(model, x, estimator, g)
        flat = torch.cat([p.grad.reshape(-1) for p in enc]).double()
        total = flat if total is None else total + flat
        sq = flat * flat if sq is None else sq + flat * flat
    model.zero_grad(set_to_none=True)
    estimator.zero_grad(set_to_none=True)
    var = (sq - total * total / n) / (n - 1)
    return math.log10(max(var.mean().item(), 1e-300))


class _Pair:
    """One (model, estimator) pair: the networks, their optimizers, the noise stream, history."""

    def __init__(self, cfg: VaeDiscreteConfig, name: str, est_name: str, x_mean: Tensor, seed: int):
        dev = x_mean.device
        self.name, self.est_name = name, est_name
        with fork_rng(dev), dev:
            torch.manual_seed(_seed(seed, "model", name))  # the same start for every estimator
            self.model = make_model(name, x_mean=x_mean)
            torch.manual_seed(_seed(seed, "estimator", name, est_name))
            self.est = DiscreteEstimator(
                est_name,
                self.model,
                temperature=cfg.temperature,
                hidden=(cfg.cv_width,) * cfg.cv_layers,
                baseline_hidden=(cfg.baseline_hidden,),
            )
        betas = (0.9, cfg.beta2)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=betas)
        decayed = {
            id(p)
            for m in self.est.modules()
            if isinstance(m, NeuralControlVariate)
            for n, p in m.net.named_parameters()
            if not n.endswith("log_temperature")
        }
        params = list(self.est.parameters())
        groups = [
            {
                "params": [p for p in params if id(p) in decayed],
                "weight_decay": cfg.cv_weight_decay,
            },
            {"params": [p for p in params if id(p) not in decayed], "weight_decay": 0.0},
        ]
        groups = [gr for gr in groups if gr["params"]]
        self.est_opt = (
            torch.optim.Adam(groups, lr=cfg.lr * cfg.cv_lr_scale, betas=betas) if groups else None
        )
        # shuffles and sample noise: common to the estimators of one model
        self.gen = _generator(dev, _seed(seed, "train", name))
        self.hist: dict[str, list[float]] = {
            "train": [],
            "valid": [],
            "batch": [],
            "log10_var": [],
            "var_epoch": [],
        }
        self.best_valid = -math.inf
        self.best_epoch = -1
        self.best_state: dict[str, Tensor] = {}

    @property
    def key(self) -> str:
        return f"{self.name}.{self.est_name}"

    def warmup_step(self, x: Tensor) -> None:
        """Train only the estimator's parameters on the minibatch x (the model stays put)."""
        self.est_opt.zero_grad(set_to_none=True)
        out = estimate_gradients(self.model, x, self.est, self.gen)
        out.estimator_loss.backward(inputs=list(self.est.parameters()))
        self.est_opt.step()
        self.model.zero_grad(set_to_none=True)

    def state(self, device: torch.device) -> dict:
        return {
            "model": self.model.state_dict(),
            "est": self.est.state_dict(),
            "opt": self.opt.state_dict(),
            "est_opt": None if self.est_opt is None else self.est_opt.state_dict(),
            "gen": self.gen.get_state().to(device),
            "hist": self.hist,
            "best_valid": self.best_valid,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
        }

    def load(self, s: dict) -> None:
        self.model.load_state_dict(s["model"])
        self.est.load_state_dict(s["est"])
        self.opt.load_state_dict(s["opt"])
        if self.est_opt is not None:
            self.est_opt.load_state_dict(s["est_opt"])
        self.gen.set_state(s["gen"].cpu())
        self.hist = {k: list(v) for k, v in s["hist"].items()}
        self.best_valid, self.best_epoch = float(s["best_valid"]), int(s["best_epoch"])
        dev = self.model.prior_logits.device
        self.best_state = {k: v.to(dev) for k, v in s["best_state"].items()}


HEADLINES = {
    "train_elbo.linear1.relax": Headline(
        paper="Table 1 (MNIST, 1 layer): best training ELBO RELAX -111.20 ≥ REBAR -111.6 > "
        "NVIL -112.5 (Concrete -111.3)",
        meaning="best training-set ELBO over epochs, nats (compare .rebar, .nvil, .concrete)",
        quick="partly: RELAX, REBAR > NVIL by about 25 nats (tested: > 5); RELAX ≥ REBAR by "
        "0.2 nats (not tested, within noise); 12 epochs on 2,000 images reach about -175, "
        "far from -111",
    ),
    "valid_elbo.linear1.relax": Headline(
        paper="Table 2 (MNIST, 1 layer): best validation ELBO RELAX -113.62 > REBAR -114.32",
        meaning="best validation ELBO over epochs, nats (the model-selection criterion)",
        quick="partly, as train_elbo: RELAX, REBAR > NVIL (tested), about -178 on the "
        "subset's validation images",
    ),
    "epochs_to_rebar_best.linear1.relax": Headline(
        paper="Table 3 (MNIST, 1 layer): RELAX needs 531 epochs to reach REBAR's best "
        "validation ELBO, REBAR 857",
        meaning="first epoch at which RELAX's validation ELBO ≥ REBAR's best (-1: never)",
        quick="no: 12 epochs are too few for a convergence-speed comparison",
    ),
    "train_elbo.linear2.relax": Headline(
        paper="Table 1 (MNIST, 2 layers): RELAX -98.00 ≥ REBAR -98.22 > NVIL -99.6",
        meaning="best training-set ELBO over epochs, nats, two stochastic layers",
        quick="not run: quick trains linear1 only (medium and paper do)",
    ),
    "log10_grad_var.linear1.relax": Headline(
        paper="003 section 6.2 / 004 Fig. 3: RELAX's learned control variate lowers the "
        "gradient variance below REBAR's and NVIL's",
        meaning="log10 of the mean per-coordinate variance of the encoder's minibatch gradient "
        "at fixed parameters, averaged over training (compare .rebar, .nvil)",
        quick="yes against NVIL: RELAX and REBAR are over 3 decades below it (tested: 1); "
        "RELAX about 0.1 decade below REBAR (not tested)",
    ),
}


def memory_estimate(cfg: VaeDiscreteConfig) -> float:
    """Peak bytes: the data as float32 (70,000 x 784 unless limited), and per pair the model,
    estimator and Adam states with a best copy (about 8 MB for linear2 with RELAX), plus the
    evaluation chunk's activations."""
    rows = (cfg.n_train or 50_000) + (cfg.n_valid or 10_000) + (cfg.n_test or 10_000)
    pairs = len(cfg.models) * len(cfg.estimators)
    return 4 * 784 * rows + pairs * 8e6 + 4 * 6 * 784 * cfg.eval_chunk


def _check(cfg: VaeDiscreteConfig) -> None:
    require_positive(cfg, "epochs", "batch", "lr", "beta2", "cv_lr_scale", "temperature")
    require_positive(cfg, "cv_layers", "cv_width", "baseline_hidden", "var_every", "eval_chunk")
    for key, names, allowed in (
        ("models", cfg.models, MODELS),
        ("estimators", cfg.estimators, ALL_ESTIMATORS),
    ):
        if not names or len(set(names)) != len(names) or not set(names) <= set(allowed):
            raise ValueError(f"{key}: expected distinct names from {allowed}, got {names}")
    for key in ("n_train", "n_valid", "n_test", "n_train_eval", "warmup_steps", "iwae_samples"):
        if getattr(cfg, key) < 0:
            raise ValueError(f"{key} must be >= 0, got {getattr(cfg, key)}")
    if cfg.var_samples < 2:
        raise ValueError(f"var_samples must be >= 2 (a variance), got {cfg.var_samples}")
    if not 0 < cfg.beta2 < 1:
        raise ValueError(f"beta2 must lie in (0, 1), got {cfg.beta2}")
    if cfg.cv_weight_decay < 0:
        raise ValueError(f"cv_weight_decay must be >= 0, got {cfg.cv_weight_decay}")


def _load_data(cfg: VaeDiscreteConfig, dev: torch.device) -> tuple[dict[str, Tensor], bool]:
    limits = {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test}
    return load_static_mnist(cfg.data_path, limits, cfg.batch, dev)


@register(
    "vae-discrete",
    VaeDiscreteConfig,
    PRESETS,
    "RELAX paper section 6.2, Tables 1-3: binary-latent VAEs on MNIST, NVIL / Concrete / "
    "REBAR / RELAX",
    headlines=HEADLINES,
    memory=memory_estimate,
)
def run(cfg: VaeDiscreteConfig, ctx) -> dict[str, float]:
    _check(cfg)
    dev = ctx.device
    data, full = _load_data(cfg, dev)
    warn_if_subset(ctx, full)
    x_train = data["train"]
    x_eval = x_train[: cfg.n_train_eval] if cfg.n_train_eval else x_train
    x_var = x_train[: cfg.batch]  # the fixed minibatch of the variance measurements
    n_train = x_train.shape[0]
    steps_per_epoch = n_train // cfg.batch
    x_mean = x_train.mean(0)
    pairs = [_Pair(cfg, m, e, x_mean, ctx.seed) for m in cfg.models for e in cfg.estimators]

    def evaluate(epoch: int) -> dict[str, float]:
        row: dict[str, float] = {}
        for p in pairs:
            p.model.eval()
            train = mean_elbo(
                p.model, x_eval, _seed(ctx.seed, "eval-train", p.name, epoch), cfg.eval_chunk
            )
            valid = mean_elbo(
                p.model, data["valid"], _seed(ctx.seed, "eval-valid", p.name, epoch), cfg.eval_chunk
            )
            p.hist["train"].append(train)
            p.hist["valid"].append(valid)
            row[f"train_elbo.{p.key}"], row[f"valid_elbo.{p.key}"] = train, valid
            if valid > p.best_valid:  # model selection on validation data only
                p.best_valid, p.best_epoch = valid, epoch
                p.best_state = {k: v.detach().clone() for k, v in p.model.state_dict().items()}
            if epoch % cfg.var_every == 0:
                v = encoder_grad_log10_var(
                    p.model, p.est, x_var, cfg.var_samples, _seed(ctx.seed, "var", p.name, epoch)
                )
                p.hist["log10_var"].append(v)
                p.hist["var_epoch"].append(epoch)
                row[f"log10_grad_var.{p.key}"] = v
        return row

    def save(epoch: int) -> None:
        ctx.save_checkpoint({"epoch": epoch, "pairs": {p.key: p.state(dev) for p in pairs}}, epoch)

    state = ctx.load_checkpoint()
    if state is not None:
        for p in pairs:
            p.load(state["pairs"][p.key])
        start = int(state["epoch"]) + 1
    else:
        for p in pairs:  # estimator-only warm-up (notes: 1,000 steps)
            if p.est_opt is None:
                continue
            for _ in range(cfg.warmup_steps):
                idx = torch.randint(n_train, (cfg.batch,), generator=p.gen, device=dev)
                p.warmup_step(x_train[idx])
        ctx.log(0, **evaluate(0))
        save(0)
        start = 1

    for epoch in ctx.progress(range(start, cfg.epochs + 1), desc="vae-discrete"):
        row: dict[str, float] = {}
        for p in pairs:
            p.model.train()
            perm = torch.randperm(n_train, generator=p.gen, device=dev)
            total = torch.zeros((), dtype=torch.float64, device=dev)
            for i in range(steps_per_epoch):
                xb = x_train[perm[i * cfg.batch : (i + 1) * cfg.batch]]
                out = step(p.model, xb, p.est, p.opt, p.est_opt, p.gen)
                total += out.elbo.double().mean()
            p.hist["batch"].append(total.item() / steps_per_epoch)
            row[f"batch_elbo.{p.key}"] = p.hist["batch"][-1]
        row.update(evaluate(epoch))
        ctx.log(epoch, **row)
        save(epoch)

    metrics: dict[str, float] = {
        "data.full_mnist": float(full),
        "data.n_train": float(n_train),
        "data.n_valid": float(data["valid"].shape[0]),
        "data.n_test": float(data["test"].shape[0]),
    }
    for p in pairs:
        p.model.load_state_dict(p.best_state)  # the validation-selected parameters
        p.model.eval()
        metrics[f"train_elbo.{p.key}"] = max(p.hist["train"])
        metrics[f"valid_elbo.{p.key}"] = p.best_valid
        metrics[f"best_epoch.{p.key}"] = float(p.best_epoch)
        metrics[f"test_elbo.{p.key}"] = mean_elbo(
            p.model, data["test"], _seed(ctx.seed, "eval-test", p.name), cfg.eval_chunk
        )
        if cfg.iwae_samples:
            for split in ("valid", "test"):
                metrics[f"{split}_iwae.{p.key}"] = mean_iwae(
                    p.model,
                    data[split],
                    cfg.iwae_samples,
                    _seed(ctx.seed, f"iwae-{split}", p.name),
                    cfg.eval_chunk,
                )
        var = p.hist["log10_var"]
        metrics[f"log10_grad_var.{p.key}"] = sum(var) / len(var)
    if "rebar" in cfg.estimators:
        for m in cfg.models:
            target = next(p for p in pairs if p.key == f"{m}.rebar").best_valid
            for p in (p for p in pairs if p.name == m):
                reached = [e for e, v in enumerate(p.hist["valid"]) if v >= target]
                metrics[f"epochs_to_rebar_best.{p.key}"] = float(
                    reached[0] if reached else NOT_REACHED
                )
    with ctx.figures():
        _figures(cfg, ctx, pairs)
    return metrics


COLORS = {"nvil": "tab:red", "concrete": "tab:orange", "rebar": "tab:blue", "relax": "tab:green"}
COLORS["muprop"] = "tab:purple"


def _figures(cfg: VaeDiscreteConfig, ctx, pairs: list[_Pair]) -> None:
    """elbo_curves.png (Fig. 2: train and validation ELBO per epoch, REBAR's best validation
    ELBO dashed) and grad_variance.png (log10 encoder gradient variance per epoch)."""
    n = len(cfg.models)
    fig, axes = plt.subplots(n, 2, figsize=(9, 3.2 * n), squeeze=False)
    for row, m in enumerate(cfg.models):
        for col, (key, title) in enumerate(
            (("train", "training ELBO"), ("valid", "validation ELBO"))
        ):
            ax = axes[row, col]
            for p in (p for p in pairs if p.name == m):
                values = p.hist[key]
                ax.plot(range(len(values)), values, label=p.est_name, color=COLORS[p.est_name])
                if key == "valid" and p.est_name == "rebar":
                    ax.axhline(p.best_valid, ls="--", color="k", lw=0.8, label="REBAR best")
            lo = [v for p in pairs if p.name == m for v in p.hist[key][1:]]
            if lo:  # the untrained epoch 0 would squash the curves
                span = max(lo) - min(lo)
                ax.set_ylim(min(lo) - 0.05 * span - 1e-6, max(lo) + 0.05 * span + 1e-6)
            ax.set_title(f"{m}: {title}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("ELBO (nats)")
            ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "elbo_curves")

    fig, axes = plt.subplots(1, n, figsize=(4.5 * n, 3.4), squeeze=False)
    for col, m in enumerate(cfg.models):
        ax = axes[0, col]
        for p in (p for p in pairs if p.name == m):
            ax.plot(
                p.hist["var_epoch"], p.hist["log10_var"], label=p.est_name, color=COLORS[p.est_name]
            )
        ax.set_title(f"{m}: encoder gradient variance")
        ax.set_xlabel("epoch")
        ax.set_ylabel("log10 Var(ĝ)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "grad_variance")
