"""Transforms that step the env themselves: ``NoopResetEnv`` and ``FrameSkipTransform``.

Both call :attr:`Transform.parent` (the base env followed by the transforms
placed before them), so the extra steps go through those earlier transforms
like any other step. Transforms placed after them see one reset or one step.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import step_mdp
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformValueError

__all__ = ["FrameSkipTransform", "NoopResetEnv"]


def _parent_env(transform: Transform) -> EnvBase:
    parent = transform.parent
    if parent is None:
        name = type(transform).__name__
        raise TransformValueError(
            f"{name} steps the env itself: attach it to an env, TransformedEnv(env, {name}(...))"
        )
    return parent


def _noop_action(spec: TensorSpec[Any]) -> torch.Tensor:
    """Action 0: index 0 for discrete specs (one-hot at 0 for ``OneHot``), zeros otherwise."""
    action = spec.zero()
    if isinstance(spec, OneHot):
        action = action.clone()
        action[..., 0] = True
    return action


def _any_done(td: TensorDict) -> bool:
    done = td.get("done", None)
    return done is not None and bool(done.any())


class NoopResetEnv(Transform):
    """After each reset, take a random number of no-op actions (Atari's start randomisation).

    The number of no-ops is drawn uniformly in ``[1, noops]`` (exactly
    ``noops`` with ``random=False``); the no-op is action 0 (index 0 of a
    discrete action spec, zeros for a continuous one). If the episode ends
    during the no-ops, the env is reset again and that fresh reset is the
    output. On a plain TensorDict the transform does nothing. The no-op steps go through the transforms placed before this one
    (e.g. a frame stack sees the no-op frames).

    The draws use the transform's own generator: seeded with ``seed`` when
    given, otherwise from the operating system's entropy, separately in each
    process, so that ``ParallelEnv`` workers do not draw the same counts.

    A batched env steps all its sub-envs together, so on a batched env the
    transform only supports full resets; put it inside each sub-env instead
    (``ParallelEnv(n, lambda: TransformedEnv(make_env(), NoopResetEnv()))``).

    Args:
        noops: the largest (or, with ``random=False``, the exact) number of no-ops.
        random: draw the number of no-ops.
        seed: seed of the generator (None: OS entropy).

    Raises:
        TransformValueError: ``noops < 1``.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.transforms import NoopResetEnv, TransformedEnv
        >>> env = TransformedEnv(CountingEnv(max_steps=100), NoopResetEnv(noops=3, random=False))
        >>> env.reset()["observation"].item()
        3.0
    """

    def __init__(self, noops: int = 30, random: bool = True, *, seed: int | None = None) -> None:
        if noops < 1:
            raise TransformValueError(f"NoopResetEnv: noops must be >= 1, got {noops}")
        super().__init__()
        self.noops = noops
        self.random = random
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._generator_pid = -1

    def _draw(self) -> int:
        if not self.random:
            return self.noops
        if self._generator is None or self._generator_pid != os.getpid():
            gen = torch.Generator()
            if self.seed is not None:
                gen.manual_seed(self.seed)
            else:
                gen.seed()
            self._generator, self._generator_pid = gen, os.getpid()
        return int(torch.randint(1, self.noops + 1, (), generator=self._generator))

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        parent = _parent_env(self)
        batch = tensordict_reset.batch_size
        mask = self.reset_mask(tensordict, batch)
        if mask is not None and not bool(mask.all()):
            if not batch:
                return tensordict_reset  # nothing was reset
            raise TransformValueError(
                "NoopResetEnv got a partial reset of a batched env, whose no-op steps would move "
                "the other sub-envs too: put NoopResetEnv inside each sub-env, e.g. "
                "ParallelEnv(n, lambda: TransformedEnv(make_env(), NoopResetEnv()))"
            )
        root = tensordict_reset
        action = _noop_action(parent.action_spec)
        for _ in range(self._draw()):
            step_in = root.copy()
            step_in.set("action", action.clone())
            stepped = parent.step(step_in)
            root = step_mdp(stepped, keep_other=False)
            if _any_done(root):
                root = parent.reset()
                break
        return root

    def _call(self, tensordict: TensorDict) -> TensorDict:
        return tensordict  # no-ops only happen on an env

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Identity: no-ops only happen on an env.

        Example:
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import NoopResetEnv
            >>> td = TensorDict()
            >>> NoopResetEnv()(td) is td
            True
        """
        return tensordict

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_generator"] = None  # each copy (and process) draws from its own generator
        state["_generator_pid"] = -1
        return state

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"noops={self.noops}, random={self.random}"


class FrameSkipTransform(Transform):
    """Repeat each action ``frame_skip`` times in the env, summing the rewards.

    The repetition stops early when the episode ends; the output is the last
    step's (observation, done flags, ...) with the summed reward. On a plain
    TensorDict the transform does nothing. On a
    batched env all sub-envs are stepped together and the repetition stops as
    soon as any of them is done (the others lose the remaining repeats of
    that step); for exact per-sub-env skipping put the transform inside each
    sub-env (``ParallelEnv(n, lambda: TransformedEnv(make_env(), FrameSkipTransform(4)))``)
    or use ``GymEnv(..., frame_skip=k)``.

    Args:
        frame_skip: how many times each action is applied (1: no change).

    Raises:
        TransformValueError: ``frame_skip < 1``.

    Example:
        >>> import torch
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.transforms import FrameSkipTransform, TransformedEnv
        >>> env = TransformedEnv(CountingEnv(max_steps=5), FrameSkipTransform(2))
        >>> td = env.rollout(10, policy=lambda td: td.set("action", torch.ones(1, dtype=torch.long)))
        >>> td["next", "observation"].squeeze(-1).tolist(), td["next", "reward"].squeeze(-1).tolist()
        ([2.0, 4.0, 5.0], [2.0, 2.0, 1.0])
    """

    def __init__(self, frame_skip: int = 1) -> None:
        if frame_skip < 1:
            raise TransformValueError(
                f"FrameSkipTransform: frame_skip must be >= 1, got {frame_skip}"
            )
        super().__init__()
        self.frame_skip = frame_skip

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        if self.frame_skip == 1:
            return next_tensordict
        parent = _parent_env(self)
        step_in = self.inv(tensordict)
        reward = next_tensordict.get("reward")
        for _ in range(self.frame_skip - 1):
            if _any_done(next_tensordict):
                break
            next_tensordict = parent.step(step_in.copy()).get("next")
            reward = reward + next_tensordict.get("reward")
        next_tensordict.set("reward", reward)
        return next_tensordict

    def _call(self, tensordict: TensorDict) -> TensorDict:
        return tensordict  # repeats only happen on an env

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Identity: stored data already holds the skipped steps' results.

        Example:
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import FrameSkipTransform
            >>> td = TensorDict()
            >>> FrameSkipTransform(4)(td) is td
            True
        """
        return tensordict

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"frame_skip={self.frame_skip}"
