"""Runner: experiment registry, run directories, logging, checkpoints, sweeps and reports."""

from stochgrad.runner.config import make_config
from stochgrad.runner.context import RunContext, resolve_device, seed_everything
from stochgrad.runner.registry import Experiment, Headline, get, names, register
from stochgrad.runner.report import aggregate, find_runs, mean_sem, write_report
from stochgrad.runner.run import parse_seeds, reproduce, resume, run_experiment, run_sweep

__all__ = [
    "Experiment",
    "Headline",
    "RunContext",
    "aggregate",
    "find_runs",
    "get",
    "make_config",
    "mean_sem",
    "names",
    "parse_seeds",
    "register",
    "reproduce",
    "resolve_device",
    "resume",
    "run_experiment",
    "run_sweep",
    "seed_everything",
    "write_report",
]
