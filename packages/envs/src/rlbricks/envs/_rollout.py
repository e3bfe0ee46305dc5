"""``rollout``: run an env for a number of steps and stack them on a time dim."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import torch

from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvValueError
from rlbricks.envs._step_mdp import step_mdp
from rlbricks.specs import Categorical
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

__all__ = ["rollout"]

_CHUNK_STEPS = 256  # random actions drawn at once (fewer for large action specs)
_CHUNK_NUMEL = 1 << 16  # at most this many action entries per draw


def _action_draws(spec: TensorSpec[Any], max_steps: int) -> Iterator[torch.Tensor | None] | None:
    """Random actions of an unmasked ``OneHot``/``Categorical`` spec, drawn a chunk at a time.

    One ``spec.rand((k,))`` replaces ``k`` calls of ``spec.rand()``: the same
    distribution (i.i.d. uniform), and on the CPU the same values for the same
    torch seed. Yields None once the spec holds a mask (an env may set one
    during the rollout): the caller then draws that step itself. None for
    other specs.
    """
    if spec.__class__ is not OneHot and spec.__class__ is not Categorical:
        return None
    return _draw_chunks(spec, max_steps)


def _draw_chunks(spec: OneHot | Categorical, remaining: int) -> Iterator[torch.Tensor | None]:
    chunk = max(1, min(_CHUNK_STEPS, _CHUNK_NUMEL // max(1, spec.shape.numel())))
    while remaining > 0:
        if spec.mask is not None:
            remaining -= 1
            yield None
            continue
        k = min(chunk, remaining)
        for action in spec.rand((k,)).unbind(0):  # views of one fresh tensor
            if spec.mask is not None:  # masked since the draw: drop the rest
                break
            remaining -= 1
            yield action


def rollout(
    env: EnvBase,
    max_steps: int,
    policy: Callable[[TensorDict], TensorDict] | None = None,
    *,
    auto_reset: bool = True,
    break_when_any_done: bool = True,
    tensordict: TensorDict | None = None,
) -> TensorDict:
    """Run ``env`` for up to ``max_steps`` steps with ``policy`` (random actions if None).

    Args:
        env: the environment.
        max_steps: the number of steps.
        policy: reads the root TensorDict and writes ``"action"``.
        auto_reset: reset first (with ``tensordict`` as the reset input if given).
        break_when_any_done: stop after the first step where any sub-env is done;
            otherwise finished sub-envs are reset and the rollout continues.
        tensordict: the first root TensorDict when ``auto_reset`` is False.

    Returns:
        The steps stacked on a new last batch dim: batch ``[*env.batch_size, T]``.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env = CountingEnv(max_steps=3)
        >>> td = env.rollout(10)
        >>> td.batch_size, td["next", "done"].squeeze(-1).tolist()
        (torch.Size([3]), [False, False, True])
    """
    if max_steps <= 0:
        raise EnvValueError(f"max_steps must be positive, got {max_steps}")
    if auto_reset:
        td = env.reset(tensordict)
    elif tensordict is None:
        raise EnvRuntimeError(
            "rollout(auto_reset=False) needs the first root TensorDict: tensordict=..."
        )
    else:
        td = tensordict
    if policy is None and type(env).rand_action is EnvBase.rand_action:
        fast = env._random_rollout(td, max_steps, break_when_any_done)
        if fast is not None:
            return fast
    elif policy is not None:
        with_policy = env.policy_rollout(td, policy, max_steps, break_when_any_done)
        if with_policy is not None:
            return with_policy[0]
    steps = []
    spec = None
    draws = None
    if policy is None and type(env).rand_action is EnvBase.rand_action:
        spec = env.action_spec  # the default rand_action, without a call per step
        if not break_when_any_done:  # every step runs: draw the actions a chunk at a time
            draws = _action_draws(spec, max_steps)
    batch_size = env.batch_size
    device = env.device
    for _ in range(max_steps):
        if spec is not None:
            action = next(draws) if draws is not None else None
            if action is None:
                action = spec.rand()
            if (
                td.__class__ is TensorDict
                and td.batch_size == batch_size
                and td.device in (device, None)  # identity or equality, as ``set`` checks
            ):
                td.entries["action"] = action  # the spec's shape starts with batch_size
            else:
                td.set("action", action)
        else:
            td = policy(td) if policy is not None else env.rand_action(td)
        if break_when_any_done:
            td = env.step(td)
            steps.append(td)
            if td.entries["next"].entries["done"].any():  # type: ignore[union-attr]
                break
            td = step_mdp(td)
        else:
            td, root = env.step_and_maybe_reset(td)
            steps.append(td)
            td = root
    return stack(steps, dim=len(env.batch_size))
