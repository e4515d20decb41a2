"""The policy-gradient learner (rl/pg.py): A2C, RELAX and LAX are unbiased on a one-step bandit
with a closed-form gradient (z-tests), the returns, the solve criterion, resume and errors.

The bandit z-tests follow tests/test_estimators.py: N independent one-step episodes are one
batch whose policy has one independent copy of θ per row (a per-row logits / mean / log σ
parameter), so each row's gradient is one single-episode estimate ĝ of ∂/∂θ E_π[r(a)]; its
mean must lie within 4 standard errors of the closed form for every coordinate, and an
estimator with a term left out must fail.  The control variate c = V(s) + ĉ(z, s) is the
learner's own (10-10 ReLU networks), first trained by the variance objective for a few steps.
"""

import copy
import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from stochgrad.rl import PolicyGradient, episodes_to_solve
from stochgrad.rl.pg import discounted_returns, n_step_returns

N = 40_000  # one-step episodes per z-test (rows of the per-row policy)
Z_BOUND = 4.0
REWARDS = torch.tensor([1.0, -0.5, 2.0])  # r(a) of the discrete bandit
TARGET = torch.tensor([0.7, -1.2])  # r(a) = -||a - TARGET||² of the continuous bandit


class Bandit(gym.Env):
    """One step from a fixed observation; reward r(a)."""

    def __init__(self, discrete: bool) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        if discrete:
            self.action_space = gym.spaces.Discrete(3)
        else:
            self.action_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
        self.discrete = discrete

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.array([0.3, -0.6], np.float32), {}

    def step(self, action):
        if self.discrete:
            reward = float(REWARDS[int(action)])
        else:
            reward = -float(((torch.as_tensor(action) - TARGET) ** 2).sum())
        return np.array([0.3, -0.6], np.float32), reward, True, False, {}


class RowLogits(nn.Module):
    """Per-row logits ``[N, k]``: row i is episode i's own copy of θ."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.logits[: obs.shape[0]] if obs.dim() == 2 else self.logits[0]


class RowGaussian(nn.Module):
    """Per-row mean and log σ ``[N, d]``; returns (mean, std) as GaussianPolicy does."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor) -> None:
        super().__init__()
        self.mean, self.log_std = nn.Parameter(mean), nn.Parameter(log_std)

    def forward(self, obs: torch.Tensor):
        n = obs.shape[0] if obs.dim() == 2 else 1
        return self.mean[:n], self.log_std[:n].exp()


def bandit_episode(agent: PolicyGradient, n: int, generator: torch.Generator) -> dict:
    """n one-step episodes as one batch, acting with each row's own θ."""
    obs = torch.tensor([[0.3, -0.6]]).expand(n, 2).contiguous()
    with torch.no_grad():
        if agent.discrete:
            noise = torch.rand(n, 3, generator=generator).clamp_(1e-7, 1 - 1e-7)
            actions = agent._action(obs, noise)
            rewards = REWARDS[actions]
        else:
            noise = torch.randn(n, 2, generator=generator)
            actions = agent._action(obs, noise)
            rewards = -((actions - TARGET) ** 2).sum(-1)
    return {
        "states": obs, "noise": noise, "actions": actions, "rewards": rewards.numpy(),
        "final_state": obs[0], "terminated": True,
    }  # fmt: skip


def make_bandit_agent(
    estimator: str, discrete: bool, value_objective: str = "variance"
) -> tuple[PolicyGradient, torch.Tensor]:
    """The learner on the bandit, its policy replaced by per-row parameters, and its c trained
    by its own updates for a few batches; returns (agent, the closed-form gradient per row)."""
    agent = PolicyGradient(
        Bandit(discrete), estimator, cv_scale=3.0, seed=0, value_objective=value_objective
    )
    # each row is its own one-step episode: its return is its reward (not a sum over rows)
    agent.returns = lambda episode: torch.as_tensor(episode["rewards"], dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    if discrete:
        agent.policy = RowLogits(torch.tensor([[0.2, -0.4, 0.1]]).repeat(N, 1))
    else:
        agent.policy = RowGaussian(
            torch.tensor([[0.1, 0.4]]).repeat(N, 1), torch.tensor([[-0.3, 0.2]]).repeat(N, 1)
        )
    agent.policy_optimizer = torch.optim.Adam(agent.policy.parameters(), lr=0.01)
    for _ in range(20):  # train c (and V) by the learner's own update; θ moves too
        agent.update(bandit_episode(agent, 256, g))
    if discrete:
        logits = agent.policy.logits.detach()[:1].requires_grad_(True)
        expected = (torch.softmax(logits, -1) * REWARDS).sum()
        exact = torch.autograd.grad(expected, logits)[0][0]
    else:
        mean = agent.policy.mean.detach()[:1].requires_grad_(True)
        log_std = agent.policy.log_std.detach()[:1].requires_grad_(True)
        expected = -(((mean - TARGET) ** 2) + torch.exp(2 * log_std)).sum()  # E[-||a - c||²]
        exact = torch.cat([g[0] for g in torch.autograd.grad(expected, [mean, log_std])])
    return agent, exact


def per_row_gradient(agent: PolicyGradient, episode: dict) -> torch.Tensor:
    """ĝ of each one-step episode, ``[N, p]`` (row i: ∂ surrogate / ∂ θ_i)."""
    g, _, _ = agent.policy_gradient(episode)
    n = episode["states"].shape[0]  # the policy may hold more rows than the episode used
    return torch.cat([x.detach()[:n] for x in g], dim=-1)


def assert_unbiased(grads: torch.Tensor, exact: torch.Tensor) -> None:
    mean, se = grads.double().mean(0), grads.double().std(0) / math.sqrt(grads.shape[0])
    z = (mean - exact.double()) / se
    assert z.abs().max() < Z_BOUND, f"z-scores {z.tolist()}"


def first_rows_equal(agent: PolicyGradient) -> None:
    """The 20 training updates moved every row alike? No: only the first 256 rows were
    stepped.  Reset all rows to row 0 so every row holds the same θ (and the exact gradient)."""
    with torch.no_grad():
        for p in agent.policy.parameters():
            p.copy_(p[:1].expand_as(p))


@pytest.mark.parametrize(
    ("estimator", "discrete", "value_objective"),
    [
        ("relax", True, "variance"),
        ("relax", True, "squared-error"),
        ("a2c", True, "variance"),
        ("lax", False, "variance"),
        ("lax", False, "squared-error"),
        ("a2c", False, "variance"),
    ],
)
def test_policy_gradient_is_unbiased_on_a_one_step_bandit(estimator, discrete, value_objective):
    torch.manual_seed(0)
    agent, exact = make_bandit_agent(estimator, discrete, value_objective)
    first_rows_equal(agent)
    episode = bandit_episode(agent, N, torch.Generator().manual_seed(2))
    grads = per_row_gradient(agent, episode)
    assert grads.shape == (N, exact.numel())
    assert_unbiased(grads, exact)


@pytest.mark.parametrize(("estimator", "discrete"), [("relax", True), ("lax", False)])
def test_negative_control_without_the_pathwise_term_is_caught(estimator, discrete):
    """ĝ minus its control-variate correction (∂c(z) - ∂c(z̃), or LAX's ∂c(g_θ(ε, s))) is the
    score-function term with an action-dependent baseline: biased, and the test sees it."""
    torch.manual_seed(0)
    agent, exact = make_bandit_agent(estimator, discrete)
    first_rows_equal(agent)
    episode = bandit_episode(agent, N, torch.Generator().manual_seed(2))
    returns = agent.returns(episode)
    est = agent.estimate(episode, returns)
    params = list(agent.policy.parameters())
    g = torch.cat(torch.autograd.grad(est.surrogate, params, retain_graph=True), -1)
    cv, states = agent.control_variate, episode["states"]
    if discrete:
        c, c_tilde = cv.pair(est.z, est.z_tilde, None, states)
        correction = c - c_tilde
    else:
        c, c_fixed = cv.pair(est.z, est.z.detach(), None, states)
        correction = c - c_fixed
    g_corr = torch.cat(torch.autograd.grad(correction.sum(), params, allow_unused=False), -1)
    with pytest.raises(AssertionError, match="z-scores"):
        assert_unbiased(g - g_corr, exact)


def test_relax_with_a_trained_control_variate_has_lower_variance_than_a2c():
    """At the same θ, with c trained by the learner's updates, RELAX's Var ĝ on the bandit lies
    below A2C's (whose V(s) is the best state-only baseline) by more than 4 standard errors
    (plug-in: Var ĝ = mean of ||ĝ - ḡ||², its s.e. = std of ||ĝ - ḡ||² / √n)."""
    torch.manual_seed(0)
    var, se = {}, {}
    for estimator in ("a2c", "relax"):
        agent, _ = make_bandit_agent(estimator, True)
        theta = agent.policy.logits.detach().clone()
        g = torch.Generator().manual_seed(5)
        for _ in range(200):
            agent.update(bandit_episode(agent, 256, g))
            with torch.no_grad():
                agent.policy.logits.copy_(theta)  # train c (or V) only: θ stays put
        episode = bandit_episode(agent, 20_000, torch.Generator().manual_seed(6))
        grads = per_row_gradient(agent, episode).double()
        sq = (grads - grads.mean(0)).pow(2).sum(-1)
        var[estimator], se[estimator] = sq.mean().item(), sq.std().item() / math.sqrt(len(sq))
    z = (var["a2c"] - var["relax"]) / math.hypot(se["a2c"], se["relax"])
    assert z > 4, (z, var, se)


# ---- multi-step episodes ---------------------------------------------------------------------
# A tiny MDP (3 states, 3 actions, 3 steps; the observation is one-hot state and time) whose
# expectations are sums over its 729 trajectories.  RELAX's and LAX's corrections are per step,
# conditioned on s_t: on the same episodes their ĝ minus A2C's must have mean zero, A2C's must
# match the enumerated E[Σ_t ∂log π(a_t|s_t) R_t], and the corrections left out (or c fed the
# wrong step's state) must be caught.

MDP_RNG = np.random.default_rng(123)
MDP_P = MDP_RNG.dirichlet(np.ones(3), size=(3, 3))  # P[s, a, s']
MDP_R = MDP_RNG.normal(size=(3, 3)) * 2.0  # r(s, a)
MDP_P0 = MDP_RNG.dirichlet(np.ones(3))
MDP_T, MDP_GAMMA, MDP_N = 3, 0.9, 6000


def mdp_obs(s: int, t: int) -> np.ndarray:
    o = np.zeros(3 + MDP_T, np.float32)
    o[s], o[3 + min(t, MDP_T - 1)] = 1.0, 1.0
    return o


class TinyMDP(gym.Env):
    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3 + MDP_T,), np.float32)
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.s, self.t = int(self.np_random.choice(3, p=MDP_P0)), 0
        return mdp_obs(self.s, 0), {}

    def step(self, action):
        reward = float(MDP_R[self.s, int(action)])
        self.s = int(self.np_random.choice(3, p=MDP_P[self.s, int(action)]))
        self.t += 1
        return mdp_obs(self.s, self.t), reward, self.t >= MDP_T, False, {}


class TinyControl(gym.Env):
    """A 1-D continuous 3-step task with a non-quadratic reward (LAX's multi-step check)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1 + MDP_T,), np.float32)
        self.action_space = gym.spaces.Box(-10.0, 10.0, (1,), np.float32)

    def _obs(self) -> np.ndarray:
        o = np.zeros(1 + MDP_T, np.float32)
        o[0], o[1 + min(self.t, MDP_T - 1)] = self.s, 1.0
        return o

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.s, self.t = float(self.np_random.normal()), 0
        return self._obs(), {}

    def step(self, action):
        a = float(np.asarray(action).reshape(-1)[0])
        reward = -((self.s + a - 0.5) ** 2) + 0.3 * math.sin(3 * a)
        self.s = 0.8 * self.s + 0.5 * a + 0.3 * float(self.np_random.normal())
        self.t += 1
        return self._obs(), reward, self.t >= MDP_T, False, {}


def enumerated_policy_gradient(policy: nn.Module) -> torch.Tensor:
    """E[Σ_t ∂log π(a_t|s_t) R_t] on TinyMDP, summed over every trajectory."""
    params = list(policy.parameters())
    obs = torch.tensor(np.stack([mdp_obs(s, t) for t in range(MDP_T) for s in range(3)]))
    log_pi = torch.log_softmax(policy(obs), -1).reshape(MDP_T, 3, 3)  # [t, s, a]
    surrogate = 0.0
    for s0 in range(3):
        for acts in itertools.product(range(3), repeat=MDP_T):
            for nxt in itertools.product(range(3), repeat=MDP_T - 1):
                states = (s0, *nxt)
                p_env = MDP_P0[s0] * np.prod(
                    [MDP_P[states[t], acts[t], states[t + 1]] for t in range(MDP_T - 1)]
                )
                lp = [log_pi[t, states[t], acts[t]] for t in range(MDP_T)]
                p = p_env * torch.exp(sum(lp)).detach()
                r = [MDP_R[states[t], acts[t]] for t in range(MDP_T)]
                ret = [
                    sum(MDP_GAMMA ** (k - t) * r[k] for k in range(t, MDP_T)) for t in range(MDP_T)
                ]
                surrogate = surrogate + p * sum(lp[t] * ret[t] for t in range(MDP_T))
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate, params)])


def paired_agents(env_class, estimator: str) -> tuple[PolicyGradient, PolicyGradient]:
    """(RELAX or LAX, A2C) with one θ; each critic trained 150 episodes by its own updates."""
    torch.manual_seed(0)
    other = PolicyGradient(env_class(), estimator, gamma=MDP_GAMMA, cv_scale=3.0, seed=0)
    a2c = PolicyGradient(env_class(), "a2c", gamma=MDP_GAMMA, seed=0)
    a2c.policy.load_state_dict(other.policy.state_dict())
    theta = copy.deepcopy(other.policy.state_dict())
    for agent in (other, a2c):
        for i in range(150):
            agent.update(agent.rollout(agent.env, 10**6 + i, agent.generator))
            agent.policy.load_state_dict(theta)
    return other, a2c


def flat(grads) -> torch.Tensor:
    return torch.cat([g.detach().reshape(-1) for g in grads]).double()


def multi_step_gradients(other: PolicyGradient, a2c: PolicyGradient, wrong_cond: bool = False):
    """Per episode: ĝ of A2C, of RELAX/LAX, and of RELAX/LAX without its correction term."""
    params = list(other.policy.parameters())
    gen = torch.Generator().manual_seed(7)
    out = {"a2c": [], "other": [], "no_correction": []}
    for i in range(MDP_N):
        episode = other.rollout(other.env, i, gen)
        out["a2c"].append(flat(a2c.policy_gradient(episode, critic=False)[0]))
        if wrong_cond:  # c sees the next step's state: the check below must catch it
            episode = {**episode, "states": episode["states"].roll(-1, 0)}
        est = other.estimate(episode, other.returns(episode))
        g = flat(torch.autograd.grad(est.surrogate, params, retain_graph=True))
        out["other"].append(g)
        z2 = est.z_tilde if other.discrete else est.z.detach()
        c, c2 = other.control_variate.pair(est.z, z2, None, episode["states"])
        out["no_correction"].append(g - flat(torch.autograd.grad((c - c2).sum(), params)))
    return {k: torch.stack(v) for k, v in out.items()}


def max_abs_z(diff: torch.Tensor) -> float:
    keep = diff.std(0) > 0
    z = diff.mean(0)[keep] / (diff.std(0)[keep] / math.sqrt(diff.shape[0]))
    return z.abs().max().item()


def test_relax_equals_a2c_in_expectation_on_multi_step_episodes():
    relax_agent, a2c = paired_agents(TinyMDP, "relax")
    g = multi_step_gradients(relax_agent, a2c)
    exact = enumerated_policy_gradient(a2c.policy).double()
    assert max_abs_z(g["a2c"] - exact) < Z_BOUND  # A2C: E[Σ_t ∂log π R_t], by enumeration
    assert max_abs_z(g["other"] - exact) < Z_BOUND
    assert max_abs_z(g["other"] - g["a2c"]) < Z_BOUND  # paired: the same episodes
    assert max_abs_z(g["no_correction"] - g["a2c"]) > Z_BOUND  # negative control


def test_relax_with_the_wrong_steps_state_is_caught_on_multi_step_episodes():
    relax_agent, a2c = paired_agents(TinyMDP, "relax")
    g = multi_step_gradients(relax_agent, a2c, wrong_cond=True)
    assert max_abs_z(g["other"] - g["a2c"]) > Z_BOUND


def test_lax_equals_a2c_in_expectation_on_multi_step_episodes():
    lax_agent, a2c = paired_agents(TinyControl, "lax")
    g = multi_step_gradients(lax_agent, a2c)
    assert max_abs_z(g["other"] - g["a2c"]) < Z_BOUND
    assert max_abs_z(g["no_correction"] - g["a2c"]) > Z_BOUND


# ---- returns and the solve criterion --------------------------------------------------------


def test_discounted_returns_equal_the_loop():
    rng = np.random.default_rng(0)
    r, gamma = rng.normal(size=17), 0.9
    loop = [sum(gamma**i * r[t + i] for i in range(len(r) - t)) for t in range(len(r))]
    np.testing.assert_allclose(discounted_returns(r, gamma), loop, rtol=1e-12)
    boot = [x + gamma ** (len(r) - t) * 2.5 for t, x in enumerate(loop)]
    np.testing.assert_allclose(discounted_returns(r, gamma, last_value=2.5), boot, rtol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 20])
def test_n_step_returns_equal_the_loop(n):
    rng = np.random.default_rng(1)
    r, v, gamma, last = rng.normal(size=9), rng.normal(size=9), 0.95, -0.7
    values = np.append(v, last)  # V(s_0..s_T), V(s_T) = last
    expected = []
    for t in range(len(r)):
        k = min(n, len(r) - t)
        expected.append(sum(gamma**i * r[t + i] for i in range(k)) + gamma**k * values[t + k])
    np.testing.assert_allclose(n_step_returns(r, v, gamma, n, last), expected, rtol=1e-12)


def test_episodes_to_solve():
    returns = [0.0] * 150 + [200.0] * 150
    # the window ending at episode n holds returns n-100 .. n-1; its mean first reaches 195 at
    # 150 + 98 (98 of 100 at 200 is 196; 97 gives 194)
    assert episodes_to_solve(returns, 195) == 248
    assert episodes_to_solve(returns[:200], 195) is None
    assert episodes_to_solve([200.0] * 99, 195) is None
    assert episodes_to_solve([200.0] * 100, 195) == 100


# ---- the learner --------------------------------------------------------------------------


def test_estimator_rebuilds_the_rollout_actions():
    agent = PolicyGradient("CartPole-v0", "relax", seed=3)
    episode = agent.rollout(agent.env, 0, torch.Generator().manual_seed(0))
    agent.policy_gradient(episode)  # the rebuilt actions are the ones taken
    episode["noise"] = episode["noise"].flip(0)  # other noise: other actions
    with pytest.raises(RuntimeError, match="other actions"):
        agent.policy_gradient(episode)


def test_a_near_tie_that_rounding_flips_still_rebuilds_the_action_taken():
    """The rollout's one-row passes and the update's batched pass round apart (about 1e-8):
    where two Gumbel-perturbed logits nearly tie, the batched pass could select the other
    action.  The estimate takes the rollout's logits as values, so b = H(z) stays the action
    taken; without them, the same episode is rejected."""
    from stochgrad.estimators import CategoricalRelaxation

    agent = PolicyGradient("CartPole-v0", "relax", seed=7)
    episode = agent.rollout(agent.env, 0, torch.Generator().manual_seed(0))
    logits = episode["policy_out"][:1]
    log_theta = torch.log_softmax(logits, -1)[0]
    z0 = (log_theta - torch.log(-torch.log(episode["noise"][0])))[0]
    u1 = torch.exp(-torch.exp(log_theta[1] - z0 + 1e-6))  # z_1 just below z_0
    episode["noise"][0, 1] = u1
    z = CategoricalRelaxation(logits=logits).rsample_z(episode["noise"][:1])[0]
    assert 0 < z[0] - z[1] < 1e-5
    episode["actions"][0] = 0  # what the rollout's pass selects
    with torch.no_grad():  # the update's pass lands on the other side of the tie
        agent.policy[-1].bias[1] += 1e-4
    agent.policy_gradient(episode)
    del episode["policy_out"]
    with pytest.raises(RuntimeError, match="other actions"):
        agent.policy_gradient(episode)


def test_rollout_policy_out_equals_the_torch_pass_to_rounding():
    for estimator, env in (("relax", "CartPole-v0"), ("lax", "Pendulum-v1")):
        agent = PolicyGradient(env, estimator, seed=8)
        episode = agent.rollout(agent.env, 0, agent.generator)
        with torch.no_grad():
            out = agent.policy(episode["states"])
        out = out if agent.discrete else out[0]
        torch.testing.assert_close(episode["policy_out"], out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("estimator", "env"), [("relax", "CartPole-v0"), ("lax", "Pendulum-v1")])
def test_resume_continues_bit_identically(tmp_path, estimator, env):
    full = PolicyGradient(env, estimator, seed=4).learn(12)
    part = PolicyGradient(env, estimator, seed=4)
    part.learn(6, checkpoint=tmp_path / "ck.pt", checkpoint_every=6)
    resumed = PolicyGradient.load(tmp_path / "ck.pt").learn(12)
    assert resumed.episode_returns == full.episode_returns
    for a, b in zip(resumed.policy.parameters(), full.policy.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(resumed._critic.parameters(), full._critic.parameters()):
        assert torch.equal(a, b)


def test_critic_steps_fit_v_closer_and_leave_the_first_policy_step_alone():
    """More critic steps per episode: the policy's first step is the same (ĝ is taken before
    the critic moves), and V fits the episode's returns better."""
    agents = {k: PolicyGradient("CartPole-v0", "a2c", critic_steps=k, seed=6) for k in (1, 5)}
    episode = agents[1].rollout(agents[1].env, 0, torch.Generator().manual_seed(0))
    for agent in agents.values():
        agent.update(episode)
    for a, b in zip(agents[1].policy.parameters(), agents[5].policy.parameters()):
        assert torch.equal(a, b)
    returns = agents[1].returns(episode)
    err = {k: a.value.loss(returns, episode["states"]).item() for k, a in agents.items()}
    assert err[5] < err[1], err


def test_gradient_variance_log_leaves_training_unchanged():
    plain = PolicyGradient("CartPole-v0", "relax", seed=5).learn(8)
    logged = PolicyGradient("CartPole-v0", "relax", seed=5)
    logged.learn(8, grad_var_every=4, grad_var_samples=3)
    assert plain.episode_returns == logged.episode_returns
    assert [e for e, _ in logged.grad_var_log] == [0, 4]
    assert all(math.isfinite(v) for _, v in logged.grad_var_log)


def test_n_step_learner_runs_and_bootstraps_on_time_limits():
    with pytest.warns(UserWarning, match="squared-error"):
        PolicyGradient("Pendulum-v1", "lax", n_step=5)  # V fitted to Var ĝ, bootstrapped from
    agent = PolicyGradient(
        "Pendulum-v1", "lax", n_step=5, value_objective="squared-error", seed=0
    )  # Pendulum only truncates
    episode = agent.rollout(agent.env, 0, agent.generator)
    assert not episode["terminated"]
    with torch.no_grad():
        values = agent.value(episode["states"]).numpy()
        last = float(agent.value(episode["final_state"]))
    expected = n_step_returns(episode["rewards"], values, 0.99, 5, last)
    torch.testing.assert_close(
        agent.returns(episode), torch.as_tensor(expected, dtype=torch.float32)
    )
    agent.learn(2)


def test_a2c_learns_cartpole():
    """Learning, not a benchmark (benchmarks/pg.py has the statistics): one seed of A2C at the
    paper's setting reaches the solve criterion of CartPole-v0 within 3000 episodes."""
    agent = PolicyGradient("CartPole-v0", "a2c", lr=0.01, cv_lr=0.01, seed=0)
    agent.learn(3000, stop_at=195)
    assert agent.solved(195) is not None, np.mean(agent.episode_returns[-100:])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimator": "reinforce"}, "estimator must be one of"),
        ({"estimator": "lax"}, "needs a Box action space"),
        ({"lr": 0}, "lr must be"),
        ({"cv_lr": -1.0}, "cv_lr must be"),
        ({"gamma": 1.5}, "gamma must"),
        ({"n_step": 0}, "n_step must"),
        ({"hidden": ()}, "hidden must"),
        ({"value_objective": "mse"}, "value_objective must"),
        ({"critic_steps": 0}, "critic_steps must"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolicyGradient("CartPole-v0", **{"estimator": "a2c", **kwargs})


def test_relax_on_a_box_env_and_learn_without_an_end_are_errors():
    with pytest.raises(ValueError, match="needs a Discrete action space"):
        PolicyGradient("Pendulum-v1", "relax")
    agent = PolicyGradient("CartPole-v0", "a2c")
    with pytest.raises(ValueError, match="never ends"):
        agent.learn()
    with pytest.raises(ValueError, match="grad_var_every"):
        agent.learn(1, grad_var_every=0)


def test_divergence_stops_and_keeps_the_last_checkpoint(tmp_path):
    agent = PolicyGradient("CartPole-v0", "relax", seed=0)
    agent.learn(2, checkpoint=tmp_path / "ck.pt", checkpoint_every=1)
    before = (tmp_path / "ck.pt").read_bytes()
    with torch.no_grad():
        next(agent.policy.parameters()).fill_(float("nan"))
    with pytest.raises((FloatingPointError, ValueError)):
        agent.learn(4, checkpoint=tmp_path / "ck.pt", checkpoint_every=1)
    assert (tmp_path / "ck.pt").read_bytes() == before
