"""What runs inside each Ray actor of a ``RayCollector``: one ``SyncDataCollector``."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rlbricks.collectors._errors import CollectorImportError
from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.collectors._sync import SyncDataCollector
from rlbricks.collectors._trajectories import TRAJ_IDS
from rlbricks.collectors._worker import WORKER
from rlbricks.tensordict import TensorDict

__all__ = ["CollectorWorker", "import_ray"]


def import_ray() -> Any:
    """The ``ray`` module, or an ImportError that names the extra to install.

    Example:
        >>> from rlbricks.collectors._ray_worker import import_ray
        >>> import_ray().__name__
        'ray'
    """
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise CollectorImportError(
            'RayCollector needs ray: pip install "rlbricks-collectors[ray]"'
        ) from err


class CollectorWorker:
    """One ``SyncDataCollector`` living in a Ray actor (``ray.remote`` is applied by the driver).

    The worker never stops on its own (``total_frames=-1``): the driver asks for
    one batch per :meth:`collect` call and counts the frames. Each call carries
    the current version of the policy weights (and an object-store reference
    to them, wrapped in a list so that Ray does not fetch it on every call):
    the worker loads them only when its version is older, so a restarted actor
    catches up on its first call.

    Trajectory ids are made unique across workers: local id ``i`` of worker
    ``index`` (out of ``stride`` workers) becomes ``i * stride + index``, and
    ``("collector", "worker")`` holds ``index``. A restarted worker continues
    its local numbering from ``id_floor`` (the next local id before the
    crash), so no id is reused.

    Args:
        index: the worker's index in the ``RayCollector``.
        stride: the number of workers.
        create_env_fn: builds the env (called in the actor).
        policy: the policy (pickled into the actor), or None for random actions.
        frames_per_batch: frames of one batch of this worker.
        collector_kwargs: other ``SyncDataCollector`` arguments.
        replay_buffer: a buffer that the worker extends itself (a ``RayReplayBuffer``),
            in which case :meth:`collect` returns no batch.
        postproc: applied to each batch before it goes into ``replay_buffer``.
        torch_seed: ``torch.manual_seed`` of the actor's process (random actions
            differ between actors).

    Example:
        >>> from rlbricks.collectors._ray_worker import CollectorWorker
        >>> from rlbricks.envs.testing import CountingEnv
        >>> worker = CollectorWorker(1, 2, CountingEnv, None, 3, {})
        >>> batch, info = worker.collect(0, [None], 0)
        >>> batch["collector", "traj_ids"].tolist(), batch["collector", "worker"].tolist(), info
        ([1, 1, 1], [1, 1, 1], {'frames': 3, 'next_id': 1})
    """

    def __init__(
        self,
        index: int,
        stride: int,
        create_env_fn: Any,
        policy: Any,
        frames_per_batch: int,
        collector_kwargs: dict[str, Any],
        replay_buffer: Any = None,
        postproc: Callable[[TensorDict], TensorDict] | None = None,
        torch_seed: int | None = None,
    ) -> None:
        if torch_seed is not None:
            torch.manual_seed(torch_seed)
        self.index = index
        self.stride = stride
        self.collector = SyncDataCollector(
            create_env_fn, policy, frames_per_batch=frames_per_batch, **collector_kwargs
        )
        self.replay_buffer = replay_buffer
        self.postproc = postproc
        self.version = 0
        self.fresh = True
        self.token = uuid.uuid4().hex  # tells a restarted actor from the one it replaces

    def layout(self) -> tuple[int, tuple[int, ...], int, str]:
        """``(frames per batch, env batch size, steps per batch, token)`` of this worker."""
        c = self.collector
        return c.frames_per_batch, tuple(c.env.batch_size), c.steps_per_batch, self.token

    def incarnation(self) -> str:
        """A token of this instance: it changes when Ray restarts the actor."""
        return self.token

    def collect(
        self, version: int, weights: list[Any], id_floor: int
    ) -> tuple[TensorDict | None, dict[str, int]]:
        """One batch (or None once it is in the replay buffer) and ``{frames, next_id}``."""
        collector = self.collector
        if version != self.version:
            state = weights[0]
            if not isinstance(state, dict):  # an object-store reference
                state = import_ray().get(state)
            if not isinstance(collector.policy, nn.Module):
                raise CollectorRuntimeError(
                    f"RayCollector actor {self.index}: got policy weights but its policy is a "
                    f"{type(collector.policy).__name__}, not an nn.Module"
                )
            collector.policy.load_state_dict(state)
            collector.update_policy_weights_()
            self.version = version
        if self.fresh:
            self.fresh = False
            if id_floor > 0:  # a restarted actor: continue the numbering of its predecessor
                collector._traj.current += id_floor
                collector._traj.next_id += id_floor
        batch = collector.next()
        info = {"frames": collector.frames_per_batch, "next_id": collector._traj.next_id}
        batch.set(TRAJ_IDS, batch.get(TRAJ_IDS) * self.stride + self.index)
        batch.set(WORKER, torch.full(batch.batch_size, self.index, dtype=torch.int64))
        if self.replay_buffer is None:
            return batch, info
        if self.postproc is not None:
            batch = self.postproc(batch)
        self.replay_buffer.extend(batch.reshape(-1) if batch.batch_dims > 1 else batch)
        return None, info

    def set_seed(self, seed: int) -> int:
        """``torch.manual_seed(seed)`` and seed the env; return the next seed."""
        torch.manual_seed(seed)
        return self.collector.set_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        """The collector's state."""
        return self.collector.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the collector's state."""
        self.collector.load_state_dict(state)
        self.fresh = False

    def shutdown(self) -> None:
        """Close the env."""
        self.collector.shutdown()
