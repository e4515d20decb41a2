"""The ``stochgrad`` command: list, run, resume, report and reproduce paper experiments."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _print_metrics(metrics: dict[str, float]) -> None:
    width = max((len(k) for k in metrics), default=0)
    for k, v in sorted(metrics.items()):
        print(f"  {k:<{width}}  {v:.6g}")


def _cmd_list(args: argparse.Namespace) -> None:
    from stochgrad.runner import registry

    for name in registry.names():
        exp = registry.get(name)
        print(f"{name:<20} {exp.description}")
        print(f"{'':<20} presets: {', '.join(exp.presets)}")


def _cmd_run(args: argparse.Namespace) -> None:
    from stochgrad.runner import (
        aggregate,
        find_runs,
        parse_seeds,
        run_experiment,
        run_sweep,
        write_report,
    )

    if args.seeds is None:
        res = run_experiment(args.name, args.preset, args.set, args.seed, args.out, args.device)
        print(
            f"{args.name} ({args.preset}, seed {args.seed}) finished in {res['wall_time_s']:.1f} s"
        )
        _print_metrics(res["metrics"])
        return
    from stochgrad.runner.run import default_out_dir

    seeds = parse_seeds(args.seeds)
    tag = f"seeds{seeds[0]}-{seeds[-1]}"
    out = Path(args.out) if args.out else default_out_dir(args.name, args.preset, tag)
    run_sweep(args.name, args.preset, args.set, seeds, out, args.device, args.backend, args.workers)
    print(f"{args.name} ({args.preset}), seeds {args.seeds}: mean ± s.e. over {len(seeds)} runs")
    for g in aggregate(find_runs([out])):
        stats = g.stats()
        width = max((len(k) for k in stats), default=0)
        for k, (mean, sem, _) in sorted(stats.items()):
            print(f"  {k:<{width}}  {mean:.6g} ± {sem:.2g}")
    md, _ = write_report([out])
    print(f"runs in {out}; report: {md}")


def _cmd_resume(args: argparse.Namespace) -> None:
    from stochgrad.runner import resume

    run_dir = Path(args.dir)
    if (run_dir / "config.json").exists():
        dirs = [run_dir]
    else:  # a sweep directory: resume every member that has not finished
        dirs = sorted(p.parent for p in run_dir.glob("*/config.json"))
        dirs = [d for d in dirs if _status(d) != "ok"]
        if not dirs and not any(run_dir.glob("*/config.json")):
            raise ValueError(f"{run_dir} is not a run directory (no config.json)")
    for d in dirs:
        res = resume(d, args.device)
        print(f"resumed {d}: finished in {res['wall_time_s']:.1f} s")
        _print_metrics(res["metrics"])


def _status(run_dir: Path) -> Any:
    import json

    path = run_dir / "results.json"
    return json.loads(path.read_text()).get("status") if path.exists() else None


def _cmd_report(args: argparse.Namespace) -> None:
    from stochgrad.runner import write_report

    md, html = write_report(args.dirs, args.out)
    print(f"report: {md}\n        {html}")


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from stochgrad.runner import parse_seeds, reproduce

    seeds = parse_seeds(args.seeds)
    only = args.only.split(",") if args.only else None
    md, html = reproduce(
        args.preset, args.out, seeds, args.device, args.backend, args.workers, only
    )
    print(f"report: {md}\n        {html}")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``stochgrad`` command."""
    p = argparse.ArgumentParser(
        prog="stochgrad", description="Run and report the stochgrad paper experiments."
    )
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list experiments and their presets").set_defaults(fn=_cmd_list)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--device", default="auto", help="auto (default), cpu or cuda[:N]")
        q.add_argument(
            "--backend",
            default="local",
            choices=["local", "ray"],
            help="where seed sweeps run: local processes (default) or Ray",
        )
        q.add_argument(
            "--workers",
            type=int,
            default=None,
            help="parallel local processes for a sweep (default: min(#seeds, #cpus))",
        )

    r = sub.add_parser("run", help="run one experiment")
    r.add_argument("name", help="experiment name (see `stochgrad list`)")
    r.add_argument("--preset", default="quick", help="preset: quick (default) or paper")
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field; repeatable; tuples as 1,2,3",
    )
    seeds = r.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="seed of a single run (default 0)")
    seeds.add_argument("--seeds", default=None, help="sweep over seeds, e.g. 0-4 or 0,2,5")
    r.add_argument("--out", default=None, help="run directory (default: runs/NAME/...)")
    common(r)
    r.set_defaults(fn=_cmd_run)

    res = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    res.add_argument("dir", help="run directory (or sweep directory)")
    res.add_argument("--device", default=None, help="override the device of the original run")
    res.set_defaults(fn=_cmd_resume)

    rep = sub.add_parser("report", help="tables and figures of finished runs (markdown, HTML)")
    rep.add_argument("dirs", nargs="+", metavar="DIR", help="directories searched for runs")
    rep.add_argument("--out", default=None, help="where report.md/html go (default: first DIR)")
    rep.set_defaults(fn=_cmd_report)

    rp = sub.add_parser("reproduce", help="run every experiment's preset and write the report")
    rp.add_argument("--preset", default="quick", help="preset to run (default quick)")
    rp.add_argument("--out", default=None, help="directory (default runs/reproduce-PRESET)")
    rp.add_argument("--seeds", default="0", help="seeds per experiment (default 0)")
    rp.add_argument("--only", default=None, help="comma-separated experiment names")
    common(rp)
    rp.set_defaults(fn=_cmd_reproduce)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with ``error: ...`` on stderr for user errors)."""
    args = build_parser().parse_args(argv)
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")
    try:
        args.fn(args)
    except (ValueError, TypeError, FloatingPointError) as e:
        if os.environ.get("STOCHGRAD_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with `stochgrad resume RUN_DIR`", file=sys.stderr)
        return 130
    return 0
