"""Small shared network building blocks."""

from .mlp import activation, mlp

__all__ = ["activation", "mlp"]
