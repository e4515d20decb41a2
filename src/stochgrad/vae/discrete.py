"""Binary-latent VAEs of 003 section 6.2 and App. C.1 (and the nonlinear row of 004 Table 1).

A model with L stochastic layers of Bernoulli units b_1, ..., b_L:

    q(b_1|x) q(b_2|b_1) ... q(b_L|b_{L-1}),   p(x|b_1) p(b_1|b_2) ... p(b_{L-1}|b_L) p(b_L),

every conditional a factorized Bernoulli whose logits are a linear map (003 section 6.2,
App. C.1.1) or, in the nonlinear model, an MLP with two deterministic tanh layers of 200 units
(003/004 give no sizes; these are those of Tucker et al. 2017, whom 003 follows).  The top
prior p(b_L) has learned logits ("the parameters of the prior p(b) are also learned").

The encoder's gradient estimators need the negative ELBO integrand as a function of one
layer's sample, f(b) = -(log p(x, b) - log q(b|x)) (003 section 6.2), which depends on the
encoder through -log q (004 eq. 11).  :class:`LayerObjective` is that function for layer l:
the layers above l are re-drawn from fixed noise u_{>l} given b_l, so f is a deterministic
function of b_l, and its ``relaxed`` form feeds σ_λ(z_l) upwards through relaxed layers
σ_λ(z_k), a continuous function of z_l as REBAR's and RELAX's control variates need.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import mlp

MODELS = ("linear1", "linear2", "nonlinear")


def bernoulli_log_prob(logits: Tensor, value: Tensor) -> Tensor:
    """log Bern(value; σ(logits)) summed over units: ``[..., batch, n]`` -> ``[..., batch]``.

    ``value`` may be relaxed (in (0, 1)): the same expression, linear in ``value``.  ``logits``
    and ``value`` broadcast over leading dimensions only (e.g. ``[batch, n]`` logits against
    stacked ``[k, batch, n]`` values, or prior logits ``[n]`` against ``[batch, n]``).
    """
    if logits.shape != value.shape:
        low, high = sorted((logits, value), key=Tensor.dim)
        if high.shape[high.dim() - low.dim() :] != low.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} and value {tuple(value.shape)} must agree in "
                "their trailing dimensions"
            )
        logits, value = torch.broadcast_tensors(logits, value)
    return -F.binary_cross_entropy_with_logits(logits, value, reduction="none").sum(-1)


def logistic_noise(u: Tensor) -> Tensor:
    """logit(u) = log u - log(1 - u), the logistic noise with z = logits + logit(u) (003 App. A)."""
    return torch.log(u) - torch.log1p(-u)


class BinaryVAE(nn.Module):
    """A VAE with L stochastic layers of Bernoulli units.

    encoders[0]: x ``[batch, n_x]`` -> logits of q(b_1|x) ``[batch, n_1]``; encoders[k]: b_k ->
    logits of q(b_{k+1}|b_k).  decoders[0]: b_1 -> logits of p(x|b_1) ``[batch, n_x]``;
    decoders[k]: b_{k+1} -> logits of p(b_k|b_{k+1}).  ``prior_logits``: p(b_L), ``[n_L]``.
    ``x_mean`` ``[n_x]`` (the training-data mean), if given, initializes the output bias of
    p(x|b_1) to logit(x_mean) (the practice of Tucker et al.'s code; 003 and the notes do not
    say) and centres x in the control variates' inputs (notes: r_ρ sees x - mean).
    """

    def __init__(
        self,
        encoders: list[nn.Module],
        decoders: list[nn.Module],
        n_latent: list[int],
        n_x: int,
        x_mean: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not (len(encoders) == len(decoders) == len(n_latent) >= 1):
            raise ValueError("encoders, decoders and n_latent need one entry per layer (>= 1)")
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)
        self.n_latent = list(n_latent)
        self.n_x = n_x
        self.prior_logits = nn.Parameter(torch.zeros(n_latent[-1]))
        mean = torch.full((n_x,), 0.5) if x_mean is None else x_mean.detach().float().clone()
        if mean.shape != (n_x,):
            raise ValueError(f"x_mean must have shape [n_x] = ({n_x},), got {tuple(mean.shape)}")
        self.register_buffer("x_mean", mean)
        if x_mean is not None:
            last = [m for m in decoders[0].modules() if isinstance(m, nn.Linear)][-1]
            with torch.no_grad():
                p = mean.clamp(1e-3, 1 - 1e-3)
                last.bias.copy_(torch.log(p) - torch.log1p(-p))

    @property
    def n_layers(self) -> int:
        return len(self.n_latent)

    def check_x(self, x: Tensor) -> Tensor:
        """``x`` must be ``[batch, n_x]`` with values in [0, 1]; returns it in the model's dtype."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.n_x or x.shape[0] == 0:
            raise ValueError(f"x must have shape [batch, {self.n_x}], got {tuple(x.shape)}")
        x = x.to(self.prior_logits.dtype)
        lo, hi = torch.aminmax(x)  # one pass; NaN fails both comparisons
        if not (lo >= 0 and hi <= 1):
            raise ValueError("x must hold values in [0, 1] (binarized pixels)")
        return x

    def centred(self, x: Tensor) -> Tensor:
        """x - mean, ``[batch, n_x]`` (input of baselines and control-variate networks)."""
        return x - self.x_mean

    def log_joint(self, x: Tensor, bs: list[Tensor]) -> Tensor:
        """log p(x|b_1) + Σ_k log p(b_k|b_{k+1}) + log p(b_L), ``[batch]`` (003 App. C.1.1)."""
        out = bernoulli_log_prob(self.decoders[0](bs[0]), x)
        for k in range(1, self.n_layers):
            out = out + bernoulli_log_prob(self.decoders[k](bs[k]), bs[k - 1])
        prior = self.prior_logits.expand_as(bs[-1])
        return out + bernoulli_log_prob(prior, bs[-1])

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> list[Tensor]:
        """Uniform noise u_l ``[batch, n_l]`` for every layer, kept away from {0, 1}."""
        p = self.prior_logits
        eps = torch.finfo(p.dtype).eps
        return [
            torch.rand(batch, n, dtype=p.dtype, device=p.device, generator=generator).clamp_(
                eps, 1 - eps
            )
            for n in self.n_latent
        ]

    def upper_layers(
        self, v: Tensor, layer: int, noise: list[Tensor], temperature: Tensor | float | None
    ) -> tuple[list[Tensor], Tensor]:
        """Layers above ``layer`` given its value v, from the fixed noise u_{>layer}.

        z_k = logits_k + logit(u_k); b_k = H(z_k) (``temperature=None``) or σ_λ(z_k).  v is
        ``[batch, n_layer]`` or stacked ``[k, batch, n_layer]`` (the noise broadcasts over k).
        Returns ``([v, b_{layer+1}, ...], Σ_{k>layer} log q(b_k|b_{k-1}))``, the latter ``[batch]``
        (or ``[k, batch]``).
        """
        values, log_q = [v], v.new_zeros(v.shape[:-1])
        for k in range(layer + 1, self.n_layers):
            logits = self.encoders[k](values[-1])
            z = logits + logistic_noise(noise[k])
            b = (z > 0).to(z.dtype) if temperature is None else torch.sigmoid(z / temperature)
            values.append(b)
            log_q = log_q + bernoulli_log_prob(logits, b)
        return values, log_q

    def elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """One-sample ELBO log p(x, b) - log q(b|x), b ~ q(b|x), ``[batch]`` (003 section 6.2)."""
        x = self.check_x(x)
        noise = self.sample_noise(x.shape[0], generator)
        logits = self.encoders[0](x)
        b = (logits + logistic_noise(noise[0]) > 0).to(logits.dtype)
        return -LayerObjective(self, x, 0, [], logits, noise)(b)

    def iwae_bound(
        self, x: Tensor, n_samples: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """log (1/K) Σ_k p(x, b_k) / q(b_k|x), b_k ~ q(b|x) i.i.d., ``[batch]``.

        The importance-weighted bound (Burda et al. 2016; the notes' validation bound with
        K = 100): the ELBO at K = 1, non-decreasing in K in expectation, → log p(x).
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples!r}")
        x = self.check_x(x)
        log_w = self.elbo(x.repeat(n_samples, 1), generator).view(n_samples, x.shape[0])
        return torch.logsumexp(log_w, dim=0) - math.log(n_samples)


class LayerObjective:
    """f(b_l) = -(log p(x, b) - log q(b_{≥l}|b_{l-1})) as a function of layer l's value.

    ``lower``: the hard samples b_{<l} (no graph); ``logits``: those of q(b_l|b_{l-1}),
    ``[batch, n_l]`` (attached: f depends on θ through -log q, 004 eq. 11); the layers above
    come from ``noise``.  The terms log q(b_k|.) of the layers k < l do not depend on b_l and
    are left out (NVIL's local learning signal: unbiased, lower variance); for l = 0 this is
    the full negative ELBO integrand.  ``f(b)`` takes hard layers above; ``f.relaxed(s, λ)``
    relaxed ones.  Both also take k stacked values ``[k, batch, n_l]`` and return ``[k, batch]``
    in one pass of the networks (x, the noise, ``logits`` and ``lower`` broadcast over k): REBAR
    and RELAX evaluate f at σ_λ(z) and σ_λ(z̃) that way (:class:`RelaxedObjective`).
    """

    def __init__(
        self,
        model: BinaryVAE,
        x: Tensor,
        layer: int,
        lower: list[Tensor],
        logits: Tensor,
        noise: list[Tensor],
    ) -> None:
        self.model, self.x, self.layer = model, x, layer
        self.lower, self.logits, self.noise = lower, logits, noise

    def _evaluate(self, v: Tensor, temperature: Tensor | float | None) -> Tensor:
        upper, log_q = self.model.upper_layers(v, self.layer, self.noise, temperature)
        log_q = log_q + bernoulli_log_prob(self.logits, v)
        return log_q - self.model.log_joint(self.x, self.lower + upper)  # f = -(log p - log q)

    def __call__(self, b: Tensor) -> Tensor:
        """f at a hard (or any) value of layer l with the layers above hard, ``[batch]``
        (``[k, batch]`` for b ``[k, batch, n_l]``)."""
        return self._evaluate(b, None)

    def relaxed(self, s: Tensor, temperature: Tensor | float) -> Tensor:
        """f at s = σ_λ(z_l) with the layers above relaxed at temperature λ, ``[batch]``
        (``[k, batch]`` for s ``[k, batch, n_l]``)."""
        return self._evaluate(s, temperature)


def linear_vae(
    n_layers: int = 1, n_x: int = 784, n_latent: int = 200, x_mean: Tensor | None = None
) -> BinaryVAE:
    """1 or 2 linear stochastic layers of ``n_latent`` Bernoulli units (003 section 6.2, C.1.1)."""
    if n_layers not in (1, 2):
        raise ValueError(f"n_layers must be 1 or 2, got {n_layers}")
    sizes = [n_x] + [n_latent] * n_layers
    encoders = [nn.Linear(sizes[k], sizes[k + 1]) for k in range(n_layers)]
    decoders = [nn.Linear(sizes[k + 1], sizes[k]) for k in range(n_layers)]
    return BinaryVAE(encoders, decoders, [n_latent] * n_layers, n_x, x_mean)


def nonlinear_vae(
    n_x: int = 784, n_latent: int = 200, hidden: int = 200, x_mean: Tensor | None = None
) -> BinaryVAE:
    """One stochastic layer; encoder and decoder each with two deterministic tanh layers of
    ``hidden`` units (004 Table 1 "nonlinear"; sizes of Tucker et al. 2017)."""
    encoder = mlp(n_x, (hidden, hidden), n_latent, nn.Tanh)
    decoder = mlp(n_latent, (hidden, hidden), n_x, nn.Tanh)
    return BinaryVAE([encoder], [decoder], [n_latent], n_x, x_mean)


def make_model(
    name: str, n_x: int = 784, n_latent: int = 200, x_mean: Tensor | None = None
) -> BinaryVAE:
    """``"linear1"``, ``"linear2"`` or ``"nonlinear"`` (003 Tables 1-3, 004 Table 1)."""
    if name == "linear1":
        return linear_vae(1, n_x, n_latent, x_mean)
    if name == "linear2":
        return linear_vae(2, n_x, n_latent, x_mean)
    if name == "nonlinear":
        return nonlinear_vae(n_x, n_latent, n_latent, x_mean)
    raise ValueError(f"name must be one of {MODELS}, got {name!r}")
