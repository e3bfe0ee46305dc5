"""Per-episode bookkeeping: ``StepCounter`` (with truncation) and ``InitTracker``."""

from __future__ import annotations

import torch

from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Unbounded
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformKeyError
from rlbricks.transforms._errors import TransformValueError

__all__ = ["InitTracker", "StepCounter"]


def _flag_shape(tensordict: TensorDict) -> tuple[int, ...]:
    return (*tensordict.batch_size, 1)


def _next_of(tensordict: TensorDict, owner: str) -> TensorDict:
    nxt = tensordict.get("next", None)
    if not isinstance(nxt, TensorDict):
        raise TransformKeyError(
            f"{owner} needs the 'next' entries of stepped data (env.step output)"
        )
    return nxt


def _done_of(nxt: TensorDict, owner: str, key: NestedKey) -> torch.Tensor:
    done = nxt.get("done", None)
    if done is None:
        raise TransformKeyError(
            f"{owner} over trajectories needs ('next', 'done') to find the episode ends "
            f"(or a root {key!r} entry, for single transitions)"
        )
    return done


def _starts(done: torch.Tensor, t_dim: int) -> torch.Tensor:
    """Whether each step of trajectories along ``t_dim`` starts an episode (first step, or
    the step after a done)."""
    first = torch.ones_like(done.narrow(t_dim, 0, 1))
    return torch.cat([first, done.narrow(t_dim, 0, done.shape[t_dim] - 1)], dim=t_dim)


class StepCounter(Transform):
    """Count the steps of each episode in ``"step_count"``; optionally truncate at ``max_steps``.

    A reset writes ``step_count = 0``; each step writes the input's count
    plus one to ``("next", "step_count")`` (int64 ``[*batch, 1]``, declared in
    the observation spec, and in the state spec as the step's input). When it reaches ``max_steps``, ``"truncated"`` and
    ``"done"`` are set, so rollouts and collectors start a new episode. The
    count lives in the data, not in the transform: partial resets and
    ``ParallelEnv`` workers need nothing special. A step input without
    ``"step_count"`` counts as the start of an episode.

    On a plain TensorDict: when the root holds ``"step_count"``, the step rule
    is applied; otherwise the data is read as trajectories along the last
    batch dim, each starting an episode, and the counts restart after every
    ``("next", "done")``.

    Args:
        max_steps: truncate episodes after this many steps (None: never).
        step_count_key: where the count goes.
        truncated_key: the flag set at ``max_steps`` (``"done"`` is set too).

    Raises:
        TransformValueError: ``max_steps`` is not positive.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.transforms import StepCounter, TransformedEnv
        >>> env = TransformedEnv(CountingEnv(max_steps=100), StepCounter(max_steps=3))
        >>> td = env.rollout(10)
        >>> td["next", "step_count"].squeeze(-1).tolist(), td["next", "truncated"].squeeze(-1).tolist()
        ([1, 2, 3], [False, False, True])
    """

    def __init__(
        self,
        max_steps: int | None = None,
        step_count_key: NestedKey = "step_count",
        truncated_key: NestedKey = "truncated",
    ) -> None:
        if max_steps is not None and max_steps < 1:
            raise TransformValueError(f"StepCounter: max_steps must be positive, got {max_steps}")
        super().__init__()
        self.max_steps = max_steps
        self.step_count_key = step_count_key
        self.truncated_key = truncated_key

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Declare ``step_count`` (int64 ``[*batch, 1]``) in the observation and state specs.

        As a state entry, a batched env running this transform in its sub-envs
        passes each sub-env its current count.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, StepCounter
            >>> specs = StepCounter(5).transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            >>> specs.observation["step_count"].high
            tensor([5])
        """
        shape = (*specs.batch_size, 1)
        if self.max_steps is None:
            spec: Unbounded | Bounded = Unbounded(
                shape=shape, device=specs.device, dtype=torch.int64
            )
        else:
            spec = Bounded(0, self.max_steps, shape=shape, device=specs.device, dtype=torch.int64)
        specs.observation[self.step_count_key] = spec
        # also an input: batched envs (SerialEnv, ParallelEnv) pass it on to their sub-envs' step
        specs.state[self.step_count_key] = spec.clone()
        if self.max_steps is not None and self.truncated_key not in specs.done:
            raise TransformValueError(
                f"StepCounter: the env's done spec has no {self.truncated_key!r} entry to set at "
                f"max_steps; its entries are {specs.done.keys(include_nested=True)}"
            )
        return specs

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        zeros = torch.zeros(
            _flag_shape(tensordict_reset), dtype=torch.int64, device=tensordict_reset.device
        )
        return tensordict_reset.set(self.step_count_key, zeros)

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        previous = tensordict.get(self.step_count_key, None)
        if previous is None:
            count = torch.ones(
                _flag_shape(next_tensordict), dtype=torch.int64, device=next_tensordict.device
            )
        else:
            count = previous + 1
        next_tensordict.set(self.step_count_key, count)
        if self.max_steps is not None:
            self._truncate(next_tensordict, count >= self.max_steps)
        return next_tensordict

    def _truncate(self, next_tensordict: TensorDict, reached: torch.Tensor) -> None:
        truncated = next_tensordict.get(self.truncated_key)
        next_tensordict.set(self.truncated_key, truncated | reached)
        done = next_tensordict.get("done", None)
        if done is not None:
            next_tensordict.set("done", done | reached)

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Step counts of a plain TensorDict (see the class docstring for the two cases).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import StepCounter
            >>> done = torch.tensor([False, True, False, False]).unsqueeze(-1)
            >>> td = TensorDict({"next": {"done": done, "truncated": torch.zeros_like(done)}},
            ...                 batch_size=[4])
            >>> StepCounter()(td)["next", "step_count"].squeeze(-1).tolist()
            [1, 2, 1, 2]
        """
        nxt = _next_of(tensordict, "StepCounter")
        key = self.step_count_key
        if key not in tensordict.keys(include_nested=True):
            if not tensordict.batch_size:
                raise TransformValueError(
                    f"StepCounter on a TensorDict without batch dims needs the root {key!r}"
                )
            t_dim = tensordict.batch_dims - 1
            starts = _starts(_done_of(nxt, "StepCounter", key), t_dim)
            count = torch.zeros(_flag_shape(tensordict), dtype=torch.int64, device=starts.device)
            run = torch.zeros_like(count.select(t_dim, 0))
            for t in range(tensordict.batch_size[-1]):
                run = torch.where(starts.select(t_dim, t), torch.zeros_like(run), run + 1)
                count.select(t_dim, t).copy_(run)
            tensordict.set(key, count)
        return tensordict.set("next", self._step(tensordict, nxt))

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"max_steps={self.max_steps}"


class InitTracker(Transform):
    """Flag the first step of every episode in ``"is_init"`` (bool ``[*batch, 1]``).

    A reset writes True (for the sub-envs it resets), a step writes False to
    ``("next", "is_init")``. Recurrent policies use it to reset their hidden
    state. Declared in the observation spec.

    On a plain TensorDict: when the root holds ``"is_init"``, only
    ``("next", "is_init")`` is written (False); otherwise the data is read as
    trajectories along the last batch dim: the root flag is True at the first
    step and after every ``("next", "done")``.

    Args:
        init_key: where the flag goes.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.transforms import InitTracker, TransformedEnv
        >>> env = TransformedEnv(CountingEnv(max_steps=2), InitTracker())
        >>> td = env.rollout(4, break_when_any_done=False)
        >>> td["is_init"].squeeze(-1).tolist()
        [True, False, True, False]
    """

    def __init__(self, init_key: NestedKey = "is_init") -> None:
        super().__init__()
        self.init_key = init_key

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Declare the flag (bool ``[*batch, 1]``) in the observation spec.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, InitTracker
            >>> InitTracker().transform_env_specs(EnvSpecs.from_env(CountingEnv())).observation["is_init"].dtype
            torch.bool
        """
        specs.observation[self.init_key] = Categorical(
            2, shape=(*specs.batch_size, 1), device=specs.device, dtype=torch.bool
        )
        return specs

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        ones = torch.ones(
            _flag_shape(tensordict_reset), dtype=torch.bool, device=tensordict_reset.device
        )
        return tensordict_reset.set(self.init_key, ones)

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        zeros = torch.zeros(
            _flag_shape(next_tensordict), dtype=torch.bool, device=next_tensordict.device
        )
        return next_tensordict.set(self.init_key, zeros)

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Episode-start flags of a plain TensorDict (see the class docstring).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import InitTracker
            >>> done = torch.tensor([False, True, False]).unsqueeze(-1)
            >>> InitTracker()(TensorDict({"next": {"done": done}}, batch_size=[3]))["is_init"].squeeze(-1)
            tensor([ True, False,  True])
        """
        nxt = _next_of(tensordict, "InitTracker")
        if self.init_key not in tensordict.keys(include_nested=True):
            if not tensordict.batch_size:
                raise TransformValueError(
                    f"InitTracker on a TensorDict without batch dims needs the root {self.init_key!r}"
                )
            done = _done_of(nxt, "InitTracker", self.init_key)
            tensordict.set(self.init_key, _starts(done, tensordict.batch_dims - 1))
        return tensordict.set("next", self._step(tensordict, nxt))

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"init_key={self.init_key!r}"
