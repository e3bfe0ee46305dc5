"""``rollout``: run an env for a number of steps and stack them on a time dim."""

from __future__ import annotations

from collections.abc import Callable

from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvError
from rlbricks.envs._step_mdp import step_mdp
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

__all__ = ["rollout"]


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
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if auto_reset:
        td = env.reset(tensordict)
    elif tensordict is None:
        raise EnvError("rollout(auto_reset=False) needs the first root TensorDict: tensordict=...")
    else:
        td = tensordict
    steps = []
    spec = None
    if policy is None and type(env).rand_action is EnvBase.rand_action:
        spec = env.action_spec  # the default rand_action, without a call per step
    for _ in range(max_steps):
        if spec is not None:
            td.set("action", spec.rand())
        else:
            td = policy(td) if policy is not None else env.rand_action(td)
        if break_when_any_done:
            td = env.step(td)
            steps.append(td)
            if td._tensordict["next"]._tensordict["done"].any():  # type: ignore[union-attr]
                break
            td = step_mdp(td)
        else:
            td, root = env.step_and_maybe_reset(td)
            steps.append(td)
            td = root
    return stack(steps, dim=len(env.batch_size))
