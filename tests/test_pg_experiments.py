"""Experiments pg-cartpole, pg-invertedpendulum, pg-lunarlander (003 section 6.3, Table 4,
Fig. 4): the quick presets end to end (one through the CLI), the solved criterion and early
stop, the tuning's selection and its reuse by a sibling seed, runs killed and resumed, and
config errors."""

import json
import time

import gymnasium as gym
import numpy as np
import pytest
from _experiment_helpers import read_rows, sigkill_after_checkpoint_then_resume

from stochgrad.cli import main
from stochgrad.experiments.pg import PgConfig, _grid_key, running_mean, select
from stochgrad.rl import PolicyGradient, episodes_to_solve
from stochgrad.runner import RunContext, resume, run_experiment

pytestmark = pytest.mark.filterwarnings("ignore:.*CartPole-v0 is out of date")

METHODS = {
    "pg-cartpole": ("a2c", "relax"),
    "pg-invertedpendulum": ("a2c", "lax"),
    "pg-lunarlander": ("a2c", "relax"),
}
# a smaller cut of the quick preset for the resume tests (about 2 s a run)
TINY = ["budget_steps=2500", "tune_budget_steps=1200", "checkpoint_every=10"]


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """name -> (out dir, results) of every quick preset, seed 0; pg-lunarlander via the CLI."""
    runs = {}
    for name in METHODS:
        out = tmp_path_factory.mktemp(name)
        start = time.process_time()
        if name == "pg-lunarlander":
            assert main(["run", name, "--preset", "quick", "--out", str(out)]) == 0
            results = json.loads((out / "results.json").read_text())
        else:
            results = run_experiment(name, "quick", seed=0, out_dir=out, device="cpu")
        runs[name] = out, results, time.process_time() - start
    return runs


@pytest.mark.parametrize("name", sorted(METHODS))
def test_quick_preset_writes_metrics_figures_and_learners(quick_runs, name):
    out, results, cpu = quick_runs[name]
    assert results["status"] == "ok" and cpu < 60
    assert not results.get("warnings")
    for fig in ("returns", "grad_var", "tuning"):
        assert (out / f"{fig}.png").stat().st_size > 1000
    m, cfg = results["metrics"], results["config"]
    tuning = json.loads((out / "tuning.json").read_text())
    assert (m["lr"], m["cv_lr"]) == (tuning["lr"], tuning["cv_lr"])
    assert (m["lr"], m["cv_lr"]) in [(a, b) for a in cfg["lrs"] for b in cfg["cv_lrs"]]
    rows = read_rows(out)
    for method in METHODS[name]:
        agent = PolicyGradient.load(out / "agents" / f"{method}.pt")
        assert agent.estimator == method
        assert agent.hparams["lr"] == m["lr"] and agent.hparams["cv_lr"] == m["cv_lr"]
        assert agent.hparams["seed"] == 0
        assert m[f"steps.{method}"] == agent.num_steps >= cfg["budget_steps"]
        solved = agent.solved(gym.spec(agent.env_id).reward_threshold)
        assert m[f"unsolved.{method}"] == float(solved is None)
        assert m[f"episodes_to_solve.{method}"] == (agent.episode if solved is None else solved)
        assert m[f"final_return.{method}"] == pytest.approx(np.mean(agent.episode_returns[-100:]))
        logged = [v for _, v in agent.grad_var_log]
        assert len(logged) == -(-agent.episode // cfg["grad_var_every"])
        assert m[f"log10_grad_var.{method}"] == pytest.approx(np.mean(logged))
        # the curve in metrics.csv is the learner's returns, in order
        assert [r[f"return.{method}"] for r in rows if f"return.{method}" in r] == (
            agent.episode_returns
        )
    # the shared variance: over the episodes every method ran
    learners = [PolicyGradient.load(out / "agents" / f"{x}.pt") for x in METHODS[name]]
    shared = min(a.episode for a in learners)
    for method, agent in zip(METHODS[name], learners, strict=True):
        common = [v for e, v in agent.grad_var_log if e < shared]
        assert m[f"log10_grad_var_shared.{method}"] == pytest.approx(np.mean(common))
    # the tuning grid: each run solved or ran its budget; metrics per grid point
    for run in tuning["results"].values():
        assert run["solved"] or run["steps"] >= cfg["tune_budget_steps"]
    grid = [_grid_key(a, b) for a in cfg["lrs"] for b in cfg["cv_lrs"]]
    for prefix in ("tune_episodes", "tune_final_return", "tune_unsolved"):
        assert {k for k in m if k.startswith(prefix + ".")} == {f"{prefix}.{g}" for g in grid}


def test_solved_run_stops_at_its_solve_and_counts_it(tmp_path):
    """With a threshold the quick budget reaches, each method stops at its solve: the metric is
    episodes_to_solve of its returns, which it ran no further than."""
    sets = ["threshold=40", "window=20", "tune=false", "grad_var_every=0"]
    m = run_experiment("pg-cartpole", "quick", sets, out_dir=tmp_path)["metrics"]
    for method in ("a2c", "relax"):
        agent = PolicyGradient.load(tmp_path / "agents" / f"{method}.pt")
        n = episodes_to_solve(agent.episode_returns, 40.0, window=20)
        assert m[f"unsolved.{method}"] == 0 and m[f"episodes_to_solve.{method}"] == n
        assert agent.episode == n and agent.num_steps < 6000
        assert not agent.grad_var_log and "log10_grad_var.a2c" not in m
    assert (m["lr"], m["cv_lr"]) == (0.01, 0.01) and not (tmp_path / "tuning.json").exists()
    # stop_when_solved=false: the same seed runs its whole budget, solved at the same episode
    sets += ["stop_when_solved=false"]
    m2 = run_experiment("pg-cartpole", "quick", sets, out_dir=tmp_path / "all")["metrics"]
    assert m2["episodes_to_solve.a2c"] == m["episodes_to_solve.a2c"]
    assert m2["steps.a2c"] >= 6000


def test_critic_settings_reach_every_learner(tmp_path):
    sets = ["tune=false", "budget_steps=400", "grad_var_every=0", "critic_steps=2"]
    sets += ["value_objective=squared-error"]
    run_experiment("pg-cartpole", "quick", sets, out_dir=tmp_path)
    for method in ("a2c", "relax"):
        hp = PolicyGradient.load(tmp_path / "agents" / f"{method}.pt").hparams
        assert hp["critic_steps"] == 2 and hp["value_objective"] == "squared-error"


def test_select_fewest_unsolved_then_episodes_or_final_return_then_grid_order():
    cfg = PgConfig(lrs=(0.01, 0.003), cv_lrs=(0.01,), tune_seeds=(100, 101))

    def results(a, b):  # (episodes, solved, final return) per tuning seed, lr 0.01 then 0.003
        keys = [f"tune-{_grid_key(lr, 0.01)}-seed{t}" for lr in (0.01, 0.003) for t in (100, 101)]
        fields = ("episodes", "solved", "final_return")
        return {k: dict(zip(fields, r, strict=True)) for k, r in zip(keys, [*a, *b], strict=True)}

    best = lambda a, b: select(results(a, b), cfg)[0]
    # fewest unsolved first: 0.01 has an unsolved run counted at few episodes
    assert best([(300, 1, 195), (200, 0, 100)], [(400, 1, 195), (500, 1, 195)]) == 0.003
    # all solved: fewest mean episodes
    assert best([(300, 1, 195), (600, 1, 195)], [(400, 1, 195), (400, 1, 195)]) == 0.003
    # all unsolved: highest final return, not the fewest episodes (the longest episodes)
    assert best([(900, 0, -50), (1000, 0, -40)], [(2000, 0, 20), (2100, 0, 0)]) == 0.003
    # a tie: the first in the grid
    assert best([(400, 1, 195), (400, 1, 195)], [(300, 1, 195), (500, 1, 195)]) == 0.01


def test_running_mean_and_grid_key():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert running_mean(x, 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert _grid_key(0.003, 0.01) == "lr_0.003.cv_lr_0.01"


def test_a_sibling_seed_reuses_the_tuning_which_equals_its_own(tmp_path, monkeypatch):
    """Seed 1 next to a finished seed 0 takes seed 0's tuning.json (building no tuning
    learner); tuning itself (reuse_tuning=false) gives the same selection and final metrics."""
    import stochgrad.experiments.pg as pg_module

    sweep = tmp_path / "sweep"
    run_experiment("pg-invertedpendulum", "quick", TINY, seed=0, out_dir=sweep / "seed0")
    built = []

    class Counting(PolicyGradient):
        def __init__(self, *args, **kwargs):
            built.append(kwargs.get("seed"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(pg_module, "PolicyGradient", Counting)
    reused = run_experiment("pg-invertedpendulum", "quick", TINY, seed=1, out_dir=sweep / "seed1")
    monkeypatch.undo()
    record = json.loads((sweep / "seed1" / "tuning.json").read_text())
    assert record["reused_from"] == "seed0"
    assert built and set(built) == {1}  # only the final learners, on the run's own seed
    own = run_experiment(
        "pg-invertedpendulum",
        "quick",
        [*TINY, "reuse_tuning=false"],
        seed=1,
        out_dir=tmp_path / "own",
    )
    assert "reused_from" not in json.loads((tmp_path / "own" / "tuning.json").read_text())
    assert own["metrics"] == reused["metrics"]
    # the curves' step counts the tuning episodes in both (one x-axis for a sweep)
    assert read_rows(tmp_path / "own") == read_rows(sweep / "seed1")
    # another tuning setting is not reused
    run_experiment(
        "pg-invertedpendulum", "quick", [*TINY, "tune_seeds=7"], seed=2, out_dir=sweep / "seed2"
    )
    assert "reused_from" not in json.loads((sweep / "seed2" / "tuning.json").read_text())


def test_a_fresh_run_removes_only_its_own_files(tmp_path):
    out = tmp_path / "run"
    (out / "agents").mkdir(parents=True)
    (out / "agents" / "mine.txt").write_text("a user's file")
    (out / "agents" / "relax.pt").write_text("an earlier run's learner")
    run_experiment("pg-cartpole", "quick", [*TINY, "tune=false"], seed=0, out_dir=out)
    assert (out / "agents" / "mine.txt").read_text() == "a user's file"
    assert (out / "agents" / "relax.pt").read_bytes() != b"an earlier run's learner"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "tuning.json").write_text('{"notes": "mine"}')
    with pytest.raises(ValueError, match="not written by this experiment"):
        run_experiment("pg-cartpole", "quick", TINY, seed=0, out_dir=foreign)
    assert (foreign / "tuning.json").read_text() == '{"notes": "mine"}'


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return out, run_experiment("pg-cartpole", "quick", TINY, seed=3, out_dir=out, device="cpu")


@pytest.mark.parametrize("where", ["tune-lr_0.003", "relax"])
def test_killed_in_a_job_then_resumed_matches_the_uninterrupted_run(
    tmp_path, monkeypatch, uninterrupted, where
):
    """Killed right after a checkpoint inside the second tuning job, or inside the last final
    job (RELAX): the resumed run has the uninterrupted run's metrics and metrics.csv rows, and
    finished jobs were not trained again."""
    full_dir, full = uninterrupted
    original = RunContext.save_checkpoint

    def save_then_die(self, state, step):
        original(self, state, step)
        current = state["current"]
        job = current["job"] if current else ""
        if job.startswith(where) and current["episode"] >= 20 and not self.resumed:
            raise KeyboardInterrupt

    built = []
    init = PolicyGradient.__init__

    def counting_init(self, *args, **kwargs):
        built.append((kwargs.get("estimator", args[1] if len(args) > 1 else None), kwargs))
        init(self, *args, **kwargs)

    monkeypatch.setattr(RunContext, "save_checkpoint", save_then_die)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_experiment("pg-cartpole", "quick", TINY, seed=3, out_dir=cut, device="cpu")
    assert list((cut / "agents").glob(f"{where}*.ep*.pt"))
    monkeypatch.setattr(PolicyGradient, "__init__", counting_init)
    assert resume(cut)["metrics"] == full["metrics"]
    assert read_rows(cut) == read_rows(full_dir)
    # resumed: the interrupted job from its file, then only the jobs after it
    lrs = [kw["lr"] for _, kw in built]
    if where == "relax":
        assert len(built) == 1  # the checkpointed RELAX learner (a2c was not run again)
    else:
        assert len(built) == 3 and lrs[0] == 0.003  # tuning job 2, then a2c and relax
    assert not list(cut.glob("agents/*.ep*.pt"))


def test_sigkill_then_stochgrad_resume(tmp_path, uninterrupted):
    """`stochgrad run` killed by SIGKILL at an arbitrary moment after the first final job's
    first checkpoint, then `stochgrad resume DIR`: the uninterrupted run's metrics and rows."""
    full_dir, full = uninterrupted
    out = tmp_path / "killed"
    sets = [a for item in TINY for a in ("--set", item)]
    args = ["run", "pg-cartpole", "--preset", "quick", "--seed", "3", "--out", str(out), *sets]
    results = sigkill_after_checkpoint_then_resume(args, out, "agents/a2c.ep*.pt", "a2c")
    assert results["metrics"] == full["metrics"]
    assert read_rows(out) == read_rows(full_dir)


@pytest.mark.parametrize(
    "item, field",
    [
        ("methods=a2c,lax", "methods"),
        ("methods=a2c,a2c", "methods"),
        ("lrs=0.01,-0.1", "lrs"),
        ("cv_lrs=", "cv_lrs"),
        ("tune_seeds=0,100", "tune_seeds"),
        ("budget_steps=0", "budget_steps"),
        ("tune_budget_steps=0", "tune_budget_steps"),
        ("grad_var_samples=1", "grad_var_samples"),
        ("grad_var_every=-1", "grad_var_every"),
        ("gamma=1.5", "gamma"),
        ("window=0", "window"),
        ("hidden=10,0", "hidden"),
        ("checkpoint_every=0", "checkpoint_every"),
        ("critic_steps=0", "critic_steps"),
        ("value_objective=mse", "value_objective"),
    ],
)
def test_bad_config_names_the_field(tmp_path, item, field):
    with pytest.raises(ValueError, match=field):
        run_experiment("pg-cartpole", "quick", [item], out_dir=tmp_path)
    assert not (tmp_path / "results.json").exists()


def test_relax_is_refused_on_a_continuous_env(tmp_path):
    with pytest.raises(ValueError, match="methods"):
        run_experiment("pg-invertedpendulum", "quick", ["methods=relax"], out_dir=tmp_path)


def test_missing_simulator_names_the_extra(tmp_path, monkeypatch):
    def no_box2d(*args, **kwargs):
        raise gym.error.DependencyNotInstalled('Box2D is not installed, run `pip install "box2d"`')

    monkeypatch.setattr(gym, "make", no_box2d)
    with pytest.raises(ValueError, match=r"pip install -e '\.\[rl\]'"):
        run_experiment("pg-lunarlander", "quick", out_dir=tmp_path)
