"""Naive step-by-step reference loops of the value estimators (float64, one time step at a time).

Shared by ``test_functional.py`` and ``test_estimators.py`` (importable through
``conftest.py``).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

# --------------------------------------------------------------------------- #
# naive references: data [*batch, T, F], time at dim -2, loops over t
# --------------------------------------------------------------------------- #


def _full(factor, like: Tensor) -> Tensor:
    return torch.as_tensor(factor, dtype=torch.float64).expand_as(like)


def _prep(*tensors: Tensor) -> list[Tensor]:
    return [t.double() if t.is_floating_point() else t.bool() for t in tensors]


def ref_td0(gamma, next_value, reward, terminated):
    next_value, reward, terminated = _prep(next_value, reward, terminated)
    return reward + _full(gamma, reward) * (~terminated).double() * next_value


def ref_gae(gamma, lmbda, value, next_value, reward, done, terminated):
    value, next_value, reward, done, terminated = _prep(value, next_value, reward, done, terminated)
    gamma, lmbda = _full(gamma, reward), _full(lmbda, reward)
    steps = reward.shape[-2]
    advantage = torch.zeros_like(reward)
    following = torch.zeros_like(reward[..., 0, :])
    for t in reversed(range(steps)):
        alive = (~terminated[..., t, :]).double()
        cont = (~(done[..., t, :] | terminated[..., t, :])).double()
        g, lm = gamma[..., t, :], lmbda[..., t, :]
        delta = reward[..., t, :] + g * alive * next_value[..., t, :] - value[..., t, :]
        following = delta + g * lm * cont * following
        advantage[..., t, :] = following
    return advantage, advantage + value


def ref_td_lambda(gamma, lmbda, next_value, reward, done, terminated):
    next_value, reward, done, terminated = _prep(next_value, reward, done, terminated)
    gamma, lmbda = _full(gamma, reward), _full(lmbda, reward)
    steps = reward.shape[-2]
    returns = torch.zeros_like(reward)
    following = torch.zeros_like(reward[..., 0, :])
    for t in reversed(range(steps)):
        g, lm = gamma[..., t, :], lmbda[..., t, :]
        r, nv = reward[..., t, :], next_value[..., t, :]
        alive = (~terminated[..., t, :]).double()
        ended = done[..., t, :] | terminated[..., t, :] | (t == steps - 1)
        last = r + g * alive * nv
        inside = r + g * ((1 - lm) * nv + lm * following)
        following = torch.where(ended, last, inside)
        returns[..., t, :] = following
    return returns


def ref_vtrace(gamma, log_pi, log_mu, value, next_value, reward, done, terminated, rho, cbar):
    log_pi, log_mu, value, next_value, reward, done, terminated = _prep(
        log_pi, log_mu, value, next_value, reward, done, terminated
    )
    gamma = _full(gamma, reward)
    rho, cbar = _full(rho, reward), _full(cbar, reward)
    steps = reward.shape[-2]
    ratio = (log_pi - log_mu).exp()
    rhos, cs = torch.minimum(ratio, rho), torch.minimum(ratio, cbar)
    vs = torch.zeros_like(reward)
    correction = torch.zeros_like(reward[..., 0, :])
    for t in reversed(range(steps)):
        ended = done[..., t, :] | terminated[..., t, :]
        alive = (~terminated[..., t, :]).double()
        g = gamma[..., t, :]
        delta = rhos[..., t, :] * (
            reward[..., t, :] + g * alive * next_value[..., t, :] - value[..., t, :]
        )
        correction = delta + g * (~ended).double() * cs[..., t, :] * correction
        vs[..., t, :] = value[..., t, :] + correction
    advantage = torch.zeros_like(reward)
    for t in range(steps):
        ended = done[..., t, :] | terminated[..., t, :]
        later = vs[..., t + 1, :] if t + 1 < steps else next_value[..., t, :]
        vs_next = torch.where(ended, next_value[..., t, :], later)
        alive = (~terminated[..., t, :]).double()
        advantage[..., t, :] = rhos[..., t, :] * (
            reward[..., t, :] + gamma[..., t, :] * alive * vs_next - value[..., t, :]
        )
    return advantage, vs


def ref_cumsum(x, gamma, done=None):
    (x,) = _prep(x)
    gamma = _full(gamma, x)
    done = torch.zeros_like(x, dtype=torch.bool) if done is None else done.bool()
    out = torch.zeros_like(x)
    following = torch.zeros_like(x[..., 0, :])
    for t in reversed(range(x.shape[-2])):
        following = x[..., t, :] + gamma[..., t, :] * (~done[..., t, :]).double() * following
        out[..., t, :] = following
    return out


# --------------------------------------------------------------------------- #
# data
# --------------------------------------------------------------------------- #


def make_data(batch, steps, dtype=torch.float32, pattern="mixed", seed=0, features=1):
    """Random values and rewards, with terminations and truncations by ``pattern``."""
    g = torch.Generator().manual_seed(seed)
    shape = (*batch, steps, features)

    def randn():
        return torch.randn(shape, generator=g).to(dtype)

    if pattern == "mixed":
        done = torch.rand(shape, generator=g) < 0.3
        terminated = done & (torch.rand(shape, generator=g) < 0.5)
    elif pattern == "all":
        done = torch.ones(shape, dtype=torch.bool)
        terminated = torch.rand(shape, generator=g) < 0.5
    else:
        done = torch.zeros(shape, dtype=torch.bool)
        terminated = torch.zeros(shape, dtype=torch.bool)
    log_pi = (0.5 * torch.randn(shape, generator=g)).to(dtype)
    log_mu = (0.5 * torch.randn(shape, generator=g)).to(dtype)
    return {
        "value": randn(),
        "next_value": randn(),
        "reward": randn(),
        "done": done,
        "terminated": terminated,
        "log_pi": log_pi,
        "log_mu": log_mu,
    }


def assert_matches(ours: Tensor, ref: Tensor, dtype: torch.dtype) -> None:
    assert ours.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(ours.double(), ref, atol=tol, rtol=tol)
