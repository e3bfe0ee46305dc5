"""``MultiStepTransform``: n-step transitions from collected trajectories."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformKeyError
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._fn_multistep import gather_time
from rlbricks.transforms._fn_multistep import nstep_discounted_reward
from rlbricks.transforms._fn_multistep import nstep_lookahead
from rlbricks.transforms._fn_trajectory import trajectory_ends

__all__ = ["MultiStepTransform"]

_ENV_ERROR = (
    "MultiStepTransform needs future steps, which an env cannot give: apply it to collected "
    "trajectories [*B, T] (a collector's postproc, or before extending a replay buffer)"
)


class MultiStepTransform(Transform):
    """Turn one-step transitions of trajectories ``[*B, T]`` into n-step transitions.

    For each step ``t`` the transform looks ``k_t`` steps ahead: ``k_t = n_steps``,
    cut at the end of the episode (``("next", "done")``, or a change of
    ``("collector", "traj_ids")``) and at the end of the batch. Then:

    * ``("next", "reward")`` becomes ``sum_{i < k_t} gamma**i * reward[t + i]``
      (the one-step reward is kept in ``("next", "original_reward")``);
    * every other ``("next", ...)`` entry (observation, done, terminated,
      truncated, ...) is read at step ``t + k_t - 1``;
    * ``"steps_to_next_obs"`` (int64 ``[*B, T, 1]``) holds ``k_t``: bootstrap
      the value of ``("next", "observation")`` with ``gamma ** k_t`` (and
      ``1 - ("next", "terminated")``).

    Time is the last batch dim, as collectors and rollouts produce it. Use it
    as a collector ``postproc`` or call it on a batch before extending a
    replay buffer; applied to sampled slices it works as long as the sample
    keeps the ``[*B, T]`` layout. A batch cut mid-episode gives its last steps
    a shorter look-ahead (recorded in ``steps_to_next_obs``). It cannot be
    attached to an env (the future is not known there).

    Args:
        n_steps: the look-ahead ``n`` (1 leaves the transitions as they are,
            apart from the added entries).
        gamma: the discount factor.
        reward_key: the reward entry under ``"next"``.

    Raises:
        TransformValueError: ``n_steps < 1`` or ``gamma`` outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import MultiStepTransform
        >>> td = TensorDict({
        ...     "observation": torch.arange(4.0).unsqueeze(-1),
        ...     "next": {"observation": torch.arange(1.0, 5.0).unsqueeze(-1),
        ...              "reward": torch.ones(4, 1),
        ...              "done": torch.tensor([[False], [True], [False], [False]])},
        ... }, batch_size=[4])
        >>> out = MultiStepTransform(n_steps=2, gamma=0.5)(td)
        >>> out["next", "reward"].squeeze(-1).tolist(), out["steps_to_next_obs"].squeeze(-1).tolist()
        ([1.5, 1.0, 1.5, 1.0], [2, 1, 2, 1])
        >>> out["next", "observation"].squeeze(-1).tolist()
        [2.0, 2.0, 4.0, 4.0]
    """

    def __init__(self, n_steps: int, gamma: float, reward_key: NestedKey = "reward") -> None:
        if n_steps < 1:
            raise TransformValueError(f"MultiStepTransform: n_steps must be >= 1, got {n_steps}")
        if not 0.0 <= gamma <= 1.0:
            raise TransformValueError(f"MultiStepTransform: gamma must be in [0, 1], got {gamma}")
        super().__init__()
        self.n_steps = n_steps
        self.gamma = gamma
        self.reward_key = reward_key

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Rewrite the ``"next"`` entries of trajectories ``[*B, T]`` as n-step transitions.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import MultiStepTransform
            >>> td = TensorDict({"next": {"reward": torch.ones(3, 1),
            ...                           "done": torch.zeros(3, 1, dtype=torch.bool)}}, batch_size=[3])
            >>> MultiStepTransform(3, 0.5)(td)["next", "reward"].squeeze(-1).tolist()
            [1.75, 1.5, 1.0]
        """
        nxt = tensordict.get("next", None)
        if not isinstance(nxt, TensorDict):
            raise TransformKeyError(
                "MultiStepTransform needs the 'next' entries of stepped trajectories "
                f"(keys: {list(tensordict.keys())})"
            )
        ends = trajectory_ends(tensordict, "MultiStepTransform")
        lookahead = nstep_lookahead(ends, self.n_steps)
        time_dim = tensordict.batch_dims - 1
        steps = tensordict.batch_size[-1]
        t = torch.arange(steps, device=lookahead.device)
        index = t + lookahead - 1
        reward = nxt.get(self.reward_key, None)
        if reward is None:
            raise TransformKeyError(
                f"MultiStepTransform: no ('next', {self.reward_key!r}) entry; the 'next' keys "
                f"are {list(nxt.keys(include_nested=True, leaves_only=True))}"
            )
        shifted = TensorDict(batch_size=nxt.batch_size, device=nxt.device)
        for key, value in nxt.items(include_nested=True, leaves_only=True):
            shifted.set(key, gather_time(value, index, time_dim))
        shifted.set(
            self.reward_key, nstep_discounted_reward(reward, lookahead, self.gamma, time_dim)
        )
        shifted.set("original_reward", reward)
        tensordict.set("next", shifted)
        tensordict.set("steps_to_next_obs", lookahead.unsqueeze(-1))
        return tensordict

    def _call(self, tensordict: TensorDict) -> TensorDict:
        raise TransformValueError(_ENV_ERROR)

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        raise TransformValueError(_ENV_ERROR)

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        raise TransformValueError(_ENV_ERROR)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Always raises: the transform works on collected trajectories only.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, MultiStepTransform, TransformError
            >>> try:
            ...     MultiStepTransform(3, 0.99).transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            ... except TransformError:
            ...     print("not on an env")
            not on an env
        """
        raise TransformValueError(_ENV_ERROR)

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        extra: dict[str, Any] = {"n_steps": self.n_steps, "gamma": self.gamma}
        return ", ".join(f"{k}={v}" for k, v in extra.items())
