"""The replay buffers: a storage, a sampler and a writer behind one thread-safe object."""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Iterator
from concurrent.futures import CancelledError
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._data import as_batch
from rlbricks.replay._data import as_row
from rlbricks.replay._data import default_collate
from rlbricks.replay._errors import ReplayError
from rlbricks.replay._interfaces import Sampler
from rlbricks.replay._interfaces import Storage
from rlbricks.replay._interfaces import Writer
from rlbricks.replay._samplers import RandomSampler
from rlbricks.replay._storages import ListStorage
from rlbricks.replay._writers import RoundRobinWriter

__all__ = ["ReplayBuffer"]

PathLike = str | os.PathLike[str]
Transform = Callable[[Any], Any]
_FORMAT = "rlbricks.replay.buffer"
_FORMAT_VERSION = 1


def _identity(data: Any) -> Any:
    return data


class ReplayBuffer:
    """A replay buffer: ``extend`` it with experience, ``sample`` batches from it.

    The buffer is the composition of a *storage* (where rows live), a *writer*
    (where new rows go) and a *sampler* (which rows a batch holds); swap any
    of them.  ``add``/``extend``/``sample``/``update_priority`` are guarded by a
    lock, so a collector thread can write while the learner samples.

    Args:
        storage: default ``ListStorage(1000)``; use ``LazyTensorStorage(n)`` for
            tensors and TensorDicts (much faster), ``LazyMemmapStorage`` for large
            or shared buffers.
        sampler: default ``RandomSampler()``.
        writer: default ``RoundRobinWriter()``.
        batch_size: default batch size of ``sample()``.
        collate_fn: turns the rows read from the storage into a batch (default:
            stack for ``ListStorage``, nothing for tensor storages).
        transform: a callable (or list) applied to every sampled batch.
        prefetch: number of batches sampled ahead in a background thread.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(10_000), batch_size=256)
        >>> rb.extend({"obs": torch.randn(1000, 4), "reward": torch.randn(1000, 1)}).shape
        torch.Size([1000])
        >>> batch = rb.sample()
        >>> batch["obs"].shape, len(rb)
        (torch.Size([256, 4]), 1000)
    """

    def __init__(
        self,
        *,
        storage: Storage | None = None,
        sampler: Sampler | None = None,
        writer: Writer | None = None,
        batch_size: int | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
        transform: Transform | list[Transform] | None = None,
        prefetch: int | None = None,
    ) -> None:
        self._storage = storage if storage is not None else ListStorage(1000)
        self._sampler = sampler if sampler is not None else RandomSampler()
        self._writer = writer if writer is not None else RoundRobinWriter()
        self._writer.register_storage(self._storage)
        if batch_size is not None and batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._batch_size = batch_size
        if collate_fn is None:
            collate_fn = default_collate if isinstance(self._storage, ListStorage) else _identity
        self._collate_fn = collate_fn
        if transform is None:
            self._transforms: list[Transform] = []
        elif isinstance(transform, (list, tuple)):
            self._transforms = list(transform)
        else:
            self._transforms = [transform]
        if prefetch is not None and prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {prefetch}")
        self._prefetch = prefetch or 0
        self._lock = threading.RLock()
        # subclasses that write into samples override _postprocess
        self._postprocesses = type(self)._postprocess is not ReplayBuffer._postprocess
        self._executor: ThreadPoolExecutor | None = None
        self._queue: deque[Future[tuple[Any, dict[str, Any]]]] = deque()

    # ------------------------------------------------------------------ #
    # components
    # ------------------------------------------------------------------ #
    @property
    def storage(self) -> Storage:
        """The storage holding the rows."""
        return self._storage

    @property
    def sampler(self) -> Sampler:
        """The sampler choosing batches."""
        return self._sampler

    @property
    def writer(self) -> Writer:
        """The writer placing new rows."""
        return self._writer

    @property
    def batch_size(self) -> int | None:
        """The default batch size of ``sample()``."""
        return self._batch_size

    def __len__(self) -> int:
        return len(self._storage)

    # ------------------------------------------------------------------ #
    # writing
    # ------------------------------------------------------------------ #
    def add(self, data: Any) -> int | None:
        """Write one row; return its index (``None`` if the writer dropped it)."""
        if not isinstance(self._storage, ListStorage):  # a list stores objects as given
            data = as_row(data)
        with self._lock:
            index = self._writer.add(data)
            if index is not None:
                self._after_write(torch.tensor([index]), data, single=True)
        self._drop_prefetched()
        return index

    def extend(self, data: Any) -> Tensor:
        """Write a batch of rows (first dim); return the indices written.

        Accepts a TensorDict, a (nested) dict of tensors sharing their first
        dim, a tensor, or (``ListStorage``) any sequence.
        """
        data = as_batch(data)
        with self._lock:
            index = self._writer.extend(data)
            self._after_write(index, data, single=False)
        self._drop_prefetched()
        return index

    def _after_write(self, index: Tensor, data: Any, single: bool) -> None:
        self._sampler.extend(index)

    # ------------------------------------------------------------------ #
    # sampling
    # ------------------------------------------------------------------ #
    def sample(self, batch_size: int | None = None, return_info: bool = False) -> Any:
        """A batch of ``batch_size`` rows (default: the buffer's ``batch_size``).

        Args:
            batch_size: rows in the batch.
            return_info: also return a dict with ``"index"`` and sampler data
                (importance weights ``"_weight"`` for prioritized samplers).

        Raises:
            EmptyBufferError: nothing was written yet.
        """
        if batch_size is None:
            batch_size = self._batch_size
            if batch_size is None:
                raise ValueError(
                    "no batch size: pass sample(batch_size=...) or build the buffer with "
                    "ReplayBuffer(batch_size=...)"
                )
            if self._prefetch:
                data, info = self._from_queue(batch_size)
                return (data, info) if return_info else data
        data, info = self._sample(batch_size)
        return (data, info) if return_info else data

    def _sample(self, batch_size: int) -> tuple[Any, dict[str, Any]]:
        with self._lock:
            index, info = self._sampler.sample(self._storage, batch_size)
            data = self._storage.get(index)
        if self._collate_fn is not _identity:
            data = self._collate_fn(data)
        if self._postprocesses:
            data = self._postprocess(data, index, info)
        for transform in self._transforms:
            data = transform(data)
        info["index"] = index
        return data, info

    def _postprocess(self, data: Any, index: Tensor, info: dict[str, Any]) -> Any:
        return data

    def _from_queue(self, batch_size: int) -> tuple[Any, dict[str, Any]]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rb-prefetch")
        while True:
            queue = self._queue
            while len(queue) < self._prefetch + 1:
                queue.append(self._executor.submit(self._sample, batch_size))
            future = queue.popleft()
            try:
                return future.result()
            except CancelledError:  # a write made it stale meanwhile: sample again
                continue

    def _drop_prefetched(self) -> None:
        """New data or priorities: batches sampled ahead are stale, drop them."""
        if self._queue:
            queue, self._queue = self._queue, deque()
            for future in queue:
                future.cancel()

    def __iter__(self) -> Iterator[Any]:
        """Batches of ``batch_size`` until the sampler runs out (one epoch for
        ``SamplerWithoutReplacement``; samplers that never run out iterate forever)."""
        if self._batch_size is None:
            raise ValueError("iterating needs a batch size: ReplayBuffer(batch_size=...)")
        while True:
            data, _ = self._sample(self._batch_size)
            yield data
            if self._sampler.ran_out:
                return

    def update_priority(self, index: Tensor | int, priority: Tensor | float) -> None:
        """New priorities for rows ``index`` (prioritized samplers only)."""
        if not isinstance(index, Tensor):
            index = torch.as_tensor(index)
        if not isinstance(priority, Tensor):
            priority = torch.as_tensor(priority, dtype=torch.float64)
        with self._lock:
            self._sampler.update_priority(index, priority)
        self._drop_prefetched()

    # ------------------------------------------------------------------ #
    # transforms
    # ------------------------------------------------------------------ #
    def append_transform(self, transform: Transform) -> ReplayBuffer:
        """Apply ``transform`` to every sampled batch, after the existing ones."""
        self._transforms.append(transform)
        self._drop_prefetched()
        return self

    def insert_transform(self, position: int, transform: Transform) -> ReplayBuffer:
        """Insert ``transform`` at ``position`` in the list of transforms."""
        self._transforms.insert(position, transform)
        self._drop_prefetched()
        return self

    @property
    def transforms(self) -> list[Transform]:
        """The transforms applied to sampled batches, in order."""
        return self._transforms

    # ------------------------------------------------------------------ #
    # state
    # ------------------------------------------------------------------ #
    def empty(self) -> None:
        """Forget every row (and the writer's cursor and the sampler's state)."""
        with self._lock:
            self._storage.empty()
            self._writer.empty()
            self._sampler.empty()
        self._drop_prefetched()

    def state_dict(self) -> dict[str, Any]:
        """The whole buffer state: storage rows, sampler (priorities) and writer cursor."""
        with self._lock:
            return {
                "storage": self._storage.state_dict(),
                "sampler": self._sampler.state_dict(),
                "writer": self._writer.state_dict(),
                "batch_size": self._batch_size,
            }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from ``state_dict()`` (the buffer's components must be of the same kinds)."""
        with self._lock:
            self._storage.load_state_dict(state_dict["storage"])
            self._sampler.load_state_dict(state_dict["sampler"])
            self._writer.load_state_dict(state_dict["writer"])
            self._batch_size = state_dict["batch_size"]
        self._drop_prefetched()

    def _components(self) -> dict[str, str]:
        return {
            "buffer": type(self).__name__,
            "storage": type(self._storage).__name__,
            "sampler": type(self._sampler).__name__,
            "writer": type(self._writer).__name__,
        }

    def dumps(self, path: PathLike) -> None:
        """Save the buffer to the folder ``path``: rows as raw tensor files (tensor
        storages) or a weights-only torch file, sampler and writer states as torch
        files of tensors, and a JSON description.  ``loads`` reads it back."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with self._lock:
            dumps = getattr(self._storage, "dumps", None)
            if dumps is not None:
                dumps(path / "storage")
            else:
                torch.save(self._storage.state_dict(), path / "storage.pt")
            torch.save(self._sampler.state_dict(), path / "sampler.pt")
            torch.save(self._writer.state_dict(), path / "writer.pt")
            meta = {
                "format": _FORMAT,
                "version": _FORMAT_VERSION,
                "batch_size": self._batch_size,
                **self._components(),
            }
            (path / "buffer.json").write_text(json.dumps(meta, indent=2))

    def loads(self, path: PathLike) -> None:
        """Restore a buffer saved by ``dumps`` into this (empty or not) buffer.

        Raises:
            ReplayError: the folder holds another format or other kinds of components.
        """
        path = Path(path)
        try:
            meta = json.loads((path / "buffer.json").read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} holds no buffer.json: not a dumps() folder") from None
        if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
            raise ReplayError(f"{path}: unknown buffer format {meta.get('format')!r}")
        mine = self._components()
        theirs = {k: meta.get(k) for k in mine}
        if theirs != mine:
            raise ReplayError(
                f"{path} was saved from {theirs}; this buffer is {mine}: build the same kinds "
                "of storage, sampler and writer before loads()"
            )
        with self._lock:
            loads = getattr(self._storage, "loads", None)
            if loads is not None:
                loads(path / "storage")
            else:
                self._storage.load_state_dict(torch.load(path / "storage.pt", weights_only=True))
            self._sampler.load_state_dict(torch.load(path / "sampler.pt", weights_only=True))
            self._writer.load_state_dict(torch.load(path / "writer.pt", weights_only=True))
            self._batch_size = meta["batch_size"]
        self._drop_prefetched()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(\n    storage={self._storage!r},\n    sampler={self._sampler!r},"
            f"\n    writer={self._writer!r},\n    batch_size={self._batch_size})"
        )

    def __del__(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
