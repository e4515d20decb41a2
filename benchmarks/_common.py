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


def machine_info(load_start: float | None) -> dict:
    """Versions, cores, torch threads and the load average at start and now."""
    import platform

    import numpy as np
    import torch

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": {"start": load_start, "end": load_average()},
    }


def write_results(out, name: str, result: dict, markdown: str) -> None:
    """Write ``out/{name}.json`` and ``out/{name}.md`` and print the markdown."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / f"{name}.md").write_text(markdown)
    print(markdown)
