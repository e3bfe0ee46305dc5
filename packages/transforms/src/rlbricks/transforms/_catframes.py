"""``CatFrames``: stack the last ``N`` frames, on an env and on stored trajectories."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs import Bounded
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformKeyError
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._fn_catframes import fill_frames
from rlbricks.transforms._fn_catframes import push_frame
from rlbricks.transforms._fn_catframes import stack_frames_in_time
from rlbricks.transforms._fn_trajectory import trajectory_ends
from rlbricks.transforms._spec_utils import reshape_spec
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["CatFrames"]


class CatFrames(Transform):
    """Concatenate the last ``N`` frames of each entry along ``dim`` (oldest first).

    On an env, the transform keeps the current stack of every sub-env: a
    reset fills it with the first frame of the episode repeated ``N`` times
    (only for the sub-envs that the ``"_reset"`` mask restarts), and each step
    drops the oldest frame and appends the new one. Inside ``ParallelEnv``
    workers or on the batched output, the results are the same.

    On a plain TensorDict of trajectories (batch ``[*B, T]``, time last, as
    collectors and rollouts produce), the stacks are rebuilt along time for
    the root entries and the ``("next", key)`` entries, never mixing two
    episodes: episodes end at ``("next", "done")`` (and where
    ``("collector", "traj_ids")`` changes). The first frame of an episode
    fills the stack, exactly as on the env, so a replay buffer can store
    single frames and stack them when sampling slices of trajectories. A
    trajectory that starts mid-episode starts its stacks with its first frame.

    The specs of the entries grow ``N`` times along ``dim`` (Bounded bounds
    are repeated). The stack buffer is per-episode state, not saved in
    ``state_dict``.

    Args:
        N: the number of frames per stack.
        dim: the concatenation dim, negative (counted from the end of an
            entry): ``-3`` for the channels of ``[C, H, W]`` images, ``-1``
            for vectors.
        in_keys: the entries to stack (default ``["pixels"]``).
        out_keys: where the stacks go (default: in place).

    Raises:
        TransformValueError: ``N < 1`` or ``dim >= 0``.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.transforms import CatFrames, TransformedEnv
        >>> env = TransformedEnv(CountingEnv(max_steps=3), CatFrames(3, -1, in_keys=["observation"]))
        >>> td = env.rollout(5, break_when_any_done=False)
        >>> td["observation"].tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """

    def __init__(
        self, N: int, dim: int, in_keys: KeysLike = None, out_keys: KeysLike = None
    ) -> None:
        if N < 1:
            raise TransformValueError(f"CatFrames: N must be >= 1, got {N}")
        if dim >= 0:
            raise TransformValueError(
                f"CatFrames: dim must be negative (counted from the end of an entry, so that it "
                f"does not depend on the batch dims), got {dim}"
            )
        super().__init__(in_keys if in_keys is not None else ["pixels"], out_keys)
        self.N = N
        self.dim = dim
        self._stacks: dict[NestedKey, torch.Tensor] = {}

    # ------------------------------------------------------------------ #
    # env
    # ------------------------------------------------------------------ #
    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        batch = tensordict_reset.batch_size
        mask = self.reset_mask(tensordict, batch)
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frame = tensordict_reset.get(in_key, None)
            if frame is None:
                continue
            stack = fill_frames(frame, self.N, self.dim)
            previous = self._stacks.get(in_key)
            if mask is not None and previous is not None and previous.shape == stack.shape:
                if not batch:
                    stack = stack if bool(mask.any()) else previous
                else:
                    m = mask.reshape(*batch, *([1] * (stack.ndim - len(batch))))
                    stack = torch.where(m, stack, previous)
            self._stacks[in_key] = stack
            tensordict_reset.set(out_key, stack)
        return tensordict_reset

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frame = next_tensordict.get(in_key, None)
            if frame is None:
                continue
            previous = self._stacks.get(in_key)
            if previous is None:  # stepped without a reset through this transform
                stack = fill_frames(frame, self.N, self.dim)
            else:
                stack = push_frame(previous, frame, self.dim)
            self._stacks[in_key] = stack
            next_tensordict.set(out_key, stack)
        return next_tensordict

    def _call(self, tensordict: TensorDict) -> TensorDict:
        raise TransformValueError(
            "CatFrames needs the frames that came before: use it on an env (TransformedEnv) or "
            "on trajectories with batch [*B, T] through forward(td)"
        )

    # ------------------------------------------------------------------ #
    # plain TensorDicts: trajectories
    # ------------------------------------------------------------------ #
    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Stack the frames of trajectories ``[*B, T]`` along time, episode by episode.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import CatFrames
            >>> td = TensorDict({
            ...     "obs": torch.tensor([[0.0], [1.0], [5.0]]),
            ...     "next": {"obs": torch.tensor([[1.0], [2.0], [6.0]]),
            ...              "done": torch.tensor([[False], [True], [False]])},
            ... }, batch_size=[3])
            >>> out = CatFrames(2, -1, in_keys=["obs"])(td)
            >>> out["obs"].tolist(), out["next", "obs"].tolist()
            ([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]], [[0.0, 1.0], [1.0, 2.0], [5.0, 6.0]])
        """
        ends = trajectory_ends(tensordict, "CatFrames", require_done=False)
        updates: list[tuple[NestedKey, torch.Tensor]] = []
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            frames = tensordict.get(in_key, None)
            next_key = ("next", *((in_key,) if isinstance(in_key, str) else in_key))
            next_frames = tensordict.get(next_key, None)
            if frames is None:
                if next_frames is not None:
                    raise TransformKeyError(
                        f"CatFrames needs the root frames {in_key!r} to stack {next_key!r} "
                        "(the first frame of each episode is a root entry)"
                    )
                continue
            stacks, next_stacks = stack_frames_in_time(frames, next_frames, ends, self.N, self.dim)
            updates.append((out_key, stacks))
            if next_stacks is not None:
                out_next = ("next", *((out_key,) if isinstance(out_key, str) else out_key))
                updates.append((out_next, next_stacks))
        for key, value in updates:
            tensordict.set(key, value)
        return tensordict

    # ------------------------------------------------------------------ #
    # specs
    # ------------------------------------------------------------------ #
    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """The stacked entries grow ``N`` times along ``dim``.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import CatFrames, EnvSpecs
            >>> t = CatFrames(4, -1, in_keys=["observation"])
            >>> t.transform_env_specs(EnvSpecs.from_env(CountingEnv())).observation["observation"].shape
            torch.Size([4])
        """
        name = type(self).__name__
        n, dim = self.N, self.dim

        def fn(spec: TensorSpec[Any]) -> TensorSpec[Any]:
            if spec.ndim - len(specs.batch_size) < -dim:
                raise TransformValueError(
                    f"CatFrames: dim={dim} is out of range for entries of shape "
                    f"{tuple(spec.shape[len(specs.batch_size) :])}"
                )
            shape = list(spec.shape)
            shape[dim] *= n
            if type(spec) is Bounded:
                low, high = fill_frames(spec.low, n, dim), fill_frames(spec.high, n, dim)
                return Bounded(low, high, shape=shape, device=spec.device, dtype=spec.dtype)
            if type(spec) is Unbounded:
                return Unbounded(shape=shape, device=spec.device, dtype=spec.dtype)
            return reshape_spec(spec, lambda x: fill_frames(x, n, dim), name)

        for in_key in self.in_keys:
            if in_key == "reward":
                raise TransformValueError(
                    "CatFrames stacks observations, not the reward: remove 'reward' from in_keys"
                )
        return route_specs(specs, self.in_keys, self.out_keys, fn, name)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_stacks"] = {}  # per-episode state: copies start without it
        return state

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"N={self.N}, dim={self.dim}, " + super().extra_repr()
