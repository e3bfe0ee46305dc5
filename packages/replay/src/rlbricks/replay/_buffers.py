"""The replay buffers: a storage, a sampler and a writer behind one thread-safe object."""

from __future__ import annotations

import json
import operator
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

from rlbricks.replay._atomic_folder import MANIFEST
from rlbricks.replay._atomic_folder import check_folder
from rlbricks.replay._atomic_folder import folder_leftovers
from rlbricks.replay._atomic_folder import recover_folder
from rlbricks.replay._atomic_folder import write_folder_atomically
from rlbricks.replay._data import as_batch
from rlbricks.replay._data import as_row
from rlbricks.replay._data import default_collate
from rlbricks.replay._data import pinned
from rlbricks.replay._errors import EmptyBufferError
from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayError
from rlbricks.replay._errors import ReplayFileNotFoundError
from rlbricks.replay._errors import ReplayRuntimeError
from rlbricks.replay._errors import ReplayTypeError
from rlbricks.replay._index import read_index
from rlbricks.replay._interfaces import Sampler
from rlbricks.replay._interfaces import Storage
from rlbricks.replay._interfaces import Writer
from rlbricks.replay._samplers import RandomSampler
from rlbricks.replay._storages import ListStorage
from rlbricks.replay._writers import RoundRobinWriter
from rlbricks.tensordict import TensorDict

__all__ = ["ReplayBuffer"]

PathLike = str | os.PathLike[str]
Transform = Callable[[Any], Any]
_FORMAT = "rlbricks.replay.buffer"
_FORMAT_VERSION = 1
_DUMP_FORMAT = "rlbricks.replay.dump"  # the format of the dump folder's manifest
_DUMP_VERSION = 1


def _identity(data: Any) -> Any:
    return data


def _batch_size(value: Any, where: str) -> int:
    """``value`` as an int, checked to be a positive integer (bools and floats refused)."""
    try:
        size = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        size = None
    if size is None:
        raise ReplayTypeError(
            f"{where}: batch_size must be a positive int, got {value!r} of type "
            f"{type(value).__name__}; pass the number of rows of a batch, e.g. batch_size=256"
        )
    if size <= 0:
        raise ReplayArgumentError(
            f"{where}: batch_size must be a positive int, got {value!r}; pass the number of "
            "rows of a batch, e.g. batch_size=256"
        )
    return size


def _is_dump(path: Path) -> bool:
    return any((path / name).is_file() for name in (MANIFEST, "buffer.json"))


def _refuse_to_replace(path: Path) -> None:
    """Raise unless ``dumps`` may replace ``path``: missing, an empty folder, or a dump."""
    if path.exists() and not _is_dump(path) and (not path.is_dir() or any(path.iterdir())):
        raise ReplayRuntimeError(
            f"{path} exists and is not a buffer dump (no {MANIFEST} nor buffer.json): "
            "dumps() replaces the whole folder, so it refuses to delete what is there; "
            "dump to a new or empty folder, or delete this one first"
        )


def _check_dump(path: Path) -> None:
    """Raise unless ``path`` is a complete dump whose files all match its manifest.

    A previous dump that an interrupted ``dumps`` left aside is renamed back first.
    """
    if not recover_folder(path):
        found = folder_leftovers(path)
        if not found:
            raise ReplayFileNotFoundError(
                f"{path} does not exist: not a dumps() folder; give the folder that dumps() wrote"
            )
        notes = "; ".join(f"{folder} ({why})" for folder, why in found.items())
        raise ReplayRuntimeError(
            f"no dump at {path}, but interrupted dumps left: {notes}. None of them can be "
            "loaded: delete these folders and dump the buffer again"
        )
    if not path.is_dir() or not _is_dump(path):
        raise ReplayFileNotFoundError(
            f"{path} holds no {MANIFEST} nor buffer.json: not a dumps() folder; give the folder "
            "that dumps() wrote"
        )
    problem = check_folder(path, format=_DUMP_FORMAT, version=_DUMP_VERSION)
    if problem is not None:
        raise ReplayRuntimeError(
            f"the dump {path} cannot be loaded: {problem}; nothing was loaded. Load another "
            "dump, or dump the buffer again"
        )


def _load_pt(file: Path) -> Any:
    """``torch.load(file, weights_only=True)``; a file it refuses raises ReplayRuntimeError."""
    try:
        return torch.load(file, weights_only=True)
    except Exception as err:
        raise ReplayRuntimeError(
            f"cannot read {file} with torch.load(weights_only=True) ({type(err).__name__}: "
            f"{err}); it holds objects other than tensors, numbers, strings and containers of "
            "those (items of a ListStorage that cannot be restored safely, or a file from "
            "elsewhere): nothing was loaded"
        ) from err


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
        batch_size: default batch size of ``sample()`` (a positive int).
        collate_fn: turns the rows read from the storage into a batch (default:
            stack for ``ListStorage``, nothing for tensor storages).
        transform: a callable (or list) applied to every sampled batch.
        prefetch: number of batches sampled ahead in a background thread.
        pin_memory: pin the CPU tensors of every sampled batch (and of
            ``rb[index]``), so that ``batch.to("cuda", non_blocking=True)``
            copies asynchronously.  Pinned memory serves only copies to a GPU:
            on a machine without CUDA this does nothing (``rb.pin_memory`` is
            then False).  Batches already on a GPU are left alone.

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
        pin_memory: bool = False,
    ) -> None:
        if not isinstance(pin_memory, bool):
            raise ReplayTypeError(
                f"{type(self).__name__}(): pin_memory must be True or False, got {pin_memory!r}"
            )
        self._storage = storage if storage is not None else ListStorage(1000)
        self._sampler = sampler if sampler is not None else RandomSampler()
        self._writer = writer if writer is not None else RoundRobinWriter()
        self._writer.register_storage(self._storage)
        if batch_size is not None:
            batch_size = _batch_size(batch_size, f"{type(self).__name__}()")
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
            raise ReplayArgumentError(
                f"{type(self).__name__}(): prefetch must be >= 0 (batches sampled ahead), got "
                f"{prefetch!r}"
            )
        self._prefetch = prefetch or 0
        self._pin_asked = pin_memory
        self._pin_memory = pin_memory and torch.cuda.is_available()
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

    @property
    def pin_memory(self) -> bool:
        """True when sampled batches are pinned (``pin_memory=True`` and CUDA is available)."""
        return self._pin_memory

    def __len__(self) -> int:
        return len(self._storage)

    def __getitem__(self, index: Any) -> Any:
        """The stored rows at ``index``, without sampling (the sampler is not touched).

        ``index`` is an int (one row, as stored), or a slice, a list, range or
        tuple of ints, or an integer (or bool mask) tensor: a batch of rows,
        collated and transformed as a sample is (but without the ``"index"``
        and weights a ``TensorDictReplayBuffer`` adds to samples).  Rows are in
        storage order; negative indices count from the last valid row.  Tensors
        and TensorDicts come back as copies: changing them leaves the rows alone.

        Raises:
            EmptyBufferError: nothing was written yet.
            ReplayIndexError: a row that is not valid (``0 .. len(rb) - 1``).
            ReplayTypeError: another kind of index (e.g. a key: use ``rb[:][key]``).

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
            >>> rb = ReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = rb.extend({"obs": torch.arange(6.0)})
            >>> rb[0]["obs"], rb[-1]["obs"]
            (tensor(0.), tensor(5.))
            >>> rb[[1, 3]]["obs"], rb[2:4]["obs"]
            (tensor([1., 3.]), tensor([2., 3.]))
        """
        where = f"{type(self).__name__}[...]"
        with self._lock:
            n = len(self._storage)
            if not n:
                raise EmptyBufferError("cannot index an empty buffer: add or extend it first")
            rows = read_index(index, n, where)
            data = self._storage.get(rows)
        if isinstance(rows, int):
            if isinstance(data, (Tensor, TensorDict)):  # a copy, as every batch is
                data = data.clone()
        elif self._collate_fn is not _identity:
            data = self._collate_fn(data)
        for transform in self._transforms:
            data = transform(data)
        if self._pin_memory:
            data = pinned(data)
        return data

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
            ReplayArgumentError: ``batch_size`` is not positive, or neither it
                nor the buffer's ``batch_size`` is given.
            ReplayTypeError: ``batch_size`` is not an integer (e.g. ``2.5``).
        """
        if batch_size is None:
            batch_size = self._batch_size
            if batch_size is None:
                raise ReplayArgumentError(
                    "no batch size: pass sample(batch_size=...) or build the buffer with "
                    "ReplayBuffer(batch_size=...)"
                )
            if self._prefetch:
                data, info = self._from_queue(batch_size)
                return (data, info) if return_info else data
        elif type(batch_size) is not int or batch_size <= 0:
            batch_size = _batch_size(batch_size, f"{type(self).__name__}.sample")
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
        if self._pin_memory:
            data = pinned(data)
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
        ``SamplerWithoutReplacement``; samplers that never run out iterate forever).

        Raises:
            ReplayArgumentError: the buffer has no ``batch_size`` (raised by
                ``iter(rb)`` itself, as TorchRL raises on iteration too).
        """
        if self._batch_size is None:
            raise ReplayArgumentError(
                f"cannot iterate over a {type(self).__name__} without a batch size: build it with "
                f"{type(self).__name__}(..., batch_size=256) (each step samples batch_size rows), "
                "or loop over rb.sample(batch_size=...) yourself"
            )
        return self._batches(self._batch_size)

    def _batches(self, batch_size: int) -> Iterator[Any]:
        while True:
            data, _ = self._sample(batch_size)
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
        """Save the buffer to the folder ``path``, atomically; ``loads`` reads it back.

        Rows go to raw tensor files (tensor storages) or a weights-only torch
        file (``ListStorage``), sampler and writer states to torch files of
        tensors, plus a JSON description and ``manifest.json`` (the size and
        sha256 of every file). The folder is written beside ``path`` and
        renamed into place when complete: until then the previous dump at
        ``path`` stays whole (an interrupted swap is undone by the next
        ``dumps`` or ``loads``).

        Raises:
            ReplayRuntimeError: ``path`` exists and is neither empty nor a dump
                (``dumps`` replaces the whole folder).

        Example:
            >>> import os, tempfile, torch
            >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
            >>> rb = ReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = rb.extend(torch.arange(4.0))
            >>> path = os.path.join(tempfile.mkdtemp(), "dump")
            >>> rb.dumps(path)
            >>> sorted(os.listdir(path))
            ['buffer.json', 'manifest.json', 'sampler.pt', 'storage', 'writer.pt']
        """

        def fill(folder: Path) -> None:
            with self._lock:
                dumps = getattr(self._storage, "dumps", None)
                if dumps is not None:
                    dumps(folder / "storage")
                else:
                    torch.save(self._storage.state_dict(), folder / "storage.pt")
                torch.save(self._sampler.state_dict(), folder / "sampler.pt")
                torch.save(self._writer.state_dict(), folder / "writer.pt")
                meta = {
                    "format": _FORMAT,
                    "version": _FORMAT_VERSION,
                    "batch_size": self._batch_size,
                    **self._components(),
                }
            (folder / "buffer.json").write_text(json.dumps(meta, indent=2))

        path = Path(path)
        _refuse_to_replace(path)
        write_folder_atomically(path, fill, format=_DUMP_FORMAT, version=_DUMP_VERSION)

    def loads(self, path: PathLike) -> None:
        """Restore a buffer saved by ``dumps`` into this (empty or not) buffer.

        Every file is checked against the dump's manifest before anything is
        loaded; torch files are read with ``weights_only=True``.

        Raises:
            ReplayFileNotFoundError: nothing was dumped at ``path``.
            ReplayRuntimeError: a missing, extra, truncated or changed file, a file
                that cannot be read (each named in the message), another
                format, or other kinds of components.

        Example:
            >>> import os, tempfile, torch
            >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
            >>> rb = ReplayBuffer(storage=LazyTensorStorage(10))
            >>> _ = rb.extend(torch.arange(4.0))
            >>> path = os.path.join(tempfile.mkdtemp(), "dump")
            >>> rb.dumps(path)
            >>> restored = ReplayBuffer(storage=LazyTensorStorage(10))
            >>> restored.loads(path)
            >>> len(restored)
            4
        """
        path = Path(path)
        _check_dump(path)
        meta_file = path / "buffer.json"
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError) as err:
            raise ReplayRuntimeError(
                f"cannot read {meta_file}: {err}; dump the buffer again"
            ) from err
        if not isinstance(meta, dict):
            raise ReplayRuntimeError(
                f"{meta_file} holds no JSON object: not a dumps() folder; dump the buffer again"
            )
        if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
            raise ReplayRuntimeError(
                f"{path}: unknown buffer format {meta.get('format')!r}: it was not written by "
                "ReplayBuffer.dumps(); give the folder that dumps() wrote"
            )
        mine = self._components()
        theirs = {k: meta.get(k) for k in mine}
        if theirs != mine:
            raise ReplayRuntimeError(
                f"{path} was saved from {theirs}; this buffer is {mine}: build the same kinds "
                "of storage, sampler and writer before loads()"
            )
        storage_loads = getattr(self._storage, "loads", None)
        storage_state: Any = None if storage_loads is not None else _load_pt(path / "storage.pt")
        sampler_state = _load_pt(path / "sampler.pt")
        writer_state = _load_pt(path / "writer.pt")
        with self._lock:
            if storage_loads is not None:
                try:
                    storage_loads(path / "storage")
                except ReplayError:
                    raise
                except Exception as err:
                    raise ReplayRuntimeError(
                        f"cannot read the rows under {path / 'storage'} "
                        f"({type(err).__name__}: {err}); dump the buffer again"
                    ) from err
            else:
                self._storage.load_state_dict(storage_state)
            self._sampler.load_state_dict(sampler_state)
            self._writer.load_state_dict(writer_state)
            self._batch_size = meta["batch_size"]
        self._drop_prefetched()

    # ------------------------------------------------------------------ #
    # pickling
    # ------------------------------------------------------------------ #
    def __getstate__(self) -> dict[str, Any]:
        """Everything but the lock and the prefetch thread.

        The lock is held while the parts are gathered, not while pickle copies
        the rows: pickle a buffer no other thread is writing to.  Transforms
        and ``collate_fn`` are pickled as given (lambdas cannot be).
        """
        with self._lock:
            state = self.__dict__.copy()
        for name in ("_lock", "_executor", "_queue"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._executor = None
        self._queue = deque()
        # pinning needs CUDA where the copy lives, not where it was pickled
        self._pin_memory = self._pin_asked and torch.cuda.is_available()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(\n    storage={self._storage!r},\n    sampler={self._sampler!r},"
            f"\n    writer={self._writer!r},\n    batch_size={self._batch_size})"
        )

    def __del__(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
