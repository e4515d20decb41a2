"""Experiment ``vae-grid``: a VAE with a 2-D latent on the 25-Gaussian grid (000 section 6.2
"Toy dataset", Fig. 5, App. F.3), its posterior trained in four ways:

* ``gaussian``: q(z|x) = N(μ(x), diag σ²(x)), the reparameterized ELBO (000 eq. 6);
* ``dae-large`` / ``dae-small``: an implicit z = g(ε, x) whose entropy gradient comes from a
  residual DAE at a fixed σ (000 eq. 2), large or small;
* ``ardae``: the same implicit posterior with AR-DAE (000 Algorithm 1): conditioned on h(x),
  adaptive δ(x) = δ_scale · S_{z̃|x} from n_z draws, z̃ = s (z - g(0, x)), N_d updates per model
  update, its loss never reaching the posterior.

The three implicit methods share one training step, :func:`stochgrad.vae.continuous_step`:
the residual DAEs are wrapped (:class:`FixedSigmaDAE`) to look like the AR-DAE to it (the same
conditioning on h(x), the same centring and scale s, the same n_z, N_d and optimizer), so that
σ, fixed or amortized, is the only difference.

Networks (000 Table 7, toy): p(x|z) a diagonal Gaussian with learned mean and log-variance,
[2, 256] [256, 256] x 2 and two heads [256, d_x] (F.3's text says "two-hidden-layer"; we follow
the table); implicit q: x through [d_x, 256] and ε (d_ε = 10) through [d_ε, d_ε], concatenated,
then [256 + d_ε, 256] [256, 256] [256, d_z].  The table gives no Gaussian posterior for the toy;
ours has the same depth: [d_x, 256] [256, 256] [256, 256] and heads [256, d_z] x 2.  Softplus
everywhere (the table names no activation).  Settings of 000 Table 8 (toy) are the defaults.

The paper's dataset size is not stated: "16 epochs: approximately 4000 updates with a minibatch
size of 512" gives 128,000 points, drawn here by :func:`stochgrad.data.grid_of_gaussians`.

Metrics per method (held-out points from the same mixture):

* ``test_log_px``: the IWAE estimate of log p(x) with ``iwae_samples`` samples, proposal q for
  the Gaussian posterior and the Gaussian fit of ``iwae_samples`` posterior draws otherwise
  (App. F.3); ``true_log_px`` is the data's own mean log-density, the best attainable value.
* ``mean_logvar``: the mean over x and latent dimensions of log Var_q(z_d|x) (exact for the
  Gaussian posterior, from ``n_var`` draws otherwise): Fig. 5's last column at the end.
* ``agg_mmd`` (our proxy for "a Gaussian-shaped aggregated posterior"): the unbiased MMD² between
  the aggregated posterior q(z) = E_x q(z|x) (one draw per held-out x) and the prior N(0, I),
  with a sum of Gaussian kernels of bandwidths 0.1, 0.3 and 1 (holes, clumps and the overall
  shape); 0 in expectation when q(z) = p(z).  ``agg_mmd.prior`` is the same statistic between two
  prior samples of that size: its spread is the noise level.
* ``sample_log_density`` (generation quality): the mean log-density, under the true mixture, of
  x ~ p(x|z), z ~ p(z); ``true_log_px`` is its value for perfect samples.

Measured (ours; the paper does not show the Gaussian VAE): with the learned decoder variance,
the Gaussian VAE settles where z is ignored, q(z|x) = p(z) and p(x|z) one broad Gaussian
(log p(x) ≈ -4.94 against the data's -3.78), at the paper's sizes after 4,000 updates and at
the medium sizes after 16,000; the implicit posteriors trained by dae-small and AR-DAE also
widen towards the prior (mean log-variance about -0.7 after 4,000 medium updates).

Figures: ``data.png``; ``samples.png`` (model samples per method); ``aggregated_posterior.png``
(z of held-out points, coloured by their nearest grid centre, i.e. mixture component);
``mean_logvar.png`` (mean posterior log-variance over training, one curve per method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from ..data import grid_mixture, grid_of_gaussians
from ..entropy import ResidualDAE
from ..nn import activation as activation_class
from ..nn import mlp
from ..runner.config import require_positive
from ..runner.registry import Headline, register
from ..vae import continuous_step, log_px, make_ardae
from ..vae.continuous import ContinuousVAE, GaussianPosterior, ImplicitPosterior, normal_log_prob
from ._mnist_common import fork_rng
from ._mnist_common import stable_seed as _seed

METHODS = ("gaussian", "dae-large", "dae-small", "ardae")
MMD_BANDWIDTHS = (0.1, 0.3, 1.0)


@dataclass(frozen=True)
class VaeGridConfig:
    """Settings of 000 App. F.3 and Table 8 (toy) (defaults)."""

    methods: tuple[str, ...] = METHODS
    """Posterior training methods: gaussian, dae-large, dae-small, ardae (000 Fig. 5)."""
    n_train: int = 128_000
    """Training points: 16 epochs of about 250 updates of 512 (000 App. F.3: ~4000 updates)."""
    n_test: int = 2000
    """Held-out points for the metrics and the aggregated-posterior figure."""
    epochs: int = 16
    """Training epochs (000 App. F.3)."""
    batch: int = 512
    """Minibatch size n_data of the model and the score model (000 Table 8)."""
    hidden: int = 256
    """Width of the encoder and decoder layers (000 Table 7, toy)."""
    noise_dim: int = 10
    """d_ε of the implicit posterior (000 Table 8)."""
    lr: float = 1e-4
    """Adam learning rate α_{φ,ω} of encoder and decoder (000 Table 8)."""
    beta1: float = 0.5
    """Adam β1 of encoder and decoder (000 Table 8: adam, 0.5, 0.999)."""
    score_hidden: int = 256
    """Width d_h of the AR-DAE / residual DAE (000 Table 8)."""
    score_layers: int = 3
    """Hidden layers of the AR-DAE / residual DAE (000 Table 8: m_fc = 3; our one MLP on the
    concatenation of z̃, σ and h(x) stands for the paper's mlp-concat)."""
    scale: float = 1e4
    """Input scale s of z̃ = s (z - g(0, x)) for AR-DAE and the residual DAEs (000 Table 8)."""
    n_z: int = 256
    """Posterior draws per x in each AR-DAE / DAE update (000 Table 8)."""
    n_ardae_updates: int = 1
    """N_d: score-model updates per model update (000 Table 8)."""
    delta_scale: float = 0.1
    """AR-DAE's δ(x) = delta_scale · S_{z̃|x} (000 Table 8)."""
    score_lr: float = 1e-4
    """RMSprop learning rate α_θ of the AR-DAE and the residual DAEs (000 Table 8)."""
    rmsprop_alpha: float = 0.5
    """RMSprop smoothing constant (000 Table 8: rmsprop, 0.5)."""
    sigma_large: float = 1.0
    """σ of ``dae-large``, in latent units (our choice; the paper gives no value): the prior's
    scale.  The implicit posteriors start with standard deviations of 0.003-0.006 (log-variance
    -11.5 to -10 at initialization, widths 128-64) and AR-DAE's grows to about 0.7 in the
    medium run,
    so σ = 1 is above the posterior's spread throughout: the DAE learns the score of q smoothed
    by N(0, σ²), about -(z - μ)/(σ² + v), far below the true -(z - μ)/v while v is small."""
    sigma_small: float = 0.01
    """σ of ``dae-small``, in latent units (our choice): about 3 times the posterior standard
    deviation at initialization and 1/70 of what AR-DAE's reaches (see ``sigma_large``), so the
    smoothing bias is small once the posterior has spread out, but the residual loss's
    signal-to-noise ratio, O(σ) (000 App. C), is low."""
    iwae_samples: int = 1000
    """K of the IWAE estimate of log p(x) (000 Table 8 gives no n_eval for the toy)."""
    n_var: int = 256
    """Posterior draws per x when estimating the implicit posteriors' log-variance."""
    curve_every: int = 25
    """Record the mean posterior log-variance every this many updates (Fig. 5, last column)."""
    n_curve: int = 256
    """Held-out points whose mean posterior log-variance is recorded during training."""
    n_plot: int = 2000
    """Model samples drawn for sample_log_density and the samples figure."""


PRESETS = {
    "paper": {},
    # under 30 s on one CPU thread for the four methods
    "quick": {
        "n_train": 4096,
        "n_test": 500,
        "epochs": 4,
        "batch": 128,
        "hidden": 64,
        "score_hidden": 64,
        "n_z": 16,
        "iwae_samples": 100,
        "n_var": 64,
        "curve_every": 8,
        "n_curve": 64,
        "n_plot": 500,
    },
    # budget: about 10 minutes on one CPU thread of a loaded 2-core machine for the four
    # methods: the paper's 4,000 updates (16 epochs of 250), with smaller minibatches (128),
    # networks (128 wide) and n_z = 16; measured 0.033 s per implicit-posterior update and
    # 0.004 s per Gaussian one (interleaved, load average about 4).
    "medium": {
        "n_train": 32_000,
        "n_test": 1000,
        "batch": 128,
        "hidden": 128,
        "score_hidden": 128,
        "n_z": 16,
        "iwae_samples": 500,
        "n_var": 128,
        "curve_every": 40,
        "n_curve": 128,
        "n_plot": 1000,
    },
}


# ---- the toy model (000 Table 7, toy column) ------------------------------------------------


class GaussianDecoder(nn.Module):
    """p(x|z) = N(μ(z), diag exp(v(z))): [d_z, h] [h, h] x 2 and heads [h, d_x] x 2 (000 Table
    7, toy).  z ``[..., d_z]`` -> cat(μ, v) ``[..., 2 d_x]``."""

    def __init__(self, latent_dim: int, n_x: int, hidden: int, activation: str) -> None:
        super().__init__()
        act = activation_class(activation)
        self.body = nn.Sequential(mlp(latent_dim, (hidden, hidden), hidden, act), act())
        self.mean = nn.Linear(hidden, n_x)
        self.logvar = nn.Linear(hidden, n_x)

    def forward(self, z: Tensor) -> Tensor:
        h = self.body(z)
        return torch.cat([self.mean(h), self.logvar(h)], -1)


class LearnedVarianceVAE(ContinuousVAE):
    """A :class:`~stochgrad.vae.ContinuousVAE` whose decoder (:class:`GaussianDecoder`) learns
    the mean and the log-variance of a diagonal Gaussian p(x|z) (000 App. F.3)."""

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log N(x; μ(z), diag exp(v(z))): x ``[batch, n_x]``, z ``[batch, n, d_z]`` ->
        ``[batch, n]``."""
        mean, logvar = self.decoder(z).chunk(2, dim=-1)
        return normal_log_prob(x[:, None, :], mean, logvar)

    def sample(self, n: int) -> Tensor:
        """n draws of E[x|z] = μ(z), z ~ p(z), ``[n, n_x]``."""
        return self.sample_x(n, noise=False)

    def sample_x(self, n: int, noise: bool = True) -> Tensor:
        """n draws x ~ p(x|z), z ~ p(z) (``noise=False``: μ(z)), ``[n, n_x]``."""
        p = next(self.parameters())
        z = torch.randn(n, self.latent_dim, dtype=p.dtype, device=p.device)
        mean, logvar = self.decoder(z).chunk(2, dim=-1)
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean) if noise else mean


class _NoiseConcat(nn.Module):
    """g(ε, x) of 000 Table 7 (toy): ε through [d_ε, d_ε], concatenated with h(x), then
    [w + d_ε, h] [h, h] [h, d_z].  Input cat(h(x), ε) ``[..., w + d_ε]``."""

    def __init__(self, width: int, noise_dim: int, hidden: int, latent_dim: int, act) -> None:
        super().__init__()
        self.width = width
        self.noise = nn.Sequential(nn.Linear(noise_dim, noise_dim), act())
        self.body = mlp(width + noise_dim, (hidden, hidden), latent_dim, act)

    def forward(self, inputs: Tensor) -> Tensor:
        h, eps = inputs[..., : self.width], inputs[..., self.width :]
        return self.body(torch.cat([h, self.noise(eps)], -1))


class ToyImplicitPosterior(ImplicitPosterior):
    """z = g(ε, x) with the toy networks of 000 Table 7 (:class:`_NoiseConcat`); h(x) is the
    layer [d_x, hidden], the AR-DAE's conditioning input."""

    def __init__(
        self, n_x: int, latent_dim: int, noise_dim: int, hidden: int, activation: str
    ) -> None:
        super().__init__(n_x, latent_dim, noise_dim, hidden, activation)
        act = activation_class(activation)
        self.g = _NoiseConcat(self.feature_dim, noise_dim, hidden, latent_dim, act)


def make_toy_vae(
    method: str, n_x: int = 2, hidden: int = 256, noise_dim: int = 10, activation: str = "softplus"
) -> LearnedVarianceVAE:
    """The toy VAE (d_z = 2) for ``method`` in :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    act = activation_class(activation)
    decoder = GaussianDecoder(2, n_x, hidden, activation)
    if method == "gaussian":
        common = nn.Sequential(mlp(n_x, (hidden, hidden), hidden, act), act())
        post: nn.Module = GaussianPosterior(n_x, 2, hidden, activation, common, hidden)
        return LearnedVarianceVAE(decoder, post, "gaussian", n_x, likelihood="gaussian")
    post = ToyImplicitPosterior(n_x, 2, noise_dim, hidden, activation)
    return LearnedVarianceVAE(decoder, post, "ivi-ardae", n_x, likelihood="gaussian")


class FixedSigmaDAE(nn.Module):
    """A residual DAE at a fixed σ (000 eq. 2) with the AR-DAE's interface in a VAE, for
    :func:`~stochgrad.vae.continuous_step`: conditioned on h(x), fed z̃ = s (z - g(0, x)), score
    s · f(z̃).  ``sigma`` is in latent units (the DAE's noise on z̃ is s σ).  z ``[batch, n, d]``,
    cond ``[batch, c]``, center ``[batch, d]``."""

    def __init__(
        self,
        latent_dim: int,
        cond_dim: int,
        sigma: float,
        scale: float,
        hidden: tuple[int, ...],
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale = float(scale)
        self.dae = ResidualDAE(latent_dim, scale * sigma, cond_dim, hidden, activation, "gradient")

    def _inputs(self, z: Tensor, cond: Tensor, center: Tensor) -> tuple[Tensor, Tensor]:
        z_tilde = self.scale * (z.detach() - center.detach()[:, None, :])
        return z_tilde, cond.detach()[:, None, :]

    def loss(self, z: Tensor, cond: Tensor, center: Tensor) -> Tensor:
        """E||u + σ f(z̃ + σu; h(x))||² on detached draws (000 eq. 2)."""
        return self.dae.loss(*self._inputs(z, cond, center))

    def score(self, z: Tensor, cond: Tensor, center: Tensor) -> Tensor:
        """∇_z log q(z|x) ≈ s · f(z̃; h(x)), detached, shape of ``z``."""
        return self.scale * self.dae.score(*self._inputs(z, cond, center))


# ---- measurements ---------------------------------------------------------------------------


@torch.no_grad()
def posterior_logvar(model: ContinuousVAE, x: Tensor, n_var: int) -> Tensor:
    """log Var_q(z_d|x) per x and dimension, ``[batch, d_z]``: exact for a Gaussian posterior,
    else the log of the sample variance of ``n_var`` draws."""
    post = model.posterior
    if isinstance(post, GaussianPosterior):
        return post.params(x)[1]
    return post.sample(x, n_var).var(1).clamp_min(1e-30).log()


def mmd2(a: Tensor, b: Tensor, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS) -> float:
    """Unbiased MMD² between samples ``a`` ``[n, d]`` and ``b`` ``[m, d]`` with the kernel
    Σ_h exp(-‖·‖² / (2h²)) over ``bandwidths`` (Gretton et al. 2012)."""
    a, b = a.double(), b.double()

    def k(u: Tensor, v: Tensor) -> Tensor:
        d2 = torch.cdist(u, v).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)

    n, m = a.shape[0], b.shape[0]
    kaa, kbb = k(a, a), k(b, b)
    kaa = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    kbb = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return float(kaa + kbb - 2 * k(a, b).mean())


# ---- one method -----------------------------------------------------------------------------


class _Method:
    """One method's model, score model, optimizers and log-variance curve."""

    def __init__(self, cfg: VaeGridConfig, name: str, seed: int, dev: torch.device) -> None:
        self.name = name
        with fork_rng(dev), dev:
            # the implicit methods start from the same model
            torch.manual_seed(_seed(seed, "model", name == "gaussian"))
            self.model = make_toy_vae(name, 2, cfg.hidden, cfg.noise_dim)
            torch.manual_seed(_seed(seed, "score", name))
            hidden = (cfg.score_hidden,) * cfg.score_layers
            self.score: nn.Module | None = None
            if name == "ardae":
                self.score = make_ardae(self.model, hidden, cfg.scale, cfg.delta_scale, n_sigma=1)
            elif name != "gaussian":
                sigma = cfg.sigma_large if name == "dae-large" else cfg.sigma_small
                width = self.model.posterior.feature_dim
                self.score = FixedSigmaDAE(2, width, sigma, cfg.scale, hidden)
        self.model.to(dev)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
        self.score_opt = None
        if self.score is not None:
            self.score.to(dev)
            self.score_opt = torch.optim.RMSprop(
                self.score.parameters(), lr=cfg.score_lr, alpha=cfg.rmsprop_alpha
            )
        self.curve: list[tuple[int, float]] = []

    def step(self, cfg: VaeGridConfig, x: Tensor) -> tuple[float, float]:
        """One model update (with N_d score-model updates first): (objective, score loss)."""
        out = continuous_step(
            self.model,
            x,
            self.opt,
            self.score,
            self.score_opt,
            n_z=cfg.n_z,
            n_ardae_updates=cfg.n_ardae_updates,
        )
        loss = math.nan if out.ardae_loss is None else float(out.ardae_loss)
        return float(out.objective.mean()), loss

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "score": None if self.score is None else self.score.state_dict(),
            "score_opt": None if self.score_opt is None else self.score_opt.state_dict(),
            "curve": [list(p) for p in self.curve],
        }

    def load(self, s: dict) -> None:
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["opt"])
        if self.score is not None:
            self.score.load_state_dict(s["score"])
            self.score_opt.load_state_dict(s["score_opt"])
        self.curve = [(int(t), float(v)) for t, v in s["curve"]]


HEADLINES = {
    "mean_logvar.dae-large": Headline(
        paper="Fig. 5: with a large fixed σ the residual DAE underestimates the entropy "
        "gradient and the posteriors collapse to point masses (lowest mean log-variance)",
        meaning="final mean over held-out x and latent dimensions of log Var_q(z_d|x) "
        "(compare .ardae, .dae-small, .gaussian)",
        quick="yes in direction: after 128 updates the large-σ DAE's posterior stays at its "
        "initial width (about -10) while dae-small's and AR-DAE's have grown to about -8 "
        "(tested: below both; seeds 0-4 gave margins 1.7, 1.1, 1.8, 0.27, 0.47); medium (seeds 0, 1): yes, "
        "-11.6 and -13.1 against -0.3 to -0.8 for dae-small and AR-DAE",
    ),
    "sample_log_density.dae-small": Headline(
        paper="Fig. 5: with a small fixed σ the posterior does not collapse, but the encoder "
        "is not smooth and the samples are poor",
        meaning="mean log-density under the true grid mixture of model samples x ~ p(x|z), "
        "z ~ p(z) (compare .ardae; true_log_px for perfect samples)",
        quick="no: after 128 updates every model's samples are one broad blob (about -6 for "
        "all four methods; perfect samples about -3.8); medium (seeds 0, 1): in direction, "
        "dae-small -9.8, -10.3 against AR-DAE -8.6, -8.1, but every model is far from -3.8 "
        "(no grid of modes in any samples figure)",
    ),
    "test_log_px.ardae": Headline(
        paper="Fig. 5: AR-DAE's smooth encoder gives a Gaussian-shaped aggregated posterior and "
        "approximates the data distribution accurately",
        meaning="IWAE estimate of log p(x) on held-out points (proposal: Gaussian fit of "
        "posterior draws), nats; true_log_px is the best attainable",
        quick="no: 128 updates leave the implicit posteriors near point masses, with IWAE "
        "estimates of -12 to -16 against the Gaussian VAE's -5 to -5.8 (true about -3.8); "
        "medium (seeds 0, 1): AR-DAE best, -4.79 and -4.82 (dae-small -4.88, -4.95; "
        "dae-large -10.9, -13.0), but hardly above the Gaussian VAE's -4.94, which ignores z "
        "(posterior = prior, the value of one Gaussian fitted to the data): not accurate",
    ),
    "agg_mmd.ardae": Headline(
        paper="Fig. 5: AR-DAE maps the data into a Gaussian-shaped aggregated posterior",
        meaning="MMD² between the aggregated posterior and N(0, I) (0: equal; agg_mmd.prior is "
        "the noise level)",
        quick="no: after 128 updates the implicit aggregated posteriors are still clumps "
        "(agg_mmd 1.5-2.4 against about 0 for the Gaussian VAE); medium (seeds 0, 1): "
        "AR-DAE 0.009, 0.032 against dae-small 0.026, 0.11 and dae-large 0.41, 0.38 (the "
        "Gaussian VAE's 0.001 only says that its posterior is the prior)",
    ),
}


def memory_estimate(cfg: VaeGridConfig) -> float:
    """Peak bytes: the score model's activations on batch x n_z draws (with its gradient and
    the backward pass, about 8 floats per unit), the IWAE evaluation's decoder activations on
    100 rows x iwae_samples, and the data."""
    score = 4 * 8 * cfg.batch * cfg.n_z * cfg.score_hidden * cfg.score_layers
    evaluation = 4 * 6 * 100 * min(cfg.iwae_samples, 1000) * cfg.hidden
    return score + evaluation + 4 * 2 * (cfg.n_train + cfg.n_test) + 50e6


def _check(cfg: VaeGridConfig) -> None:
    require_positive(cfg, "epochs", "batch", "hidden", "noise_dim", "lr", "beta1")
    require_positive(cfg, "score_hidden", "score_layers", "scale", "n_ardae_updates")
    require_positive(cfg, "delta_scale", "score_lr", "rmsprop_alpha", "sigma_large")
    require_positive(cfg, "sigma_small", "iwae_samples", "curve_every", "n_curve", "n_plot")
    m = cfg.methods
    if not m or len(set(m)) != len(m) or not set(m) <= set(METHODS):
        raise ValueError(f"methods: expected distinct names from {METHODS}, got {m}")
    for key in ("n_z", "n_var", "n_test"):
        if getattr(cfg, key) < 2:
            raise ValueError(f"{key} must be >= 2, got {getattr(cfg, key)}")
    if cfg.n_train < cfg.batch:
        raise ValueError(f"n_train ({cfg.n_train}) must be >= batch ({cfg.batch})")
    for key in ("beta1", "rmsprop_alpha"):
        if not getattr(cfg, key) < 1:
            raise ValueError(f"{key} must lie in (0, 1), got {getattr(cfg, key)}")
    if not cfg.sigma_small < cfg.sigma_large:
        raise ValueError(
            f"sigma_small ({cfg.sigma_small}) must be below sigma_large ({cfg.sigma_large})"
        )


@register(
    "vae-grid",
    VaeGridConfig,
    PRESETS,
    "AR-DAE paper Fig. 5: VAE on the 25-Gaussian grid, Gaussian / residual DAE large and "
    "small σ / AR-DAE posteriors",
    headlines=HEADLINES,
    memory=memory_estimate,
)
def run(cfg: VaeGridConfig, ctx) -> dict[str, float]:
    _check(cfg)
    dev = ctx.device
    gen = torch.Generator().manual_seed(_seed(ctx.seed, "train-data"))
    x_train = grid_of_gaussians(cfg.n_train, gen, device="cpu").to(dev)  # CPU generator
    gen = torch.Generator().manual_seed(_seed(ctx.seed, "test-data"))
    x_test = grid_of_gaussians(cfg.n_test, gen, device="cpu").to(dev)
    x_curve = x_test[: cfg.n_curve]
    steps_per_epoch = cfg.n_train // cfg.batch
    methods = [_Method(cfg, name, ctx.seed, dev) for name in cfg.methods]

    def record(m: _Method, step: int) -> None:
        m.model.eval()
        m.curve.append((step, float(posterior_logvar(m.model, x_curve, cfg.n_var).mean())))
        m.model.train()

    state = ctx.load_checkpoint()
    if state is not None:
        for m in methods:
            m.load(state["methods"][m.name])
        start = int(state["epoch"]) + 1
    else:
        for m in methods:
            record(m, 0)
        ctx.log(0, **{f"logvar.{m.name}": m.curve[-1][1] for m in methods})
        ctx.save_checkpoint({"epoch": 0, "methods": {m.name: m.state() for m in methods}}, 0)
        start = 1

    for epoch in ctx.progress(range(start, cfg.epochs + 1), desc="vae-grid"):
        perm = torch.randperm(cfg.n_train, device=dev)  # the same order for every method
        rows: dict[int, dict[str, float]] = {}
        first = (epoch - 1) * steps_per_epoch
        for m in methods:
            objective = score_loss = 0.0
            for i in range(steps_per_epoch):
                xb = x_train[perm[i * cfg.batch : (i + 1) * cfg.batch]]
                obj, loss = m.step(cfg, xb)
                step = first + i + 1
                if not math.isfinite(obj) or (m.score is not None and not math.isfinite(loss)):
                    raise FloatingPointError(
                        f"{m.name}: the training objective is {obj} and the score model's "
                        f"loss {loss} at update {step}"
                    )
                objective, score_loss = objective + obj, score_loss + loss
                if step % cfg.curve_every == 0 or i == steps_per_epoch - 1:
                    record(m, step)
                    rows.setdefault(step, {})[f"logvar.{m.name}"] = m.curve[-1][1]
            end = rows.setdefault(first + steps_per_epoch, {})
            end[f"objective.{m.name}"] = objective / steps_per_epoch
            if m.score is not None:
                end[f"score_loss.{m.name}"] = score_loss / steps_per_epoch
        for step in sorted(rows):
            ctx.log(step, **rows[step])
        ctx.save_checkpoint(
            {"epoch": epoch, "methods": {m.name: m.state() for m in methods}},
            epoch * steps_per_epoch,
        )

    # ---- evaluation -------------------------------------------------------------------------
    mixture = grid_mixture(device=dev)
    metrics: dict[str, float] = {
        "true_log_px": float(mixture.log_prob(x_test.double()).mean()),
        "data.n_train": float(cfg.n_train),
        "updates": float(cfg.epochs * steps_per_epoch),
    }
    torch.manual_seed(_seed(ctx.seed, "eval"))
    prior = torch.randn(2, cfg.n_test, 2, device=dev)
    metrics["agg_mmd.prior"] = mmd2(prior[0], prior[1])
    agg: dict[str, Tensor] = {}
    samples: dict[str, Tensor] = {}
    for m in methods:
        model = m.model.eval()
        torch.manual_seed(_seed(ctx.seed, "eval", m.name))
        with torch.no_grad():
            metrics[f"mean_logvar.{m.name}"] = float(
                posterior_logvar(model, x_test, cfg.n_var).mean()
            )
            agg[m.name] = model.posterior.sample(x_test, 1)[:, 0]
            samples[m.name] = model.sample_x(cfg.n_plot)
        metrics[f"agg_mmd.{m.name}"] = mmd2(agg[m.name], prior[0])
        metrics[f"sample_log_density.{m.name}"] = float(
            mixture.log_prob(samples[m.name].double()).mean()
        )
        metrics[f"test_log_px.{m.name}"] = float(
            log_px(model, x_test, cfg.iwae_samples, sample_batch=min(cfg.iwae_samples, 1000)).mean()
        )
    labels = mixture.component_log_prob(x_test.double()).argmax(-1)  # nearest grid centre
    with ctx.figures():
        _figures(ctx, methods, x_test, labels, agg, samples)
    return metrics


COLORS = {
    "gaussian": "tab:gray",
    "dae-large": "tab:red",
    "dae-small": "tab:orange",
    "ardae": "tab:blue",
}


def _figures(ctx, methods, x_test, labels, agg, samples) -> None:
    """data.png, samples.png, aggregated_posterior.png and mean_logvar.png (000 Fig. 5)."""
    x_np, lab = x_test.cpu().numpy(), labels.cpu().numpy()
    fig, ax = plt.subplots(figsize=(3.4, 3.4))
    ax.scatter(x_np[:, 0], x_np[:, 1], s=2, c=lab, cmap="hsv")
    ax.set(title="data", xlim=(-6, 6), ylim=(-6, 6), aspect="equal")
    ctx.save_figure(fig, "data")
    for name, title, values, lim in (
        ("samples", "samples", samples, 6),
        ("aggregated_posterior", "q(z) (colour: component)", agg, 4),
    ):
        fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.4), squeeze=False)
        for ax, m in zip(axes[0], methods, strict=True):
            v = values[m.name].cpu().numpy()
            color = lab if name != "samples" else COLORS[m.name]
            ax.scatter(v[:, 0], v[:, 1], s=2, c=color, cmap="hsv" if name != "samples" else None)
            ax.set(title=f"{m.name}: {title}", xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
        fig.tight_layout()
        ctx.save_figure(fig, name)
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    for m in methods:
        steps, values = zip(*m.curve, strict=True)
        ax.plot(steps, values, label=m.name, color=COLORS[m.name])
    ax.set(xlabel="update", ylabel="mean log Var_q(z|x)", title="posterior log-variance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    ctx.save_figure(fig, "mean_logvar")
