"""Experiment relax-toy (003 section 6.1, Fig. 1): quick preset, claims, resume."""

import csv
import json
import time

import pytest
import torch

from stochgrad.experiments.relax_toy import exact_grad, exact_loss
from stochgrad.runner import RunContext, resume, run_experiment


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("relax-toy")
    start = time.perf_counter()
    results = run_experiment("relax-toy", "quick", seed=0, out_dir=out, device="cpu")
    return out, results, time.perf_counter() - start


def test_quick_preset_writes_results_csv_and_figures(quick_run):
    out, results, wall = quick_run
    assert results["status"] == "ok" and wall < 60
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["experiment"] == "relax-toy" and on_disk["preset"] == "quick"
    for name in ("loss", "grad_variance", "relaxation"):
        assert (out / f"{name}.png").stat().st_size > 1000
    with open(out / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == results["config"]["steps"]
    for est in ("reinforce", "rebar", "relax"):
        for key in ("final_prob", "final_loss", "log10_grad_var", "steps_to_p05"):
            assert f"{key}.{est}" in results["metrics"]
        assert f"loss.{est}" in rows[0]


def test_relax_control_variate_cuts_variance_tenfold(quick_run):
    """Acceptance: log10_grad_var.relax <= log10_grad_var.reinforce - 1 (mean over training)."""
    m = quick_run[1]["metrics"]
    assert m["log10_grad_var.relax"] <= m["log10_grad_var.reinforce"] - 1
    # RELAX makes steady progress towards the optimum p = 0 on the quick budget
    assert m["final_prob.relax"] < 0.4
    assert m["final_loss.relax"] < exact_loss(torch.tensor(0.0), 0.499).item()


def test_exact_reference_matches_finite_difference():
    theta = torch.tensor(0.3, dtype=torch.float64)
    h = 1e-6
    fd = (exact_loss(theta + h, 0.499) - exact_loss(theta - h, 0.499)) / (2 * h)
    torch.testing.assert_close(exact_grad(theta, 0.499), fd)


def test_resume_after_interruption_matches_uninterrupted(tmp_path, monkeypatch):
    overrides = [
        "steps=60",
        "checkpoint_every=20",
        "var_every=10",
        "var_samples=50",
        "snapshot_step=30",
    ]
    full = run_experiment("relax-toy", "quick", overrides, seed=3, out_dir=tmp_path / "full")

    original = RunContext.save_checkpoint

    def save_then_die(self, state, step):
        original(self, state, step)
        if step == 40 and not self.resumed:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunContext, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("relax-toy", "quick", overrides, seed=3, out_dir=tmp_path / "cut")
    resumed = resume(tmp_path / "cut")
    assert resumed["metrics"] == full["metrics"]
