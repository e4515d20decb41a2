"""Multilayer perceptrons, the building block of control variates, DAEs and samplers."""

from __future__ import annotations

import torch
from torch import Tensor, nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str | type[nn.Module]) -> type[nn.Module]:
    """The activation class named ``name`` (relu, tanh, softplus, elu, silu, sigmoid)."""
    if isinstance(name, type) and issubclass(name, nn.Module):
        return name
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]


def mlp(
    in_features: int,
    hidden: tuple[int, ...] | list[int],
    out_features: int = 1,
    activation: str | type[nn.Module] = nn.ReLU,
) -> nn.Sequential:
    """A plain multilayer perceptron ``in -> hidden... -> out`` (no final activation)."""
    act = globals()["activation"](activation)
    if in_features < 1 or out_features < 1 or any(h < 1 for h in hidden):
        raise ValueError(
            f"layer sizes must be >= 1, got in={in_features}, hidden={tuple(hidden)}, "
            f"out={out_features}"
        )
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), act()]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def _derivative(act: nn.Module, a: Tensor, h: Tensor) -> Tensor | None:
    """act'(a) from the pre-activation ``a`` and the output ``h = act(a)``; None if unknown."""
    if type(act) is nn.Softplus:
        # d/da log(1 + e^{βa}) / β = sigmoid(βa), exactly.  F.softplus switches to the identity
        # above βa = threshold (20), so autograd's derivative is 1 there, within 2.1e-9 of this;
        # a torch.where for that case would cost about 9% of an AR-DAE update
        return torch.sigmoid(a if act.beta == 1 else act.beta * a)
    if type(act) is nn.Tanh:
        return 1 - h * h
    if type(act) is nn.Sigmoid:
        return h * (1 - h)
    if type(act) is nn.ReLU:
        return (a > 0).to(a.dtype)
    if type(act) is nn.SiLU:
        s = torch.sigmoid(a)
        return s * (1 + a * (1 - s))
    if type(act) is nn.ELU:
        return torch.where(a > 0, 1.0, h + act.alpha)
    return None


def supports_input_gradient(net: nn.Sequential) -> bool:
    """Whether ``input_gradient`` can differentiate ``net`` (an ``mlp`` with a scalar output and
    activations among relu, tanh, softplus, elu, silu, sigmoid)."""
    layers = list(net)
    return (
        len(layers) % 2 == 1
        and all(isinstance(m, nn.Linear) for m in layers[::2])
        and layers[-1].out_features == 1
        and all(_derivative(m, torch.zeros(1), torch.zeros(1)) is not None for m in layers[1::2])
    )


def input_gradient(net: nn.Sequential, z: Tensor, n_inputs: int | None = None) -> Tensor:
    """∇_z ψ(z) of a scalar-output ``mlp`` ψ, written out: one forward pass that keeps the
    pre-activations a_k, then the backward recursion g ← (g ⊙ act'(a_k)) W_k by hand.

    The result is an ordinary differentiable function of ``z`` and the weights, so training
    through it needs one first-order backward pass instead of autograd's double backward.
    ``z``: ``[..., n_in]``; returns ``[..., n_inputs]``, the gradient with respect to the first
    ``n_inputs`` inputs (all by default).  ``net`` must pass ``supports_input_gradient``.
    """
    layers = list(net)
    linears, acts = layers[::2], layers[1::2]
    pre, post = [], []
    h = z
    for lin, act in zip(linears[:-1], acts):
        a = lin(h)
        h = act(a)
        pre.append(a)
        post.append(h)
    g = linears[-1].weight  # ∂ψ/∂h_{L-1}: [1, width], broadcast over the batch
    for k in reversed(range(len(acts))):
        w = linears[k].weight
        if k == 0 and n_inputs is not None:
            w = w[:, :n_inputs]
        g = (g * _derivative(acts[k], pre[k], post[k])) @ w
    if not acts:  # ψ is affine: the gradient is its weight row
        w = linears[0].weight if n_inputs is None else linears[0].weight[:, :n_inputs]
        g = w.expand(*z.shape[:-1], w.shape[-1])
    return g
