"""Small shared network building blocks."""

from .mlp import activation, input_gradient, mlp, supports_input_gradient

__all__ = ["activation", "input_gradient", "mlp", "supports_input_gradient"]
