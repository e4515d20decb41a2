"""Experiment ``vae-mnist``: continuous-latent VAEs on binarized MNIST with a Gaussian, a
hierarchical (auxiliary bound or AR-DAE) and an implicit (AR-DAE) posterior (000 section 6.2,
App. F.2-F.3, Tables 1, 7, 8).

Every method of :data:`~stochgrad.vae.METHODS` trains its own model (initialization and
minibatches from per-method seeds; the posterior and AR-DAE noise from the run's global RNG, so
a run with fewer methods draws other noise), the methods taking turns of ``eval_every`` updates
so that a resumed or stopped run has given each the same number of updates.  After each turn the model (or its Polyak average) is scored
on ``n_valid_eval`` validation images by the importance-weighted bound with ``valid_samples``
samples; model selection and early stopping (``patience``) use that score only (000 App. F.3:
"early stopping ... based on the estimated log marginal probability on the validation set").
The test set is read once, at the end, for the selected parameters: ``test_log_px`` by
importance sampling with ``n_eval`` samples (the Gaussian fit of posterior draws as proposal
for the hierarchical and implicit posteriors) and ``test_elbo`` (exact for the Gaussian
posterior, the semi-implicit lower bound for the hierarchical ones; none for the implicit
posterior, which has no density).

Defaults: the MLP dbmnist column of 000 Table 8 (batch 128, Adam(0.5, 0.999) at 1e-4, d_z 32,
d_ε = d_z0 = 100; AR-DAE with 5 layers of 256 softplus units, gradient parameterization,
s = 10⁴, n_z = 625, N_d = 1, δ_scale = 0.1, RMSprop(α = 0.5) at 1e-4; up to 4M updates) on
the statically binarized file (dynamic binarization needs a grey-level source, ``grey_path``).
Table 1 trains dbmnist on train + 5k validation images; here training uses the train split and
model selection the valid split, as for sbmnist (Table 2) but without its retraining on
train + valid with the selected settings.  ``train_objective.{method}`` is the training ELBO
(gaussian), the auxiliary bound (hvi-aux) or E[log p(x, z)] without the entropy (AR-DAE
methods, whose entropy has no estimate): comparable within a method only.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data import binarize, load_grey_mnist
from ..runner.config import require_positive
from ..runner.registry import Headline, register
from ..vae import (
    ARCHITECTURES,
    ARDAE_METHODS,
    METHODS,
    continuous_step,
    log_px,
    make_ardae,
    make_continuous_vae,
)
from ._mnist_common import (
    SUBSET,
    check_train_size,
    fork_rng,
    limit_rows,
    load_static_mnist,
    warn_if_subset,
)
from ._mnist_common import generator as _generator
from ._mnist_common import stable_seed as _seed

BINARIZATIONS = ("static", "dynamic")


@dataclass(frozen=True)
class VaeMnistConfig:
    """Settings of 000 Tables 7-8, MLP dbmnist column (defaults)."""

    methods: tuple[str, ...] = METHODS
    """Posteriors / training methods: gaussian, hvi-aux, hvi-ardae, ivi-ardae (000 Table 1)."""
    architecture: str = "mlp"
    """Networks of 000 Table 7: "mlp" or "conv"."""
    data_path: str = ""
    """Statically binarized MNIST .npz; "" reads $STOCHGRAD_MNIST, else the packaged subset
    (2000 / 500 / 500 images); "subset" always the packaged subset."""
    binarization: str = "static"
    """"static" (the file's fixed pixels) or "dynamic" (a fresh Bernoulli draw of the grey levels
    of ``grey_path`` for every minibatch, 000 Table 1; valid/test binarized once, seeded)."""
    grey_path: str = ""
    """Grey-level MNIST .npz (arrays train/valid/test in 0..255 or [0, 1]) for dynamic
    binarization."""
    n_train: int = 0
    """Use n_train training images, a fixed random choice (0: all)."""
    n_valid: int = 0
    """Use n_valid validation images, a fixed random choice (0: all)."""
    n_test: int = 0
    """Use n_test test images, a fixed random choice (0: all; the file orders them, apparently
    by digit)."""
    iterations: int = 4_000_000
    """Maximum model updates per method (000 App. F.3: 4M)."""
    batch: int = 128
    """Minibatch size n_data (Table 8)."""
    lr: float = 1e-4
    """Adam learning rate α_{φ,ω} of encoder and decoder (Table 8)."""
    beta1: float = 0.5
    """Adam β1 (Table 8: 0.5, β2 = 0.999)."""
    latent_dim: int = 32
    """d_z (Table 8)."""
    noise_dim: int = 100
    """d_ε of the implicit posterior, d_z0 of the hierarchical one (Table 8)."""
    n_z: int = 625
    """Posterior draws per x for each AR-DAE update (Table 8)."""
    n_ardae_updates: int = 1
    """N_d, AR-DAE updates per model update (Table 8: {1, 2})."""
    delta_scale: float = 0.1
    """δ(x) = δ_scale · S_{z̃|x} (Table 8: {0.1, 0.2, 0.3})."""
    ardae_scale: float = 1e4
    """Input normalization s of z̃ = s (z - g(0, x)) (Table 8)."""
    ardae_width: int = 256
    """d_h, hidden units of the AR-DAE (Table 8)."""
    ardae_layers: int = 5
    """Hidden layers of the AR-DAE (Table 8: m_fc = 5)."""
    ardae_lr: float = 1e-4
    """RMSprop learning rate α_θ of the AR-DAE (Table 8)."""
    ardae_alpha: float = 0.5
    """RMSprop smoothing constant of the AR-DAE (Table 8: 0.5 for MLP)."""
    beta_anneal: int = 0
    """Updates over which β (the weight of prior and entropy terms) rises linearly from 0 to 1
    (Table 8: no, or 50000 for ResConv); 0: no annealing."""
    polyak_decay: float = 0.0
    """Exponential moving average of the parameters used for evaluation (Table 8 sbmnist:
    0.998); 0: none."""
    polyak_start: int = 0
    """Update from which the average is kept (Table 8: {0, 1000, 5000, 10000})."""
    eval_every: int = 5000
    """Updates per method between validation scores and checkpoints."""
    n_valid_eval: int = 1000
    """Validation images scored for model selection, a fixed random choice (0: all)."""
    valid_samples: int = 100
    """Importance samples per validation image for model selection."""
    patience: int = 0
    """Validation scores without improvement before a method stops (0: never early)."""
    n_eval: int = 40_000
    """Importance samples per test image for log p(x) (Table 8: 40000 for MLP)."""
    elbo_samples: int = 10
    """Posterior draws per test image for test_elbo."""
    n_mix: int = 100
    """Mixing draws K of the semi-implicit bound on log q(z|x) (hierarchical test_elbo)."""
    eval_rows: int = 100
    """Test images per importance-sampling batch."""
    sample_batch: int = 1000
    """Importance samples per forward pass."""


PRESETS = {
    "paper": {},
    # about 30 s on one CPU thread: the packaged subset, 300 updates of 64 images per method,
    # a small AR-DAE (3 x 128 units, n_z = 8, s = 100); a smoke test, far from convergence
    "quick": {
        "data_path": SUBSET,
        "iterations": 300,
        "eval_every": 100,
        "batch": 64,
        "n_z": 8,
        "ardae_scale": 100.0,
        "ardae_width": 128,
        "ardae_layers": 3,
        "n_valid_eval": 200,
        "valid_samples": 20,
        "n_test": 200,
        "n_eval": 200,
        "elbo_samples": 4,
        "n_mix": 20,
    },
    # budget: 2 seeds on 2 CPU cores (one thread each), about 1-1.5 hours while the machine
    # also runs vae-discrete's medium preset.  The full set (give $STOCHGRAD_MNIST or
    # data_path), 5000 updates of 128 images (13 epochs) per method; the learning rates raised
    # to 1e-3 (Table 8's grid holds 1e-3 for ResConv) and the AR-DAE's n_z lowered to 16 and s
    # to 100 (Table 8's ResConv value) so that the AR-DAE keeps up within so few updates: a
    # 400-update trial on the packaged subset took 330 s for the four methods under a load of 5.
    # Test log p(x) on 2000 of the 10000 test images (a fixed random choice) with 1000 samples
    # (Table 8: 40000), which lowers the estimate by a fraction of a nat (the IWAE bound rises
    # with the samples) for every method alike.
    "medium": {
        "iterations": 5000,
        "eval_every": 1000,
        "lr": 1e-3,
        "n_z": 16,
        "ardae_scale": 100.0,
        "ardae_lr": 1e-3,
        "n_valid_eval": 1000,
        "valid_samples": 100,
        "n_test": 2000,
        "n_eval": 1000,
    },
}


def _beta(cfg: VaeMnistConfig, iteration: int) -> float:
    """β at (0-based) update ``iteration``: linear from 0 to 1 over ``beta_anneal`` updates."""
    return 1.0 if cfg.beta_anneal == 0 else min(1.0, (iteration + 1) / cfg.beta_anneal)


class _Method:
    """One method's model, AR-DAE, optimizers, Polyak average, noise stream and history."""

    def __init__(self, cfg: VaeMnistConfig, method: str, x_mean: Tensor, seed: int) -> None:
        dev = x_mean.device
        self.method = method
        with fork_rng(dev), dev:
            torch.manual_seed(_seed(seed, "model", method))
            self.model = make_continuous_vae(
                method,
                latent_dim=cfg.latent_dim,
                noise_dim=cfg.noise_dim,
                x_mean=x_mean if cfg.architecture == "mlp" else None,
                architecture=cfg.architecture,
            ).to(dev)
            self.ardae = None
            if method in ARDAE_METHODS:
                self.ardae = make_ardae(
                    self.model,
                    hidden=(cfg.ardae_width,) * cfg.ardae_layers,
                    scale=cfg.ardae_scale,
                    delta_scale=cfg.delta_scale,
                )
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
        self.ardae_opt = None
        if self.ardae is not None:
            self.ardae_opt = torch.optim.RMSprop(
                self.ardae.parameters(), lr=cfg.ardae_lr, alpha=cfg.ardae_alpha
            )
        self.average = None
        if cfg.polyak_decay > 0:
            # parameters only (use_buffers=False): the networks have no batch-norm statistics
            self.average = AveragedModel(
                self.model, device=dev, multi_avg_fn=get_ema_multi_avg_fn(cfg.polyak_decay)
            )
        self.gen = _generator(dev, _seed(seed, "train", method))
        self.iteration = 0
        self.stopped = False
        self.hist: dict[str, list[float]] = {"iteration": [], "valid": [], "train": []}
        self.best_valid = -math.inf
        self.best_iteration = -1
        self.bad_evals = 0
        self.best_state: dict[str, Tensor] = {}

    def eval_model(self):
        """The model scored on validation data: the Polyak average once it exists, else the model."""
        if self.average is not None and int(self.average.n_averaged) > 0:
            return self.average.module
        return self.model

    def state(self, device: torch.device) -> dict:
        return {
            "model": self.model.state_dict(),
            "ardae": None if self.ardae is None else self.ardae.state_dict(),
            "opt": self.opt.state_dict(),
            "ardae_opt": None if self.ardae_opt is None else self.ardae_opt.state_dict(),
            "average": None if self.average is None else self.average.state_dict(),
            "gen": self.gen.get_state(),
            "iteration": self.iteration,
            "stopped": self.stopped,
            "hist": self.hist,
            "best_valid": self.best_valid,
            "best_iteration": self.best_iteration,
            "bad_evals": self.bad_evals,
            "best_state": self.best_state,
        }

    def load(self, s: dict) -> None:
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        if self.ardae is not None:
            self.ardae.load_state_dict(s["ardae"])
            self.ardae_opt.load_state_dict(s["ardae_opt"])
        if self.average is not None:
            self.average.load_state_dict(s["average"])
        self.gen.set_state(s["gen"].cpu())
        self.iteration, self.stopped = int(s["iteration"]), bool(s["stopped"])
        self.hist = {k: list(v) for k, v in s["hist"].items()}
        self.best_valid, self.best_iteration = float(s["best_valid"]), int(s["best_iteration"])
        self.bad_evals = int(s["bad_evals"])
        dev = next(self.model.parameters()).device
        self.best_state = {k: v.to(dev) for k, v in s["best_state"].items()}


HEADLINES = {
    "test_log_px.ivi-ardae": Headline(
        paper="000 Table 1 (dynamically binarized; our default data is the static file): "
        "MLP log p(x) IVI AR-DAE -83.62, HVI AR-DAE -83.42 vs "
        "Gaussian -84.40, HVI aux -84.63 (Conv: -81.26 / -81.46 vs -81.82 / -81.87)",
        meaning="test log p(x) by importance sampling (n_eval samples, Gaussian-fit proposal), "
        "nats; compare .gaussian, .hvi-aux, .hvi-ardae",
        quick="no: 300 updates on 2,000 images; all methods are far from convergence",
    ),
    "test_log_px.gaussian": Headline(
        paper="000 Table 1 (dbmnist, MLP): -84.40",
        meaning="test log p(x) of the diagonal-Gaussian VAE, nats (the baseline)",
        quick="no: far from convergence",
    ),
    "test_elbo.gaussian": Headline(
        paper="not reported in 000",
        meaning="test ELBO, nats (log q in closed form for the Gaussian posterior, a "
        "semi-implicit lower bound for the hierarchical ones; the implicit posterior has none)",
        quick="ELBO ≤ log p(x) for every method that has an ELBO (tested)",
    ),
}


def memory_estimate(cfg: VaeMnistConfig) -> float:
    """Peak bytes: the data as float32 (70,000 x 784 unless limited) plus per method four
    copies of its networks (model, Adam state, best, average; about 1.5 M parameters with the
    AR-DAE), plus the largest batch of activations: the AR-DAE's n_data x n_z x d_h x layers
    with its double-backward graph, or the evaluation's eval_rows x sample_batch x 784 logits."""
    rows = (cfg.n_train or 50_000) + (cfg.n_valid or 10_000) + (cfg.n_test or 10_000)
    ardae = 6 * 4 * cfg.batch * cfg.n_z * cfg.ardae_width * cfg.ardae_layers
    evaluation = 3 * 4 * cfg.eval_rows * cfg.sample_batch * 784
    return 4 * 784 * rows + len(cfg.methods) * 4 * 4 * 1.5e6 + max(ardae, evaluation)


def _check(cfg: VaeMnistConfig) -> None:
    require_positive(cfg, "iterations", "batch", "lr", "beta1", "latent_dim", "noise_dim")
    require_positive(cfg, "n_z", "n_ardae_updates", "delta_scale", "ardae_scale", "ardae_width")
    require_positive(cfg, "ardae_layers", "ardae_lr", "ardae_alpha", "eval_every")
    require_positive(cfg, "valid_samples", "n_eval", "elbo_samples", "n_mix", "eval_rows")
    require_positive(cfg, "sample_batch")
    if not cfg.methods or len(set(cfg.methods)) != len(cfg.methods):
        raise ValueError(f"methods: expected distinct names from {METHODS}, got {cfg.methods}")
    if not set(cfg.methods) <= set(METHODS):
        raise ValueError(f"methods: expected names from {METHODS}, got {cfg.methods}")
    if cfg.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {cfg.architecture!r}")
    if cfg.binarization not in BINARIZATIONS:
        raise ValueError(f"binarization must be one of {BINARIZATIONS}, got {cfg.binarization!r}")
    if cfg.binarization == "dynamic" and not cfg.grey_path:
        raise ValueError(
            "binarization='dynamic' needs grey_path (a grey-level MNIST .npz); the binarized "
            "file and the packaged subset hold only static binary pixels"
        )
    if cfg.n_z < 2:
        raise ValueError(f"n_z must be >= 2 (δ(x) needs a spread), got {cfg.n_z}")
    for key in ("n_train", "n_valid", "n_test", "beta_anneal", "polyak_start", "patience"):
        if getattr(cfg, key) < 0:
            raise ValueError(f"{key} must be >= 0, got {getattr(cfg, key)}")
    if cfg.n_valid_eval < 0:
        raise ValueError(f"n_valid_eval must be >= 0, got {cfg.n_valid_eval}")
    if not 0 <= cfg.polyak_decay < 1:
        raise ValueError(f"polyak_decay must lie in [0, 1), got {cfg.polyak_decay}")
    if not 0 < cfg.beta1 < 1:
        raise ValueError(f"beta1 must lie in (0, 1), got {cfg.beta1}")


def _load_data(cfg: VaeMnistConfig, dev: torch.device, seed: int) -> tuple[dict, bool]:
    """{"train", "valid", "test"} tensors ``[n, 784]`` (grey levels in "train" for dynamic
    binarization; valid and test binarized once from a seeded generator), and whether the full
    MNIST file is used."""
    limits = {"train": cfg.n_train, "valid": cfg.n_valid, "test": cfg.n_test}
    data = {}
    if cfg.binarization == "dynamic":
        full = True
        for split, n in limits.items():
            x = limit_rows(load_grey_mnist(cfg.grey_path, split, device=dev), n)
            if split != "train":
                x = binarize(x, _generator(dev, _seed(seed, "binarize", split)))
            data[split] = x
        check_train_size(data, cfg.batch)
    else:
        data, full = load_static_mnist(cfg.data_path, limits, cfg.batch, dev)
    return data, full


def _mean_log_px(cfg: VaeMnistConfig, model, x: Tensor, n: int, ctx=None, desc: str = "") -> float:
    """Mean importance-sampling estimate of log p(x) over the rows of ``x`` with ``n`` samples,
    with a progress bar when ``ctx`` is given."""
    bar = None if ctx is None else ctx.progress(x.shape[0], desc=desc)
    update = getattr(bar, "update", None)
    model.eval()
    values = log_px(model, x, n, cfg.eval_rows, cfg.sample_batch, progress=update)
    if hasattr(bar, "close"):
        bar.close()
    return values.double().mean().item()


@register(
    "vae-mnist",
    VaeMnistConfig,
    PRESETS,
    "AR-DAE paper section 6.2, Table 1: VAEs on binarized MNIST with Gaussian, hierarchical "
    "(auxiliary / AR-DAE) and implicit (AR-DAE) posteriors",
    headlines=HEADLINES,
    memory=memory_estimate,
)
def run(cfg: VaeMnistConfig, ctx) -> dict[str, float]:
    _check(cfg)
    dev = ctx.device
    data, full = _load_data(cfg, dev, ctx.seed)
    warn_if_subset(ctx, full)
    x_train = data["train"]
    x_valid = limit_rows(data["valid"], cfg.n_valid_eval)
    n_train = x_train.shape[0]
    dynamic = cfg.binarization == "dynamic"
    x_mean = x_train.mean(0)
    runs = [_Method(cfg, m, x_mean, ctx.seed) for m in cfg.methods]

    state = ctx.load_checkpoint()
    if state is not None:
        for r in runs:
            r.load(state["methods"][r.method])
        first = int(state["turn"]) + 1
    else:
        first = 1
    n_turns = math.ceil(cfg.iterations / cfg.eval_every)

    for turn in ctx.progress(range(first, n_turns + 1), desc="vae-mnist"):
        if all(r.stopped for r in runs):
            break
        row: dict[str, float] = {}
        for r in runs:
            if r.stopped:
                continue
            r.model.train()
            total, n_steps = 0.0, min(cfg.eval_every, cfg.iterations - r.iteration)
            for _ in range(n_steps):
                idx = torch.randint(n_train, (cfg.batch,), generator=r.gen, device=dev)
                xb = binarize(x_train[idx], r.gen) if dynamic else x_train[idx]
                out = continuous_step(
                    r.model,
                    xb,
                    r.opt,
                    r.ardae,
                    r.ardae_opt,
                    n_z=cfg.n_z,
                    n_ardae_updates=cfg.n_ardae_updates,
                    beta=_beta(cfg, r.iteration),
                )
                total += out.objective.double().mean().item()
                if not math.isfinite(total):
                    raise FloatingPointError(
                        f"{r.method}: the training objective is {total} at update {r.iteration}"
                    )
                r.iteration += 1
                if r.average is not None and r.iteration > cfg.polyak_start:
                    r.average.update_parameters(r.model)
            with fork_rng(dev):
                torch.manual_seed(_seed(ctx.seed, "valid", r.method, turn))
                valid = _mean_log_px(cfg, r.eval_model(), x_valid, cfg.valid_samples)
            r.hist["iteration"].append(r.iteration)
            r.hist["valid"].append(valid)
            r.hist["train"].append(total / n_steps)
            if not math.isfinite(valid):
                raise FloatingPointError(
                    f"{r.method}: the validation log p(x) is {valid} at update {r.iteration}"
                )
            row[f"train_objective.{r.method}"] = total / n_steps
            row[f"valid_log_px.{r.method}"] = valid
            if valid > r.best_valid:  # model selection on validation data only
                r.best_valid, r.best_iteration, r.bad_evals = valid, r.iteration, 0
                r.best_state = {
                    k: v.detach().clone() for k, v in r.eval_model().state_dict().items()
                }
            else:
                r.bad_evals += 1
                r.stopped = cfg.patience > 0 and r.bad_evals >= cfg.patience
        done = min(turn * cfg.eval_every, cfg.iterations)  # updates per method so far
        ctx.log(done, **row)
        states = {r.method: r.state(dev) for r in runs}
        ctx.save_checkpoint({"turn": turn, "methods": states}, done)

    metrics: dict[str, float] = {
        "data.full_mnist": float(full),
        "data.n_train": float(n_train),
        "data.n_test": float(data["test"].shape[0]),
    }
    for r in runs:
        model = copy.deepcopy(r.model)
        model.load_state_dict(r.best_state)  # the validation-selected parameters
        model.eval()
        r.selected = model
        metrics[f"valid_log_px.{r.method}"] = r.best_valid
        metrics[f"best_iteration.{r.method}"] = float(r.best_iteration)
        metrics[f"iterations.{r.method}"] = float(r.iteration)
        with fork_rng(dev):
            torch.manual_seed(_seed(ctx.seed, "test", r.method))
            metrics[f"test_log_px.{r.method}"] = _mean_log_px(
                cfg, model, data["test"], cfg.n_eval, ctx, f"log p(x) {r.method}"
            )
            if r.method != "ivi-ardae":
                elbo = [
                    model.elbo(rows, cfg.elbo_samples, cfg.n_mix)
                    for rows in data["test"].split(cfg.eval_rows)
                ]
                metrics[f"test_elbo.{r.method}"] = torch.cat(elbo).double().mean().item()
    with ctx.figures():
        _figures(ctx, runs)
    return metrics


COLORS = {"gaussian": "tab:red", "hvi-aux": "tab:orange", "hvi-ardae": "tab:blue"}
COLORS["ivi-ardae"] = "tab:green"


def _figures(ctx, runs: list[_Method]) -> None:
    """valid_log_px.png (validation log p(x) per method over updates) and samples.png (decoder
    means of 64 prior draws per method, as 000 Fig. 6)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for r in runs:
        ax.plot(r.hist["iteration"], r.hist["valid"], "o-", label=r.method, color=COLORS[r.method])
    ax.set_xlabel("updates")
    ax.set_ylabel("validation log p(x) (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "valid_log_px")

    fig, axes = plt.subplots(1, len(runs), figsize=(3 * len(runs), 3.2), squeeze=False)
    for ax, r in zip(axes[0], runs):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            x = r.selected.sample(64).detach().cpu()
        grid = x.view(8, 8, 28, 28).permute(0, 2, 1, 3).reshape(8 * 28, 8 * 28)
        ax.imshow(grid.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(r.method)
        ax.axis("off")
    fig.tight_layout()
    ctx.save_figure(fig, "samples")
