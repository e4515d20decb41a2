"""The ``stochgrad`` command: list, run, resume, report and reproduce paper experiments."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn


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


def _fmt_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) if value else "(empty)"
    return str(value)


def _cmd_show(args: argparse.Namespace) -> None:
    from stochgrad.runner import registry
    from stochgrad.runner.config import describe

    exp = registry.get(args.name)
    presets = list(exp.presets)
    print(f"{exp.name}: {exp.description}")
    print(
        f"config fields (override with --set KEY=VALUE; tuples as 1,2,3); presets: {', '.join(presets)}"
    )
    header = ["field", "type", "default", *presets]
    rows = [
        [r["name"], r["type"], _fmt_value(r["default"])]
        + [_fmt_value(r["presets"][p]) for p in presets]
        for r in describe(exp)
    ]
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    print("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    docs = [r["doc"] for r in describe(exp)]
    for row, doc in zip(rows, docs, strict=True):
        print("  " + "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
        if doc:
            print(f"      {doc}")
    if exp.headlines:
        print("headline metrics:")
        for metric, h in exp.headlines.items():
            print(f"  {metric}: {h.meaning} Paper: {h.paper}")


def _cmd_run(args: argparse.Namespace) -> None:
    from stochgrad.runner import (
        aggregate,
        find_runs,
        parse_seeds,
        run_experiment,
        run_sweep,
        write_report,
    )
    from stochgrad.runner.run import check_sweep_size, default_out_dir, out_path

    if args.seeds is None:
        res = run_experiment(
            args.name, args.preset, args.set, args.seed, args.out, args.device, args.overwrite
        )
        print(
            f"{args.name} ({args.preset}, seed {args.seed}) finished in {res['wall_time_s']:.1f} s"
        )
        _print_metrics(res["metrics"])
        return
    seeds = parse_seeds(args.seeds)
    check_sweep_size(seeds, args.yes)
    tag = f"seeds{seeds[0]}-{seeds[-1]}"
    out = out_path(args.out, default_out_dir(args.name, args.preset, tag))
    existing = "overwrite" if args.overwrite else "refuse"
    run_sweep(
        args.name,
        args.preset,
        args.set,
        seeds,
        out,
        args.device,
        args.backend,
        args.workers,
        existing,
    )
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
    from stochgrad.runner.run import SWEEP, resume_sweep, run_status

    run_dir = Path(args.dir)
    if str(args.dir).strip() == "" or not run_dir.is_dir():
        raise ValueError(f"{args.dir!r} is not a run directory (no such directory)")
    if (run_dir / SWEEP).exists():  # a sweep: keep finished seeds, finish the others
        results = resume_sweep(run_dir, args.device, args.workers)
        print(f"sweep {run_dir}: all {len(results)} seeds finished")
        return
    if (run_dir / "config.json").exists():
        dirs = [run_dir]
    else:  # a sweep directory of an older version (no sweep.json)
        dirs = sorted(p.parent for p in run_dir.glob("*/config.json"))
        if not dirs:
            raise ValueError(f"{run_dir} is not a run directory (no config.json)")
        dirs = [d for d in dirs if run_status(d) != "ok"]
    for d in dirs:
        res = resume(d, args.device)
        if res.get("already_finished"):
            print(f"{d} had already finished (status ok): nothing to resume")
        else:
            print(f"resumed {d}: finished in {res['wall_time_s']:.1f} s")
        _print_metrics(res["metrics"])


def _cmd_report(args: argparse.Namespace) -> None:
    from stochgrad.runner import write_report

    md, html = write_report(args.dirs, args.out)
    print(f"report: {md}\n        {html}")


def _cmd_reproduce(args: argparse.Namespace) -> None:
    from stochgrad.runner import parse_seeds, reproduce
    from stochgrad.runner.run import check_sweep_size

    seeds = parse_seeds(args.seeds)
    check_sweep_size(seeds, args.yes)
    only = [n.strip() for n in args.only.split(",")] if args.only is not None else None
    if only is not None and not all(only):
        raise ValueError(f"--only: expected comma-separated experiment names, got {args.only!r}")
    md, html = reproduce(
        args.preset,
        args.out,
        seeds,
        args.device,
        args.backend,
        args.workers,
        only,
        args.overwrite,
    )
    print(f"report: {md}\n        {html}")


class _Parser(argparse.ArgumentParser):
    """argparse with the command's own error format: ``error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``stochgrad`` command."""
    p = _Parser(prog="stochgrad", description="Run and report the stochgrad paper experiments.")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list experiments and their presets").set_defaults(fn=_cmd_list)
    sh = sub.add_parser("show", help="an experiment's config fields: type, default, presets")
    sh.add_argument("name", help="experiment name (see `stochgrad list`)")
    sh.set_defaults(fn=_cmd_show)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--device", default="auto", help="auto (default), cpu, cuda[:N] or mps")
        q.add_argument(
            "--backend",
            default="local",
            choices=["local", "ray"],
            help="where seed sweeps run: local processes (default) or Ray",
        )
        q.add_argument(
            "--workers",
            type=_positive_int,
            default=None,
            help="parallel local processes for a sweep (default: min(#seeds, #cpus))",
        )
        q.add_argument(
            "--overwrite",
            action="store_true",
            help="replace runs already in the output directory (never done without it)",
        )
        q.add_argument("--yes", action="store_true", help="confirm a sweep of more than 100 seeds")

    r = sub.add_parser(
        "run",
        help="run one experiment",
        epilog="`stochgrad show NAME` lists the config fields that --set accepts.",
    )
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
    r.add_argument(
        "--out",
        default=None,
        help="run (or sweep) directory (default: runs/NAME/PRESET-seedN-TIME); an existing "
        "run there is refused unless --overwrite",
    )
    common(r)
    r.set_defaults(fn=_cmd_run)

    res = sub.add_parser("resume", help="continue an interrupted run from its last checkpoint")
    res.add_argument("dir", help="run directory (or sweep directory)")
    res.add_argument("--device", default=None, help="override the device of the original run")
    res.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="parallel local processes when resuming a sweep (default: min(#seeds, #cpus))",
    )
    res.set_defaults(fn=_cmd_resume)

    rep = sub.add_parser("report", help="tables and figures of finished runs (markdown, HTML)")
    rep.add_argument("dirs", nargs="+", metavar="DIR", help="directories searched for runs")
    rep.add_argument("--out", default=None, help="where report.md/html go (default: first DIR)")
    rep.set_defaults(fn=_cmd_report)

    rp = sub.add_parser("reproduce", help="run every experiment's preset and write the report")
    rp.add_argument("--preset", default="quick", help="preset to run (default quick)")
    rp.add_argument(
        "--out",
        default=None,
        help="directory (default runs/reproduce-PRESET); run again, it continues where it stopped",
    )
    rp.add_argument("--seeds", default="0", help="seeds per experiment (default 0)")
    rp.add_argument("--only", default=None, help="comma-separated experiment names")
    common(rp)
    rp.set_defaults(fn=_cmd_reproduce)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 with ``error: ...`` on stderr for user errors)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2), already printed
        return e.code if isinstance(e.code, int) else 2
    try:
        if "matplotlib.pyplot" not in sys.modules:
            import matplotlib

            matplotlib.use("Agg")
        args.fn(args)
    except BrokenPipeError:  # the output went to a pipe that closed early (`| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, TypeError, FloatingPointError, OSError) as e:
        if os.environ.get("STOCHGRAD_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with `stochgrad resume RUN_DIR`", file=sys.stderr)
        return 130
    except RuntimeError as e:  # a run failed inside the experiment (not a user error): exit 1
        if os.environ.get("STOCHGRAD_DEBUG") == "1":
            raise
        print(f"error: {e} (STOCHGRAD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
    return 0
