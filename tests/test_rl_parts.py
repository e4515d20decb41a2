"""Shared RL parts: replay buffer (ring, sampling, checkpoint state), twin Q, Polyak update, the
squashed Gaussian policy's log-density against torch.distributions."""

import math

import pytest
import torch
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import AffineTransform, TanhTransform

from stochgrad.rl.buffer import ReplayBuffer
from stochgrad.rl.networks import SquashedGaussianActor, TwinQ, polyak_update, squashed_log_prob


def test_buffer_ring_sampling_and_state_round_trip():
    buf = ReplayBuffer(5, obs_dim=3, act_dim=2)
    for t in range(7):  # wraps: rows hold t = 5, 6, 2, 3, 4
        buf.add([t] * 3, [t, -t], float(t), [t + 1] * 3, t == 6)
    assert len(buf) == 5 and buf.pos == 2
    assert sorted(buf.reward.tolist()) == [2, 3, 4, 5, 6]
    assert buf.done.tolist() == [0, 1, 0, 0, 0]
    batch = buf.sample(100, torch.Generator().manual_seed(0))
    assert torch.equal(batch.obs[:, 0], batch.reward) and torch.equal(
        batch.next_obs[:, 0], batch.reward + 1
    )
    assert torch.equal(batch.action[:, 1], -batch.reward)
    # a batch of k transitions in one call
    buf.add(
        torch.zeros(3, 3),
        torch.ones(3, 2),
        torch.tensor([7.0, 8, 9]),
        torch.zeros(3, 3),
        torch.zeros(3),
    )
    assert buf.pos == 0 and buf.reward.tolist() == [5, 6, 7, 8, 9]  # rows 2-4 overwritten
    other = ReplayBuffer(5, 3, 2)
    other.load_state_dict(buf.state_dict())
    for name in ("obs", "action", "reward", "next_obs", "done"):
        assert torch.equal(getattr(other, name), getattr(buf, name))
    assert (other.pos, other.size) == (buf.pos, buf.size)


def test_buffer_errors_are_named():
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, 3, 2)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, 3, 2).sample(2)
    with pytest.raises(ValueError, match="obs"):
        ReplayBuffer(4, 3, 2).load_state_dict(ReplayBuffer(4, 2, 2).state_dict() | {"size": 0})


def test_squashed_log_prob_matches_torch_transformed_distribution():
    torch.manual_seed(0)
    mean, log_std = torch.randn(50, 3, dtype=torch.float64), torch.randn(50, 3, dtype=torch.float64)
    u = mean + log_std.exp() * torch.randn(50, 3, dtype=torch.float64) * 2  # also far in the tails
    ref = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform()])
    a = torch.tanh(u).clamp(-1 + 1e-12, 1 - 1e-12)
    ok = a.abs().amax(-1) < 1 - 1e-9  # where atanh of a is well conditioned
    torch.testing.assert_close(squashed_log_prob(u, mean, log_std)[ok], ref.log_prob(a).sum(-1)[ok])


def test_actor_log_prob_with_action_bounds_and_shapes():
    torch.manual_seed(1)
    actor = SquashedGaussianActor(
        4, 2, hidden=(16,), low=torch.tensor([-2.0, 0.0]), high=torch.tensor([2.0, 1.0])
    ).double()
    obs = torch.randn(200, 4, dtype=torch.float64)
    a, log_p = actor(obs)
    assert a.shape == (200, 2) and log_p.shape == (200,)
    assert bool((a[:, 0].abs() <= 2).all() and (a[:, 1] >= 0).all() and (a[:, 1] <= 1).all())
    mean, log_std = actor.distribution_params(obs)
    ref = TransformedDistribution(
        Normal(mean, log_std.exp()),
        [TanhTransform(), AffineTransform(actor.bias.double(), actor.scale.double())],
    )
    ok = ((a - actor.bias).abs() / actor.scale).amax(-1) < 1 - 1e-6
    torch.testing.assert_close(log_p[ok], ref.log_prob(a).sum(-1)[ok], rtol=1e-6, atol=1e-6)
    det, nan = actor(obs, deterministic=True)
    torch.testing.assert_close(det, torch.tanh(mean) * actor.scale + actor.bias)
    assert torch.isnan(nan).all()
    a.sum().backward()  # reparameterized: gradients reach the network
    assert all(p.grad is not None for p in actor.parameters())


def test_twin_q_and_polyak_update():
    q, target = TwinQ(3, 2, hidden=(8,)), TwinQ(3, 2, hidden=(8,))
    q1, q2 = q(torch.randn(5, 3), torch.randn(5, 2))
    assert q1.shape == q2.shape == (5,)
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, q, 0.25)
    for b, t, s in zip(before, target.parameters(), q.parameters()):
        torch.testing.assert_close(t, 0.75 * b + 0.25 * s)
    polyak_update(target, q, 1.0)
    assert all(torch.equal(t, s) for t, s in zip(target.parameters(), q.parameters()))
    with pytest.raises(ValueError, match="tau"):
        polyak_update(target, q, 0.0)
    assert math.isfinite(float(q.min_q(torch.randn(2, 3), torch.randn(2, 2)).sum().detach()))
