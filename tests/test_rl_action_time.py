"""Experiment rl-action-time (002 section 4.3 (2), Table 1): quick preset, the ordering of the
action-selection costs, the stand-in environments, bad config."""

import json
import math

import pytest
from _experiment_helpers import quick_run as _quick_run
from gymnasium.utils.env_checker import check_env

from stochgrad.experiments.rl_action_time import (
    AGENTS,
    ENV_SIZES,
    PAPER_TABLE1,
    ActionTimeConfig,
    SizedEnv,
    build_agent,
)
from stochgrad.runner import run_experiment

ENVS = ("hopper", "walker2d", "halfcheetah", "ant")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    return _quick_run("rl-action-time", tmp_path_factory)


def test_quick_preset_writes_metrics_table_and_figure(quick_run):
    out, results, cpu_s = quick_run
    assert results["status"] == "ok" and cpu_s < 60
    assert results["device"] == "cpu"
    m = results["metrics"]
    for e in ENVS:
        for a in AGENTS:
            for prefix in ("", "batch_"):
                assert m[f"{prefix}action_ms.{a}.{e}"] > 0
                if a != "sac":
                    assert f"{prefix}ratio_to_sac.{a}.{e}" in m
                    assert f"{prefix}extra_ms.{a}.{e}" in m
    assert (out / "fig_action_time.png").stat().st_size > 1000
    md = (out / "action_time.md").read_text()
    assert "| ant (111, 8) | S2AC(φ,θ) |" in md and "5.917" in md
    facts = json.loads((out / "action_time.json").read_text())
    machine = facts["machine"]
    assert machine["device"] == "cpu" and machine["torch_threads"] == 1
    assert machine["clock"] == "time.thread_time"
    rows = facts["measured"]["single"]["s2ac-phi-theta"]["hopper"]
    assert len(rows["round_ms"]) == results["config"]["rounds"]
    assert rows["ratio_q25"] <= rows["ratio_to_sac"] <= rows["ratio_q75"]


def test_ratios_are_finite_and_positive(quick_run):
    m = quick_run[1]["metrics"]
    ratios = {k: v for k, v in m.items() if "ratio_to_sac." in k}
    assert len(ratios) == 2 * len(ENVS) * 2  # two agents besides SAC, single and batched
    assert all(math.isfinite(v) and v > 0 for v in ratios.values())


def test_svgd_action_costs_more_than_sac_and_the_amortized_one(quick_run):
    """S2AC(φ, θ) runs L = 3 SVGD steps on m = 10 particles, each with a backward pass through
    the twin Q, after a q^0_θ pass the size of SAC's actor; SAC and f_ψ make one network pass.
    So S2AC(φ, θ) costs more than both in every task (002 Table 1's ordering)."""
    m = quick_run[1]["metrics"]
    for e in ENVS:
        assert m[f"ratio_to_sac.s2ac-phi-theta.{e}"] > 1
        assert m[f"batch_ratio_to_sac.s2ac-phi-theta.{e}"] > 1
        assert m[f"action_ms.s2ac-amortized.{e}"] < m[f"action_ms.s2ac-phi-theta.{e}"]
        assert m[f"extra_ms.s2ac-phi-theta.{e}"] > 0


def test_each_svgd_step_costs_time(quick_run, tmp_path):
    """L = 0 leaves S2AC(φ, θ) with its q^0_θ draw; the L = 3 steps of Table 4 add a backward
    pass through the twin Q each, so the ratio to SAC (same rounds, same process) grows."""
    small = ["agents=sac,s2ac-phi-theta", "envs=hopper", "batch_size=0"]
    no_steps = run_experiment("rl-action-time", "quick", [*small, "n_steps=0"], seed=0,
                              out_dir=tmp_path / "l0", device="cpu")  # fmt: skip
    l0 = no_steps["metrics"]["ratio_to_sac.s2ac-phi-theta.hopper"]
    assert quick_run[1]["metrics"]["ratio_to_sac.s2ac-phi-theta.hopper"] > l0


def test_paper_table1_constants():
    """The issue's summary of Table 1: S2AC(φ, θ) 4.5-8.4x SAC, the amortized one about 1.15x."""
    r = {e: PAPER_TABLE1["s2ac-phi-theta"][e] / PAPER_TABLE1["sac"][e] for e in ENVS}
    assert min(r.values()) == pytest.approx(4.52, abs=0.01) and r["hopper"] == min(r.values())
    assert max(r.values()) == pytest.approx(8.36, abs=0.01) and r["ant"] == max(r.values())
    amortized = [PAPER_TABLE1["s2ac-amortized"][e] / PAPER_TABLE1["sac"][e] for e in ENVS]
    assert all(1.13 < x < 1.19 for x in amortized)


@pytest.mark.filterwarnings("ignore:.*Box observation space")  # MuJoCo's are unbounded too
def test_agents_have_table1_sizes_and_table4_settings():
    for obs_dim, act_dim in ENV_SIZES.values():
        check_env(SizedEnv(obs_dim, act_dim), skip_render_check=True)
    cfg = ActionTimeConfig()
    ant = build_agent(cfg, "s2ac-phi-theta", "ant", "cpu", seed=0)
    assert (ant.obs_dim, ant.act_dim) == (111, 8)
    hp = ant.hparams
    assert (hp["alpha"], hp["n_particles"], hp["n_steps"], hp["step_size"]) == (0.2, 10, 3, 0.1)
    assert hp["bandwidth"] == "authors" and hp["hidden"] == (256, 256)
    hopper = build_agent(cfg, "s2ac-amortized", "hopper", "cpu", seed=0)
    assert (hopper.obs_dim, hopper.act_dim, hopper.alpha) == (11, 3, 1.0)
    sac = build_agent(cfg, "sac", "walker2d", "cpu", seed=0)
    assert (sac.obs_dim, sac.act_dim, sac.alpha) == (17, 6, 1.0)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("agents=sac,s2ac-phi", "agents"),
        ("agents=s2ac-phi-theta", "agents"),
        ("envs=humanoid", "envs"),
        ("rounds=0", "rounds"),
        ("batch_size=-1", "batch_size"),
        ("clock=wall", "clock"),
        ("bandwidth=-1", "bandwidth"),
        ("self_term=none", "self_term"),
        ("n_particles=1", "n_particles"),
        ("n_steps=-1", "n_steps"),
        ("alpha=0", "alpha"),
        ("alpha_ant=0", "alpha_ant"),
    ],
)
def test_bad_config_is_named(tmp_path, override, key):
    with pytest.raises(ValueError, match=key):
        run_experiment("rl-action-time", "quick", [override], seed=0, out_dir=tmp_path / "r")
