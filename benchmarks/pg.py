"""Policy gradients on CartPole-v0 (issue 13, acceptance 2): episodes to solve for A2C and
RELAX (003 section 6.3, Table 4) next to stable-baselines3's A2C, wall-clock per episode, and
one update against the same maths written by hand in plain PyTorch.

1. Tuning (003 C.2: the learning rate tuned on A2C, reused for RELAX): A2C over (lr, cv_lr) in
   {0.01, 0.003, 0.001}^2 on tuning seeds 100-102; the setting with the fewest mean episodes to
   solve is kept (unsolved runs counted at the episodes they ran).  ``--lr`` and ``--cv-lr``
   skip it.  cv_lr (the critic's own Adam step) stands for 003's "scaling on the loss from the
   control variate or value function": with Adam and separate parameter sets a constant factor
   on one loss changes nothing (Adam divides it out), so only a separate step size is a knob.
2. Seeds 0-4: ``PolicyGradient`` with ``a2c``, ``relax`` and ``relax-v-mse`` (RELAX with V
   fitted by squared error, ``value_objective="squared-error"``) at that setting (2 x 10 ReLU
   nets, one episode per update, no bootstrapping, γ = 0.99) and SB3's ``A2C("MlpPolicy",
   "CartPole-v0", seed=k)`` with its defaults, each until solved (mean of the last 100 returns
   >= 195) or 250,000 env steps; the three run one after another per seed (interleaved), one
   torch thread, in this process.  Welch's t and Mann-Whitney's U on RELAX vs A2C; with
   ``--extra-seeds N`` the same comparison on N more seeds (5 ... 4 + N) for power.  With
   ``--var-every K``: the seeds rerun with ``gradient_variance`` logged every K episodes
   (003 Fig. 4, bottom).
3. One update (estimate, critic loss, both Adam steps) of ``PolicyGradient`` against a
   hand-written one on the same episode and parameters: gradients compared, then timed in
   interleaved rounds (``_common.interleaved_ratios``, CPU time of the thread; the Adam steps
   run with lr = 0 on both sides so the parameters, and with them the actions the RELAX noise
   rebuilds, stay fixed).

    python3 benchmarks/pg.py                      # about 10 minutes on one core
    python3 benchmarks/pg.py --lr 0.01 --cv-lr 0.01 --extra-seeds 0
    python3 benchmarks/pg.py --quick              # smoke run, writes nothing without --out

Results: benchmarks/results/pg.{json,md}.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import interleaved_ratios, load_average, machine_info, write_results

OUT = Path(__file__).resolve().parent / "results"
ENV = "CartPole-v0"
SOLVED = 195.0  # mean of the last 100 returns (003 Table 4)
WINDOW = 100
GAMMA = 0.99
GRID = (0.01, 0.003, 0.001)
PAPER = {"a2c": (1152, 90), "relax": (472, 114)}  # 003 Table 4, mean ± (as printed)
OURS = {  # name: (estimator, further PolicyGradient arguments)
    "a2c": ("a2c", {}),
    "relax": ("relax", {}),  # all of c = V + ĉ by the variance objective (003 eq. 11)
    "relax-v-mse": ("relax", {"value_objective": "squared-error"}),  # V as in A2C, ĉ by Σ ĝ²
}


# ---- learning runs --------------------------------------------------------------------------


def make_ours(name: str, seed: int, lr: float, cv_lr: float):
    from stochgrad.rl import PolicyGradient

    estimator, kwargs = OURS[name]
    return PolicyGradient(ENV, estimator, hidden=(10, 10), lr=lr, cv_lr=cv_lr, gamma=GAMMA,
                          seed=seed, **kwargs)  # fmt: skip


def run_ours(name: str, seed: int, lr: float, cv_lr: float, budget: int) -> dict:
    agent = make_ours(name, seed, lr, cv_lr)
    load, w0, c0 = load_average(), time.perf_counter(), time.process_time()
    agent.learn(total_steps=budget, stop_at=SOLVED, window=WINDOW)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return summarize(agent.episode_returns, agent.num_steps, wall, cpu, load, agent=agent)


def run_sb3(seed: int, budget: int) -> dict:
    """SB3's A2C with its defaults; the Monitor that ``make_vec_env`` puts around the single
    env reports each finished episode in ``infos``; training stops at the solve criterion."""
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback

    class Episodes(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.returns: list[float] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
            r = self.returns
            return not (len(r) >= WINDOW and sum(r[-WINDOW:]) / WINDOW >= SOLVED)

    model = A2C("MlpPolicy", ENV, seed=seed)
    if model.env.num_envs != 1:
        raise RuntimeError("expected SB3's default single environment")
    callback = Episodes()
    load, w0, c0 = load_average(), time.perf_counter(), time.process_time()
    model.learn(total_timesteps=budget, callback=callback)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    out = summarize(callback.returns, model.num_timesteps, wall, cpu, load)
    out["settings"] = {
        "device": str(model.device), "learning_rate": model.learning_rate,
        "n_steps": model.n_steps, "gamma": model.gamma, "gae_lambda": model.gae_lambda,
        "ent_coef": model.ent_coef, "vf_coef": model.vf_coef,
        "max_grad_norm": model.max_grad_norm,
        "optimizer": type(model.policy.optimizer).__name__,
        "net_arch": model.policy.net_arch, "activation": model.policy.activation_fn.__name__,
    }  # fmt: skip
    return out


def summarize(returns, steps, wall, cpu, load, agent=None) -> dict:
    from stochgrad.rl import episodes_to_solve

    solved = episodes_to_solve(returns, SOLVED, WINDOW)
    n = len(returns)
    return {
        "episodes_to_solve": solved,
        "solved": solved is not None,
        "counted": solved if solved is not None else n,  # unsolved: the episodes run
        "episodes": n,
        "env_steps": int(steps),
        "wall_s": wall,
        "cpu_s": cpu,
        "ms_per_episode_wall": 1e3 * wall / max(n, 1),
        "ms_per_episode_cpu": 1e3 * cpu / max(n, 1),
        "us_per_step_wall": 1e6 * wall / max(steps, 1),
        "us_per_step_cpu": 1e6 * cpu / max(steps, 1),
        "load_1min_at_start": load,
        "_agent": agent,
    }


def mean_se(x: list[float]) -> tuple[float, float]:
    se = statistics.stdev(x) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
    return statistics.fmean(x), se


def tune(seeds: list[int], budget: int) -> tuple[dict, float, float]:
    grid = {}
    for lr in GRID:
        for cv_lr in GRID:
            runs = [run_ours("a2c", s, lr, cv_lr, budget) for s in seeds]
            counted = [r["counted"] for r in runs]
            grid[f"lr={lr},cv_lr={cv_lr}"] = {
                "lr": lr, "cv_lr": cv_lr, "counted": counted,
                "solved": [r["solved"] for r in runs], "mean": statistics.fmean(counted),
            }  # fmt: skip
            print(f"tune a2c lr={lr} cv_lr={cv_lr}: {counted}", flush=True)
    best = min(grid.values(), key=lambda g: g["mean"])
    return grid, best["lr"], best["cv_lr"]


def compare(a2c: list[float], relax: list[float]) -> dict:
    """Welch's t and Mann-Whitney's U of RELAX (or a variant) vs A2C episodes to
    solve."""
    from scipy import stats

    welch = stats.ttest_ind(relax, a2c, equal_var=False)
    # scipy's "auto": exact without ties for samples up to 8, else the normal approximation
    mw = stats.mannwhitneyu(relax, a2c, alternative="two-sided", method="auto")
    mw_less = stats.mannwhitneyu(relax, a2c, alternative="less", method="auto")
    return {
        "n": [len(a2c), len(relax)],
        "mean_difference_relax_minus_a2c": statistics.fmean(relax) - statistics.fmean(a2c),
        "welch_t": float(welch.statistic), "welch_df": float(welch.df),
        "welch_p_two_sided": float(welch.pvalue),
        "mannwhitney_u": float(mw.statistic), "mannwhitney_p_two_sided": float(mw.pvalue),
        "mannwhitney_p_relax_fewer": float(mw_less.pvalue),
        "mannwhitney_smallest_possible_p_two_sided": 2.0 / math.comb(len(a2c) + len(relax),
                                                                       len(a2c)),
    }  # fmt: skip


def variance_curves(seeds, lr, cv_lr, budget, every: int, samples: int, main_runs) -> dict:
    """003 Fig. 4 (bottom): log10 of the policy-gradient variance (``gradient_variance``, over
    ``samples`` extra episodes of the current policy every ``every`` episodes) along each
    method's own training, on the seeds of the main runs.  Those extra episodes use their own env
    and noise, so each run must solve at the same episode as its main run (checked)."""
    out: dict = {"every": every, "samples": samples, "runs": {}, "same_as_main_runs": True}
    for est in OURS:
        out["runs"][est] = []
        for seed, main in zip(seeds, main_runs[est]):
            agent = make_ours(est, seed, lr, cv_lr)
            agent.learn(total_steps=budget, stop_at=SOLVED, window=WINDOW,
                        grad_var_every=every, grad_var_samples=samples)  # fmt: skip
            same = agent.solved(SOLVED, WINDOW) == main["episodes_to_solve"]
            out["same_as_main_runs"] &= same and agent.episode == main["episodes"]
            out["runs"][est].append({"seed": seed, "log": agent.grad_var_log})
    # per checkpoint episode: the values of the seeds still training there, and the paired
    # (same seed, same episode) differences to A2C
    table = []
    for e in range(0, 10**9, every):
        vals = {est: [dict(r["log"]).get(e) for r in out["runs"][est]] for est in OURS}
        if all(v is None for vs in vals.values() for v in vs):
            break
        row = {"episode": e, **{est: [v for v in vs if v is not None] for est, vs in vals.items()}}
        for est in list(OURS)[1:]:
            row[f"paired_diff_{est}_minus_a2c"] = [
                r - a for a, r in zip(vals["a2c"], vals[est]) if a is not None and r is not None
            ]
        table.append(row)
    out["by_episode"] = table
    return out


# ---- the same maths by hand ----------------------------------------------------------------


def plain_mlp(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Linear-ReLU-...-Linear from [W1, b1, W2, b2, ...]."""
    for i in range(0, len(params) - 2, 2):
        x = torch.relu(F.linear(x, params[i], params[i + 1]))
    return F.linear(x, params[-2], params[-1])


def leaves(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().requires_grad_(True) for n, p in module.named_parameters()}


def adam(params: list[torch.Tensor], lr: float, like: torch.optim.Optimizer) -> torch.optim.Adam:
    """torch's Adam with the implementation (fused / foreach) the agent's optimizer uses, so
    that the comparison is of the update's maths, not of the optimizer kernels."""
    d = like.defaults
    return torch.optim.Adam(params, lr=lr, fused=d.get("fused"), foreach=d.get("foreach"))


def returns_by_hand(rewards: np.ndarray) -> torch.Tensor:
    """R_t = Σ_{t'≥t} γ^{t'-t} r_t' as a reversed cumulative sum of γ^t r_t over γ^t."""
    disc = GAMMA ** np.arange(len(rewards), dtype=np.float64)
    r = np.cumsum((np.asarray(rewards, np.float64) * disc)[::-1])[::-1] / disc
    return torch.as_tensor(r, dtype=torch.float32)


class HandRelax:
    """RELAX for one episode in plain PyTorch (003 App. B): policy logits = MLP(s),
    z = log θ - log(-log u), z̃ ~ p(z | a) from the same u, c(z, s) = V(s) + scale · MLP([z, s]),
    ĝ = Σ_t (R_t - c(z̃_t)) ∂log π(a_t|s_t) + ∂c(z_t) - ∂c(z̃_t), φ-gradient of Σ ĝ² by
    double backward, then Adam on both."""

    def __init__(self, agent, lr: float, cv_lr: float) -> None:
        self.pi = list(leaves(agent.policy).values())
        critic = leaves(agent._critic)
        self.critic_named = critic
        self.v = [critic[f"terms.0.baseline.net.{k}"] for k in
                  ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")]  # fmt: skip
        self.c = [critic[f"terms.1.net.{k}"] for k in
                  ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")]  # fmt: skip
        self.scale = critic["terms.1.scale"]
        self.opt_pi = adam(self.pi, lr, agent.policy_optimizer)
        self.opt_c = adam(list(critic.values()), cv_lr, agent.critic_optimizer)

    def gradients(self, ep: dict):
        s, u, a = ep["states"], ep["noise"], ep["actions"]
        R = returns_by_hand(ep["rewards"])
        log_theta = torch.log_softmax(plain_mlp(self.pi, s), -1)  # [T, 2]
        log_p = log_theta.gather(1, a[:, None]).squeeze(1)  # log π(a_t|s_t), [T]
        z = log_theta - torch.log(-torch.log(u))  # Gumbel z, argmax = a_t (003 App. A)
        theta = log_theta.exp()
        top = F.one_hot(a, z.shape[1]).bool()
        with torch.no_grad():  # the exponential race E behind z, recovered from z (tied noise)
            t = torch.exp(-z)
            t_b = t.gather(1, a[:, None])
            e = theta * (t - t_b)
        z_tilde = torch.where(top, -torch.log(t_b), -torch.log(e / theta + t_b))  # z̃ ~ p(z|a)
        v = plain_mlp(self.v, s).squeeze(1)
        h = plain_mlp(self.c, torch.cat([torch.cat([z, z_tilde]), torch.cat([s, s])], 1))
        c_hat_z, c_hat_zt = (self.scale * h.squeeze(1)).split(len(a))
        c_z, c_zt = v + c_hat_z, v + c_hat_zt  # c(·, s) = V(s) + ĉ(·, s)
        g = torch.autograd.grad(
            [log_p, (c_z - c_zt).sum()], self.pi,
            grad_outputs=[R - c_zt, torch.ones(())], create_graph=True,
        )  # fmt: skip
        loss = sum(x.pow(2).sum() for x in g)  # 003 eq. 11, single sample
        return list(g), loss, torch.autograd.grad(loss, list(self.critic_named.values()))

    def update(self, ep: dict) -> None:
        g, _, gc = self.gradients(ep)
        for p, x in zip(self.pi, g):
            p.grad = -x.detach()
        for p, x in zip(self.critic_named.values(), gc):
            p.grad = x
        self.opt_pi.step()
        self.opt_c.step()


class HandA2C:
    """A2C for one episode in plain PyTorch: ĝ = Σ_t ∂log π(a_t|s_t) (R_t - V(s_t)),
    V by mean squared error, then Adam on both."""

    def __init__(self, agent, lr: float, cv_lr: float) -> None:
        self.pi = list(leaves(agent.policy).values())
        self.critic_named = {f"net.{n}": p for n, p in leaves(agent.value.net).items()}
        self.v = list(self.critic_named.values())
        self.opt_pi = adam(self.pi, lr, agent.policy_optimizer)
        self.opt_c = adam(self.v, cv_lr, agent.critic_optimizer)

    def gradients(self, ep: dict):
        s, a = ep["states"], ep["actions"]
        R = returns_by_hand(ep["rewards"])
        log_p = torch.log_softmax(plain_mlp(self.pi, s), -1).gather(1, a[:, None]).squeeze(1)
        v = plain_mlp(self.v, s).squeeze(1)
        g = torch.autograd.grad((log_p * (R - v.detach())).sum(), self.pi)
        loss = (R - v).pow(2).mean()
        return list(g), loss, torch.autograd.grad(loss, self.v)

    def update(self, ep: dict) -> None:
        g, _, gc = self.gradients(ep)
        for p, x in zip(self.pi, g):
            p.grad = -x
        for p, x in zip(self.v, gc):
            p.grad = x
        self.opt_pi.step()
        self.opt_c.step()


def hand_written(agents: dict, lr: float, cv_lr: float, rounds: int, calls: int) -> dict:
    """Gradient agreement and update time, ours vs by hand, per estimator and episode length:
    a short episode of the untrained policy and a long one of the seed-0 trained agent."""
    import copy

    from stochgrad.rl import PolicyGradient

    hand_cls = {"a2c": HandA2C, "relax": HandRelax}
    checks, pairs, lengths = {}, {}, {}
    for estimator, trained in agents.items():
        fresh = PolicyGradient(ENV, estimator, hidden=(10, 10), lr=lr, cv_lr=cv_lr, gamma=GAMMA,
                               seed=0)  # fmt: skip
        for label, agent in (("untrained", fresh), ("trained", copy.deepcopy(trained))):
            gen = torch.Generator().manual_seed(12345)
            ep = agent.rollout(agent.env, 12345, gen)
            key = f"{estimator}, {label} policy, T={len(ep['rewards'])}"
            lengths[key] = len(ep["rewards"])
            hand = hand_cls[estimator](agent, lr, cv_lr)
            g, critic_loss, _ = agent.policy_gradient(ep)
            cg = torch.autograd.grad(critic_loss, list(agent._critic.parameters()))
            hg, hloss, hcg = hand.gradients(ep)
            hcg_by_name = dict(zip(hand.critic_named, hcg))
            cg_hand = [hcg_by_name[n] for n, _ in agent._critic.named_parameters()]
            checks[key] = {
                "policy_grad_max_abs_diff": max(
                    float((x - y).detach().abs().max()) for x, y in zip(g, hg)
                ),
                "policy_grad_max_abs": max(float(x.detach().abs().max()) for x in g),
                "critic_grad_max_abs_diff": max(
                    float((x - y).abs().max()) for x, y in zip(cg, cg_hand)
                ),
                "critic_grad_max_abs": max(float(x.abs().max()) for x in cg),
                "critic_loss": [float(critic_loss.detach()), float(hloss.detach())],
            }
            for opt in (agent.policy_optimizer, agent.critic_optimizer, hand.opt_pi, hand.opt_c):
                for group in opt.param_groups:
                    group["lr"] = 0.0  # same work, fixed parameters (the noise rebuilds a_t)
            pairs[key] = (lambda a=agent, e=ep: a.update(e), lambda h=hand, e=ep: h.update(e))
    for key, c in checks.items():
        for part in ("policy", "critic"):
            rel = c[f"{part}_grad_max_abs_diff"] / max(c[f"{part}_grad_max_abs"], 1e-12)
            c[f"{part}_grad_rel_diff"] = rel
            if not rel < 1e-4:
                raise AssertionError(f"{key}: {part} gradients differ, ours vs by hand: {c}")
    timing = interleaved_ratios(pairs, rounds=rounds, calls=calls)
    return {"checks": checks, "timing": timing, "episode_lengths": lengths}


# ---- report ---------------------------------------------------------------------------------


def fmt_solve(r: dict) -> str:
    return str(r["episodes_to_solve"]) if r["solved"] else f"{r['episodes']}* (unsolved)"


def markdown(res: dict) -> str:
    b, m = res["budget_env_steps"], res["machine"]
    load = m["load_average_1min"]
    lines = [
        "# Policy gradients on CartPole-v0: episodes to solve (`benchmarks/pg.py`, issue 13)",
        "",
        (
            f"CartPole-v0 (200-step episodes), solved = mean return of the last {WINDOW} "
            f"episodes >= {SOLVED:g} (003 Table 4), budget {b:,} env steps per run, seeds "
            f"{res['seeds']}, one torch thread, {m['cpu_count']} shared cores, load (1 min) "
            f"{load['start']:.2f} at start, {load['end']:.2f} at the end. Ours: 2 x 10 ReLU "
            f"policy and critic nets, one update per episode, no bootstrapping, γ = {GAMMA}, "
            f"Adam lr = {res['lr']}, cv_lr = {res['cv_lr']} "
            f"({res['lr_source']}). relax: all of c = V(s) + ĉ(z, s) trained by the variance "
            "objective (003 eq. 11); relax-v-mse: V fitted by A2C's squared error, ĉ alone by the "
            "variance objective (`value_objective='squared-error'`). `*` = unsolved within the "
            f"budget, counted at the episodes run. Commit {res['commit']}."
        ),
        "",
        "| method | episodes to solve (mean ± s.e.) | per seed | solved | paper (003 Table 4) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, s in res["summary"].items():
        runs = res["runs"][name]
        paper = PAPER.get(name)
        lines.append(
            f"| {name} | {s['mean']:.0f} ± {s['se']:.0f} | "
            + ", ".join(fmt_solve(r) for r in runs)
            + f" | {s['n_solved']}/{len(runs)} | "
            + (f"{paper[0]} ± {paper[1]}" if paper else "n/a")
            + " |"
        )
    header = (
        "| comparison | seeds | mean difference | Welch t (df), p two-sided | "
        "Mann-Whitney U, p two-sided | p one-sided (fewer episodes than A2C) |"
    )
    lines += [
        "",
        "RELAX (variants) against A2C, episodes to solve (unsolved counted at the episodes run):",
        "",
        header,
        "| --- | --- | --- | --- | --- | --- |",
    ]
    pc = res.get("power_check")
    blocks = [(res["seeds"], res["tests"])] + ([(pc["seeds"], pc["tests"])] if pc else [])
    for seeds, tests_ in blocks:
        for name, t in tests_.items():
            lines.append(
                f"| {name} vs a2c | {seeds[0]}-{seeds[-1]} ({t['n'][1]} + {t['n'][0]}) | "
                f"{t['mean_difference_relax_minus_a2c']:+.0f} | {t['welch_t']:.2f} "
                f"({t['welch_df']:.1f}), {t['welch_p_two_sided']:.3f} | {t['mannwhitney_u']:.0f}, "
                f"{t['mannwhitney_p_two_sided']:.3f} | {t['mannwhitney_p_relax_fewer']:.3f} |"
            )
    t = next(iter(res["tests"].values()))
    lines += [
        "",
        (
            f"With {t['n'][0]} + {t['n'][1]} seeds the smallest two-sided exact Mann-Whitney p is "
            f"{t['mannwhitney_smallest_possible_p_two_sided']:.4f}, and a Welch test has about 80% "
            "power (5%, two-sided) only for a difference near 2 standard deviations of the "
            "per-seed spread: a weak test, hence the further seeds."
        ),
    ]
    if pc:
        n_all = len(res["seeds"]) + len(pc["seeds"])
        lines += [
            "",
            f"Further seeds {pc['seeds'][0]}-{pc['seeds'][-1]}, same setting and budget:",
            "",
            (
                "| method | episodes to solve (mean ± s.e.) | solved | "
                f"all {n_all} seeds (mean ± s.e.) |"
            ),
            "| --- | --- | --- | --- |",
        ]
        for name, sm in pc["summary"].items():
            both = res["summary"][name]["counted"] + sm["counted"]
            mean, se = mean_se(both)
            lines.append(
                f"| {name} | {sm['mean']:.0f} ± {sm['se']:.0f} | {sm['n_solved']}/"
                f"{len(sm['counted'])} | {mean:.0f} ± {se:.0f} |"
            )
        lines.append("")
        for name, t in pc["tests_all_seeds"].items():
            verdict = "fewer" if t["mannwhitney_p_relax_fewer"] < 0.05 else "not fewer"
            lines.append(
                f"- {name} vs a2c over all {n_all} seeds: "
                f"{t['mean_difference_relax_minus_a2c']:+.0f} episodes, Welch p = {t['welch_p_two_sided']:.3f} (two-sided), Mann-Whitney "
                f"p = {t['mannwhitney_p_relax_fewer']:.3f} (one-sided): {verdict} episodes than "
                "A2C at the 5% level."
            )
    lines += [
        "",
        (
            'SB3\'s A2C runs with its defaults (`A2C("MlpPolicy", "CartPole-v0", seed=k)`: one '
            "env, n_steps = 5 bootstrapped returns, 64-64 tanh policy and value nets, one RMSprop "
            "optimizer (lr 7e-4) on the policy loss + 0.5 x the value loss, gradient norm clipped "
            "at 0.5, entropy coefficient 0): a reference point, not an equal comparison of "
            "estimators. Equal: the environment, the env-step budget, the solve criterion and how "
            "episodes are counted (Monitor's finished episodes). Not equal: SB3 updates every 5 "
            "steps (about 40 updates per 200-step episode) where ours updates once per episode, "
            "bootstraps, and uses other nets and optimizer."
        ),
        "",
        "## Tuning (A2C, seeds " + ", ".join(map(str, res["tuning"]["seeds"])) + ")",
        "",
    ]
    if res["tuning"]["grid"]:
        lines += [
            (
                "003 C.2 searched the learning rate and the scaling of the control-variate/value "
                "loss over {0.01, 0.003, 0.001}. With Adam and separate parameter sets a constant "
                "factor on one loss is divided out by Adam's normalization (up to its ε), so that "
                "knob is the critic's own step size cv_lr here."
            ),
            "",
            "| lr \\ cv_lr | " + " | ".join(str(c) for c in GRID) + " |",
            "| --- | " + " | ".join("---" for _ in GRID) + " |",
        ]
        grid = res["tuning"]["grid"]
        for lr in GRID:
            cells = []
            for cv in GRID:
                g = grid[f"lr={lr},cv_lr={cv}"]
                flag = (
                    "" if all(g["solved"]) else f" ({sum(g['solved'])}/{len(g['solved'])} solved)"
                )
                cells.append(f"{g['mean']:.0f}{flag}")
            lines.append(f"| {lr} | " + " | ".join(cells) + " |")
        lines += ["", (f"Mean episodes to solve, budget {b:,} steps; picked lr = {res['lr']}, "
                  f"cv_lr = {res['cv_lr']}.")]  # fmt: skip
    else:
        lines.append("Skipped: lr and cv_lr given on the command line.")
    lines += [
        "",
        "## Wall-clock per episode and per env step (the learning runs above)",
        "",
        (
            "Each seed runs ours (a2c, relax, relax-v-mse) and SB3 one after another in this "
            "process, one "
            "torch thread each; medians over seeds; the ratio is SB3 / ours per seed (median). "
            "Times include acting, env steps and updates, up to the solve or the budget; episodes "
            "differ in length between methods, so the per-step figure is the comparable one. CPU = "
            "process time (excludes time taken by other processes)."
        ),
        "",
        (
            "| method | ms/episode (wall) | ms/episode (CPU) | µs/step (wall) | µs/step (CPU) | "
            "SB3 / it, per step (CPU) | load at start of runs |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in res["runs"].items():
        med = {k: statistics.median(r[k] for r in runs) for k in
               ("ms_per_episode_wall", "ms_per_episode_cpu", "us_per_step_wall",
                "us_per_step_cpu")}  # fmt: skip
        ratio = statistics.median(
            s["us_per_step_cpu"] / r["us_per_step_cpu"]
            for s, r in zip(res["runs"]["sb3-a2c"], runs)
        )
        loads = [r["load_1min_at_start"] for r in runs if r["load_1min_at_start"] is not None]
        lines.append(
            f"| {name} | {med['ms_per_episode_wall']:.2f} | {med['ms_per_episode_cpu']:.2f} | "
            f"{med['us_per_step_wall']:.0f} | {med['us_per_step_cpu']:.0f} | {ratio:.2f} | "
            f"{min(loads):.1f}-{max(loads):.1f} |"
        )
    if res.get("gradient_variance"):
        lines += variance_markdown(res["gradient_variance"])
    hw = res["hand_written"]
    lines += [
        "",
        "## One update: ours vs the same maths written by hand in plain PyTorch",
        "",
        (
            "Same episode (rolled out by `agent.rollout`), same parameters. Gradients: ours "
            "`PolicyGradient.policy_gradient` (and the critic's loss gradient) against a "
            "hand-written update (RELAX: Gumbel z, conditional z̃ from the same uniforms, "
            "c = V(s) + s · MLP([z, s]), ĝ by one vector-Jacobian product, Σ ĝ² differentiated "
            "by "
            "double backward; A2C: log π (R - V) and V's squared error), float32. Time: one whole "
            "update (estimate, critic loss, both Adam steps with lr = 0, torch's Adam with the "
            "agent's implementation on both sides) in interleaved rounds, "
            "CPU time of the thread, median of "
            f"{next(iter(hw['timing'].values()))['rounds']} rounds; ratio = ours / by hand, median "
            "[quartiles] of per-round ratios."
        ),
        "",
        (
            "| estimator, episode | policy grad max rel. diff | critic grad max rel. diff | "
            "ours ms | by hand ms | ours / by hand |"
        ),
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, c in hw["checks"].items():
        tm = hw["timing"][key]
        lines.append(
            f"| {key} | {c['policy_grad_rel_diff']:.1e} | {c['critic_grad_rel_diff']:.1e} | "
            f"{tm['ours_ms']:.2f} | {tm['hand_ms']:.2f} | {tm['ratio_median']:.2f} "
            f"[{tm['ratio_q25']:.2f}, {tm['ratio_q75']:.2f}] |"
        )
    lines += ["", (f"Whole benchmark: {res['wall_time_s'] / 60:.1f} min wall, "
              f"{res['cpu_time_s'] / 60:.1f} min CPU; torch {m['torch']}.")]  # fmt: skip
    return "\n".join(lines) + "\n"


def variance_markdown(v: dict) -> list[str]:
    others = list(OURS)[1:]
    per_seed = {}  # per variant: mean over each seed's episodes of the paired difference
    for name in others:
        per_seed[name] = []
        for run_a, run_r in zip(v["runs"]["a2c"], v["runs"][name]):
            a, r = dict(run_a["log"]), dict(run_r["log"])
            per_seed[name].append(statistics.fmean(r[e] - a[e] for e in a if e in r))
    overall = "; ".join(
        "{} - a2c {:+.2f} ± {:.2f}".format(name, *mean_se(d)) for name, d in per_seed.items()
    )
    lines = [
        "",
        "## Gradient variance along training (003 Fig. 4, bottom)",
        "",
        (
            f"log10 of the variance of ĝ (`PolicyGradient.gradient_variance`: mean over the "
            f"policy's parameters) from {v['samples']} extra episodes of the current policy every "
            f"{v['every']} episodes, in reruns of the seeds above with the variance log on (they "
            f"solve at the same episodes as the runs above: {v['same_as_main_runs']}). Median over "
            "the seeds still training at that episode (n); paired = same seed, same episode, "
            "minus A2C, median [min, max]; episodes where every method still has 3 seeds "
            "training (all in the JSON). Each seed's paired differences averaged over its "
            f"episodes, then mean ± s.e. over seeds: {overall} (negative: lower variance than "
            "A2C). The runs follow different trajectories; benchmarks/pg_variance.md compares "
            "the estimators at one and the same policy."
        ),
        "",
        "| episode | "
        + " | ".join(f"{name} log10 var (n)" for name in OURS)
        + " | "
        + " | ".join(f"paired {name} - a2c" for name in others)
        + " |",
        "| --- " * (1 + len(OURS) + len(others)) + "|",
    ]
    for row in v["by_episode"]:
        if min(len(row[name]) for name in OURS) < 3:
            continue  # fewer than 3 seeds still training: in the JSON only
        cells = [str(row["episode"])]
        for name in OURS:
            x = row[name]
            cells.append(f"{statistics.median(x):.2f} ({len(x)})" if x else "-")
        for name in others:
            d = row[f"paired_diff_{name}_minus_a2c"]
            cells.append(
                f"{statistics.median(d):+.2f} [{min(d):+.2f}, {max(d):+.2f}]" if d else "-"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def tests(runs: dict[str, list[dict]]) -> dict:
    """Each RELAX variant against A2C."""
    a2c = [r["counted"] for r in runs["a2c"]]
    return {k: compare(a2c, [r["counted"] for r in runs[k]]) for k in list(OURS)[1:]}


def summary(runs: list[dict]) -> dict:
    counted = [r["counted"] for r in runs]
    mean, se = mean_se(counted)
    return {"mean": mean, "se": se, "counted": counted, "n_solved": sum(r["solved"] for r in runs)}


def strip(runs: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs]


def git_state() -> str:
    """The checkout's commit at the start, with ``+changes`` if ``src/`` differs from it."""

    def git(*a: str) -> subprocess.CompletedProcess:
        cwd = Path(__file__).resolve().parent
        return subprocess.run(["git", *a], check=False, capture_output=True, text=True, cwd=cwd)

    commit = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    dirty = git("diff", "--quiet", "HEAD", "--", "../src").returncode != 0
    return commit + (" +changes in src/" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--cv-lr", type=float, default=None)
    parser.add_argument("--budget", type=int, default=250_000, help="env steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tuning-seeds", type=int, nargs="+", default=[100, 101, 102])
    parser.add_argument("--extra-seeds", type=int, default=20, help="power check; 0: none")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--var-every", type=int, default=25, help="episodes; 0: no variance log")
    parser.add_argument("--var-samples", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="smoke run, small budget")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--markdown-from", type=Path, default=None,
                        help="rewrite pg.md from this pg.json (no runs)")  # fmt: skip
    args = parser.parse_args()
    if args.markdown_from is not None:
        import json

        md = markdown(json.loads(args.markdown_from.read_text()))
        (args.out or args.markdown_from.parent).joinpath("pg.md").write_text(md)
        print(md)
        return
    if (args.lr is None) != (args.cv_lr is None):
        parser.error("give both --lr and --cv-lr, or neither (then they are tuned)")
    if args.quick:
        args.budget, args.seeds, args.tuning_seeds = 3000, [0, 1], [100]
        args.extra_seeds, args.rounds, args.var_every, args.var_samples = 0, 3, 10, 3
    import gymnasium  # noqa: F401 - first, so that the filter below comes after its own

    warnings.filterwarnings("ignore", message=".*CartPole-v0 is out of date.*")
    torch.set_num_threads(1)
    load0, w0, c0 = load_average(), time.perf_counter(), time.process_time()
    commit = git_state()
    if args.lr is None:
        grid, lr, cv_lr = tune(args.tuning_seeds, args.budget)
        source = f"tuned on A2C here, seeds {args.tuning_seeds}"
    else:
        grid, lr, cv_lr, source = {}, args.lr, args.cv_lr, "given by --lr/--cv-lr"
    runs: dict[str, list[dict]] = {name: [] for name in [*OURS, "sb3-a2c"]}
    for seed in args.seeds:
        for name in OURS:
            runs[name].append(run_ours(name, seed, lr, cv_lr, args.budget))
        runs["sb3-a2c"].append(run_sb3(seed, args.budget))
        print(f"seed {seed}: " + ", ".join(f"{k} {fmt_solve(v[-1])}" for k, v in runs.items()),
              flush=True)  # fmt: skip
    power = None
    if args.extra_seeds:
        extra = list(range(max(args.seeds) + 1, max(args.seeds) + 1 + args.extra_seeds))
        more = {name: [run_ours(name, s, lr, cv_lr, args.budget) for s in extra]
                for name in OURS}  # fmt: skip
        power = {
            "seeds": extra, "summary": {k: summary(v) for k, v in more.items()},
            "tests": tests(more), "runs": {k: strip(v) for k, v in more.items()},
            "tests_all_seeds": tests({k: runs[k] + more[k] for k in OURS}),
        }  # fmt: skip
    variance = None
    if args.var_every:
        variance = variance_curves(args.seeds, lr, cv_lr, args.budget, args.var_every,
                                   args.var_samples, runs)  # fmt: skip
    trained = {est: runs[est][0]["_agent"] for est in ("a2c", "relax")}
    hw = hand_written(trained, lr, cv_lr, rounds=args.rounds, calls=5)
    res = {
        "benchmark": "benchmarks/pg.py", "env": ENV, "solve_threshold": SOLVED,
        "window": WINDOW, "budget_env_steps": args.budget, "seeds": args.seeds,
        "gamma": GAMMA, "hidden": [10, 10], "lr": lr, "cv_lr": cv_lr, "lr_source": source,
        "tuning": {"seeds": args.tuning_seeds, "grid": grid},
        "paper_003_table4": {k: {"mean": m, "pm": s} for k, (m, s) in PAPER.items()},
        "runs": {k: strip(v) for k, v in runs.items()},
        "summary": {k: summary(v) for k, v in runs.items()},
        "tests": tests(runs),
        "power_check": power, "gradient_variance": variance, "hand_written": hw,
        "commit": commit,
    }  # fmt: skip
    res["wall_time_s"] = time.perf_counter() - w0
    res["cpu_time_s"] = time.process_time() - c0
    res["machine"] = machine_info(load0)
    md = markdown(res)
    if args.quick and args.out is None:
        print(md)
        return
    write_results(args.out or OUT, "pg", res, md)


if __name__ == "__main__":
    main()
