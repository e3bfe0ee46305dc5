"""Value estimators as pure functions over tensors: GAE, TD(0), TD(1), TD(lambda), V-trace.

Conventions shared by every function:

* **Shapes.**  Every data tensor (values, reward, done, terminated, log-probs)
  has the same shape, with time along ``time_dim``.  The default
  ``time_dim=-2`` fits the data that flows in rlbricks, ``[*batch, T, 1]``
  (reward and done carry a trailing singleton dim); pass ``time_dim=-1`` for
  ``[*batch, T]`` tensors.  Dims after the time dim are features: each one is
  an independent sequence.  ``gamma``, ``lmbda`` and the V-trace thresholds
  are numbers or tensors broadcastable to the data shape (e.g. one discount
  per step).
* **Step t** is the transition ``s_t -> s'_t``: ``reward[t]`` is received,
  ``state_value[t] = V(s_t)`` and ``next_state_value[t] = V(s'_t)``, the value
  of the observation the step reached (``("next", "state_value")``).
* **Done vs terminated.**  ``terminated[t]`` means ``s'_t`` is terminal: its
  value is not bootstrapped (multiplied by 0).  ``done[t]`` (terminated *or*
  truncated) means the trajectory ends at step t: no recursion crosses into
  step t + 1, which belongs to another episode.  On a truncation (done but not
  terminated), ``V(s'_t)`` -- the value of the true last observation -- is
  bootstrapped.  A step that is terminated is treated as done even if
  ``done`` says otherwise.  The last step of the data always ends the
  recursion, bootstrapping from ``next_state_value``.
* **Speed.**  Each backward recursion runs as a parallel scan over time
  (``ceil(log2(T))`` vectorised steps, no Python loop over ``T``).
* **Gradients** flow through every tensor argument (and ``gamma``/``lmbda``
  when they are tensors); estimator modules call these under ``no_grad``
  unless built with ``differentiable=True``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlbricks.objectives.value._checks import as_mask
from rlbricks.objectives.value._checks import check_data
from rlbricks.objectives.value._checks import check_factor
from rlbricks.objectives.value._checks import check_floating
from rlbricks.objectives.value._checks import float_mask
from rlbricks.objectives.value._checks import time_dim_index
from rlbricks.objectives.value._scan import reverse_scan

__all__ = [
    "generalized_advantage_estimate",
    "td0_return_estimate",
    "td0_advantage_estimate",
    "td1_return_estimate",
    "td1_advantage_estimate",
    "td_lambda_return_estimate",
    "td_lambda_advantage_estimate",
    "vtrace_advantage_estimate",
    "discounted_cumsum",
]

Factor = float | Tensor
"""A discount-like factor: a number, or a tensor broadcastable to the data."""


def _ends(done: Tensor, terminated: Tensor) -> tuple[Tensor, Tensor]:
    """``(ended, terminated)`` as booleans; a terminated step always ends its trajectory.

    ``ended`` is always a new tensor, which the callers may modify.
    """
    terminated = as_mask(terminated)
    return as_mask(done) | terminated, terminated


def _keep(mask: Tensor, factor: Factor, dtype: torch.dtype) -> Tensor:
    """``factor * (1 - mask)``: the factor where ``mask`` is False, 0 where it is True."""
    return float_mask(~mask, dtype).mul_(factor)


def generalized_advantage_estimate(
    gamma: Factor,
    lmbda: Factor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    *,
    time_dim: int = -2,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimate (Schulman et al., 2016) and its value target.

    With ``V = state_value``, ``V' = next_state_value``::

        delta_t        = r_t + gamma * (1 - terminated_t) * V'_t - V_t
        A_t            = delta_t + gamma * lmbda * (1 - done_t) * A_{t+1},   A_T = 0
        value_target_t = A_t + V_t

    Args:
        gamma: the discount factor.
        lmbda: the GAE lambda (0 gives TD(0) advantages, 1 Monte-Carlo ones).
        state_value: ``V(s_t)``.
        next_state_value: ``V(s'_t)``.
        reward: ``r_t``.
        done: the trajectory ends at step t (terminated or truncated).
        terminated: ``s'_t`` is terminal (no bootstrap).
        time_dim: the time dimension (``-2`` for ``[*batch, T, 1]``).

    Returns:
        ``(advantage, value_target)``, each with the shape of ``reward``.

    Raises:
        ValueEstimatorValueError: the shapes differ, ``time_dim`` is out of range, or
            a factor does not broadcast to the data.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import generalized_advantage_estimate
        >>> reward = torch.ones(1, 3, 1)
        >>> value, next_value = torch.zeros(1, 3, 1), torch.zeros(1, 3, 1)
        >>> done = torch.tensor([False, False, True]).view(1, 3, 1)
        >>> adv, target = generalized_advantage_estimate(
        ...     0.5, 1.0, value, next_value, reward, done, done)
        >>> adv.flatten()
        tensor([1.7500, 1.5000, 1.0000])
    """
    fn = "generalized_advantage_estimate"
    shape = check_data(
        fn,
        state_value=state_value,
        next_state_value=next_state_value,
        reward=reward,
        done=done,
        terminated=terminated,
    )
    check_floating(fn, state_value=state_value, next_state_value=next_state_value, reward=reward)
    dim = time_dim_index(fn, time_dim, shape)
    check_factor(fn, "gamma", gamma, shape)
    check_factor(fn, "lmbda", lmbda, shape)
    ended, terminated = _ends(done, terminated)
    dtype = torch.result_type(reward, next_state_value)
    bootstrap = _keep(terminated, gamma, dtype)
    delta = torch.addcmul(reward, bootstrap, next_state_value).sub_(state_value)
    discount = _keep(ended, gamma * lmbda, dtype)
    advantage = reverse_scan(delta, discount, dim)
    return advantage, advantage + state_value


def td0_return_estimate(
    gamma: Factor, next_state_value: Tensor, reward: Tensor, terminated: Tensor
) -> Tensor:
    """One-step bootstrapped return: ``G_t = r_t + gamma * (1 - terminated_t) * V'_t``.

    Elementwise, so any shape works (all three tensors must share it).

    Args:
        gamma: the discount factor.
        next_state_value: ``V(s'_t)``.
        reward: ``r_t``.
        terminated: ``s'_t`` is terminal (no bootstrap).

    Returns:
        The return, with the shape of ``reward``.

    Raises:
        ValueEstimatorValueError: the shapes differ.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import td0_return_estimate
        >>> td0_return_estimate(0.9, torch.tensor([10.0, 10.0]), torch.tensor([1.0, 1.0]),
        ...                     torch.tensor([False, True]))
        tensor([10.,  1.])
    """
    fn = "td0_return_estimate"
    shape = check_data(fn, next_state_value=next_state_value, reward=reward, terminated=terminated)
    check_floating(fn, next_state_value=next_state_value, reward=reward)
    check_factor(fn, "gamma", gamma, shape)
    bootstrap = _keep(as_mask(terminated), gamma, torch.result_type(reward, next_state_value))
    return torch.addcmul(reward, bootstrap, next_state_value)


def td0_advantage_estimate(
    gamma: Factor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    terminated: Tensor,
) -> Tensor:
    """One-step TD error: ``r_t + gamma * (1 - terminated_t) * V'_t - V_t``.

    Args:
        gamma: the discount factor.
        state_value: ``V(s_t)``.
        next_state_value: ``V(s'_t)``.
        reward: ``r_t``.
        terminated: ``s'_t`` is terminal (no bootstrap).

    Returns:
        The advantage, with the shape of ``reward``.

    Raises:
        ValueEstimatorValueError: the shapes differ.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import td0_advantage_estimate
        >>> td0_advantage_estimate(0.5, torch.ones(2), torch.ones(2), torch.ones(2),
        ...                        torch.tensor([False, True]))
        tensor([0.5000, 0.0000])
    """
    check_data("td0_advantage_estimate", state_value=state_value, reward=reward)
    return td0_return_estimate(gamma, next_state_value, reward, terminated) - state_value


def td_lambda_return_estimate(
    gamma: Factor,
    lmbda: Factor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(lambda) return: a lambda-weighted mix of every n-step bootstrapped return.

    With ``V' = next_state_value``, backwards from the last step::

        G_t = r_t + gamma * (1 - terminated_t) * V'_t
              if step t ends its trajectory (done_t, or t is the last step)
        G_t = r_t + gamma * ((1 - lmbda) * V'_t + lmbda * G_{t+1})
              otherwise

    ``lmbda=0`` gives the TD(0) return, ``lmbda=1`` the TD(1) return.

    Args:
        gamma: the discount factor.
        lmbda: the lambda of TD(lambda).
        next_state_value: ``V(s'_t)``.
        reward: ``r_t``.
        done: the trajectory ends at step t (terminated or truncated).
        terminated: ``s'_t`` is terminal (no bootstrap).
        time_dim: the time dimension (``-2`` for ``[*batch, T, 1]``).

    Returns:
        The return, with the shape of ``reward``.

    Raises:
        ValueEstimatorValueError: the shapes differ, ``time_dim`` is out of range, or
            a factor does not broadcast to the data.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import td_lambda_return_estimate
        >>> next_value = torch.tensor([2.0, 4.0]).view(2, 1)
        >>> flags = torch.zeros(2, 1, dtype=torch.bool)
        >>> td_lambda_return_estimate(1.0, 0.5, next_value, torch.zeros(2, 1), flags, flags)
        tensor([[3.],
                [4.]])
    """
    fn = "td_lambda_return_estimate"
    shape = check_data(
        fn, next_state_value=next_state_value, reward=reward, done=done, terminated=terminated
    )
    check_floating(fn, next_state_value=next_state_value, reward=reward)
    dim = time_dim_index(fn, time_dim, shape)
    check_factor(fn, "gamma", gamma, shape)
    check_factor(fn, "lmbda", lmbda, shape)
    return _td_lambda(gamma, lmbda, next_state_value, reward, done, terminated, dim)


def _td_lambda(
    gamma: Factor,
    lmbda: Factor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    dim: int,
) -> Tensor:
    ended, terminated = _ends(done, terminated)
    steps = ended.shape[dim]
    if steps:
        ended.narrow(dim, steps - 1, 1).fill_(True)  # the data ends every trajectory
    # G_t = x_t + c_t * G_{t+1} with c_t = gamma * lmbda * (1 - ended_t) and
    # x_t = r_t + (1 - terminated_t) * V'_t * (gamma - c_t)
    dtype = torch.result_type(reward, next_state_value)
    discount = _keep(ended, gamma * lmbda, dtype)
    bootstrap = _keep(terminated, 1.0, dtype).mul_(next_state_value)
    target = torch.addcmul(reward, bootstrap, gamma - discount)
    return reverse_scan(target, discount, dim)


def td_lambda_advantage_estimate(
    gamma: Factor,
    lmbda: Factor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(lambda) advantage: :func:`td_lambda_return_estimate` minus ``state_value``.

    Args:
        gamma: the discount factor.
        lmbda: the lambda of TD(lambda).
        state_value: ``V(s_t)``.
        next_state_value: ``V(s'_t)``.
        reward: ``r_t``.
        done: the trajectory ends at step t (terminated or truncated).
        terminated: ``s'_t`` is terminal (no bootstrap).
        time_dim: the time dimension (``-2`` for ``[*batch, T, 1]``).

    Returns:
        The advantage, with the shape of ``reward``.

    Raises:
        ValueEstimatorValueError: as :func:`td_lambda_return_estimate`.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import td_lambda_advantage_estimate
        >>> flags = torch.zeros(2, 1, dtype=torch.bool)
        >>> td_lambda_advantage_estimate(1.0, 0.5, torch.ones(2, 1), torch.tensor([[2.0], [4.0]]),
        ...                              torch.zeros(2, 1), flags, flags).flatten()
        tensor([2., 3.])
    """
    check_data("td_lambda_advantage_estimate", state_value=state_value, reward=reward)
    returns = td_lambda_return_estimate(
        gamma, lmbda, next_state_value, reward, done, terminated, time_dim=time_dim
    )
    return returns - state_value


def td1_return_estimate(
    gamma: Factor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(1) return: the discounted reward sum up to the end of the trajectory, then a bootstrap.

    ``G_t = r_t + gamma * G_{t+1}`` inside a trajectory, and
    ``G_t = r_t + gamma * (1 - terminated_t) * V'_t`` on its last step (done,
    or the last step of the data).  The same as
    :func:`td_lambda_return_estimate` with ``lmbda=1``.

    Args:
        gamma: the discount factor.
        next_state_value: ``V(s'_t)``; read only where a trajectory ends.
        reward: ``r_t``.
        done: the trajectory ends at step t (terminated or truncated).
        terminated: ``s'_t`` is terminal (no bootstrap).
        time_dim: the time dimension (``-2`` for ``[*batch, T, 1]``).

    Returns:
        The return, with the shape of ``reward``.

    Raises:
        ValueEstimatorValueError: as :func:`td_lambda_return_estimate`.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import td1_return_estimate
        >>> flags = torch.zeros(3, dtype=torch.bool)
        >>> td1_return_estimate(0.5, torch.full((3,), 8.0), torch.ones(3), flags, flags,
        ...                     time_dim=-1)
        tensor([2.7500, 3.5000, 5.0000])
    """
    return td_lambda_return_estimate(
        gamma, 1.0, next_state_value, reward, done, terminated, time_dim=time_dim
    )


def td1_advantage_estimate(
    gamma: Factor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(1) advantage: :func:`td1_return_estimate` minus ``state_value``.

    Args:
        gamma: the discount factor.
        state_value: ``V(s_t)``.
        next_state_value: ``V(s'_t)``.
        reward: ``r_t``.
        done: the trajectory ends at step t (terminated or truncated).
        terminated: ``s'_t`` is terminal (no bootstrap).
        time_dim: the time dimension (``-2`` for ``[*batch, T, 1]``).

    Returns:
        The advantage, with the shape of ``reward``.

    Raises:
        ValueEstimatorValueError: as :func:`td_lambda_return_estimate`.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import td1_advantage_estimate
        >>> flags = torch.ones(2, dtype=torch.bool)
        >>> td1_advantage_estimate(0.9, torch.ones(2), torch.zeros(2), torch.ones(2), flags,
        ...                        flags, time_dim=-1)
        tensor([0., 0.])
    """
    check_data("td1_advantage_estimate", state_value=state_value, reward=reward)
    returns = td1_return_estimate(
        gamma, next_state_value, reward, done, terminated, time_dim=time_dim
    )
    return returns - state_value


def vtrace_advantage_estimate(
    gamma: Factor,
    log_pi: Tensor,
    log_mu: Tensor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor,
    rho_thresh: Factor = 1.0,
    c_thresh: Factor = 1.0,
    *,
    time_dim: int = -2,
) -> tuple[Tensor, Tensor]:
    """V-trace off-policy targets and advantages (Espeholt et al., 2018, IMPALA).

    With the importance ratio ``ratio_t = exp(log_pi_t - log_mu_t)``,
    ``rho_t = min(rho_thresh, ratio_t)`` and ``c_t = min(c_thresh, ratio_t)``::

        delta_t     = rho_t * (r_t + gamma * (1 - terminated_t) * V'_t - V_t)
        vs_t - V_t  = delta_t + gamma * (1 - done_t) * c_t * (vs_{t+1} - V_{t+1}),
                      with 0 after the last step
        advantage_t = rho_t * (r_t + gamma * (1 - terminated_t) * vs'_t - V_t)

    where ``vs'_t = vs_{t+1}`` inside a trajectory and ``V'_t`` on its last
    step (done, or the last step of the data).

    Args:
        gamma: the discount factor.
        log_pi: log-probability of the taken action under the policy being
            learnt (the target policy).
        log_mu: log-probability of the taken action under the policy that
            collected the data (the behaviour policy, ``"sample_log_prob"``).
        state_value: ``V(s_t)``.
        next_state_value: ``V(s'_t)``.
        reward: ``r_t``.
        done: the trajectory ends at step t (terminated or truncated).
        terminated: ``s'_t`` is terminal (no bootstrap).
        rho_thresh: the clip of the importance weights of the TD errors (rho bar).
        c_thresh: the clip of the trace-cutting coefficients (c bar).
        time_dim: the time dimension (``-2`` for ``[*batch, T, 1]``).

    Returns:
        ``(advantage, value_target)`` with ``value_target = vs``, each with the
        shape of ``reward``.

    Raises:
        ValueEstimatorValueError: the shapes differ, ``time_dim`` is out of range, or
            a factor does not broadcast to the data.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import vtrace_advantage_estimate
        >>> zeros, flags = torch.zeros(1, 2, 1), torch.zeros(1, 2, 1, dtype=torch.bool)
        >>> adv, vs = vtrace_advantage_estimate(
        ...     0.5, zeros, zeros, zeros, zeros, torch.ones(1, 2, 1), flags, flags)
        >>> vs.flatten(), adv.flatten()
        (tensor([1.5000, 1.0000]), tensor([1.5000, 1.0000]))
    """
    fn = "vtrace_advantage_estimate"
    shape = check_data(
        fn,
        log_pi=log_pi,
        log_mu=log_mu,
        state_value=state_value,
        next_state_value=next_state_value,
        reward=reward,
        done=done,
        terminated=terminated,
    )
    check_floating(
        fn,
        log_pi=log_pi,
        log_mu=log_mu,
        state_value=state_value,
        next_state_value=next_state_value,
        reward=reward,
    )
    dim = time_dim_index(fn, time_dim, shape)
    for name, factor in (("gamma", gamma), ("rho_thresh", rho_thresh), ("c_thresh", c_thresh)):
        check_factor(fn, name, factor, shape)
    ended, terminated = _ends(done, terminated)
    ratio = torch.sub(log_pi, log_mu).exp_()
    rho = ratio.clamp_max(rho_thresh)
    same_clip = not isinstance(c_thresh, Tensor) and c_thresh == rho_thresh
    trace = rho if same_clip else ratio.clamp_max(c_thresh)
    dtype = torch.result_type(reward, next_state_value)
    bootstrap = _keep(terminated, gamma, dtype)
    delta = torch.addcmul(reward, bootstrap, next_state_value).sub_(state_value).mul_(rho)
    discount = _keep(ended, gamma, dtype).mul_(trace)
    vs = reverse_scan(delta, discount, dim).add_(state_value)
    steps = shape[dim]
    vs_next = vs
    if steps:
        later = torch.cat(
            [vs.narrow(dim, 1, steps - 1), next_state_value.narrow(dim, steps - 1, 1)], dim
        )
        vs_next = torch.where(ended, next_state_value, later)
    advantage = torch.addcmul(reward, bootstrap, vs_next).sub_(state_value).mul_(rho)
    return advantage, vs


def discounted_cumsum(
    x: Tensor, gamma: Factor, done: Tensor | None = None, *, time_dim: int = -2
) -> Tensor:
    """Discounted sum of the future values of ``x``, restarted at every episode end.

    ``y_t = x_t + gamma * (1 - done_t) * y_{t+1}`` backwards from ``y_T = 0``:
    with rewards as ``x`` it is the reward-to-go (Monte-Carlo return without
    bootstrap).

    Args:
        x: the values to sum (e.g. rewards).
        gamma: the discount factor.
        done: where an episode ends (step t is its last); ``None`` for one
            unbroken sequence.
        time_dim: the time dimension (``-2`` for ``[*batch, T, 1]``).

    Returns:
        ``y``, with the shape of ``x``.

    Raises:
        ValueEstimatorValueError: the shapes differ, ``time_dim`` is out of range, or
            ``gamma`` does not broadcast to the data.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value.functional import discounted_cumsum
        >>> done = torch.tensor([False, True, False, False])
        >>> discounted_cumsum(torch.ones(4), 0.5, done, time_dim=-1)
        tensor([1.5000, 1.0000, 1.5000, 1.0000])
    """
    fn = "discounted_cumsum"
    if done is None:
        shape = check_data(fn, x=x)
    else:
        shape = check_data(fn, x=x, done=done)
    check_floating(fn, x=x)
    dim = time_dim_index(fn, time_dim, shape)
    check_factor(fn, "gamma", gamma, shape)
    if done is None:
        discount = torch.ones_like(x).mul_(gamma)
    else:
        discount = _keep(as_mask(done), gamma, x.dtype)
    return reverse_scan(x, discount, dim)
