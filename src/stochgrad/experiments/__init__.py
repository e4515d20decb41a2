"""Paper experiments. Importing this package registers every experiment with the runner."""

from . import (
    ardae_energy,  # noqa: F401
    ardae_maxent,  # noqa: F401
    ardae_mog_error,  # noqa: F401
    pg,  # noqa: F401
    relax_toy,  # noqa: F401
    rl_action_time,  # noqa: F401
    rl_multigoal,  # noqa: F401
    svgd_entropy,  # noqa: F401
    vae_discrete,  # noqa: F401
    vae_grid,  # noqa: F401
    vae_mnist,  # noqa: F401
)
