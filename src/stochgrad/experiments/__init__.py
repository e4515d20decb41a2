"""Paper experiments. Importing this package registers every experiment with the runner."""

from . import relax_toy  # noqa: F401
