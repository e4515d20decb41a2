"""`python -m stochgrad` runs the command-line tool."""

import sys

from stochgrad.cli import main

sys.exit(main())
