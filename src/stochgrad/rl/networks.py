"""Actors and critics shared by the agents: twin Q-networks with Polyak-averaged targets and a
tanh-squashed Gaussian policy with the log-det correction (Haarnoja et al. 2018, App. C)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import mlp

LOG_2PI = math.log(2 * math.pi)
# float32 products at least this large in every dimension go to oneDNN: MKL's sgemm takes its
# AVX2 path on AMD CPUs (about 105 GFLOP/s on one core here) where oneDNN runs AVX-512 (about
# 220, as fast as XLA); below it MKL's smaller call overhead wins (benchmarks/results/rl.md)
_ONEDNN_MIN_DIM = 64
_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _use_onednn(x: Tensor, w: Tensor) -> bool:
    """Whether x ``[n, in]`` times wᵀ (w ``[out, in]``) goes to oneDNN."""
    return (
        _ONEDNN
        and x.dtype == w.dtype == torch.float32
        and x.device.type == w.device.type == "cpu"
        and min(x.shape[0], w.shape[0], w.shape[1]) >= _ONEDNN_MIN_DIM
    )


def _gemm(x: Tensor, w: Tensor, b: Tensor | None, relu: bool) -> Tensor:
    """relu?(x wᵀ + b) for x ``[n, in]``, w ``[out, in]`` (oneDNN or ``F.linear``)."""
    if _use_onednn(x, w):
        return torch.ops.mkldnn._linear_pointwise(
            x, w, b, "relu" if relu else "none", [None] if relu else [], ""
        )
    y = F.linear(x, w, b)
    return y.relu_() if relu else y


class _Linear(torch.autograd.Function):
    """relu?(x wᵀ + b) with :func:`_gemm` in the forward pass and in each backward product;
    the backward is itself built from ``_Linear``, so it can be differentiated again."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None, relu: bool) -> Tensor:
        y = _gemm(x, w, b, relu)
        ctx.relu = relu
        ctx.save_for_backward(x, w, y if relu else None)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, w, y = ctx.saved_tensors
        if ctx.relu:  # relu'(a) from the output, as autograd's relu does
            grad = torch.ops.aten.threshold_backward(grad, y, 0)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _Linear.apply(grad, w.t(), None, False)  # grad w: [n, in]
        if ctx.needs_input_grad[1]:
            gw = _Linear.apply(grad.t(), x.t(), None, False)  # gradᵀ x: [out, in]
        if ctx.needs_input_grad[2]:
            gb = grad.sum(0)
        return gx, gw, gb, None


def mlp_forward(net: nn.Sequential, x: Tensor, always: bool = False) -> Tensor:
    """``net(x)`` for an :func:`~stochgrad.nn.mlp`: the same function and gradients (of any
    order) up to float rounding, with each large float32 Linear (and a ReLU after it) one
    oneDNN :class:`_Linear` call (every Linear if ``always``, for tests); ``[..., in]`` ->
    ``[..., out]``."""
    lead = x.shape[:-1]
    h = x.reshape(-1, x.shape[-1])
    layers = list(net)
    linear = _Linear.apply if torch.is_grad_enabled() else _gemm  # no graph: no Function
    i = 0
    while i < len(layers):
        layer = layers[i]
        if type(layer) is nn.Linear and (always or _use_onednn(h, layer.weight)):
            relu = i + 1 < len(layers) and type(layers[i + 1]) is nn.ReLU
            h = linear(h, layer.weight, layer.bias, relu)
            i += 2 if relu else 1
        else:  # small layers: autograd's own Linear has less overhead than a Python Function
            h = layer(h)
            i += 1
    return h.reshape(*lead, h.shape[-1])


class TwinQ(nn.Module):
    """Two Q-networks Q_i(s, a) = MLP([s, a]) (clipped double Q, Fujimoto et al. 2018).

    forward: obs ``[batch, obs_dim]``, action ``[batch, act_dim]`` -> (q1, q2), each ``[batch]``.
    """

    def __init__(
        self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), activation="relu"
    ) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden, 1, activation)
        self.q2 = mlp(obs_dim + act_dim, hidden, 1, activation)

    def forward(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([obs, action], -1)
        return mlp_forward(self.q1, x).squeeze(-1), mlp_forward(self.q2, x).squeeze(-1)

    def min_q(self, obs: Tensor, action: Tensor) -> Tensor:
        """min(Q1, Q2), ``[batch]``."""
        if not torch.is_grad_enabled() and obs.dim() == 2:  # no graph: plain products
            heads = (_relu_mlp_layers(self.q1), _relu_mlp_layers(self.q2))
            if heads[0] is not None and heads[1] is not None:
                return torch.minimum(*_twin_q_forward(heads, obs, action)[0])
        return torch.minimum(*self(obs, action))


def _relu_mlp_layers(net: nn.Module) -> list[nn.Linear] | None:
    """The Linear layers of an mlp ``Linear, ReLU, ..., Linear``; None for any other net."""
    layers = list(net) if isinstance(net, nn.Sequential) else []
    linears, acts = layers[::2], layers[1::2]
    ok = (
        len(layers) % 2 == 1
        and all(type(m) is nn.Linear for m in linears)
        and all(type(m) is nn.ReLU for m in acts)
    )
    return linears if ok else None


def _twin_q_forward(heads, obs: Tensor, action: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
    """(Q1, Q2) ``[n]`` of a ReLU :class:`TwinQ` (``heads``: each head's Linear layers), and
    each head's hidden activations, for :func:`_min_q_input_grad`."""
    x = torch.cat([obs, action], -1)
    qs, hidden = [], []
    for linears in heads:
        h, hs = x, []
        for lin in linears[:-1]:
            h = _gemm(h, lin.weight, lin.bias, True)
            hs.append(h)
        qs.append(_gemm(h, linears[-1].weight, linears[-1].bias, False).squeeze(-1))
        hidden.append(hs)
    return qs, hidden


def _min_q_input_grad(heads, qs, hidden, grad: Tensor, obs_dim: int, need=(False, True)):
    """(∂/∂obs, ∂/∂action) of Σ grad · min(Q1, Q2) (None where ``need`` is False), the critic
    held fixed: each head backpropagates only the rows where it is the minimum (torch.minimum's
    rule: both heads at ties, half each), so this costs one head's backward pass, not two."""
    q1, q2 = qs
    half = torch.where(q1 == q2, grad / 2, grad)  # torch.minimum's derivative
    g_in = [None, None]
    for linears, hs, rows in zip(heads, hidden, (q1 <= q2, q2 <= q1)):
        idx = rows.nonzero().squeeze(-1)
        g = half.index_select(0, idx)[:, None]  # ∂/∂(this head's output), [r, 1]
        for k in reversed(range(1, len(linears))):
            g = _gemm(g, linears[k].weight.t(), None, False)  # g W_k: ∂/∂h_{k-1}
            g = torch.ops.aten.threshold_backward(g, hs[k - 1].index_select(0, idx), 0)
        w0 = linears[0].weight
        for i, cols in enumerate((w0[:, :obs_dim], w0[:, obs_dim:])):
            if need[i]:
                if g_in[i] is None:
                    g_in[i] = grad.new_zeros(grad.shape[0], cols.shape[1])
                g_in[i].index_add_(0, idx, g @ cols)
    return g_in[0], g_in[1]


class _MinQOfAction(torch.autograd.Function):
    """min(Q1, Q2)(obs, action) of a ReLU :class:`TwinQ`, differentiable in obs and action only
    (the critic held fixed, as in an actor's loss), by :func:`_min_q_input_grad`.
    ``[n, obs_dim]``, ``[n, act_dim]`` -> ``[n]``."""

    @staticmethod
    def forward(ctx, obs: Tensor, action: Tensor, heads: tuple[list[nn.Linear], ...]) -> Tensor:
        qs, hidden = _twin_q_forward(heads, obs, action)
        ctx.heads, ctx.hidden, ctx.qs, ctx.obs_dim = heads, hidden, qs, obs.shape[-1]
        return torch.minimum(*qs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        need = ctx.needs_input_grad[:2]
        g_obs, g_act = _min_q_input_grad(ctx.heads, ctx.qs, ctx.hidden, grad, ctx.obs_dim, need)
        return g_obs, g_act, None


def min_q_of_action(critic: TwinQ, obs: Tensor, action: Tensor) -> Tensor:
    """min(Q1, Q2)(obs, action) ``[batch]`` with gradients to ``action`` (and ``obs``) only,
    none to the critic's parameters (as ``critic.min_q`` inside ``frozen(critic)``)."""
    heads = (_relu_mlp_layers(critic.q1), _relu_mlp_layers(critic.q2))
    if heads[0] is None or heads[1] is None or obs.dim() != 2:
        critic.requires_grad_(False)
        try:
            return critic.min_q(obs, action)
        finally:
            critic.requires_grad_(True)
    return _MinQOfAction.apply(obs, action, heads)


def _accumulate_grads(grads: list[tuple[Tensor, Tensor]]) -> None:
    """param.grad += grad for each (param, grad), as ``backward()`` accumulates."""
    for param, grad in grads:
        if param.grad is None:
            param.grad = grad
        else:
            param.grad += grad


def _weight_grad(g: Tensor, h: Tensor) -> Tensor:
    """gᵀ h ``[out, in]`` for g ``[n, out]``, h ``[n, in]``: oneDNN when all are large, else
    MKL with the narrow one transposed on the left (5x faster than the other way round)."""
    if _use_onednn(g.t(), h.t()):
        return _gemm(g.t(), h.t(), None, False)
    if h.shape[1] < g.shape[1]:
        return torch.mm(h.t(), g).t().contiguous()
    return torch.mm(g.t(), h)


@torch.no_grad()
def twin_q_mse_backward(critic: TwinQ, obs: Tensor, action: Tensor, target: Tensor) -> Tensor:
    """SAC's critic loss mean((Q1 - y)²) + mean((Q2 - y)²) and its gradient, written out for a
    ReLU :class:`TwinQ` (one forward and one backward pass per head, no autograd graph): the
    gradient is added to the parameters' ``.grad``, the loss returned (a 0-dim tensor).
    obs ``[n, obs_dim]``, action ``[n, act_dim]``, target y ``[n]``."""
    heads = (_relu_mlp_layers(critic.q1), _relu_mlp_layers(critic.q2))
    if heads[0] is None or heads[1] is None:
        with torch.enable_grad():
            q1, q2 = critic(obs, action)
            loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
            loss.backward()
        return loss.detach()
    x = torch.cat([obs, action], -1)
    loss = x.new_zeros(())
    for linears in heads:
        hs = [x]
        for lin in linears[:-1]:
            hs.append(_gemm(hs[-1], lin.weight, lin.bias, True))
        last = linears[-1]
        err = _gemm(hs[-1], last.weight, last.bias, False).squeeze(-1) - target
        loss += err.square().mean()
        g = (2 / err.shape[0]) * err[:, None]  # ∂loss/∂Q, [n, 1]
        grads = []
        for k in reversed(range(len(linears))):
            lin, h = linears[k], hs[k]
            if k < len(linears) - 1:
                g = torch.ops.aten.threshold_backward(g, hs[k + 1], 0)  # relu'
            gw = _weight_grad(g, h)
            grads += [(lin.bias, g.sum(0)), (lin.weight, gw)]
            if k > 0:
                g = _gemm(g, lin.weight.t(), None, False)  # g W: [n, in]
        _accumulate_grads(grads)
    return loss


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target ← (1 - τ) target + τ source, parameter by parameter (in place)."""
    if not 0 < tau <= 1:
        raise ValueError(f"tau must lie in (0, 1], got {tau}")
    t_params, s_params = list(target.parameters()), list(source.parameters())
    torch._foreach_lerp_(t_params, s_params, tau)


def squashed_log_prob(u: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log π(a|s) of a = tanh(u), u ~ N(mean, diag exp(2 log_std)): the Gaussian log-density of
    u minus Σ log(1 - tanh²u), written 2(log 2 - u - softplus(-2u)) for stability;
    ``[..., act_dim]`` -> ``[...]``."""
    gauss = -0.5 * (((u - mean) / log_std.exp()) ** 2 + 2 * log_std + LOG_2PI)
    log_det = 2 * (math.log(2) - u - F.softplus(-2 * u))  # log(1 - tanh(u)^2)
    return (gauss - log_det).sum(-1)


class SquashedGaussianActor(nn.Module):
    """π(a|s): a = tanh(u) · scale + bias, u ~ N(μ(s), σ(s)²) with log σ clamped to
    [``log_std_min``, ``log_std_max``]; ``scale``/``bias`` map [-1, 1] to the action bounds.

    forward(obs ``[batch, obs_dim]``) -> (action ``[batch, act_dim]`` reparameterized,
    log π(a|s) ``[batch]``); ``deterministic=True`` gives tanh(μ) (log π not defined: NaN).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: tuple[int, ...] = (256, 256),
        activation="relu",
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
    ) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 2 * act_dim, activation)
        low = torch.as_tensor(low, dtype=torch.float32).expand(act_dim)
        high = torch.as_tensor(high, dtype=torch.float32).expand(act_dim)
        if not bool((high > low).all()):
            raise ValueError("the action bounds must satisfy high > low in every dimension")
        self.register_buffer("scale", (high - low) / 2)
        self.register_buffer("bias", (high + low) / 2)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution_params(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(μ(s), log σ(s)), each ``[batch, act_dim]``."""
        mean, log_std = mlp_forward(self.net, obs).chunk(2, -1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        mean, log_std = self.distribution_params(obs)
        if deterministic:
            return torch.tanh(mean) * self.scale + self.bias, torch.full_like(
                mean[..., 0], math.nan
            )
        eps = torch.randn_like(mean)
        u = torch.addcmul(mean, log_std.exp(), eps)
        return torch.tanh(u) * self.scale + self.bias, self.log_prob_of(u, eps, log_std)

    def log_prob_of(self, u: Tensor, eps: Tensor, log_std: Tensor) -> Tensor:
        """log π(a|s) of the action from u = μ + σ ε: :func:`squashed_log_prob` with
        (u - μ)/σ = ε, minus Σ log scale (the affine map to the bounds), in fewer operations;
        ``[..., act_dim]`` -> ``[...]``."""
        const = -u.shape[-1] * (0.5 * LOG_2PI + 2 * math.log(2)) - self.scale.log().sum()
        return (2 * (u + F.softplus(-2 * u)) - 0.5 * eps * eps - log_std).sum(-1) + const
