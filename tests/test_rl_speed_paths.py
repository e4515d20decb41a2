"""The fast network paths of stochgrad.rl (issue 12, Performance) compute the plain ones."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import ProfilerActivity, profile

from stochgrad.nn import mlp
from stochgrad.rl.networks import (
    _ONEDNN,
    SquashedGaussianActor,
    TwinQ,
    _Linear,
    min_q_of_action,
    mlp_forward,
    squashed_log_prob,
    twin_q_mse_backward,
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
    with torch.no_grad():  # without a graph, the same products without the Function
        torch.testing.assert_close(mlp_forward(net, x), fast.detach(), rtol=0, atol=0)
    for a, b in zip(g_fast, g_plain):  # float32 sums in another order
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))


def test_other_layers_run_as_they_are():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.LayerNorm(4), nn.Linear(4, 2), nn.ReLU())
    x = torch.randn(5, 3)
    torch.testing.assert_close(mlp_forward(net, x), net(x))


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("hidden", [(16, 12), ()])
def test_min_q_of_action_equals_min_q_of_a_frozen_critic_float64(ties, hidden):
    critic = TwinQ(3, 2, hidden=hidden).double()
    if ties:  # identical heads: torch.minimum sends half the gradient to each
        critic.q2.load_state_dict(critic.q1.state_dict())
    obs = torch.randn(40, 3, dtype=torch.float64, requires_grad=True)
    act = torch.randn(40, 2, dtype=torch.float64, requires_grad=True)
    fast = min_q_of_action(critic, obs, act)
    critic.requires_grad_(False)
    plain = critic.min_q(obs, act)
    critic.requires_grad_(True)
    torch.testing.assert_close(fast, plain, rtol=1e-14, atol=1e-14)
    for g_fast, g_plain in zip(_grads(fast, [obs, act]), _grads(plain, [obs, act])):
        torch.testing.assert_close(g_fast, g_plain, rtol=1e-13, atol=1e-13)
    q1, q2 = critic(obs, act)
    assert ties or 0 < int((q1 < q2).sum()) < 40  # both heads are the minimum somewhere
    fast.sum().backward()
    assert all(p.grad is None for p in critic.parameters())  # the critic held fixed


def test_min_q_of_action_falls_back_for_other_critics():
    critic = TwinQ(3, 2, hidden=(8,), activation="tanh")
    obs, act = torch.randn(5, 3), torch.randn(5, 2, requires_grad=True)
    out = min_q_of_action(critic, obs, act)
    torch.testing.assert_close(out, critic.min_q(obs, act))
    out.sum().backward()
    assert act.grad is not None and all(p.grad is None for p in critic.parameters())
    assert all(p.requires_grad for p in critic.parameters())


@pytest.mark.skipif(not _ONEDNN, reason="this torch has no oneDNN")
def test_min_q_of_action_float32_with_onednn_matches_the_frozen_critic():
    critic = TwinQ(3, 1, hidden=(256, 256))
    obs, act = torch.randn(256, 3), torch.randn(256, 1, requires_grad=True)
    fast = min_q_of_action(critic, obs, act)
    (g_fast,) = torch.autograd.grad(fast.sum(), act)
    critic.requires_grad_(False)
    plain = torch.minimum(
        *(net(torch.cat([obs, act], -1)).squeeze(-1) for net in critic.children())
    )
    (g_plain,) = torch.autograd.grad(plain.sum(), act)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_fast, g_plain, rtol=1e-4, atol=1e-5 * float(g_plain.abs().max()))


def _autograd_critic_loss(critic, obs, act, target):
    q1, q2 = critic(obs, act)
    loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
    return loss, torch.autograd.grad(loss, list(critic.parameters()))


@pytest.mark.parametrize("hidden", [(16, 12), (70,), ()])
def test_twin_q_mse_backward_equals_autograd_float64(hidden):
    critic = TwinQ(3, 2, hidden=hidden).double()
    obs, act = torch.randn(40, 3, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    target = torch.randn(40, dtype=torch.float64)
    loss, grads = _autograd_critic_loss(critic, obs, act, target)
    for p in critic.parameters():  # accumulates like backward() onto existing gradients
        p.grad = torch.ones_like(p)
    torch.testing.assert_close(twin_q_mse_backward(critic, obs, act, target), loss.detach())
    for p, g in zip(critic.parameters(), grads):
        torch.testing.assert_close(p.grad, g + 1, rtol=1e-13, atol=1e-13)


@pytest.mark.skipif(not _ONEDNN, reason="this torch has no oneDNN")
def test_twin_q_mse_backward_float32_with_onednn_matches_autograd():
    critic = TwinQ(3, 1, hidden=(256, 256))
    obs, act, target = torch.randn(256, 3), torch.randn(256, 1), torch.randn(256)
    critic_plain = TwinQ(3, 1, hidden=(256, 256))
    critic_plain.load_state_dict(critic.state_dict())
    q1 = critic_plain.q1(torch.cat([obs, act], -1)).squeeze(-1)
    q2 = critic_plain.q2(torch.cat([obs, act], -1)).squeeze(-1)
    loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
    loss.backward()
    torch.testing.assert_close(twin_q_mse_backward(critic, obs, act, target), loss.detach())
    for p, ref in zip(critic.parameters(), critic_plain.parameters()):
        torch.testing.assert_close(
            p.grad, ref.grad, rtol=1e-4, atol=1e-5 * float(ref.grad.abs().max())
        )


def test_twin_q_mse_backward_falls_back_to_autograd_for_other_critics():
    critic = TwinQ(3, 2, hidden=(8,), activation="tanh")
    obs, act, target = torch.randn(5, 3), torch.randn(5, 2), torch.randn(5)
    loss, grads = _autograd_critic_loss(critic, obs, act, target)
    torch.testing.assert_close(twin_q_mse_backward(critic, obs, act, target), loss.detach())
    for p, g in zip(critic.parameters(), grads):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize("activation", ["relu", "tanh"])  # written out / autograd fallback
@pytest.mark.parametrize("log_std_bias", [0.0, 2.0])  # |u| < 10; log σ beyond the clamp
@pytest.mark.parametrize("hidden", [(16, 12), ()])
def test_sac_actor_loss_backward_equals_autograd_float64(activation, log_std_bias, hidden):
    from stochgrad.rl.agent import frozen
    from stochgrad.rl.sac import _actor_loss_backward

    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    actor = SquashedGaussianActor(3, 2, hidden, activation, low=low, high=high).double()
    critic = TwinQ(3, 2, hidden=hidden).double()
    with torch.no_grad():
        actor.net[-1].bias[2:] = log_std_bias
    obs = torch.randn(50, 3, dtype=torch.float64)
    torch.manual_seed(7)
    loss, log_p = _actor_loss_backward(actor, critic, obs, 0.3)
    fast = [p.grad.clone() for p in actor.parameters()]
    actor.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    action, ref_log_p = actor(obs)
    with frozen(critic):
        ref = (0.3 * ref_log_p - critic.min_q(obs, action)).mean()
        ref.backward()
    _, raw = actor.net(obs).chunk(2, -1)
    assert log_std_bias == 0 or bool((raw > 2).any() and (raw < 2).any())
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(log_p, ref_log_p.detach(), rtol=1e-13, atol=1e-13)
    # autograd's softplus'(x) is 1, not σ(x), above x = 20 (|u| > 10, which σ = e² brings): off
    # by up to 2.1e-9 there, where the written-out form is exact; elsewhere they agree to 1e-13
    tol = 1e-13 if log_std_bias == 0 else 1e-8
    for g, p in zip(fast, actor.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=tol, atol=tol * float(p.grad.abs().max()))
    assert all(p.grad is None for p in critic.parameters())


def test_actor_log_prob_of_equals_squashed_log_prob_float64():
    low, high = torch.tensor([-2.0, 0.0, -1.0]), torch.tensor([2.0, 1.0, 3.0])
    actor = SquashedGaussianActor(4, 3, (8,), low=low, high=high).double()
    mean, log_std = torch.randn(30, 3, dtype=torch.float64), torch.randn(30, 3).double()
    eps = 3 * torch.randn(30, 3, dtype=torch.float64)
    u = mean + log_std.exp() * eps
    ref = squashed_log_prob(u, mean, log_std) - actor.scale.log().sum()
    torch.testing.assert_close(actor.log_prob_of(u, eps, log_std), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_min_q_without_a_graph_equals_the_graph_path(dtype):
    critic = TwinQ(3, 1, hidden=(256, 256)).to(dtype)
    obs, act = torch.randn(256, 3, dtype=dtype), torch.randn(256, 1, dtype=dtype)
    with torch.no_grad():
        fast = critic.min_q(obs, act)
    torch.testing.assert_close(fast, critic.min_q(obs, act).detach(), rtol=0, atol=0)
