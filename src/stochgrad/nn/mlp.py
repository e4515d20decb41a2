"""Multilayer perceptrons, the building block of control variates, DAEs and samplers."""

from __future__ import annotations

from torch import nn

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
