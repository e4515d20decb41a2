"""Every experiment computes on ``ctx.device`` (issue 10, case 5), shown without a GPU.

Torch's default device is set to ``meta`` while each experiment runs with ``ctx.device`` = cpu
(and cuda where there is a GPU): a tensor or module created without the run's device lands on
``meta``, where it holds no data, so the run fails (``.item()`` on a meta tensor, or meta mixed
with cpu) instead of finishing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stochgrad.runner import RunContext, get, make_config

# tiny versions of the quick presets: the check is where tensors live, not what they compute
TINY = {
    "relax-toy": ["steps=20", "var_every=10", "var_samples=20", "snapshot_step=5"],
    "ardae-mog-error": [
        "sigmas=0.5",
        "methods=regdae,resdae_annealed,ardae",
        "iterations=5",
        "repetitions=1",
        "eval_samples=50",
    ],
    "ardae-energy": [
        "potentials=u1",
        "methods=implicit_ardae,hvi_aux",
        "iterations=4",
        "checkpoint_every=2",
        "eval_samples=200",
        "anneal_steps=2",
    ],
    "ardae-maxent": ["repetitions=1", "iterations=4", "eval_samples=50", "lambda_every=2"],
    "svgd-entropy": [
        "n_steps=3",
        "n_particles=10",
        "n_sets=2",
        "grid_steps=2",
        "grid_particles=5",
        "grid_sets=2",
        "mc_samples=1000",
    ],
    "vae-discrete": [
        "estimators=nvil,concrete,relax",
        "n_train=48",
        "n_valid=20",
        "n_test=20",
        "epochs=1",
        "warmup_steps=2",
        "var_samples=2",
        "iwae_samples=2",
    ],
    "vae-mnist": [
        "n_train=64",
        "n_valid=10",
        "n_test=10",
        "iterations=4",
        "eval_every=2",
        "batch=16",
        "n_z=3",
        "ardae_width=16",
        "ardae_layers=2",
        "valid_samples=3",
        "n_eval=5",
        "elbo_samples=2",
        "n_mix=3",
        "polyak_decay=0.5",
    ],
    "vae-grid": ["n_train=128", "n_test=20", "epochs=1", "batch=32", "n_z=4", "iwae_samples=5"],
    "rl-multigoal": [
        "agents=sac,s2ac-phi-theta",
        "total_steps=60",
        "learning_starts=30",
        "hidden=8",
        "n_steps=2",
        "n_test=3",
        "entropy_grid=3",
        "checkpoint_every=30",
    ],
    "rl-action-time": ["envs=hopper", "hidden=8,8", "warmup_calls=1", "rounds=2", "calls=2"],
    **{
        f"pg-{env}": [
            "budget_steps=300",
            "tune_budget_steps=100",
            "lrs=0.01",
            "cv_lrs=0.01",
            "tune_seeds=100",
            "grad_var_every=2",
            "grad_var_samples=2",
            "checkpoint_every=2",
        ]
        for env in ("cartpole", "invertedpendulum", "lunarlander")
    },
}


def tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors(v)


@pytest.fixture
def meta_default_device():
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def test_every_experiment_is_covered() -> None:
    from stochgrad.runner import names

    builtin = {n for n in names() if get(n).run.__module__.startswith("stochgrad.experiments")}
    assert builtin == set(TINY)


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", sorted(TINY))
def test_experiment_builds_everything_on_ctx_device(
    name: str, device: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, meta_default_device
) -> None:
    exp = get(name)
    cfg = make_config(exp, "quick", TINY[name])
    saved: list = []
    original = RunContext.save_checkpoint

    def record(self, state, step):
        saved.append(state)
        original(self, state, step)

    monkeypatch.setattr(RunContext, "save_checkpoint", record)
    ctx = RunContext(tmp_path, seed=0, device=torch.device(device), preset="quick")
    metrics = exp.run(cfg, ctx)
    ctx.close()
    assert metrics and all(isinstance(float(v), float) for v in metrics.values())
    assert ctx.warnings == []  # the figures were drawn too (they also use the run's tensors)
    assert list(tmp_path.glob("*.png"))
    # every checkpointed tensor lives on ctx.device (optimizers keep step counts on the CPU)
    on = {t.device.type for state in saved for t in tensors(state) if t.dim() > 0}
    assert on <= {device}, on


def test_meta_default_device_catches_an_experiment_that_ignores_ctx_device(
    tmp_path: Path, meta_default_device
) -> None:
    """Negative control: the same check fails for code that creates tensors without a device."""
    ctx = RunContext(tmp_path, seed=0, device=torch.device("cpu"), preset="quick")
    with pytest.raises((RuntimeError, NotImplementedError)):
        w = torch.zeros(3)  # no device=ctx.device
        ctx.log(0, loss=float(w.sum()))
