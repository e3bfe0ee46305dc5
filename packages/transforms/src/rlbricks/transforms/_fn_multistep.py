"""n-step returns over trajectories: the maths behind ``MultiStepTransform``.

Trajectories are stored with time as a batch dimension (``[*B, T]`` for the
TensorDict, ``[*B, T, *feature]`` for its tensors). ``done[..., t]`` is the
``("next", "done")`` flag of step ``t``: step ``t + 1`` starts a new episode
when it is True.

For step ``t`` the transform looks ``k_t`` steps ahead, where ``k_t`` is the
largest ``k <= n`` such that steps ``t .. t + k - 1`` lie in the same episode
and in the batch::

    k_t   = min(n, e_t - t + 1),  e_t = first s >= t with done[s] or s == T - 1
    R_t   = sum_{i < k_t} gamma**i * r[t + i]
    s'_t  = next_state[t + k_t - 1]   (and its done / terminated / truncated flags)

A bootstrapped target is then ``R_t + gamma**k_t * (1 - terminated'_t) * V(s'_t)``.
"""

from __future__ import annotations

import torch

from rlbricks.transforms._errors import TransformValueError

__all__ = ["gather_time", "nstep_discounted_reward", "nstep_lookahead"]


def _check_time_dim(name: str, value: torch.Tensor, time_dim: int) -> int:
    if value.ndim == 0:
        raise TransformValueError(f"{name} must have a time dimension, got a scalar")
    if not -value.ndim <= time_dim < value.ndim:
        raise TransformValueError(
            f"time_dim={time_dim} is out of range for {name} of shape {tuple(value.shape)}"
        )
    return time_dim % value.ndim


def nstep_lookahead(done: torch.Tensor, n_steps: int) -> torch.Tensor:
    """How many steps each step of a trajectory looks ahead: ``k_t`` in ``[1, n_steps]``.

    Args:
        done: bool ``[*B, T]``: the ``("next", "done")`` flag of every step
            (a trailing singleton dim must be squeezed first).
        n_steps: the largest look-ahead (1 gives the usual one-step transitions).

    Returns:
        long ``[*B, T]``: ``k_t``, cut at the end of each episode and of the batch.

    Raises:
        TransformValueError: ``n_steps < 1`` or ``done`` is a scalar.

    Example:
        >>> import torch
        >>> done = torch.tensor([False, True, False, False, False])
        >>> nstep_lookahead(done, 3).tolist()
        [2, 1, 3, 2, 1]
    """
    if n_steps < 1:
        raise TransformValueError(f"n_steps must be >= 1, got {n_steps}")
    _check_time_dim("done", done, -1)
    steps = done.shape[-1]
    t = torch.arange(steps, device=done.device)
    is_end = done.bool().clone()
    is_end[..., -1] = True
    # first episode end at or after t: a reversed running minimum of the end positions
    ends = torch.where(is_end, t, steps)
    first_end = ends.flip(-1).cummin(-1).values.flip(-1)
    return torch.clamp(first_end - t + 1, max=n_steps)


def gather_time(value: torch.Tensor, index: torch.Tensor, time_dim: int) -> torch.Tensor:
    """``value`` read at time ``index[..., t]`` for every ``t`` (trailing dims follow along).

    Args:
        value: ``[*B, T, *F]`` with time at ``time_dim``.
        index: long ``[*B, T]``: the time step to read for every step.
        time_dim: where the time dim of ``value`` is (``len(B)``, or negative).

    Returns:
        ``[*B, T, *F]`` with ``out[b, t] = value[b, index[b, t]]``.

    Raises:
        TransformValueError: the leading dims of ``value`` are not ``index.shape``.

    Example:
        >>> import torch
        >>> x = torch.tensor([[10.0], [11.0], [12.0]])
        >>> gather_time(x, torch.tensor([2, 2, 0]), 0)[:, 0].tolist()
        [12.0, 12.0, 10.0]
    """
    dim = _check_time_dim("value", value, time_dim)
    if tuple(value.shape[: dim + 1]) != tuple(index.shape):
        raise TransformValueError(
            f"gather_time: index has shape {tuple(index.shape)}, expected the leading dims "
            f"{tuple(value.shape[: dim + 1])} of value (shape {tuple(value.shape)})"
        )
    trailing = value.shape[dim + 1 :]
    idx = index.reshape(*index.shape, *([1] * len(trailing))).expand(value.shape)
    return torch.gather(value, dim, idx)


def nstep_discounted_reward(
    reward: torch.Tensor, lookahead: torch.Tensor, gamma: float, time_dim: int
) -> torch.Tensor:
    """``R_t = sum_{i < k_t} gamma**i * reward[t + i]`` for every step ``t``.

    Args:
        reward: ``[*B, T, *F]`` (usually ``F = (1,)``) with time at ``time_dim``.
        lookahead: long ``[*B, T]``, the ``k_t`` of :func:`nstep_lookahead`.
        gamma: the discount factor.
        time_dim: where the time dim of ``reward`` is.

    Returns:
        The discounted sums, shaped like ``reward``.

    Raises:
        TransformValueError: the leading dims of ``reward`` are not ``lookahead.shape``.

    Example:
        >>> import torch
        >>> r = torch.tensor([1.0, 1.0, 1.0, 1.0])
        >>> k = torch.tensor([2, 1, 2, 1])
        >>> nstep_discounted_reward(r, k, 0.5, 0).tolist()
        [1.5, 1.0, 1.5, 1.0]
    """
    dim = _check_time_dim("reward", reward, time_dim)
    if tuple(reward.shape[: dim + 1]) != tuple(lookahead.shape):
        raise TransformValueError(
            f"nstep_discounted_reward: lookahead has shape {tuple(lookahead.shape)}, expected the "
            f"leading dims {tuple(reward.shape[: dim + 1])} of reward (shape {tuple(reward.shape)})"
        )
    steps = reward.shape[dim]
    n_max = int(lookahead.max()) if lookahead.numel() else 0
    trailing = reward.ndim - dim - 1
    out = torch.zeros_like(reward)
    for i in range(min(n_max, steps)):
        # reward[t + i], with zeros past the end of the batch
        shifted = reward.narrow(dim, i, steps - i)
        pad_shape = list(reward.shape)
        pad_shape[dim] = i
        shifted = torch.cat([shifted, reward.new_zeros(pad_shape)], dim)
        keep = (lookahead > i).reshape(*lookahead.shape, *([1] * trailing))
        out = out + torch.where(keep, shifted, torch.zeros_like(shifted)) * (gamma**i)
    return out
