"""``RayReplayBuffer``: one replay buffer served by a Ray actor, shared by every process of a cluster."""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

from torch import Tensor

from rlbricks.replay._buffers import ReplayBuffer
from rlbricks.replay._errors import ReplayAttributeError
from rlbricks.replay._errors import ReplayImportError
from rlbricks.replay._errors import ReplayRuntimeError

__all__ = ["RayReplayBuffer"]

PathLike = str | os.PathLike[str]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _import_ray() -> Any:
    """The ``ray`` module, or an ImportError that names the extra to install."""
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise ReplayImportError(
            'RayReplayBuffer needs ray: pip install "rlbricks-replay[ray]"'
        ) from err


class _BufferServer:
    """The object living in the Ray actor: it owns the buffer and runs the forwarded calls."""

    def __init__(self, buffer_cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.buffer = buffer_cls(*args, **kwargs)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        method = getattr(self.buffer, name, None)
        if method is None:
            raise ReplayAttributeError(
                f"{type(self.buffer).__name__} has no method {name!r} (the Ray actor serves a "
                f"{type(self.buffer).__name__}; build it with replay_buffer_cls=...)"
            )
        return method(*args, **kwargs)

    def length(self) -> int:
        return len(self.buffer)

    def describe(self) -> tuple[str, int | None]:
        return type(self.buffer).__name__, getattr(self.buffer, "batch_size", None)


class RayReplayBuffer:
    """A replay buffer that lives in a Ray actor; any process of the cluster can use it.

    The buffer (``replay_buffer_cls(*args, **buffer_kwargs)``, a ``ReplayBuffer``
    by default) is built inside a Ray actor, and every method of this object
    forwards the call to it and waits for the answer. The object is a light
    handle: pickling it (or passing it to a Ray task or actor, e.g. to the
    actors of a ``RayCollector``) sends only the actor handle, so remote
    collectors extend the buffer directly and the learner samples it, without
    the data going through the driver.

    Ray is started with ``ray.init(**ray_init_config)`` if it is not running
    yet (``{"address": "auto"}`` joins an existing cluster); :meth:`shutdown`
    then stops it again. The actor runs with the Ray options ``remote_config``
    (default ``{"num_cpus": 0}``: it waits most of the time, so it reserves no
    CPU); ``{"max_concurrency": 4}`` lets it serve several calls at once (the
    buffers are thread-safe), ``{"resources": {...}}`` pins it to a node.

    A call that fails in the actor raises the original exception (e.g.
    ``EmptyBufferError``), chained to the Ray error that carries the remote
    traceback. Paths given to :meth:`dumps` and :meth:`loads` are paths on
    the actor's node.

    Args:
        *args: positional arguments of ``replay_buffer_cls``.
        replay_buffer_cls: the buffer class to serve (``ReplayBuffer``,
            ``TensorDictReplayBuffer``, ``TensorDictPrioritizedReplayBuffer``, ...).
        ray_init_config: keyword arguments of ``ray.init``, used only when Ray
            is not initialised yet.
        remote_config: Ray actor options (``num_cpus``, ``resources``,
            ``max_concurrency``, ...).
        **buffer_kwargs: keyword arguments of ``replay_buffer_cls`` (storage,
            sampler, writer, batch_size, ...); they are pickled to the actor.

    Raises:
        ReplayImportError: ray is not installed.
        ReplayRuntimeError: the buffer could not be built in the actor (the message
            holds the remote error).

    Example:
        >>> import ray
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer
        >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
        >>> rb = RayReplayBuffer(storage=LazyTensorStorage(100), batch_size=4)
        >>> rb.extend({"obs": torch.arange(10.0)}).tolist()
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        >>> len(rb), rb.sample()["obs"].shape
        (10, torch.Size([4]))
        >>> rb.shutdown()
    """

    def __init__(
        self,
        *args: Any,
        replay_buffer_cls: type = ReplayBuffer,
        ray_init_config: dict[str, Any] | None = None,
        remote_config: dict[str, Any] | None = None,
        **buffer_kwargs: Any,
    ) -> None:
        ray = _import_ray()
        self._owns_ray = False
        if not ray.is_initialized():
            ray.init(**(ray_init_config or {}))
            self._owns_ray = True
        options = {"num_cpus": 0, **(remote_config or {})}
        server = ray.remote(_BufferServer).options(**options)
        self._actor: Any = server.remote(replay_buffer_cls, args, buffer_kwargs)
        self._owner = True
        self._closed = False
        try:
            self._buffer_name, _ = ray.get(self._actor.describe.remote())
        except ray.exceptions.RayError as err:
            self.shutdown()
            raise ReplayRuntimeError(
                f"RayReplayBuffer: building {replay_buffer_cls.__name__} in the Ray actor failed "
                f"(check the buffer arguments): {_ANSI.sub('', str(err))}"
            ) from None

    # ------------------------------------------------------------------ #
    # plumbing
    # ------------------------------------------------------------------ #
    @property
    def actor(self) -> Any:
        """The Ray actor handle serving the buffer (``RayCollector`` hands it to its actors)."""
        return self._actor

    def _get(self, ref: Any) -> Any:
        ray = _import_ray()
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, Exception):  # the buffer's own error, remote traceback chained
                raise cause from err
            raise
        except ray.exceptions.RayActorError as err:
            raise ReplayRuntimeError(
                f"the Ray actor of {self!r} is gone (shut down, or its node failed): "
                f"{_ANSI.sub('', str(err))}"
            ) from None

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise ReplayRuntimeError("this RayReplayBuffer is shut down: create a new one")
        return self._get(self._actor.call.remote(name, args, kwargs))

    # ------------------------------------------------------------------ #
    # the buffer's methods, forwarded
    # ------------------------------------------------------------------ #
    def extend(self, data: Any) -> Tensor:
        """Write a batch of rows (first dim) into the remote buffer; return the indices.

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer(storage=LazyTensorStorage(10))
            >>> rb.extend(torch.zeros(3, 2)).tolist()
            [0, 1, 2]
            >>> rb.shutdown()
        """
        return self._call("extend", data)

    def add(self, data: Any) -> int | None:
        """Write one row; return its index (``None`` if the writer dropped it).

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer(storage=LazyTensorStorage(10))
            >>> rb.add({"obs": torch.ones(2)}), len(rb)
            (0, 1)
            >>> rb.shutdown()
        """
        return self._call("add", data)

    def sample(self, batch_size: int | None = None, return_info: bool = False) -> Any:
        """A batch sampled in the actor (see ``ReplayBuffer.sample``).

        Args:
            batch_size: rows in the batch (default: the buffer's ``batch_size``).
            return_info: also return the info dict (``"index"``, sampler data).

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = rb.extend(torch.full((5,), 7.0))
            >>> batch, info = rb.sample(3, return_info=True)
            >>> batch.tolist(), info["index"].shape
            ([7.0, 7.0, 7.0], torch.Size([3]))
            >>> rb.shutdown()
        """
        return self._call("sample", batch_size, return_info)

    def update_priority(self, index: Tensor | int, priority: Tensor | float) -> None:
        """New priorities for rows ``index`` (prioritized buffers only).

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, PrioritizedReplayBuffer
            >>> from rlbricks.replay import RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer(replay_buffer_cls=PrioritizedReplayBuffer, alpha=1.0,
            ...                      beta=1.0, storage=LazyTensorStorage(10))
            >>> _ = rb.extend(torch.arange(4.0))
            >>> rb.update_priority(torch.arange(4), torch.tensor([0.0, 0.0, 0.0, 1.0]))
            >>> rb.sample(5).tolist()  # only row 3 has a (non-epsilon) priority
            [3.0, 3.0, 3.0, 3.0, 3.0]
            >>> rb.shutdown()
        """
        self._call("update_priority", index, priority)

    def update_tensordict_priority(self, data: Any) -> None:
        """Send ``data[priority_key]`` back as priorities of rows ``data["index"]``.

        For a served ``TensorDictPrioritizedReplayBuffer``: sample, let the loss
        write ``"td_error"``, then call this.

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer
            >>> from rlbricks.replay import TensorDictPrioritizedReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer(replay_buffer_cls=TensorDictPrioritizedReplayBuffer,
            ...                      alpha=0.6, beta=0.4, storage=LazyTensorStorage(10))
            >>> _ = rb.extend({"obs": torch.randn(6, 2)})
            >>> sample = rb.sample(4)
            >>> sample["td_error"] = torch.rand(4)
            >>> rb.update_tensordict_priority(sample)
            >>> rb.shutdown()
        """
        self._call("update_tensordict_priority", data)

    def __len__(self) -> int:
        """The number of rows stored in the remote buffer."""
        if self._closed:
            raise ReplayRuntimeError("this RayReplayBuffer is shut down: create a new one")
        return self._get(self._actor.length.remote())

    @property
    def batch_size(self) -> int | None:
        """The default batch size of :meth:`sample` (read from the actor)."""
        return self._get(self._actor.describe.remote())[1]

    def empty(self) -> None:
        """Forget every row of the remote buffer.

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer()
            >>> _ = rb.extend(torch.zeros(4))
            >>> rb.empty()
            >>> len(rb)
            0
            >>> rb.shutdown()
        """
        self._call("empty")

    def state_dict(self) -> dict[str, Any]:
        """The remote buffer's ``state_dict()`` (rows, sampler, writer), copied here.

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = rb.extend(torch.zeros(4))
            >>> sorted(rb.state_dict())
            ['batch_size', 'sampler', 'storage', 'writer']
            >>> rb.shutdown()
        """
        return self._call("state_dict")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the remote buffer from a ``state_dict()`` (of a local or a Ray buffer).

        Example:
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer, ReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> local = ReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = local.extend(torch.arange(3.0))
            >>> rb = RayReplayBuffer(storage=LazyTensorStorage(10))
            >>> rb.load_state_dict(local.state_dict())
            >>> len(rb)
            3
            >>> rb.shutdown()
        """
        self._call("load_state_dict", state_dict)

    def dumps(self, path: PathLike) -> None:
        """Save the buffer to the folder ``path`` on the actor's node (see ``ReplayBuffer.dumps``).

        Example:
            >>> import os, tempfile
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = rb.extend(torch.zeros(4))
            >>> path = tempfile.mkdtemp()
            >>> rb.dumps(path)
            >>> "buffer.json" in os.listdir(path)
            True
            >>> rb.shutdown()
        """
        self._call("dumps", os.fspath(path))

    def loads(self, path: PathLike) -> None:
        """Load a folder written by ``dumps`` (on the actor's node) into the remote buffer.

        Example:
            >>> import tempfile
            >>> import ray
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, RayReplayBuffer, ReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> local = ReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = local.extend(torch.arange(5.0))
            >>> path = tempfile.mkdtemp()
            >>> local.dumps(path)
            >>> rb = RayReplayBuffer(storage=LazyTensorStorage(10))
            >>> rb.loads(path)
            >>> len(rb)
            5
            >>> rb.shutdown()
        """
        self._call("loads", os.fspath(path))

    # ------------------------------------------------------------------ #
    # lifetime and pickling
    # ------------------------------------------------------------------ #
    def shutdown(self) -> None:
        """Kill the actor (its rows are lost) and stop Ray if this buffer started it.

        Only the object that built the buffer does that; a copy sent to another
        process just stops using the actor. Idempotent.

        Example:
            >>> import ray
            >>> from rlbricks.replay import RayReplayBuffer
            >>> _ = ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
            >>> rb = RayReplayBuffer()
            >>> rb.shutdown()
            >>> rb.shutdown()  # a second call does nothing
        """
        if self._closed:
            return
        self._closed = True
        if not self._owner:
            return
        ray = _import_ray()
        if ray.is_initialized():
            ray.kill(self._actor, no_restart=True)
            if self._owns_ray:
                ray.shutdown()

    def __getstate__(self) -> dict[str, Any]:
        """What a copy carries: the actor handle only (the rows stay in the actor)."""
        return {"actor": self._actor, "buffer_name": self._buffer_name, "closed": self._closed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._actor = state["actor"]
        self._buffer_name = state["buffer_name"]
        self._closed = state["closed"]
        self._owner = False
        self._owns_ray = False

    def __repr__(self) -> str:
        state = ", shut down" if self._closed else ""
        return f"{type(self).__name__}({self._buffer_name}{state})"
