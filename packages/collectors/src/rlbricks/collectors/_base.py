"""What every collector shares: argument checks, frame accounting, iteration, post-processing."""

from __future__ import annotations

import abc
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

__all__ = ["DataCollectorBase", "EnvFactory", "PolicyLike", "frames_layout", "make_env"]

EnvFactory = EnvBase | Callable[[], EnvBase]
PolicyLike = Callable[[TensorDict], TensorDict]


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

    def _base_state(self) -> dict[str, Any]:
        return {"frames": self._frames, "iter": self._iter, "rng": torch.get_rng_state()}

    def _load_base_state(self, state: dict[str, Any]) -> None:
        self._frames = int(state["frames"])
        self._iter = int(state["iter"])
        torch.set_rng_state(state["rng"])
