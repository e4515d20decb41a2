"""SAC (Haarnoja et al. 2018): learns Pendulum-v1; save/load restores networks, optimizers,
buffer and random streams exactly; bad input is named."""

import numpy as np
import pytest
import torch

from stochgrad.rl.sac import SAC


def test_sac_learns_pendulum():
    """8000 steps (1000 uniform), 64x64 networks, seed 0: the issue's bar is a mean return
    above -400 (a random policy scores about -1200; measured here: -125 for seeds 0 and 1)."""
    agent = SAC("Pendulum-v1", seed=0, hidden=(64, 64), learning_starts=1000)
    agent.learn(8000)
    assert agent.evaluate(5) > -400


def test_save_load_restores_the_agent_exactly(tmp_path):
    agent = SAC("Pendulum-v1", seed=3, hidden=(16, 16), learning_starts=100, batch_size=32)
    agent.learn(150)
    path = agent.save(tmp_path / "sac.pt")
    loaded = SAC.load(path)
    for a, b in zip(agent.actor.state_dict().values(), loaded.actor.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded.num_steps == 150 and len(loaded.buffer) == 150
    assert torch.equal(loaded.buffer.obs[:150], agent.buffer.obs[:150])
    obs = np.zeros(3, dtype=np.float32)
    assert np.array_equal(agent.act(obs, deterministic=True), loaded.act(obs, deterministic=True))
    rng = torch.get_rng_state()  # both continue from the same global RNG state
    agent.update()
    torch.set_rng_state(rng)
    loaded.update()  # the same minibatch, noise and optimizer states: the same step
    for a, b in zip(agent.critic.parameters(), loaded.critic.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(agent.actor.parameters(), loaded.actor.parameters()):
        assert torch.equal(a, b)


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="Box"):
        SAC("CartPole-v1")
    with pytest.raises(ValueError, match="alpha"):
        SAC("Pendulum-v1", alpha=-1.0)
    with pytest.raises(ValueError, match="total_steps"):
        SAC("Pendulum-v1", hidden=(8,)).learn(-1)
