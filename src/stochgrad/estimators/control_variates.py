"""Learnable control variates ``c_φ(z)`` and baselines (003 sections 3.3-3.4, 004 section 4).

A control variate is an ``nn.Module`` called as ``cv(z, f, cond)`` and returning ``[batch]``:
``z`` is the relaxed (or continuous) sample ``[batch, ...]`` in the relaxation's own shape
(``[batch, ..., k]`` for Categorical units), ``f`` the objective (REBAR's term evaluates it at
``σ_λ(z)``), ``cond`` an optional conditioning input ``[batch, c]`` (data ``x`` in a VAE, state
``s`` in RL).  Compose them with ``+``.  The estimators evaluate c at two points per call
through ``cv.pair(z1, z2, f, cond)``; a control variate that can evaluate both in one call
(a row-wise network) overrides it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..nn import mlp  # noqa: F401  (re-exported)

Objective = Callable[[Tensor], Tensor]


MASKED_Z = -1.0e4
"""Masked classes (z = -inf) enter σ_λ as this value: exp(-1e4/λ) is 0 at any precision, and
the temperature's gradient stays finite (Gumbel z of a class with θ > 0 is far above it)."""


def concrete(z: Tensor, kind: str, temperature: Tensor | float) -> Tensor:
    """σ_λ(z): sigmoid(z/λ) for Bernoulli units, softmax(z/λ) over the last dim (the classes of
    each unit) for Categorical; as ``RelaxedBernoulli`` / ``RelaxedOneHotCategorical``."""
    if kind == "bernoulli":
        return torch.sigmoid(z / temperature)
    return torch.softmax(z.clamp_min(MASKED_Z) / temperature, dim=-1)


def _check_kind_and_temperature(kind: str, temperature: float) -> None:
    if kind not in ("bernoulli", "categorical"):
        raise ValueError(f"kind must be 'bernoulli' or 'categorical', got {kind!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


class ControlVariate(nn.Module):
    """Base class: ``forward(z, f, cond) -> [batch]``; supports ``cv1 + cv2``."""

    def forward(self, z: Tensor, f: Objective, cond: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def pair(
        self, z1: Tensor, z2: Tensor, f: Objective, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(c(z1), c(z2))``, both ``[batch]``; by default two calls."""
        return self(z1, f, cond), self(z2, f, cond)

    def __add__(self, other: ControlVariate) -> SumControlVariate:
        return SumControlVariate(self, other)


class SumControlVariate(ControlVariate):
    """c(z) = Σ_k c_k(z), e.g. REBAR's η f(σ_λ(z)) plus a network r_ρ(z) (003 section 6.2)."""

    def __init__(self, *terms: ControlVariate) -> None:
        super().__init__()
        self.terms = nn.ModuleList(terms)

    def forward(self, z: Tensor, f: Objective, cond: Tensor | None = None) -> Tensor:
        return sum(term(z, f, cond) for term in self.terms)  # type: ignore[return-value]

    def pair(
        self, z1: Tensor, z2: Tensor, f: Objective, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        pairs = [term.pair(z1, z2, f, cond) for term in self.terms]
        c1, c2 = pairs[0]
        for a, b in pairs[1:]:
            c1, c2 = c1 + a, c2 + b
        return c1, c2


class ConcreteControlVariate(ControlVariate):
    """REBAR's control variate c(z) = η f(σ_λ(z)) with learnable η and temperature λ (003 section 3.4).

    ``kind`` is ``"bernoulli"`` (σ_λ = sigmoid(z/λ)) or ``"categorical"`` (softmax(z/λ)).
    λ is stored as ``log λ`` so it stays positive.
    """

    def __init__(
        self,
        kind: str = "bernoulli",
        eta: float = 1.0,
        temperature: float = 0.5,
        learn_eta: bool = True,
        learn_temperature: bool = True,
    ) -> None:
        super().__init__()
        _check_kind_and_temperature(kind, temperature)
        self.kind = kind
        self.eta = nn.Parameter(torch.tensor(float(eta)), requires_grad=learn_eta)
        self.log_temperature = nn.Parameter(
            torch.tensor(math.log(temperature)), requires_grad=learn_temperature
        )

    @property
    def temperature(self) -> Tensor:
        return self.log_temperature.exp()

    def relax(self, z: Tensor) -> Tensor:
        """σ_λ(z)."""
        return concrete(z, self.kind, self.temperature)

    def forward(self, z: Tensor, f: Objective, cond: Tensor | None = None) -> Tensor:
        return self.eta * f(self.relax(z))

    def pair(
        self, z1: Tensor, z2: Tensor, f: Objective, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        lam = self.temperature  # one exp for both points
        return self.eta * f(concrete(z1, self.kind, lam)), self.eta * f(
            concrete(z2, self.kind, lam)
        )


class RelaxedInput(nn.Module):
    """σ_λ(z) with a learnable temperature λ, per unit: sigmoid(z/λ) for Bernoulli units,
    softmax(z/λ) over the classes (last dim) of each Categorical unit; z: ``[batch, ..., k]``.

    As the first layer of a :class:`NeuralControlVariate`'s ``nn.Sequential`` net it is applied
    to z in its own shape, before z is flattened and before ``cond`` is appended (``cond`` is
    never relaxed).
    """

    def __init__(
        self, kind: str = "bernoulli", temperature: float = 0.5, learn: bool = True
    ) -> None:
        super().__init__()
        _check_kind_and_temperature(kind, temperature)
        self.kind = kind
        self.log_temperature = nn.Parameter(
            torch.tensor(math.log(temperature)), requires_grad=learn
        )

    def forward(self, z: Tensor) -> Tensor:
        return concrete(z, self.kind, self.log_temperature.exp())


class NeuralControlVariate(ControlVariate):
    """c_φ(z) = s · net([z, cond]) with a learnable scale s (003 section 3.4).

    With ``scale=0`` RELAX starts as REINFORCE (the toy setting of the authors' code).
    ``net`` maps ``[batch, d]`` (z flattened after the batch dim, concatenated with cond) to
    ``[batch]`` or ``[batch, 1]``.  If ``net`` is an ``nn.Sequential`` whose first layer is a
    :class:`RelaxedInput`, that layer relaxes z per unit before flattening; cond is passed as is.
    ``rowwise``: the net maps rows independently (no batch norm), so :meth:`pair` evaluates
    c at two points in one call on the concatenated batch.
    """

    def __init__(
        self, net: nn.Module, scale: float = 1.0, learn_scale: bool = True, rowwise: bool = True
    ) -> None:
        super().__init__()
        self.net = net
        self.scale = nn.Parameter(torch.tensor(float(scale)), requires_grad=learn_scale)
        self.rowwise = rowwise
        first = net[0] if isinstance(net, nn.Sequential) and len(net) > 0 else None
        # plain attributes (not registered twice): the relaxing first layer and the rest of net
        self.__dict__["_relaxed_input"] = first if isinstance(first, RelaxedInput) else None
        self.__dict__["_tail"] = tuple(net)[1:] if self._relaxed_input is not None else None

    def pair(
        self, z1: Tensor, z2: Tensor, f: Objective, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if not self.rowwise:
            return super().pair(z1, z2, f, cond)
        both = self(torch.cat([z1, z2]), f, None if cond is None else torch.cat([cond, cond]))
        return both[: z1.shape[0]], both[z1.shape[0] :]

    def forward(self, z: Tensor, f: Objective, cond: Tensor | None = None) -> Tensor:
        if self._relaxed_input is not None:
            z = self._relaxed_input(z)
        elif torch.isneginf(z).any():  # masked classes: their z is -inf, a NaN in any layer
            raise ValueError(
                "z has -inf entries (masked classes, logit -inf): make a RelaxedInput the first "
                "layer of the control variate's nn.Sequential net, which relaxes them to 0"
            )
        h = z.reshape(z.shape[0], -1)
        if cond is not None:
            h = torch.cat([h, cond.reshape(cond.shape[0], -1).to(h.dtype)], dim=-1)
        if self._tail is None:
            out = self.net(h)
        else:
            out = h
            for layer in self._tail:
                out = layer(out)
        if out.dim() == 2 and out.shape[1] == 1:
            out = out.squeeze(1)
        if out.shape != (z.shape[0],):
            raise ValueError(
                f"control-variate net must return [batch] or [batch, 1], got {tuple(out.shape)}"
            )
        return self.scale * out


class BaselineControlVariate(ControlVariate):
    """c_φ(z, s) = b_φ(s): a baseline of the condition alone as a control-variate term.

    With a state-value network this is the V(s) of 004 section 6.3's c_φ(a, s) = V(s) + ĉ(a, s);
    add the action-dependent ĉ as a :class:`NeuralControlVariate`.  Trained, like every control
    variate, by :func:`~stochgrad.estimators.variance_loss`.
    """

    def __init__(self, baseline: nn.Module) -> None:
        super().__init__()
        self.baseline = baseline

    def forward(self, z: Tensor, f: Objective, cond: Tensor | None = None) -> Tensor:
        out = self.baseline(cond)
        if out.shape != (z.shape[0],):
            raise ValueError(
                f"baseline must return [batch] = ({z.shape[0]},), got {tuple(out.shape)}"
            )
        return out

    def pair(
        self, z1: Tensor, z2: Tensor, f: Objective, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        out = self(z1, f, cond)  # independent of z: one evaluation serves both points
        return out, out


class MovingAverageBaseline(nn.Module):
    """b = exponential moving average of f (a constant baseline for REINFORCE)."""

    def __init__(self, decay: float = 0.9) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("value", torch.zeros(()))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, cond: Tensor | None = None) -> Tensor:
        return self.value

    @torch.no_grad()
    def update(self, f: Tensor) -> None:
        """Fold the batch mean of f into the average (call after the estimate)."""
        mean = f.detach().mean().to(self.value.dtype)
        if not bool(self.initialized):
            self.value.copy_(mean)
            self.initialized.fill_(True)
        else:
            self.value.mul_(self.decay).add_((1 - self.decay) * mean)


class NeuralBaseline(nn.Module):
    """Input-dependent baseline b_ψ(x) (NVIL, Mnih & Gregor 2014); train with ``loss``.

    ``cond`` must not depend on θ (detach it), otherwise REINFORCE picks up a biased term.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError("NeuralBaseline needs `cond` (the input it depends on)")
        out = self.net(cond)
        return out.squeeze(-1) if out.dim() == 2 and out.shape[-1] == 1 else out

    def loss(self, f: Tensor, cond: Tensor) -> Tensor:
        """Mean squared error (f - b_ψ(x))², NVIL's objective for the baseline."""
        return (f.detach() - self(cond)).pow(2).mean()
