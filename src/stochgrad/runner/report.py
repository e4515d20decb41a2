"""Aggregate finished runs (mean and standard error across seeds) into report.md / report.html."""

from __future__ import annotations

import html
import json
import math
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from stochgrad.runner import registry


@dataclass
class RunRecord:
    """One run directory and its results.json."""

    dir: Path
    results: dict[str, Any]


@dataclass
class Group:
    """Runs sharing experiment, preset and config (they differ only by seed)."""

    experiment: str
    preset: str
    config: dict[str, Any]
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return [r.results["seed"] for r in self.runs]  # runs are sorted by seed

    def stats(self) -> dict[str, tuple[float, float, int]]:
        """metric -> (mean, standard error = std(ddof=1)/sqrt(n) (NaN for n=1), n)."""
        values: dict[str, list[float]] = {}
        for r in self.runs:
            for k, v in r.results["metrics"].items():
                values.setdefault(k, []).append(float(v))
        return {k: mean_sem(v) + (len(v),) for k, v in values.items()}


def mean_sem(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean, std with ddof=1 over sqrt(n); NaN s.e. when n < 2."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((x - mean) ** 2 for x in values) / (n - 1)
    return mean, math.sqrt(var / n)


def warn(message: str) -> None:
    """A report warning on stderr (the report goes on without the run)."""
    print(f"warning: {message}", file=sys.stderr)


def _check_results(data: Any) -> str | None:
    """Why ``data`` is not a usable results.json, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    missing = [k for k in ("experiment", "preset", "config", "seed", "metrics") if k not in data]
    if missing:
        return f"missing {', '.join(missing)}"
    if isinstance(data["seed"], bool) or not isinstance(data["seed"], int):
        return f"seed is not an integer ({data['seed']!r})"
    if not isinstance(data["metrics"], dict):
        return "metrics is not a mapping"
    for k, v in data["metrics"].items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return f"metric {k!r} is not a number ({v!r})"
    if not isinstance(data.get("wall_time_s", 0), (int, float)):
        return "wall_time_s is not a number"
    return None


def find_runs(dirs: Iterable[str | Path]) -> list[RunRecord]:
    """All run directories (holding a results.json) under ``dirs``, sorted by path.

    A results.json that cannot be read or lacks the expected fields is skipped with a
    warning naming it.
    """
    records = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise ValueError(f"no such directory: {d}")
        for path in sorted(d.rglob("results.json")):
            try:
                data = json.loads(path.read_text())
            except (ValueError, OSError) as e:
                warn(f"skipping {path}: cannot read it ({e})")
                continue
            problem = _check_results(data)
            if problem:
                warn(f"skipping {path}: {problem}")
                continue
            records.append(RunRecord(path.parent, data))
    return records


def aggregate(runs: Iterable[RunRecord]) -> list[Group]:
    """Group successful runs by experiment, preset and config."""
    groups: dict[str, Group] = {}
    for r in runs:
        if r.results.get("status", "ok") != "ok":
            continue
        res = r.results
        key = json.dumps([res["experiment"], res["preset"], res["config"]], sort_keys=True)
        if key not in groups:
            groups[key] = Group(res["experiment"], res["preset"], res["config"])
        groups[key].runs.append(r)
    for g in groups.values():
        g.runs.sort(key=lambda r: (r.results["seed"], str(r.dir)))
    return sorted(groups.values(), key=lambda g: (g.experiment, g.preset, json.dumps(g.config)))


def _fmt(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.4g}"


def _differing(groups: list[Group]) -> list[str]:
    keys = sorted({k for g in groups for k in g.config})
    return [k for k in keys if len({json.dumps(g.config.get(k)) for g in groups}) > 1]


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _url(path: str) -> str:
    """A relative path as a link target: spaces and other specials percent-encoded."""
    return quote(path)


def _headlines(name: str) -> dict[str, Any]:
    try:
        return dict(registry.get(name).headlines)
    except Exception:  # noqa: BLE001 - the report works without the experiment's code
        return {}


def _headline_rows(g: Group) -> tuple[list[str], list[str]]:
    """Markdown and HTML rows putting each headline metric next to the paper's claim."""
    heads = _headlines(g.experiment)
    stats = g.stats()
    md: list[str] = []
    hb: list[str] = []
    rows = [(m, h, stats.get(m)) for m, h in heads.items()]
    if not rows:
        return md, hb
    md += [
        "Headline metrics against the paper:",
        "",
        f"| metric | this run (mean ± s.e.) | paper | what it means | {g.preset} preset |",
        "| --- | ---: | --- | --- | --- |",
    ]
    hb += [
        "<p>Headline metrics against the paper:</p>",
        (
            "<table><tr><th>metric</th><th>this run (mean ± s.e.)</th><th>paper</th>"
            f"<th>what it means</th><th>{html.escape(g.preset)} preset</th></tr>"
        ),
    ]
    for m, h, st in rows:
        value = "not measured" if st is None else f"{_fmt(st[0])} ± {_fmt(st[1])}"
        expect = {"quick": h.quick, "paper": "the paper's setting"}.get(
            g.preset, "a reduced budget, not the paper's settings (stochgrad show NAME)"
        )
        cells = (m, value, h.paper, h.meaning, expect)
        md.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        hb.append(
            "<tr>"
            + "".join(f"<td>{html.escape(x)}</td>" for x in (m, value, h.paper, h.meaning, expect))
            + "</tr>"
        )
    hb.append("</table>")
    md.append("")
    return md, hb


def _description(name: str) -> str:
    try:
        return registry.get(name).description
    except Exception:  # noqa: BLE001 - the report works without the experiment's code
        return ""


def write_report(
    dirs: Sequence[str | Path], out_dir: str | Path | None = None
) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for all runs under ``dirs`` into ``out_dir``
    (default: the first of ``dirs``). Returns both paths."""
    runs = find_runs(dirs)
    if not runs:
        raise ValueError(f"no results.json found under {', '.join(map(str, dirs))}")
    out = Path(out_dir if out_dir is not None else dirs[0])
    out.mkdir(parents=True, exist_ok=True)
    groups = aggregate(runs)
    failed = [r for r in runs if r.results.get("status", "ok") != "ok"]
    md = ["# stochgrad report", ""]
    hb = ["<h1>stochgrad report</h1>"]
    for exp in sorted({g.experiment for g in groups}):
        exp_groups = [g for g in groups if g.experiment == exp]
        diff = _differing(exp_groups)
        md += [f"## {exp}", ""]
        hb += [f"<h2>{html.escape(exp)}</h2>"]
        if desc := _description(exp):
            md += [desc, ""]
            hb += [f"<p>{html.escape(desc)}</p>"]
        for g in exp_groups:
            setting = ", ".join(f"{k}={json.dumps(g.config.get(k))}" for k in diff)
            title = f"preset `{g.preset}`" + (f", {setting}" if setting else "")
            seeds = ", ".join(map(str, g.seeds))
            md += [f"### {title}", "", f"{len(g.runs)} run(s), seeds {seeds}.", ""]
            head_md, head_html = _headline_rows(g)
            md += head_md
            md += ["| metric | mean | s.e. | n |", "| --- | ---: | ---: | ---: |"]
            hb += [
                f"<h3>{html.escape(title.replace('`', ''))}</h3>",
                f"<p>{len(g.runs)} run(s), seeds {html.escape(seeds)}.</p>",
                *head_html,
                "<table><tr><th>metric</th><th>mean</th><th>s.e.</th><th>n</th></tr>",
            ]
            for name, (mean, sem, n) in sorted(g.stats().items()):
                md.append(f"| {name} | {_fmt(mean)} | {_fmt(sem)} | {n} |")
                hb.append(
                    f"<tr><td>{html.escape(name)}</td><td>{_fmt(mean)}</td>"
                    f"<td>{_fmt(sem)}</td><td>{n}</td></tr>"
                )
            hb.append("</table>")
            config = "\n".join(f"{k} = {json.dumps(v)}" for k, v in sorted(g.config.items()))
            md += [
                "",
                "<details><summary>config</summary>",
                "",
                "```",
                config,
                "```",
                "",
                "</details>",
                "",
            ]
            hb.append(
                f"<details><summary>config</summary><pre>{html.escape(config)}</pre></details>"
            )
            for i, r in enumerate(g.runs):
                link = _rel(r.dir, out)
                pngs = sorted(r.dir.glob("*.png"))
                md.append(
                    f"- run [`{link}`]({_url(link)}) (seed {r.results['seed']}, "
                    f"{r.results.get('wall_time_s', 0):.1f} s)"
                )
                hb.append(
                    f'<p>run <a href="{html.escape(_url(link))}">{html.escape(link)}</a> '
                    f"(seed {r.results['seed']}, {r.results.get('wall_time_s', 0):.1f} s)"
                    "</p>"
                )
                for png in pngs:
                    src = _rel(png, out)
                    if i == 0:  # embed the first seed's figures, link the others
                        md += ["", f"  ![{png.stem}]({_url(src)})", ""]
                        hb.append(
                            f'<figure><img src="{html.escape(_url(src))}" alt="{png.stem}">'
                            f"<figcaption>{html.escape(png.stem)}</figcaption></figure>"
                        )
                    else:
                        md.append(f"  - figure [{png.stem}]({_url(src)})")
                        hb.append(
                            f'<p>figure <a href="{html.escape(_url(src))}">'
                            f"{html.escape(png.stem)}</a></p>"
                        )
            md.append("")
    if failed:
        md += ["## Failed or unfinished runs", ""]
        hb.append("<h2>Failed or unfinished runs</h2><ul>")
        for r in failed:
            link = _rel(r.dir, out)
            status, err = r.results.get("status"), r.results.get("error", "")
            md.append(f"- [`{link}`]({_url(link)}): {status} {err}")
            hb.append(
                f'<li><a href="{html.escape(_url(link))}">{html.escape(link)}</a>: '
                f"{html.escape(str(status))} {html.escape(err)}</li>"
            )
        hb.append("</ul>")
        md.append("")
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
        "td:not(:first-child){text-align:right}img{max-width:100%}"
    )
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>stochgrad report</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(hb) + "\n</body></html>\n"
    )
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text("\n".join(md) + "\n")
    html_path.write_text(page)
    return md_path, html_path
