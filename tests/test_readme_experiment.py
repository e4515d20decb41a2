"""The README's "Your own experiments" example registers, runs, resumes and uses ctx.device."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from stochgrad.cli import main
from stochgrad.runner import RunContext, get, make_config

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def my_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    (code,) = [b for b in blocks if '@register("my-exp"' in b]
    src = tmp_path / "src"
    src.mkdir()
    (src / "my_module.py").write_text(code)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("STOCHGRAD_EXTRA_EXPERIMENTS", "my_module")
    yield tmp_path
    sys.modules.pop("my_module", None)


def test_readme_experiment_runs_and_resumes(my_module: Path, capsys) -> None:
    out = my_module / "run"
    assert main(["run", "my-exp", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "ok" and "warnings" not in results
    assert (out / "weights.png").exists()
    assert main(["resume", str(out)]) == 0  # a finished run resumes to the same numbers
    again = json.loads((out / "results.json").read_text())
    assert again["metrics"] == results["metrics"]
    assert main(["run", "my-exp", "--set", "lr=-1", "--out", str(my_module / "bad")]) == 2
    assert "lr must be > 0" in capsys.readouterr().err


def test_readme_experiment_builds_on_ctx_device(my_module: Path) -> None:
    exp = get("my-exp")
    torch.set_default_device("meta")
    try:
        ctx = RunContext(my_module / "meta", 0, torch.device("cpu"), "quick")
        metrics = exp.run(make_config(exp, "quick"), ctx)
        ctx.close()
    finally:
        torch.set_default_device(None)
    assert metrics["final.loss"] < 3 and ctx.warnings == []
