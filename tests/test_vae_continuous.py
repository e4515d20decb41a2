"""Continuous-latent VAEs (000 section 6.2, App. F): every method trains, the AR-DAE loss never
reaches the posterior, the entropy surrogate's sign and scale, and log p(x) by importance
sampling (IWAE bound) against the ELBO and against the exact marginal of a linear-Gaussian model.

Statistical checks: float64 where a bound is in standard errors, fixed seeds (conftest), bounds
of 4-5 standard errors.
"""

import math

import pytest
import torch
from torch import nn

from stochgrad.data import load_binarized_mnist
from stochgrad.vae import (
    ARDAE_METHODS,
    METHODS,
    ContinuousVAE,
    GaussianPosterior,
    HierarchicalPosterior,
    ImplicitPosterior,
    ardae_loss,
    ardae_model_loss,
    continuous_step,
    linear_vae,
    log_px,
    make_ardae,
    make_continuous_vae,
)

DT = torch.float64


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_binarized_mnist(subset=True, split="train")[:64]


def tiny(method: str, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> ContinuousVAE:
    model = make_continuous_vae(method, latent_dim=4, noise_dim=8, hidden=32, x_mean=x.mean(0))
    return model.to(dtype)


def tiny_ardae(model: ContinuousVAE):
    # s = 1 (the paper's 1e4 also trains here with Adam at 1e-3; see make_ardae)
    return make_ardae(model, hidden=(32, 32), scale=1.0)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_its_bound_improves(method, images):
    """50 steps on a fixed batch: finite losses, and the ELBO under the evaluation proposal
    (q, or the Gaussian fit; 200 draws per image) rises by more than 4 standard errors of the
    per-image gains."""
    model = tiny(method, images)
    ardae = tiny_ardae(model) if method in ARDAE_METHODS else None
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ardae_opt = None if ardae is None else torch.optim.Adam(ardae.parameters(), lr=1e-3)

    def proposal_elbo() -> torch.Tensor:
        return model.log_weights(images, 200, n_fit=500).mean(1)  # ELBO per x, [64]

    before = proposal_elbo()
    for _ in range(50):
        out = continuous_step(model, images, opt, ardae, ardae_opt, n_z=16, n_ardae_updates=2)
        assert torch.isfinite(out.objective).all()
        assert (out.ardae_loss is None) == (ardae is None)
        assert out.ardae_loss is None or torch.isfinite(out.ardae_loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    gain = proposal_elbo() - before  # paired by image
    assert gain.mean() > 4 * gain.std() / math.sqrt(len(gain)), (gain.mean(), gain.std())


@pytest.mark.parametrize("method", ARDAE_METHODS)
def test_ardae_loss_never_reaches_the_posterior(method, images):
    model = tiny(method, images)
    ardae = tiny_ardae(model)
    loss = ardae_loss(model, ardae, images[:8], n_z=4)
    loss.backward()
    assert all(p.grad is None for p in model.parameters())
    # (ψ's output bias gets zero gradient: f = ∇ψ does not depend on it)
    assert sum(p.grad.abs().sum() for p in ardae.parameters() if p.grad is not None) > 0
    # and the model's loss never reaches the AR-DAE
    ardae.zero_grad(set_to_none=True)
    model_loss, _ = ardae_model_loss(model, ardae, images[:8], n_samples=3)
    model_loss.backward()
    assert all(p.grad is None for p in ardae.parameters())
    assert all(p.grad is not None for p in model.posterior.parameters())
    assert all(p.grad is not None for p in model.decoder.parameters())


class ExactScore:
    """A stand-in for the AR-DAE with the exact score of a Gaussian posterior, -(z - μ)/σ²."""

    def __init__(self, posterior: GaussianPosterior) -> None:
        self.posterior = posterior

    def score(self, z, cond=None, center=None):
        mean, logvar = self.posterior.params(self._x)
        assert torch.equal(center, mean)  # g(0, x) of the Gaussian posterior is μ(x)
        return (-(z - mean[:, None]) * torch.exp(-logvar)[:, None]).detach()


def test_entropy_surrogate_gives_the_exact_elbo_gradient_with_the_exact_score(images):
    """With the exact score in place of the AR-DAE, the loss of 000 eq. 12 has in expectation
    the gradient of -ELBO: for the posterior's log-variance head bias the entropy part is
    exactly -1/2 per dimension (∂H/∂ log σ² = 1/2), so the difference of the two estimates'
    gradients is a mean-zero average; z-test in float64."""
    model = tiny("gaussian", images, DT)
    x = images[:4].to(DT)
    oracle = ExactScore(model.posterior)
    oracle._x = x
    n = 20_000
    bias = model.posterior.logvar.bias
    torch.manual_seed(1)
    loss, _ = ardae_model_loss(model, oracle, x, n_samples=n)
    (g_surrogate,) = torch.autograd.grad(loss, bias)
    # -E[log p(x, z)] alone, same draws: the entropy part is the difference
    torch.manual_seed(1)
    z = model.posterior.sample(x, n)
    (g_joint,) = torch.autograd.grad(-model.log_joint(x, z).mean(), bias)
    entropy_part = g_surrogate - g_joint  # per-sample -ε²/2 averaged over x: mean -1/2
    se = math.sqrt(0.5 / (n * x.shape[0]))  # Var(ε²/2) = 1/2
    assert (entropy_part + 0.5).abs().max() < 5 * se, entropy_part
    # a wrong sign would give +1/2: the test tells them apart
    assert (entropy_part - 0.5).abs().min() > 100 * se


@pytest.mark.parametrize("method", ["gaussian", "hvi-aux"])
def test_iwae_bound_exceeds_the_elbo_and_grows_with_n(method, images):
    """Untrained model, 16 images, 50 independent estimates each (800 rows): log_px at n = 1
    is the ELBO (Gaussian posterior: within 4 standard errors of the 100-sample ELBO); it
    rises from n = 1 to 10 to 100 by more than 4 standard errors of the row-wise differences
    (pooled over images: conservative); for hvi-aux log_px(n = 100) exceeds the auxiliary
    bound (a lower bound on the ELBO) likewise."""
    model = tiny(method, images, DT)
    x = images[:16].to(DT).repeat(50, 1)
    with torch.no_grad():
        bounds = {n: log_px(model, x, n, batch_size=300, sample_batch=40) for n in (1, 10, 100)}
        elbo = model.objective(x, n_samples=100)
    if method == "gaussian":
        diff = bounds[1] - elbo
        assert diff.mean().abs() < 4 * diff.std() / math.sqrt(len(diff))
    for lo, hi in ((elbo, bounds[100]), (bounds[1], bounds[10]), (bounds[10], bounds[100])):
        d = hi - lo
        assert d.mean() > 4 * d.std() / math.sqrt(len(d)), (d.mean(), d.std())


class LinearGaussian:
    """p(z) = N(0, I_2), p(x|z) = N(Wz + b, σ² I_3): log p(x) = log N(x; b, WWᵀ + σ² I)."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(3)
        self.decoder = nn.Linear(2, 3).to(DT)
        with torch.no_grad():
            self.decoder.weight.copy_(torch.randn(3, 2, generator=gen, dtype=DT))
            self.decoder.bias.copy_(torch.randn(3, generator=gen, dtype=DT))
        self.sigma = 0.5

    def log_px(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.decoder.weight.detach(), self.decoder.bias.detach()
        cov = w @ w.T + self.sigma**2 * torch.eye(3, dtype=DT)
        return torch.distributions.MultivariateNormal(b, cov).log_prob(x)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact p(z|x): mean ``[batch, 2]``, covariance ``[2, 2]`` (full, correlated)."""
        w, b = self.decoder.weight.detach(), self.decoder.bias.detach()
        cov = torch.linalg.inv(torch.eye(2, dtype=DT) + w.T @ w / self.sigma**2)
        return (x - b) @ w @ cov / self.sigma**2, cov


class SamplerPosterior(nn.Module):
    """A density-free posterior drawing from N(a · mean(x) + shift, c² · cov(x)) (test-local)."""

    has_density = False
    latent_dim = 2
    feature_dim = 1

    def __init__(self, truth: LinearGaussian, inflate: float = 1.0, shift: float = 0.0) -> None:
        super().__init__()
        self.truth, self.inflate, self.shift = truth, inflate, shift
        self.dummy = nn.Parameter(torch.zeros((), dtype=DT))

    def sample(self, x: torch.Tensor, n: int) -> torch.Tensor:
        mean, cov = self.truth.posterior(x)
        eps = torch.randn(x.shape[0], n, 2, dtype=DT)
        chol = torch.linalg.cholesky(cov)
        return mean[:, None] + self.shift + self.inflate * eps @ chol.T

    def center(self, x: torch.Tensor) -> torch.Tensor:
        return self.truth.posterior(x)[0] + self.shift


@pytest.mark.parametrize("inflate, shift", [(1.0, 0.0), (1.6, 0.4)])
def test_iwae_with_gaussian_fit_matches_exact_log_px_of_linear_gaussian_model(inflate, shift):
    """With the Gaussian-fit proposal (App. F.3), the importance-sampling estimate of p(x)
    (mean of the weights, unbiased) matches the exact marginal within 4 standard errors for
    every x, both for the exact posterior and for a shifted, inflated one; log_px (chunked)
    equals log of that mean up to the IWAE bias, within 4 standard errors too."""
    truth = LinearGaussian()
    posterior = SamplerPosterior(truth, inflate, shift)
    model = ContinuousVAE(
        truth.decoder, posterior, "ivi-ardae", 3, likelihood="gaussian", obs_std=truth.sigma
    )
    x = torch.randn(6, 3, dtype=DT) * 2
    exact = truth.log_px(x)
    n = 20_000
    log_w = model.log_weights(x, n, n_fit=5000)  # [6, n]
    m = log_w.max(1, keepdim=True).values
    w = (log_w - m).exp()
    estimate = w.mean(1).log() + m[:, 0]
    se = w.std(1) / (w.mean(1) * math.sqrt(n))  # delta method: SE of log(mean w)
    assert ((estimate - exact).abs() < 4 * se + 1e-10).all(), (estimate - exact, se)
    chunked = log_px(model, x, n, batch_size=4, sample_batch=3000, n_fit=5000)
    assert ((chunked - exact).abs() < 4 * se + 1e-10).all(), (chunked - exact, se)
    if inflate == 1.0:  # the fit recovers the exact posterior: nearly constant weights
        assert se.max() < 0.01


class ZeroScore:
    """A stand-in AR-DAE whose score is 0: the posterior then gets no entropy gradient."""

    def score(self, z, cond=None, center=None):
        return torch.zeros_like(z)


def fit_kl_to_exact(model: ContinuousVAE, truth: LinearGaussian, x: torch.Tensor):
    """(KL(fit || p(z|x)) per x ``[batch]``, mean variance of the fit) for the Gaussian fit of
    4000 posterior draws."""
    mean_t, cov_t = truth.posterior(x)
    mean, tril = model.proposal(x, 4000)
    cov = tril @ tril.transpose(1, 2)
    prec = torch.linalg.inv(cov_t)
    d = mean - mean_t
    kl = 0.5 * (
        (prec * cov).sum((-1, -2))
        + torch.einsum("bi,ij,bj->b", d, prec, d)
        - 2
        + torch.logdet(cov_t)
        - torch.logdet(cov)
    )
    return kl, cov.diagonal(dim1=1, dim2=2).mean().item()


@pytest.mark.parametrize("method", ARDAE_METHODS)
def test_algorithm_1_recovers_the_exact_posterior_of_a_linear_gaussian_model(method):
    """End to end (000 Algorithm 1 with the fixed decoder of a linear-Gaussian model): 400
    steps of :func:`continuous_step` take the posterior from KL(fit || p(z|x)) ~ 18 to < 0.6,
    with the fit's variance within 40% of the exact one.  Negative control: with a zero score
    (no entropy gradient) the same training collapses the posterior (variance < 10%)."""
    truth = LinearGaussian()
    truth.decoder.requires_grad_(False)
    x = torch.randn(16, 3, dtype=DT) * 2
    var_exact = truth.posterior(x)[1].diagonal().mean().item()

    def train(score_model, steps):
        torch.manual_seed(1)
        if method == "ivi-ardae":
            post = ImplicitPosterior(3, 2, noise_dim=16, hidden=64)
        else:
            post = HierarchicalPosterior(3, 2, z0_dim=4, hidden=64)
        model = ContinuousVAE(
            truth.decoder, post.to(DT), method, 3, likelihood="gaussian", obs_std=truth.sigma
        )
        # s = 100: z̃ of spread ~10-100 for posterior deviations of 0.1-1 (000 App. F.2)
        ardae = make_ardae(model, hidden=(64, 64), scale=100.0) if score_model is None else None
        opt = torch.optim.Adam(post.parameters(), lr=3e-3)
        if ardae is None:
            for _ in range(steps):
                opt.zero_grad()
                ardae_model_loss(model, score_model, x, n_samples=8)[0].backward()
                opt.step()
        else:
            ardae_opt = torch.optim.Adam(ardae.parameters(), lr=3e-3)
            for _ in range(steps):
                continuous_step(model, x, opt, ardae, ardae_opt, 8, n_z=32, n_ardae_updates=2)
        return model

    model = train(None, 400)
    kl, var = fit_kl_to_exact(model, truth, x)
    assert kl.mean() < 0.6 and 0.6 < var / var_exact < 1.4, (kl.mean(), var, var_exact)
    _, var_collapsed = fit_kl_to_exact(train(ZeroScore(), 150), truth, x)
    assert var_collapsed < 0.1 * var_exact, (var_collapsed, var_exact)


@pytest.mark.parametrize("method", METHODS)
def test_conv_architecture_shapes_and_steps(method, images):
    """000 Table 7 Conv column: 512 conv features, 28x28 logits; two finite training steps."""
    model = make_continuous_vae(method, latent_dim=4, noise_dim=8, architecture="conv")
    x = images[:8]
    z = model.posterior.sample(x, 3)
    assert z.shape == (8, 3, 4) and model.decoder(z).shape == (8, 3, 784)
    assert model.posterior.feature_dim == (512 if method == "ivi-ardae" else 800)
    ardae = tiny_ardae(model) if method in ARDAE_METHODS else None
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ardae_opt = None if ardae is None else torch.optim.Adam(ardae.parameters(), lr=1e-3)
    for _ in range(2):
        out = continuous_step(model, x, opt, ardae, ardae_opt, n_z=4)
        assert torch.isfinite(out.objective).all()
    assert torch.isfinite(log_px(model, x, 20, batch_size=4, sample_batch=8)).all()


def test_log_px_batches_rows_reports_progress_and_takes_a_binary_vae(images):
    model = tiny("gaussian", images)
    done = []
    out = log_px(model, images[:10], 5, batch_size=4, progress=done.append)
    assert out.shape == (10,) and done == [4, 4, 2]
    binary = linear_vae(1, n_latent=8)
    torch.manual_seed(5)
    ours = log_px(binary, images[:10], 7, batch_size=3)
    torch.manual_seed(5)
    theirs = torch.cat([binary.iwae_bound(rows, 7) for rows in images[:10].split(3)])
    assert torch.equal(ours, theirs)


def test_save_load_and_sample(images, tmp_path):
    model = tiny("ivi-ardae", images)
    torch.save(model.state_dict(), tmp_path / "vae.pt")
    loaded = tiny("ivi-ardae", images)
    loaded.load_state_dict(torch.load(tmp_path / "vae.pt"))
    torch.manual_seed(2)
    ours = model.log_weights(images[:4], 5)
    torch.manual_seed(2)
    assert torch.equal(loaded.log_weights(images[:4], 5), ours)
    pixels = loaded.sample(6)
    assert pixels.shape == (6, 784) and ((pixels >= 0) & (pixels <= 1)).all()


def test_bad_inputs_are_named(images):
    model = tiny("gaussian", images)
    with pytest.raises(ValueError, match="method"):
        make_continuous_vae("avb")
    with pytest.raises(ValueError, match="x must have shape"):
        model.objective(images[:, :100])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.objective(images * 2)
    with pytest.raises(ValueError, match="n_samples"):
        log_px(model, images, 0)
    with pytest.raises(ValueError, match="needs ardae"):
        opt = torch.optim.Adam(model.parameters())
        continuous_step(tiny("ivi-ardae", images), images, opt)
    with pytest.raises(TypeError, match="HierarchicalPosterior"):
        ContinuousVAE(nn.Linear(4, 784), model.posterior, "hvi-aux", 784)
    with pytest.raises(ValueError, match="tractable"):
        tiny("ivi-ardae", images).objective(images)
    with pytest.raises(ValueError, match="architecture"):
        make_continuous_vae("gaussian", architecture="resconv")
    with pytest.raises(ValueError, match="x_mean"):
        make_continuous_vae("gaussian", architecture="conv", x_mean=images.mean(0))


@pytest.mark.parametrize("method", ["hvi-aux", "hvi-ardae"])
def test_semi_implicit_elbo_rises_with_mixing_draws_and_stays_below_log_px(method, images):
    """ContinuousVAE.elbo for a hierarchical posterior (Yin & Zhou's bound with the draw's own
    z0 among K + 1 mixing draws) rises with K (a bound that drops the own z0 would fall instead)
    and stays below log p(x); 16 images x 50 rows, float64, by > 4 standard errors of the
    row-wise differences (common draws z across K)."""
    model = tiny(method, images, DT)
    with torch.no_grad():  # make z depend strongly on z0, so that K matters
        model.posterior.body[0].weight[:, : model.posterior.z0_dim] *= 10.0
    x = images[:16].to(DT).repeat(50, 1)
    elbo = {}
    for k in (1, 30, 300):
        torch.manual_seed(11)  # the same draws z for every K: only the mixing draws differ
        elbo[k] = model.elbo(x, n_samples=1, n_mix=k)
    with torch.no_grad():
        upper = log_px(model, x, 100, batch_size=400)
    for lo, hi in ((elbo[1], elbo[30]), (elbo[30], elbo[300]), (elbo[300], upper)):
        d = hi - lo
        assert d.mean() > 4 * d.std() / math.sqrt(len(d)), (d.mean(), d.std())


def test_semi_implicit_elbo_is_exact_when_z_ignores_z0(images):
    """With q(z|z0, x) blind to z0 the hierarchical posterior is the Gaussian q(z|x) and the
    bound equals the exact ELBO of the same draws for every K."""
    model = tiny("hvi-ardae", images, DT)
    post = model.posterior
    with torch.no_grad():
        post.body[0].weight[:, : post.z0_dim] = 0.0
    x = images[:8].to(DT)
    torch.manual_seed(5)
    got = model.elbo(x, n_samples=3, n_mix=7)
    torch.manual_seed(5)
    h = post.features(x)
    post.params0(h)
    z, z0 = post.sample_with_z0(x, 3)
    mean, logvar = post.params_given(z0, h)
    log_q = -0.5 * ((z - mean) ** 2 * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)
    torch.testing.assert_close(got, (model.log_joint(x, z) - log_q).mean(1).detach())
    with pytest.raises(TypeError, match="no density"):
        tiny("ivi-ardae", images, DT).elbo(x)


@pytest.mark.parametrize("method", ["gaussian", "hvi-aux", "hvi-ardae"])
def test_beta_weighs_prior_and_entropy_terms_linearly(method, images):
    """β-annealing: with the same noise the training loss is linear in β, and β = 0 leaves
    log p(x|z) alone, which differs from the β = 1 bound by the KL term."""
    model = tiny(method, images, DT)
    ardae = tiny_ardae(model) if method in ARDAE_METHODS else None
    x = images[:16].to(DT)

    def loss(beta):
        torch.manual_seed(7)
        if ardae is not None:
            return ardae_model_loss(model, ardae, x, 4, beta)[0].detach()
        return -model.objective(x, 4, beta).mean().detach()

    l0, l1, mid = loss(0.0), loss(1.0), loss(0.3)
    torch.testing.assert_close(mid, 0.7 * l0 + 0.3 * l1)
    assert abs(l1 - l0) > 1e-3  # equal to float64 rounding if β were ignored
    with pytest.raises(ValueError, match="beta"):
        model.objective(x, 1, beta=1.5) if ardae is None else continuous_step(
            model,
            x,
            torch.optim.SGD(model.parameters(), 0.0),
            ardae,
            torch.optim.SGD(ardae.parameters(), 0.0),
            n_z=2,
            beta=1.5,
        )
