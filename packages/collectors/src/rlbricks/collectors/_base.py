"""What every collector shares: argument checks, frame accounting, iteration, post-processing."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import torch

from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.envs import EnvBase
from rlbricks.modules import ExplorationType
from rlbricks.tensordict import TensorDict

__all__ = [
    "CollectorOptions",
    "DataCollectorBase",
    "DeviceLike",
    "EnvFactory",
    "PolicyLike",
    "frames_layout",
    "make_env",
]

EnvFactory = EnvBase | Callable[[], EnvBase]
PolicyLike = Callable[[TensorDict], TensorDict]
DeviceLike = torch.device | str | int | None


@dataclasses.dataclass(frozen=True)
class CollectorOptions:
    """The options every collector takes, checked in one place.

    ``SyncDataCollector`` and the multiprocess collectors keep their explicit
    keyword arguments (the documented API) and bundle them here: one set of
    checks, one place that stores them on the collector
    (:meth:`DataCollectorBase._apply_options`), and the per-worker options of a
    multiprocess collector derived with :meth:`for_worker`.

    Example:
        >>> from rlbricks.collectors._base import CollectorOptions
        >>> options = CollectorOptions(frames_per_batch=100, init_random_frames=50)
        >>> options.check("collector")
        >>> options.for_worker(4, frames_per_batch=25)["init_random_frames"]
        13
    """

    frames_per_batch: int
    total_frames: int = -1
    init_random_frames: int = 0
    max_frames_per_traj: int | None = None
    reset_at_each_iter: bool = False
    split_trajs: bool = False
    exploration_type: ExplorationType = ExplorationType.RANDOM
    device: DeviceLike = None
    env_device: DeviceLike = None
    policy_device: DeviceLike = None
    storing_device: DeviceLike = None
    postproc: Callable[[TensorDict], TensorDict] | None = None
    replay_buffer: Any = None
    validate_actions: bool | None = None

    @classmethod
    def pick(cls, arguments: dict[str, Any]) -> CollectorOptions:
        """The options among a constructor's ``arguments`` (its ``locals()`` on entry).

        Example:
            >>> from rlbricks.collectors._base import CollectorOptions
            >>> CollectorOptions.pick({"frames_per_batch": 8, "self": None}).frames_per_batch
            8
        """
        names = [field.name for field in dataclasses.fields(cls)]
        return cls(**{name: arguments[name] for name in names if name in arguments})

    def check(self, owner: str) -> None:
        """Refuse values no collector can run with (the message names ``owner`` and the fix)."""
        if isinstance(self.frames_per_batch, bool) or self.frames_per_batch < 1:
            raise CollectorRuntimeError(
                f"{owner}: frames_per_batch must be >= 1, got {self.frames_per_batch}"
            )
        if self.max_frames_per_traj is not None and self.max_frames_per_traj < 1:
            raise CollectorRuntimeError(
                f"{owner}: max_frames_per_traj must be >= 1 or None, "
                f"got {self.max_frames_per_traj!r}"
            )
        if self.replay_buffer is not None and self.split_trajs:
            raise CollectorRuntimeError(
                f"{owner}: split_trajs=True cannot be used with a replay_buffer; leave "
                "split_trajs False and cut trajectories when sampling (e.g. with a SliceSampler)"
            )

    def for_worker(self, workers: int, frames_per_batch: int) -> dict[str, Any]:
        """The keyword arguments of the ``SyncDataCollector`` inside each of ``workers`` processes.

        Each worker collects ``frames_per_batch`` frames a batch and uses random
        actions for its share ``ceil(init_random_frames / workers)``; it stores
        into CPU shared memory and leaves post-processing, trajectory splitting
        and the replay buffer to the parent.
        """
        return {
            "frames_per_batch": frames_per_batch,
            "init_random_frames": math.ceil(self.init_random_frames / workers),
            "max_frames_per_traj": self.max_frames_per_traj,
            "reset_at_each_iter": self.reset_at_each_iter,
            "exploration_type": self.exploration_type,
            "env_device": self.env_device,
            "policy_device": self.policy_device if self.policy_device is not None else self.device,
            "storing_device": "cpu",  # the shared batches live in CPU shared memory
            "return_same_td": True,
            "validate_actions": self.validate_actions,
        }


def make_env(create_env_fn: Any, owner: str) -> tuple[EnvBase, bool]:
    """The env of ``create_env_fn`` (an env, or a callable returning one) and whether it is ours.

    Example:
        >>> from rlbricks.collectors._base import make_env
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env, owned = make_env(CountingEnv, "collector")
        >>> type(env).__name__, owned
        ('CountingEnv', True)
    """
    if isinstance(create_env_fn, EnvBase):
        return create_env_fn, False
    if isinstance(create_env_fn, Sequence) and not isinstance(create_env_fn, str):
        from rlbricks.envs import SerialEnv

        return SerialEnv(len(create_env_fn), list(create_env_fn)), True
    if not callable(create_env_fn):
        raise CollectorRuntimeError(
            f"{owner}: create_env_fn must be an env, a callable returning one or a list of "
            f"them, got {type(create_env_fn).__name__}"
        )
    env = create_env_fn()
    if not isinstance(env, EnvBase):
        raise CollectorRuntimeError(
            f"{owner}: create_env_fn returned a {type(env).__name__}, not an rlbricks env "
            "(wrap a gymnasium env with rlbricks.envs.GymWrapper)"
        )
    return env, True


def frames_layout(frames_per_batch: int, num_envs: int, owner: str) -> int:
    """Steps per batch: ``ceil(frames_per_batch / num_envs)`` (every sub-env steps alike).

    Example:
        >>> from rlbricks.collectors._base import frames_layout
        >>> frames_layout(100, 8, "collector")  # 13 steps of 8 envs: 104 frames a batch
        13
    """
    if frames_per_batch < 1:
        raise CollectorRuntimeError(
            f"{owner}: frames_per_batch must be >= 1, got {frames_per_batch}"
        )
    return math.ceil(frames_per_batch / num_envs)


class DataCollectorBase(abc.ABC):
    """Iteration and frame accounting of a collector.

    A subclass implements :meth:`next` (one batch) and sets ``frames_per_batch``
    (the frames of one batch, after rounding to whole steps of every sub-env),
    ``total_frames``, ``postproc``, ``replay_buffer`` and ``split_trajs``.
    Iterating yields batches until ``total_frames`` frames have been collected
    (the last batch may overshoot; ``total_frames=-1`` never stops). With a
    ``replay_buffer``, each batch extends the buffer and the iterator yields
    ``None``.
    """

    frames_per_batch: int
    total_frames: int
    postproc: Callable[[TensorDict], TensorDict] | None
    replay_buffer: Any
    split_trajs: bool
    exploration_type: ExplorationType
    _frames: int = 0
    _iter: int = 0

    @property
    def frames(self) -> int:
        """Frames collected so far (every sub-env step counts one)."""
        return self._frames

    @abc.abstractmethod
    def next(self) -> TensorDict:
        """Collect one batch (before post-processing)."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Release the envs and worker processes (idempotent)."""

    def _finish(self, batch: TensorDict) -> TensorDict | None:
        """Split, post-process and store one batch; what the iterator yields."""
        if self.split_trajs:
            from rlbricks.collectors._trajectories import split_trajectories

            batch = split_trajectories(batch)
        if self.postproc is not None:
            batch = self.postproc(batch)
        if self.replay_buffer is not None:
            self.replay_buffer.extend(batch.reshape(-1) if batch.batch_dims > 1 else batch)
            return None
        return batch

    def __iter__(self) -> Iterator[TensorDict | None]:
        """Batches until ``total_frames`` frames are collected."""
        while self.total_frames < 0 or self._frames < self.total_frames:
            batch = self.next()
            self._iter += 1
            yield self._finish(batch)

    def __len__(self) -> int:
        """The number of batches of a full iteration (``total_frames`` must be set)."""
        if self.total_frames < 0:
            raise CollectorRuntimeError(
                "a collector with total_frames=-1 has no length: it runs until shut down; give "
                "total_frames=... to bound it, or count the batches as you iterate"
            )
        return math.ceil(self.total_frames / self.frames_per_batch)

    def __enter__(self) -> DataCollectorBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _apply_options(self, options: CollectorOptions) -> None:
        """Store the options every collector keeps as attributes (after ``options.check``)."""
        self.requested_frames_per_batch = options.frames_per_batch
        self.total_frames = options.total_frames
        self.init_random_frames = options.init_random_frames
        self.max_frames_per_traj = options.max_frames_per_traj
        self.reset_at_each_iter = options.reset_at_each_iter
        self.split_trajs = options.split_trajs
        self.exploration_type = options.exploration_type
        self.postproc = options.postproc
        self.replay_buffer = options.replay_buffer

    def _base_state(self) -> dict[str, Any]:
        return {"frames": self._frames, "iter": self._iter, "rng": torch.get_rng_state()}

    def _load_base_state(self, state: dict[str, Any]) -> None:
        self._frames = int(state["frames"])
        self._iter = int(state["iter"])
        torch.set_rng_state(state["rng"])
