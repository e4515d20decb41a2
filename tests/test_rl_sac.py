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


KILLED_RUN = """
import sys, torch
torch.set_num_threads(1)
from stochgrad.rl import SAC
agent = SAC("Pendulum-v1", seed=5, hidden=(16, 16), learning_starts=100, batch_size=32)
agent.learn(1000, checkpoint=sys.argv[1], checkpoint_every=200)
"""


def small_agent():
    return SAC("Pendulum-v1", seed=5, hidden=(16, 16), learning_starts=100, batch_size=32)


def test_run_killed_by_sigkill_resumes_to_the_uninterrupted_parameters(tmp_path):
    """A training process is killed (SIGKILL) after a checkpoint; loading it and learning the
    remaining steps ends with the parameters of an uninterrupted run, bit for bit (CPU)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    ckpt = tmp_path / "sac.pt"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(ckpt)])
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists():  # wait for a checkpoint, then a little more training
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint written"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    resumed = SAC.load(ckpt)
    assert 0 < resumed.num_steps < 1000 and resumed.num_steps % 200 == 0
    resumed.learn(1000 - resumed.num_steps)

    torch.manual_seed(0)  # the uninterrupted run, in this process
    full = small_agent().learn(1000)
    for a, b in zip(full.actor.parameters(), resumed.actor.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(full.critic.parameters(), resumed.critic.parameters()):
        assert torch.equal(a, b)
    assert full.episode_returns == resumed.episode_returns


def test_divergence_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    agent = small_agent()
    agent.learn(400, checkpoint=tmp_path / "sac.pt", checkpoint_every=200)
    before = (tmp_path / "sac.pt").read_bytes()
    with torch.no_grad():
        next(agent.critic.parameters()).fill_(float("nan"))  # a diverged critic
    with pytest.raises(FloatingPointError, match="sac update at step"):
        agent.learn(400, checkpoint=tmp_path / "sac.pt", checkpoint_every=1)
    assert (tmp_path / "sac.pt").read_bytes() == before
    good = SAC.load(tmp_path / "sac.pt")
    assert good.num_steps == 400
    assert all(torch.isfinite(p).all() for p in good.critic.parameters())
