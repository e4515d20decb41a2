"""Helpers shared by the benchmark scripts (run as `python3 benchmarks/NAME.py`)."""

from __future__ import annotations

import os


def load_average() -> float | None:
    """1-minute load average: other processes on the machine skew timings, so it is recorded."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def fmt_num(x: float | None) -> str:
    """Two decimals, or n/a."""
    return "n/a" if x is None else f"{x:.2f}"
