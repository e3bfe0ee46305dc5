"""Small deterministic environments for tests (yours and ours).

* ``CountingEnv`` — the observation counts the steps; done after ``max_steps``.
* ``NestedSpecEnv`` — nested observation keys (``("data", "states")``).
* ``ContinuousActionEnv`` — a point moved by a bounded 2-d action.
* ``CrashingEnv`` — a ``CountingEnv`` whose ``_step`` raises after ``crash_after`` steps.
* ``HangingEnv`` — a ``CountingEnv`` whose ``_step`` hangs after ``hang_after`` steps.

All of them take ``batch_size=`` (and reset sub-envs selectively with
``"_reset"``), so batched code paths can be tested without a simulator.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from rlbricks.envs._base import DeviceLike
from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvValueError
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

__all__ = ["ContinuousActionEnv", "CountingEnv", "CrashingEnv", "HangingEnv", "NestedSpecEnv"]


class _Counter(EnvBase):
    """Shared step counting with partial resets."""

    def __init__(self, max_steps: int, batch_size: Any, device: DeviceLike) -> None:
        super().__init__(batch_size=batch_size, device=device)
        if max_steps <= 0:
            raise EnvValueError(f"max_steps must be positive, got {max_steps}")
        self.max_steps = max_steps
        self.count = torch.zeros((*self.batch_size, 1), dtype=torch.long, device=self.device)
        self.seed: int | None = None

    def _reset_count(self, tensordict: TensorDict | None) -> None:
        if tensordict is not None and "_reset" in tensordict:
            self.count = torch.where(tensordict.get("_reset"), 0, self.count)
        else:
            self.count = torch.zeros_like(self.count)

    def _advance(self) -> torch.Tensor:
        self.count = self.count + 1
        return self.count >= self.max_steps

    def _set_seed(self, seed: int) -> None:
        self.seed = seed


class CountingEnv(_Counter):
    """The observation is the number of steps taken; the episode ends after ``max_steps``.

    The action (``Categorical(2)``) is written back as the reward, so a rollout
    also checks that actions reach the env.

    Args:
        max_steps: episode length (``terminated`` at that step).
        batch_size: batch shape of the env.
        device: device of its tensors.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env = CountingEnv(max_steps=2, batch_size=[3])
        >>> td = env.rollout(5, break_when_any_done=False)
        >>> td["next", "observation"][0, :, 0].tolist()
        [1.0, 2.0, 1.0, 2.0, 1.0]
    """

    def __init__(self, max_steps: int = 5, batch_size: Any = (), device: DeviceLike = None) -> None:
        super().__init__(max_steps, batch_size, device)
        bs = self.batch_size
        self.observation_spec = Composite(
            observation=Unbounded(shape=(*bs, 1), device=self.device), shape=bs
        )
        self.action_spec = Categorical(2, shape=(*bs, 1), device=self.device)
        self.reward_spec = Unbounded(shape=(*bs, 1), device=self.device)

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        self._reset_count(tensordict)
        return TensorDict(
            {"observation": self.count.float()}, batch_size=self.batch_size, device=self.device
        )

    def _step(self, tensordict: TensorDict) -> TensorDict:
        terminated = self._advance()
        return TensorDict(
            {
                "observation": self.count.float(),
                "reward": tensordict.get("action").float(),
                "terminated": terminated,
            },
            batch_size=self.batch_size,
            device=self.device,
        )


class CrashingEnv(CountingEnv):
    """A ``CountingEnv`` whose ``_step`` raises an ``EnvRuntimeError`` after ``crash_after`` steps.

    Example:
        >>> from rlbricks.envs.testing import CrashingEnv
        >>> env = CrashingEnv(crash_after=1)
        >>> _ = env.rand_step()
        >>> try:
        ...     env.rand_step()
        ... except RuntimeError as err:
        ...     print(err)
        CrashingEnv: planned crash after 1 steps
    """

    def __init__(
        self,
        crash_after: int = 2,
        max_steps: int = 100,
        batch_size: Any = (),
        device: DeviceLike = None,
    ) -> None:
        super().__init__(max_steps=max_steps, batch_size=batch_size, device=device)
        self.crash_after = crash_after
        self.steps_done = 0

    def _step(self, tensordict: TensorDict) -> TensorDict:
        if self.steps_done >= self.crash_after:
            raise EnvRuntimeError(f"CrashingEnv: planned crash after {self.crash_after} steps")
        self.steps_done += 1
        return super()._step(tensordict)


class HangingEnv(CountingEnv):
    """A ``CountingEnv`` whose step number ``hang_after + 1`` hangs (a simulator that never answers).

    That step sleeps ``hang_for`` seconds, or forever when ``hang_for`` is None
    (the default); every other step is immediate. Steps are counted across
    resets. Use it to test timeouts of worker processes (``ParallelEnv``, the
    multiprocess collectors): the parent must raise, kill the worker and go on.

    Args:
        hang_after: the number of steps that run normally first.
        hang_for: how long the hanging step sleeps; None: forever.
        max_steps: episode length (as ``CountingEnv``).
        batch_size: batch shape of the env.
        device: device of its tensors.

    Example:
        >>> import time
        >>> from rlbricks.envs.testing import HangingEnv
        >>> env = HangingEnv(hang_after=1, hang_for=0.2)
        >>> _ = env.rand_step()  # immediate
        >>> start = time.monotonic()
        >>> _ = env.rand_step()  # sleeps 0.2 s (with hang_for=None: forever)
        >>> time.monotonic() - start >= 0.2
        True
    """

    def __init__(
        self,
        hang_after: int = 2,
        hang_for: float | None = None,
        max_steps: int = 100,
        batch_size: Any = (),
        device: DeviceLike = None,
    ) -> None:
        super().__init__(max_steps=max_steps, batch_size=batch_size, device=device)
        self.hang_after = hang_after
        self.hang_for = hang_for
        self.steps_done = 0

    def _step(self, tensordict: TensorDict) -> TensorDict:
        if self.steps_done == self.hang_after:
            if self.hang_for is None:
                while True:  # until the process is killed
                    time.sleep(3600)
            time.sleep(self.hang_for)
        self.steps_done += 1
        return super()._step(tensordict)


class NestedSpecEnv(_Counter):
    """Observations under nested keys: ``("data", "states")`` [3] and ``("data", "step")`` [1].

    Example:
        >>> from rlbricks.envs import check_env_specs
        >>> from rlbricks.envs.testing import NestedSpecEnv
        >>> env = NestedSpecEnv()
        >>> env.reset()["data", "states"].shape
        torch.Size([3])
        >>> check_env_specs(env)
    """

    def __init__(self, max_steps: int = 5, batch_size: Any = (), device: DeviceLike = None) -> None:
        super().__init__(max_steps, batch_size, device)
        bs = self.batch_size
        data = Composite(
            states=Unbounded(shape=(*bs, 3), device=self.device),
            step=Unbounded(shape=(*bs, 1), device=self.device),
            shape=bs,
        )
        self.observation_spec = Composite(data=data, shape=bs)
        self.action_spec = Unbounded(shape=(*bs, 1), device=self.device)
        self.reward_spec = Unbounded(shape=(*bs, 1), device=self.device)

    def _obs(self) -> TensorDict:
        step = self.count.float()
        return TensorDict(
            {"data": {"states": step.expand(*self.batch_size, 3).clone(), "step": step}},
            batch_size=self.batch_size,
            device=self.device,
        )

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        self._reset_count(tensordict)
        return self._obs()

    def _step(self, tensordict: TensorDict) -> TensorDict:
        truncated = self._advance()
        out = self._obs()
        out.set("reward", tensordict.get("action").sum(-1, keepdim=True))
        out.set("truncated", truncated)
        return out


class ContinuousActionEnv(_Counter):
    """A point in the plane moved by a bounded action; reward is minus its distance to 0.

    Episodes are truncated after ``max_steps``.

    Example:
        >>> import torch
        >>> from rlbricks.envs.testing import ContinuousActionEnv
        >>> env = ContinuousActionEnv()
        >>> env.action_spec.shape, env.reset()["observation"].tolist()
        (torch.Size([2]), [0.0, 0.0])
    """

    def __init__(
        self, max_steps: int = 10, batch_size: Any = (), device: DeviceLike = None
    ) -> None:
        super().__init__(max_steps, batch_size, device)
        bs = self.batch_size
        self.observation_spec = Composite(
            observation=Unbounded(shape=(*bs, 2), device=self.device), shape=bs
        )
        self.action_spec = Bounded(-1.0, 1.0, shape=(*bs, 2), device=self.device)
        self.reward_spec = Unbounded(shape=(*bs, 1), device=self.device)
        self.position = torch.zeros((*bs, 2), device=self.device)

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        if tensordict is not None and "_reset" in tensordict:
            self.position = torch.where(tensordict.get("_reset"), 0.0, self.position)
        else:
            self.position = torch.zeros_like(self.position)
        self._reset_count(tensordict)
        return TensorDict(
            {"observation": self.position.clone()}, batch_size=self.batch_size, device=self.device
        )

    def _step(self, tensordict: TensorDict) -> TensorDict:
        self.position = self.position + tensordict.get("action")
        truncated = self._advance()
        return TensorDict(
            {
                "observation": self.position.clone(),
                "reward": -self.position.norm(dim=-1, keepdim=True),
                "truncated": truncated,
            },
            batch_size=self.batch_size,
            device=self.device,
        )
