"""Continuous-latent VAEs of 000 section 6.2 and App. F: Gaussian, hierarchical and implicit
posteriors, trained by the reparameterized ELBO, the auxiliary bound or AR-DAE entropy gradients.

The model is p(z) = N(0, I), p(x|z) Bernoulli (or Gaussian, ``likelihood="gaussian"``) with a
decoder network, and one of four training methods (:data:`METHODS`, 000 Table 1):

* ``"gaussian"``: q(z|x) = N(μ(x), diag σ²(x)), the reparameterized ELBO (000 eq. 6);
* ``"hvi-aux"``: q(z0|x) q(z|z0, x), both diagonal Gaussians, with an auxiliary r(z0|z, x):
  E[log p(x, z) - log q(z0|x) - log q(z|z0, x) + log r(z0|z, x)] <= ELBO (App. F.3);
* ``"hvi-ardae"``: the same hierarchical posterior, its entropy gradient from AR-DAE;
* ``"ivi-ardae"``: an implicit z = g(ε, x), ε ~ N(0, I_{d_ε}), entropy gradient from AR-DAE.

AR-DAE training follows Algorithm 1 (App. F.2): the AR-DAE f(z̃; h(x), σ) is conditioned on the
posterior's hidden representation h(x) of x, fed z̃ = s (z - g(0, x)) with the pseudo-mean
g(0, x) (the sample at zero noise), its prior scale is δ(x) = δ_scale · S_{z̃|x} from n_z
samples per x, and it gets N_d updates per model update on detached samples (its loss never
reaches the posterior).  The posterior descends -E[log p(x, z)] + ``entropy_surrogate`` with
the score s · f(z̃; σ = 0) (000 eq. 12).  The paper's "mlp-concat" AR-DAE encodes z and h(x)
separately before concatenating them; :class:`~stochgrad.entropy.ARDAE` feeds their
concatenation to one MLP.

Networks follow the MLP column of 000 Table 7: decoder [d_z, 300] [300, d_x]; a common encoder
layer [d_x, 300]; Gaussian heads [300, d_z] x 2; q(z|z0, x) a one-hidden-layer MLP on (z0, h(x));
implicit g: [300 + d_ε, 300] [300, d_z]; or its Conv column (:func:`conv_encoder`,
:class:`ConvDecoder`).  Table 7 names no activation: softplus by default.

Evaluation (App. F.3): log p(x) by importance sampling (the IWAE bound of Burda et al. 2016).
The proposal is q itself for the Gaussian posterior, and for the others the Gaussian with the
sample mean and covariance of ``n_fit`` posterior draws per x.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..entropy import ARDAE, entropy_surrogate
from ..nn import activation as activation_class
from ..nn import mlp

METHODS = ("gaussian", "hvi-aux", "hvi-ardae", "ivi-ardae")
ARDAE_METHODS = ("hvi-ardae", "ivi-ardae")
LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def _check_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def normal_log_prob(z: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mean, diag exp(logvar)) summed over the last dimension, ``[...]``."""
    return -0.5 * ((z - mean).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def _per_sample(row: Tensor, samples: Tensor) -> Tensor:
    """row ``[batch, r]`` repeated for each of samples ``[batch, n, k]``: ``[batch, n, r]``."""
    return row[:, None, :].expand(*samples.shape[:-1], row.shape[-1])


def _reparameterize(mean: Tensor, logvar: Tensor, n: int, eps: Tensor | None = None) -> Tensor:
    """n draws of N(mean, diag exp(logvar)) per row: ``[batch, d]`` -> ``[batch, n, d]``."""
    if eps is None:
        eps = torch.randn(mean.shape[0], n, mean.shape[-1], dtype=mean.dtype, device=mean.device)
    return mean[:, None, :] + torch.exp(0.5 * logvar)[:, None, :] * eps


class _Posterior(nn.Module):
    """The shared encoder h(x) ``[batch, feature_dim]`` of every posterior: ``common`` (with its
    output width ``feature_dim``) if given, else the MLP layer [n_x, hidden] of 000 Table 7."""

    def __init__(
        self,
        n_x: int,
        latent_dim: int,
        hidden: int,
        activation: str,
        common: nn.Module | None,
        feature_dim: int | None,
    ) -> None:
        super().__init__()
        if common is None:
            common = nn.Sequential(nn.Linear(n_x, hidden), activation_class(activation)())
            feature_dim = hidden
        elif feature_dim is None:
            raise ValueError("feature_dim (the width of common's output) must be given with common")
        self.common, self.latent_dim = common, latent_dim
        self.feature_dim = _check_int(feature_dim, "feature_dim")

    def features(self, x: Tensor) -> Tensor:
        """h(x), ``[batch, feature_dim]``: the AR-DAE's conditioning input."""
        return self.common(x)


class GaussianPosterior(_Posterior):
    """q(z|x) = N(μ(x), diag σ²(x)) with linear heads on h(x) (000 Table 7).

    ``common``: the shared encoder x -> h(x) ``[batch, feature_dim]`` (default: the MLP layer
    [n_x, hidden]; :func:`conv_encoder` for the Conv column).
    """

    has_density = True

    def __init__(
        self,
        n_x: int,
        latent_dim: int,
        hidden: int = 300,
        activation: str = "softplus",
        common: nn.Module | None = None,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__(n_x, latent_dim, hidden, activation, common, feature_dim)
        width = self.feature_dim
        self.mean = nn.Linear(width, latent_dim)
        self.logvar = nn.Linear(width, latent_dim)

    def params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ(x), log σ²(x)), each ``[batch, d_z]``."""
        h = self.common(x)
        return self.mean(h), self.logvar(h)

    def sample(self, x: Tensor, n: int) -> Tensor:
        """n reparameterized draws per x, ``[batch, n, d_z]``."""
        return _reparameterize(*self.params(x), n)

    def center(self, x: Tensor) -> Tensor:
        """g(0, x) = μ(x), ``[batch, d_z]``."""
        return self.params(x)[0]

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        """log q(z|x) for z ``[batch, n, d_z]``, ``[batch, n]``."""
        mean, logvar = self.params(x)
        return normal_log_prob(z, mean[:, None, :], logvar[:, None, :])


class HierarchicalPosterior(_Posterior):
    """q(z|x) = ∫ q(z0|x) q(z|z0, x) dz0, both diagonal Gaussians (000 Table 7, HVI).

    q(z0|x) has heads on the common layer h(x); q(z|z0, x) one hidden layer on (z0, h(x)).
    The marginal q(z|x) has no closed form.  ``common``: as for :class:`GaussianPosterior`.
    """

    has_density = False

    def __init__(
        self,
        n_x: int,
        latent_dim: int,
        z0_dim: int = 100,
        hidden: int = 300,
        activation: str = "softplus",
        common: nn.Module | None = None,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__(n_x, latent_dim, hidden, activation, common, feature_dim)
        act, width, self.z0_dim = activation_class(activation), self.feature_dim, z0_dim
        self.mean0 = nn.Linear(width, z0_dim)
        self.logvar0 = nn.Linear(width, z0_dim)
        self.body = nn.Sequential(nn.Linear(z0_dim + width, hidden), act())
        self.mean = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def params0(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of q(z0|x) from h(x), each ``[batch, d_z0]``."""
        return self.mean0(h), self.logvar0(h)

    def params_given(self, z0: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log-variance) of q(z|z0, x): z0 ``[batch, n, d_z0]``, h ``[batch, hidden]``."""
        hz = self.body(torch.cat([z0, _per_sample(h, z0)], -1))
        return self.mean(hz), self.logvar(hz)

    def sample_with_z0(self, x: Tensor, n: int) -> tuple[Tensor, Tensor]:
        """(z ``[batch, n, d_z]``, z0 ``[batch, n, d_z0]``), reparameterized."""
        h = self.common(x)
        z0 = _reparameterize(*self.params0(h), n)
        mean, logvar = self.params_given(z0, h)
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean), z0

    def sample(self, x: Tensor, n: int) -> Tensor:
        """n reparameterized draws per x, ``[batch, n, d_z]``."""
        return self.sample_with_z0(x, n)[0]

    def center(self, x: Tensor) -> Tensor:
        """g(0, x): z at zero noise in both layers, ``[batch, d_z]``."""
        h = self.common(x)
        return self.params_given(self.mean0(h)[:, None, :], h)[0][:, 0]


class ImplicitPosterior(_Posterior):
    """z = g(ε, x), ε ~ N(0, I_{d_ε}): h(x) and ε concatenated into an MLP (000 Table 7,
    implicit: [300 + d_ε, 300] [300, d_z]; Conv: [512 + d_ε, 800] [800, d_z]).  No density.
    ``common``: as for :class:`GaussianPosterior`."""

    has_density = False

    def __init__(
        self,
        n_x: int,
        latent_dim: int,
        noise_dim: int = 100,
        hidden: int = 300,
        activation: str = "softplus",
        common: nn.Module | None = None,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__(n_x, latent_dim, hidden, activation, common, feature_dim)
        act, width, self.noise_dim = activation_class(activation), self.feature_dim, noise_dim
        self.g = mlp(width + noise_dim, (hidden,), latent_dim, act)

    def generate(self, eps: Tensor, x: Tensor) -> Tensor:
        """g(ε, x): ε ``[batch, n, d_ε]`` -> ``[batch, n, d_z]``."""
        h = self.common(x)
        return self.g(torch.cat([_per_sample(h, eps), eps], -1))

    def sample(self, x: Tensor, n: int) -> Tensor:
        """n reparameterized draws per x, ``[batch, n, d_z]``."""
        eps = torch.randn(x.shape[0], n, self.noise_dim, dtype=x.dtype, device=x.device)
        return self.generate(eps, x)

    def center(self, x: Tensor) -> Tensor:
        """g(0, x), ``[batch, d_z]``."""
        return self.generate(x.new_zeros(x.shape[0], 1, self.noise_dim), x)[:, 0]


class AuxiliaryPosterior(nn.Module):
    """r(z0|z, x) = N(μ(z, x), diag σ²(z, x)), one hidden layer: the auxiliary model of HVI aux
    (Maaløe et al. 2016; 000 App. F.3)."""

    def __init__(
        self,
        n_x: int,
        latent_dim: int,
        z0_dim: int,
        hidden: int = 300,
        activation: str = "softplus",
    ) -> None:
        super().__init__()
        self.net = mlp(n_x + latent_dim, (hidden,), 2 * z0_dim, activation)

    def log_prob(self, z0: Tensor, z: Tensor, x: Tensor) -> Tensor:
        """log r(z0|z, x): z0 ``[batch, n, d_z0]``, z ``[batch, n, d_z]`` -> ``[batch, n]``."""
        xz = torch.cat([_per_sample(x, z), z], -1)
        mean, logvar = self.net(xz).chunk(2, dim=-1)
        return normal_log_prob(z0, mean, logvar)


class ContinuousVAE(nn.Module):
    """p(z) = N(0, I_{d_z}), p(x|z) from ``decoder`` (z ``[..., d_z]`` -> ``[..., n_x]``: logits
    for ``"bernoulli"``, means for ``"gaussian"`` with a fixed ``obs_std``), a ``posterior``
    (:class:`GaussianPosterior`, :class:`HierarchicalPosterior`, :class:`ImplicitPosterior`)
    and a training ``method`` of :data:`METHODS`; ``aux`` is r(z0|z, x) for ``"hvi-aux"``.
    """

    def __init__(
        self,
        decoder: nn.Module,
        posterior: nn.Module,
        method: str,
        n_x: int,
        likelihood: str = "bernoulli",
        obs_std: float = 1.0,
        aux: AuxiliaryPosterior | None = None,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        if not obs_std > 0:
            raise ValueError(f"obs_std must be > 0, got {obs_std}")
        needs = {"gaussian": GaussianPosterior}
        needs.update(dict.fromkeys(("hvi-aux", "hvi-ardae"), HierarchicalPosterior))
        if method in needs and not isinstance(posterior, needs[method]):
            raise TypeError(
                f"method {method!r} needs a {needs[method].__name__}, "
                f"got {type(posterior).__name__}"
            )
        if (method == "hvi-aux") != (aux is not None):
            raise ValueError("aux (r(z0|z, x)) must be given for method 'hvi-aux' and only then")
        self.decoder, self.posterior, self.aux = decoder, posterior, aux
        self.method, self.n_x, self.likelihood = method, n_x, likelihood
        self.latent_dim = posterior.latent_dim
        self.obs_std = float(obs_std)

    def check_x(self, x: Tensor) -> Tensor:
        """``x`` ``[batch, n_x]`` (values in [0, 1] for Bernoulli), in the model's dtype."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.n_x or x.shape[0] == 0:
            raise ValueError(f"x must have shape [batch, {self.n_x}], got {tuple(x.shape)}")
        x = x.to(next(self.parameters()).dtype)
        lo, hi = torch.aminmax(x)  # one pass (NaN propagates): 10x cheaper than three checks
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise ValueError("x contains NaN or Inf")
        if self.likelihood == "bernoulli" and (lo < 0 or hi > 1):
            raise ValueError("x must hold values in [0, 1] for the Bernoulli likelihood")
        return x

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z): x ``[batch, n_x]``, z ``[batch, n, d_z]`` -> ``[batch, n]``."""
        out = self.decoder(z)
        target = x[:, None, :].expand_as(out)
        if self.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, target, reduction="none").sum(-1)
        var = self.obs_std**2
        return -0.5 * ((target - out).pow(2) / var + math.log(var) + LOG_2PI).sum(-1)

    @staticmethod
    def log_prior(z: Tensor) -> Tensor:
        """log N(z; 0, I), ``[...]`` for z ``[..., d_z]``."""
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)

    def log_joint(self, x: Tensor, z: Tensor, beta: float = 1.0) -> Tensor:
        """log p(x|z) + β log N(z; 0, I), ``[batch, n]`` (β = 1: log p(x, z))."""
        return self.log_likelihood(x, z) + beta * self.log_prior(z)

    def sample(self, n: int) -> Tensor:
        """n draws of x's mean E[x|z], z ~ p(z) (pixel probabilities for Bernoulli), ``[n, n_x]``."""
        p = next(self.parameters())
        z = torch.randn(_check_int(n, "n"), self.latent_dim, dtype=p.dtype, device=p.device)
        out = self.decoder(z)
        return torch.sigmoid(out) if self.likelihood == "bernoulli" else out

    def objective(self, x: Tensor, n_samples: int = 1, beta: float = 1.0) -> Tensor:
        """The per-x lower bound that trains the model without AR-DAE, ``[batch]``: the ELBO
        (``"gaussian"``) or the auxiliary bound (``"hvi-aux"``), averaged over ``n_samples``.
        ``beta`` weighs every term but log p(x|z) (β-annealing; 1: the bound itself)."""
        x = self.check_x(x)
        n = _check_int(n_samples, "n_samples")
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must lie in [0, 1], got {beta}")
        if self.method == "gaussian":
            mean, logvar = self.posterior.params(x)  # one encoder pass for z and log q(z|x)
            z = _reparameterize(mean, logvar, n)
            log_q = normal_log_prob(z, mean[:, None, :], logvar[:, None, :])
            return (self.log_joint(x, z, beta) - beta * log_q).mean(1)
        if self.method == "hvi-aux":
            post = self.posterior
            h = post.features(x)
            mean0, logvar0 = post.params0(h)
            z0 = _reparameterize(mean0, logvar0, n)
            mean, logvar = post.params_given(z0, h)
            z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
            log_q = normal_log_prob(z0, mean0[:, None], logvar0[:, None])
            log_q = log_q + normal_log_prob(z, mean, logvar)
            log_r = self.aux.log_prob(z0, z, x)
            return (self.log_joint(x, z, beta) - beta * (log_q - log_r)).mean(1)
        raise ValueError(f"method {self.method!r} has no tractable bound: use ardae_model_loss")

    def elbo(self, x: Tensor, n_samples: int = 1, n_mix: int = 100) -> Tensor:
        """The ELBO E_q[log p(x, z) - log q(z|x)] per x, ``[batch]`` (no graph), from
        ``n_samples`` draws: an unbiased estimate for the Gaussian posterior (log q in closed
        form); for the hierarchical one the
        semi-implicit lower bound of Yin & Zhou (2018), log q(z|x) replaced by
        log (1/(K+1)) Σ_{k=0..K} q(z|z0_k, x) with z0_0 the draw that made z and K = ``n_mix``
        fresh z0_k ~ q(z0|x) (≤ the ELBO, → it as K grows).  An implicit posterior has no
        density: TypeError."""
        x = self.check_x(x)
        n = _check_int(n_samples, "n_samples")
        post = self.posterior
        with torch.no_grad():
            if getattr(post, "has_density", False):
                z = post.sample(x, n)
                return (self.log_joint(x, z) - post.log_prob(z, x)).mean(1)
            if not isinstance(post, HierarchicalPosterior):
                raise TypeError(f"the ELBO needs log q(z|x): {type(post).__name__} has no density")
            k = _check_int(n_mix, "n_mix")
            h = post.features(x)
            mean0, logvar0 = post.params0(h)
            z, z0 = post.sample_with_z0(x, n)
            z0_all = torch.cat([z0, _reparameterize(mean0, logvar0, k)], 1)  # [batch, n + k, d0]
            mean, logvar = post.params_given(z0_all, h)
            # log q(z_i|z0_j, x) for the n draws i and the n + k mixing draws j: [batch, n, n + k]
            log_q_ij = normal_log_prob(z[:, :, None, :], mean[:, None], logvar[:, None])
            own = log_q_ij[:, :, :n].diagonal(dim1=1, dim2=2)  # z0_0 of each draw: [batch, n]
            log_q = torch.logsumexp(torch.cat([own[..., None], log_q_ij[:, :, n:]], -1), -1)
            return (self.log_joint(x, z) - (log_q - math.log(k + 1))).mean(1)

    def proposal(self, x: Tensor, n_fit: int, chunk: int = 1000) -> tuple[Tensor, Tensor]:
        """The evaluation proposal's (mean ``[batch, d_z]``, Cholesky factor ``[batch, d_z, d_z]``):
        the Gaussian with the sample mean and covariance of ``n_fit`` posterior draws per x
        (000 App. F.3), drawn ``chunk`` at a time, with a jitter of 1e-6 times the mean
        variance (plus 1e-12) on the diagonal."""
        x = self.check_x(x)
        n_fit = _check_int(n_fit, "n_fit", 2)
        with torch.no_grad():
            total = x.new_zeros(x.shape[0], self.latent_dim)
            outer = x.new_zeros(x.shape[0], self.latent_dim, self.latent_dim)
            shift = self.posterior.center(x)[:, None, :]  # for a stable one-pass covariance
            for start in range(0, n_fit, chunk):
                dev = self.posterior.sample(x, min(chunk, n_fit - start)) - shift
                total += dev.sum(1)
                outer += dev.transpose(1, 2) @ dev
            mean_dev = total / n_fit
            cov = (outer - n_fit * mean_dev[:, :, None] * mean_dev[:, None, :]) / (n_fit - 1)
            jitter = 1e-6 * cov.diagonal(dim1=1, dim2=2).mean(-1) + 1e-12
            eye = torch.eye(self.latent_dim, dtype=x.dtype, device=x.device)
            tril = torch.linalg.cholesky(cov + jitter[:, None, None] * eye)
            return shift[:, 0] + mean_dev, tril

    def log_weights(
        self,
        x: Tensor,
        n_samples: int,
        n_fit: int | None = None,
        fit: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """log p(x, z_k) - log r(z_k|x), z_k ~ r(·|x) i.i.d., ``[batch, n_samples]`` (no graph).

        r is q(z|x) for the Gaussian posterior, else the Gaussian fit of :meth:`proposal` with
        ``n_fit`` draws (default ``max(n_samples, 2 d_z + 2)``), or the given ``fit``.
        """
        x = self.check_x(x)
        n = _check_int(n_samples, "n_samples")
        with torch.no_grad():
            if getattr(self.posterior, "has_density", False):
                z = self.posterior.sample(x, n)
                return self.log_joint(x, z) - self.posterior.log_prob(z, x)
            if fit is None:
                fit = self.proposal(x, max(n, 2 * self.latent_dim + 2) if n_fit is None else n_fit)
            mean, tril = fit
            eps = torch.randn(x.shape[0], n, self.latent_dim, dtype=x.dtype, device=x.device)
            z = mean[:, None, :] + eps @ tril.transpose(1, 2)
            log_det = tril.diagonal(dim1=1, dim2=2).log().sum(-1)  # log |L|
            log_r = self.log_prior(eps) - log_det[:, None]  # N(ε; 0, I) through z = mean + Lε
            return self.log_joint(x, z) - log_r


def conv_encoder(activation: str = "softplus") -> nn.Sequential:
    """x ``[batch, 784]`` -> ``[batch, 512]``: three 5x5 stride-2 convolutions 1-16-32-32 of a
    28x28 image (000 Table 7, Conv "Common")."""
    act = activation_class(activation)
    return nn.Sequential(
        nn.Unflatten(-1, (1, 28, 28)),
        nn.Conv2d(1, 16, 5, 2, 2),  # 14x14
        act(),
        nn.Conv2d(16, 32, 5, 2, 2),  # 7x7
        act(),
        nn.Conv2d(32, 32, 5, 2, 2),  # 4x4
        act(),
        nn.Flatten(),
    )


class ConvDecoder(nn.Module):
    """z ``[..., d_z]`` -> logits ``[..., 784]``: [d_z, 300] [300, 512], then three 5x5 stride-2
    deconvolutions 32-32-16-1 from 4x4 to 28x28 (000 Table 7, Conv p(x|z))."""

    def __init__(self, latent_dim: int, activation: str = "softplus") -> None:
        super().__init__()
        act = activation_class(activation)
        self.fc = nn.Sequential(mlp(latent_dim, (300,), 512, act), act())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(32, 32, 5, 2, 2),  # 7x7
            act(),
            nn.ConvTranspose2d(32, 16, 5, 2, 2, output_padding=1),  # 14x14
            act(),
            nn.ConvTranspose2d(16, 1, 5, 2, 2, output_padding=1),  # 28x28
        )

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z.reshape(-1, z.shape[-1])).view(-1, 32, 4, 4)
        return self.deconv(h).reshape(*z.shape[:-1], 784)


ARCHITECTURES = ("mlp", "conv")


def make_continuous_vae(
    method: str,
    n_x: int = 784,
    latent_dim: int = 32,
    noise_dim: int = 100,
    hidden: int = 300,
    activation: str = "softplus",
    x_mean: Tensor | None = None,
    architecture: str = "mlp",
) -> ContinuousVAE:
    """A Bernoulli VAE with the networks of 000 Table 7 for ``method`` in :data:`METHODS`.

    ``architecture``: ``"mlp"`` (``hidden`` units, 300 in Table 7) or ``"conv"`` (28x28 images,
    ``n_x`` = 784; widths fixed by Table 7: 512 conv features, 800 hidden; ``hidden`` unused).
    ``noise_dim`` is d_ε (implicit) or d_z0 (hierarchical), 100 in Table 8; ``latent_dim`` d_z
    is 32.  ``x_mean`` ``[n_x]`` (training-data mean), if given, initializes the MLP decoder's
    output bias to logit(x_mean) (a common practice; 000 does not say; not for ``"conv"``, whose
    last deconvolution has one bias).  The auxiliary r(z0|z, x) of ``"hvi-aux"`` is an MLP with
    one hidden layer of ``hidden`` units in both architectures.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    common: nn.Module | None = None
    feature_dim = None
    if architecture == "conv":
        if n_x != 784:
            raise ValueError(f"architecture 'conv' needs 28x28 images (n_x = 784), got {n_x}")
        if x_mean is not None:
            raise ValueError("x_mean initializes the MLP decoder's bias: give it with 'mlp' only")
        decoder: nn.Module = ConvDecoder(latent_dim, activation)
        common = conv_encoder(activation)
        feature_dim, post_hidden = 512, 800
        if method != "ivi-ardae":  # Gaussian / HVI heads sit on [512, 800]
            common = nn.Sequential(common, nn.Linear(512, 800), activation_class(activation)())
            feature_dim = 800
    else:
        decoder = mlp(latent_dim, (hidden,), n_x, activation)
        post_hidden = hidden
    if x_mean is not None:
        if x_mean.shape != (n_x,):
            raise ValueError(f"x_mean must have shape [{n_x}], got {tuple(x_mean.shape)}")
        p = x_mean.detach().float().clamp(1e-3, 1 - 1e-3)
        with torch.no_grad():
            decoder[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
    aux = None
    shared = {"activation": activation, "common": common, "feature_dim": feature_dim}
    if method == "gaussian":
        posterior: nn.Module = GaussianPosterior(n_x, latent_dim, post_hidden, **shared)
    elif method == "ivi-ardae":
        posterior = ImplicitPosterior(n_x, latent_dim, noise_dim, post_hidden, **shared)
    else:
        posterior = HierarchicalPosterior(n_x, latent_dim, noise_dim, post_hidden, **shared)
        if method == "hvi-aux":
            aux = AuxiliaryPosterior(n_x, latent_dim, noise_dim, hidden, activation)
    return ContinuousVAE(decoder, posterior, method, n_x, aux=aux)


def make_ardae(
    model: ContinuousVAE,
    hidden: tuple[int, ...] = (256,) * 5,
    scale: float = 1e4,
    delta_scale: float = 0.1,
    n_sigma: int = 1,
    parameterization: str = "gradient",
    activation: str = "softplus",
) -> ARDAE:
    """The AR-DAE of 000 Algorithm 1 for ``model``'s posterior: conditioned on h(x), input
    normalization ``scale`` s (10⁴ for MLP, Table 8), adaptive δ(x) = ``delta_scale`` · S_{z̃|x},
    ``n_sigma`` σ draws per sample (Table 8: 1), softplus, the gradient parameterization.

    s sets the spread of z̃ = s (z - g(0, x)) that the network sees, and it learns well only if
    that spread is well above 1: in our tests, on a Gaussian posterior of standard deviation
    0.05, s = 1 left the score uncorrelated with the exact one after 600 updates while s = 20
    reached a cosine of 0.92; Algorithm 1 on a linear-Gaussian model recovers the exact
    posterior (deviations 0.1-1) with s = 100.  The paper's 10⁴ is for MNIST posteriors; in a
    50-step run from initialization (tiny MNIST model) it lowered the ELBO with the AR-DAE on
    RMSprop at 1e-4 (Table 8) and raised it with Adam at 1e-3: f must keep up with s."""
    p = next(model.parameters())
    return ARDAE(
        model.latent_dim,
        cond_dim=model.posterior.feature_dim,
        hidden=hidden,
        activation=activation,
        parameterization=parameterization,
        n_sigma=n_sigma,
        scale=scale,
        delta_scale=delta_scale,
    ).to(dtype=p.dtype, device=p.device)


def ardae_loss(model: ContinuousVAE, ardae: ARDAE, x: Tensor, n_z: int) -> Tensor:
    """The AR-DAE objective (000 eq. 13) on n_z posterior draws per x ``[batch, n_x]``; the draws,
    h(x) and g(0, x) are computed without a graph, so the loss never reaches the posterior."""
    x = model.check_x(x)
    with torch.no_grad():
        z = model.posterior.sample(x, _check_int(n_z, "n_z", 2))
        cond, center = model.posterior.features(x), model.posterior.center(x)
    return ardae.loss(z, cond=cond, center=center)


def ardae_model_loss(
    model: ContinuousVAE, ardae: ARDAE, x: Tensor, n_samples: int = 1, beta: float = 1.0
) -> tuple[Tensor, Tensor]:
    """(loss, E[log p(x, z)] per x ``[batch]``, detached): the loss is -E[log p(x|z)] -
    β E[log p(z)] plus β ``entropy_surrogate`` (-H) with the AR-DAE score s · f(z̃; h(x), σ = 0)
    (000 eq. 12; β = 1 without annealing); its gradient reaches the decoder and the posterior,
    never the AR-DAE."""
    x = model.check_x(x)
    post = model.posterior
    z = post.sample(x, _check_int(n_samples, "n_samples"))
    score = ardae.score(z, cond=post.features(x), center=post.center(x))
    log_lik = model.log_likelihood(x, z)  # one decoder pass for the loss and the report
    log_prior = model.log_prior(z)
    loss = -(log_lik + beta * log_prior).mean() + beta * entropy_surrogate(z, score)
    return loss, (log_lik + log_prior).detach().mean(1)


@dataclass
class ContinuousStep:
    """What one training step produced: ``objective`` ``[batch]`` (detached) is the ELBO
    (``"gaussian"``), the auxiliary bound (``"hvi-aux"``) or E[log p(x, z)] (AR-DAE methods,
    whose entropy is not computed); ``ardae_loss`` is the last AR-DAE loss (or None)."""

    objective: Tensor
    ardae_loss: Tensor | None


def continuous_step(
    model: ContinuousVAE,
    x: Tensor,
    optimizer: torch.optim.Optimizer,
    ardae: ARDAE | None = None,
    ardae_optimizer: torch.optim.Optimizer | None = None,
    n_samples: int = 1,
    n_z: int = 625,
    n_ardae_updates: int = 1,
    beta: float = 1.0,
) -> ContinuousStep:
    """One model update on ``x`` ``[batch, n_x]``; for AR-DAE methods first ``n_ardae_updates``
    (N_d) AR-DAE updates on ``n_z`` draws per x (000 Algorithm 1).  ``optimizer`` holds the
    model's parameters (decoder, posterior, aux), ``ardae_optimizer`` the AR-DAE's.  ``beta``
    in [0, 1] weighs the prior and entropy terms (β-annealing, 000 Table 8; 1: the ELBO)."""
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    ar_loss = None
    if model.method in ARDAE_METHODS:
        if ardae is None or ardae_optimizer is None:
            raise ValueError(f"method {model.method!r} needs ardae and ardae_optimizer")
        for _ in range(_check_int(n_ardae_updates, "n_ardae_updates")):
            ardae_optimizer.zero_grad(set_to_none=True)
            ar_loss = ardae_loss(model, ardae, x, n_z)
            ar_loss.backward()
            ardae_optimizer.step()
        ar_loss = ar_loss.detach()
        optimizer.zero_grad(set_to_none=True)
        loss, objective = ardae_model_loss(model, ardae, x, n_samples, beta)
    else:
        optimizer.zero_grad(set_to_none=True)
        bound = model.objective(x, n_samples, beta)
        loss, objective = -bound.mean(), bound.detach()
    loss.backward()
    optimizer.step()
    return ContinuousStep(objective, ar_loss)


def log_px(
    model: nn.Module,
    x: Tensor,
    n_samples: int,
    batch_size: int = 100,
    sample_batch: int = 1000,
    n_fit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """log p(x) ≈ log (1/K) Σ_k p(x, z_k) / r(z_k|x), the IWAE bound with K = ``n_samples``,
    ``[n]`` for x ``[n, n_x]`` (000 App. F.3; Burda et al. 2016).

    r is the posterior (Gaussian) or the Gaussian fit of ``n_fit`` posterior draws
    (:meth:`ContinuousVAE.log_weights`); a :class:`~stochgrad.vae.BinaryVAE` uses its
    ``iwae_bound``.  Computed ``batch_size`` rows and ``sample_batch`` samples at a time;
    ``progress`` (e.g. a progress bar's ``update``) is called with the number of rows done
    after each row batch.
    """
    n = _check_int(n_samples, "n_samples")
    batch_size = _check_int(batch_size, "batch_size")
    sample_batch = _check_int(sample_batch, "sample_batch")
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a tensor of shape [n, n_x], got {x!r:.60}")
    out = []
    for rows in x.split(batch_size):
        if not isinstance(model, ContinuousVAE):  # a BinaryVAE
            with torch.no_grad():
                out.append(model.iwae_bound(rows, n))
            if progress is not None:
                progress(len(rows))
            continue
        rows = model.check_x(rows)
        fit = None  # one Gaussian fit per row batch, shared by its sample batches
        if not getattr(model.posterior, "has_density", False):
            k_fit = max(n, 2 * model.latent_dim + 2) if n_fit is None else n_fit
            fit = model.proposal(rows, k_fit, sample_batch)
        lse = [
            torch.logsumexp(model.log_weights(rows, min(sample_batch, n - start), fit=fit), 1)
            for start in range(0, n, sample_batch)
        ]
        out.append(torch.logsumexp(torch.stack(lse, 1), dim=1) - math.log(n))
        if progress is not None:
            progress(len(rows))
    return torch.cat(out)
