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


def interleaved_ratios(
    pairs: dict, rounds: int, calls: int, warmup: int = 3, clock: str = "thread_time"
) -> dict[str, dict[str, float]]:
    """Time ``pairs[name] = (ours, reference)`` (zero-argument callables) in interleaved rounds.

    Each round runs, for every row in turn, ``calls`` timed calls of one side then of the
    other (the side that goes first alternates between rounds), each after one untimed call of
    the same side, so both sides see the same machine state and neither pays for switching.  Returns per row the medians of the per-call times (ms), the median and quartiles
    of the per-round ratios ours / reference, and the ratio of the fastest rounds (least
    disturbed by other processes).  ``clock``: ``"thread_time"`` (CPU time of the calling
    thread: with ``torch.set_num_threads(1)`` all the work runs there, and time spent
    descheduled by other processes does not count) or ``"perf_counter"`` (wall time).
    """
    import time

    import numpy as np

    now = getattr(time, clock)
    for ours, ref in pairs.values():
        for _ in range(warmup):
            ours()
            ref()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in pairs}
    for r in range(rounds):
        for name, (ours, ref) in pairs.items():
            spent = {}
            for side, fn in (
                (("ours", ours), ("ref", ref)) if r % 2 == 0 else (("ref", ref), ("ours", ours))
            ):
                fn()  # untimed: the timed calls run with this side's code and data warm
                t0 = now()
                for _ in range(calls):
                    fn()
                spent[side] = (now() - t0) / calls
            times[name].append((spent["ours"], spent["ref"]))
    out = {}
    for name, rows in times.items():
        a = np.array(rows)
        ratio = a[:, 0] / a[:, 1]
        out[name] = {
            "ours_ms": float(np.median(a[:, 0]) * 1e3),
            "hand_ms": float(np.median(a[:, 1]) * 1e3),
            "ratio_median": float(np.median(ratio)),
            "ratio_q25": float(np.quantile(ratio, 0.25)),
            "ratio_q75": float(np.quantile(ratio, 0.75)),
            "ratio_of_minima": float(a[:, 0].min() / a[:, 1].min()),
            "rounds": rounds,
            "calls_per_round": calls,
            "clock": f"time.{clock}",
        }
    return out
