"""Paper experiments. Importing this package registers every experiment with the runner."""

from . import relax_toy  # noqa: F401
from . import ardae_mog_error  # noqa: F401
from . import ardae_energy  # noqa: F401
from . import ardae_maxent  # noqa: F401
