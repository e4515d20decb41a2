"""The fast network paths of stochgrad.rl (issue 12, Performance) compute the plain ones."""

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from stochgrad.nn import mlp
from stochgrad.rl.networks import (
    _ONEDNN,
    SquashedGaussianActor,
    TwinQ,
    _Linear,
    mlp_forward,
)


def _grads(out: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad((out * torch.linspace(-1, 2, out.numel()).view_as(out)).sum(),
                               inputs)  # fmt: skip


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("width", [5, 70])
def test_linear_function_gradients_and_second_derivatives_float64(relu, width):
    x = torch.randn(3, width, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, width, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    f = lambda x, w, b: _Linear.apply(x, w, b, relu)
    ref = torch.relu(x @ w.T + b) if relu else x @ w.T + b
    torch.testing.assert_close(f(x, w, b), ref, rtol=0, atol=0)
    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))  # S2AC differentiates through ∇_a Q


@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("lead", [(7,), (2, 5)])  # [batch, in] and [batch, m, in]
def test_mlp_forward_equals_the_sequential_float64(activation, lead):
    net = mlp(6, (7, 9), 2, activation).double()
    x = torch.randn(*lead, 6, dtype=torch.float64, requires_grad=True)
    params = [x, *net.parameters()]
    plain, fast = net(x), mlp_forward(net, x, always=True)  # every Linear a _Linear
    torch.testing.assert_close(fast, plain, rtol=1e-14, atol=1e-14)
    for g_fast, g_plain in zip(_grads(fast, params), _grads(plain, params)):
        torch.testing.assert_close(g_fast, g_plain, rtol=1e-13, atol=1e-13)


def test_twin_q_and_actor_equal_their_plain_networks_float64():
    q = TwinQ(3, 2, hidden=(16, 16)).double()
    obs = torch.randn(11, 3, dtype=torch.float64)
    act = torch.randn(11, 2, dtype=torch.float64, requires_grad=True)
    q1, q2 = q(obs, act)
    x = torch.cat([obs, act], -1)
    torch.testing.assert_close(q1, q.q1(x).squeeze(-1), rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(q2, q.q2(x).squeeze(-1), rtol=1e-14, atol=1e-14)
    (ga,) = torch.autograd.grad(q.min_q(obs, act).sum(), act)
    (ref,) = torch.autograd.grad(torch.minimum(q.q1(x), q.q2(x)).sum(), act)
    torch.testing.assert_close(ga, ref, rtol=1e-13, atol=1e-13)
    actor = SquashedGaussianActor(3, 2, hidden=(16,)).double()
    mean, log_std = actor.distribution_params(obs)
    ref_mean, ref_log_std = actor.net(obs).chunk(2, -1)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(log_std, ref_log_std.clamp(-20, 2), rtol=1e-14, atol=1e-14)


@pytest.mark.skipif(not _ONEDNN, reason="this torch has no oneDNN")
def test_onednn_float32_path_is_used_and_matches_the_plain_network():
    torch.manual_seed(0)
    net = mlp(4, (256, 256), 1)
    x = torch.randn(256, 4, requires_grad=True)
    params = [x, *net.parameters()]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fast = mlp_forward(net, x)
        g_fast = _grads(fast, params)
    names = [e.key for e in prof.key_averages()]
    assert "mkldnn::_linear_pointwise" in names  # the 256x256 layer, forward and backward
    plain = net(x)
    g_plain = _grads(plain, params)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_fast, g_plain):  # float32 sums in another order
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_other_layers_run_as_they_are():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.Linear(4, 2), nn.ReLU())
    x = torch.randn(5, 3)
    torch.testing.assert_close(mlp_forward(net, x), net(x))
