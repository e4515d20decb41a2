"""Bad input raises a clear error naming the argument (DESIGN.md, Reliability)."""

import subprocess
import sys

import pytest
import torch
from torch import nn

from stochgrad.estimators import (
    BernoulliRelaxation,
    CategoricalRelaxation,
    ConcreteControlVariate,
    MovingAverageBaseline,
    NeuralControlVariate,
    dlax,
    lax,
    mlp,
    rebar,
    reinforce,
    relax,
    reparameterization,
    variance_loss,
)


def f_ok(b):
    return b.reshape(b.shape[0], -1).sum(-1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_bernoulli_logits(bad):
    logits = torch.zeros(4, 3)
    logits[1, 2] = bad
    with pytest.raises(ValueError, match="logits contains (NaN|Inf)"):
        BernoulliRelaxation(logits=logits)


@pytest.mark.parametrize("bad, message", [(float("nan"), "NaN"), (float("inf"), r"\+Inf")])
def test_non_finite_categorical_logits(bad, message):
    logits = torch.zeros(4, 3)
    logits[1, 2] = bad
    with pytest.raises(ValueError, match=f"logits contains {message}"):
        CategoricalRelaxation(logits=logits)


def test_masked_categorical_logits_are_accepted_unless_a_whole_unit_is_masked():
    logits = torch.zeros(4, 3)
    logits[1, 2] = -float("inf")
    rel = CategoricalRelaxation(logits=logits)
    assert rel.probs[1, 2] == 0 and torch.isfinite(rel.log_prob(rel.sample())).all()
    logits[1] = -float("inf")
    with pytest.raises(ValueError, match="logits has a unit whose classes are all -inf"):
        CategoricalRelaxation(logits=logits)


@pytest.mark.parametrize("cls", [BernoulliRelaxation, CategoricalRelaxation])
def test_integer_logits(cls):
    with pytest.raises(
        TypeError, match="logits must be a floating-point tensor, got dtype torch.int64"
    ):
        cls(logits=torch.zeros(4, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="probs must be a floating-point tensor"):
        cls(probs=torch.ones(4, 1, dtype=torch.long))


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_probs_outside_unit_interval(value):
    probs = torch.full((4, 3), 0.3)
    probs[0, 0] = value
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        BernoulliRelaxation(probs=probs)
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        CategoricalRelaxation(probs=probs)


def test_categorical_probs_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        CategoricalRelaxation(probs=torch.full((2, 3), 0.2))


def test_logits_and_probs_are_exclusive():
    with pytest.raises(ValueError, match="exactly one of `logits` or `probs`"):
        BernoulliRelaxation()
    with pytest.raises(ValueError, match="exactly one"):
        BernoulliRelaxation(logits=torch.zeros(2, 1), probs=torch.zeros(2, 1))


def test_probs_in_range_are_accepted_and_match_logits():
    rel = BernoulliRelaxation(probs=torch.tensor([[0.25, 0.0, 1.0]]))
    assert torch.isfinite(rel.logits).all()
    torch.testing.assert_close(rel.probs[0, 0], torch.tensor(0.25))


@pytest.mark.parametrize(
    "bad_f, message",
    [
        (lambda b: b, r"f must return a tensor of shape \[batch\] = \(4,\), got \(4, 3\)"),
        (lambda b: b.sum(), r"f must return a tensor of shape \[batch\]"),
        (lambda b: 1.0, "f must return a torch.Tensor, got float"),
        (lambda b: b.sum(-1) * float("nan"), r"f\(b\) contains NaN"),
    ],
)
def test_f_returning_the_wrong_thing(bad_f, message):
    dist = BernoulliRelaxation(logits=torch.zeros(4, 3))
    cv = ConcreteControlVariate("bernoulli")
    for estimator in (lambda: reinforce(dist, bad_f), lambda: relax(dist, bad_f, cv)):
        with pytest.raises((ValueError, TypeError), match=message):
            estimator()


def test_f_not_callable():
    with pytest.raises(TypeError, match="f must be callable"):
        reinforce(BernoulliRelaxation(logits=torch.zeros(2, 1)), torch.zeros(2))


def test_lax_and_reparameterization_need_rsample():
    cv = NeuralControlVariate(mlp(3, (4,), 1))
    with pytest.raises(TypeError, match="rsample"):
        lax(torch.distributions.Poisson(torch.ones(2, 3)), f_ok, cv)
    with pytest.raises(TypeError, match="rsample"):
        reparameterization(torch.distributions.Poisson(torch.ones(2, 3)), f_ok)


@pytest.mark.parametrize("estimator", [relax, rebar, dlax])
def test_relaxed_estimators_on_a_continuous_distribution_point_to_lax(estimator):
    name = estimator.__name__
    with pytest.raises(
        TypeError,
        match=rf"{name} needs a discrete distribution.*Normal.*use stochgrad.estimators.lax",
    ):
        estimator(
            torch.distributions.Normal(torch.zeros(2, 3), 1.0), f_ok, ConcreteControlVariate()
        )


@pytest.mark.parametrize("estimator", [relax, rebar, dlax, lax])
def test_control_variate_none(estimator):
    dist = (
        torch.distributions.Normal(torch.zeros(2, 3), 1.0)
        if estimator is lax
        else BernoulliRelaxation(logits=torch.zeros(2, 3))
    )
    with pytest.raises(
        TypeError, match=rf"{estimator.__name__} needs control_variate.*got NoneType.*reinforce"
    ):
        estimator(dist, f_ok, None)


@pytest.mark.parametrize(
    "make",
    [
        lambda: reinforce(BernoulliRelaxation(logits=torch.zeros(0, 3)), f_ok),
        lambda: reinforce(
            torch.distributions.Categorical(logits=torch.zeros(0, 3), validate_args=False), f_ok
        ),
        lambda: reinforce(torch.distributions.Normal(torch.zeros(0, 3), 1.0), f_ok),
        lambda: relax(
            CategoricalRelaxation(logits=torch.zeros(0, 2, 3)),
            f_ok,
            ConcreteControlVariate("categorical"),
        ),
        lambda: dlax(BernoulliRelaxation(logits=torch.zeros(0, 3)), f_ok, ConcreteControlVariate()),
        lambda: lax(
            torch.distributions.Normal(torch.zeros(0, 3), 1.0),
            f_ok,
            NeuralControlVariate(mlp(3, (4,), 1)),
        ),
    ],
)
def test_empty_batch(make):
    with pytest.raises(
        ValueError, match=r"(logits|dist batch shape) has an empty batch \(shape \(0, "
    ):
        make()


def test_dtype_mismatch_between_logits_and_control_variate():
    cv = NeuralControlVariate(mlp(3, (4,), 1))  # float32
    dist = BernoulliRelaxation(logits=torch.zeros(4, 3, dtype=torch.float64))
    for estimator in (relax, dlax):
        with pytest.raises(
            TypeError,
            match=r"control_variate has parameters of dtype torch.float32 but the sample z is torch.float64.*\.to\(torch.float64\)",
        ):
            estimator(dist, f_ok, cv)
    with pytest.raises(TypeError, match="control_variate has parameters of dtype torch.float32"):
        lax(torch.distributions.Normal(torch.zeros(4, 3, dtype=torch.float64), 1.0), f_ok, cv)
    cv64 = NeuralControlVariate(mlp(3, (4,), 1)).double()
    with pytest.raises(TypeError, match="dtype torch.float64 but the sample z is torch.float32"):
        relax(BernoulliRelaxation(logits=torch.zeros(4, 3)), f_ok, cv64)


def test_bad_control_variate_settings():
    with pytest.raises(ValueError, match="kind must be"):
        ConcreteControlVariate("gaussian")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        ConcreteControlVariate("bernoulli", temperature=0.0)
    with pytest.raises(ValueError, match="decay must lie in"):
        MovingAverageBaseline(decay=1.5)
    cv = NeuralControlVariate(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"control-variate net must return \[batch\]"):
        relax(BernoulliRelaxation(logits=torch.zeros(4, 3)), f_ok, cv)


def test_bad_reduction_and_non_finite_baseline():
    dist = BernoulliRelaxation(logits=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="reduction must be"):
        reinforce(dist, f_ok, reduction="median")
    with pytest.raises(ValueError, match="baseline contains NaN"):
        reinforce(dist, f_ok, baseline=torch.full((4,), float("nan")))
    with pytest.raises(ValueError, match=r"baseline must be a number or have shape \[batch\]"):
        reinforce(dist, f_ok, baseline=torch.zeros(4, 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_float_baseline(bad):
    dist = BernoulliRelaxation(logits=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="baseline must be a finite number, got"):
        reinforce(dist, f_ok, baseline=bad)


@pytest.mark.parametrize("bad", ["0.5", [0.5], MovingAverageBaseline()])
def test_baseline_of_the_wrong_type(bad):
    dist = BernoulliRelaxation(logits=torch.zeros(4, 3))
    with pytest.raises(
        TypeError, match=r"baseline must be a number, a tensor of shape \[\] or \[batch\], or None"
    ):
        reinforce(dist, f_ok, baseline=bad)


def test_variance_loss_batch_needs_per_example_parameters():
    theta = torch.zeros(1, 3, requires_grad=True)
    est = relax(BernoulliRelaxation(logits=theta.expand(4, 3)), f_ok, ConcreteControlVariate())
    with pytest.raises(ValueError, match="kind='batch' needs one `wrt` tensor"):
        variance_loss(est, theta, kind="batch")


def test_variance_loss_with_a_tensor_outside_the_graph():
    theta = torch.zeros(1, 3, requires_grad=True)
    est = relax(BernoulliRelaxation(logits=theta.expand(4, 3)), f_ok, ConcreteControlVariate())
    with pytest.raises(
        ValueError, match=r"wrt\[0\] \(shape \(2,\)\) is not in the estimate's graph"
    ):
        variance_loss(est, torch.zeros(2, requires_grad=True))
    with pytest.raises(ValueError, match=r"wrt\[1\] must be a tensor that requires grad"):
        variance_loss(est, [theta, torch.zeros(2)])
    detached = relax(
        BernoulliRelaxation(logits=torch.zeros(4, 3)),
        f_ok,
        ConcreteControlVariate(learn_eta=False, learn_temperature=False),
    )
    with pytest.raises(ValueError, match="estimate.surrogate has no graph"):
        variance_loss(detached, theta)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "relax-toyy"], "relax-toyy"),
        (["run", "relax-toy", "--set", "stepz=10"], "stepz"),
        (["run", "relax-toy", "--set", "steps=ten"], "steps"),
        (["run", "relax-toy", "--set", "target=1.5", "--set", "steps=2"], "target must lie in"),
        (["run", "relax-toy", "--set", "estimators=reinforce,bogus", "--set", "steps=2"], "bogus"),
    ],
)
def test_cli_rejects_bad_relax_toy_input(tmp_path, args, message):
    proc = subprocess.run(
        [sys.executable, "-m", "stochgrad", *args, "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr
