"""Storages: where a replay buffer keeps its rows.

* ``ListStorage`` — a Python list; holds any object.
* ``TensorStorage`` — rows of a preallocated TensorDict or tensor (first dim = row).
* ``LazyTensorStorage`` — a ``TensorStorage`` that allocates ``[max_size, ...]`` on the
  first write, from the structure of the data.
* ``LazyMemmapStorage`` — the same, memory-mapped to files (large buffers, several
  processes, data that outlives the process).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._data import as_batch
from rlbricks.replay._data import as_row
from rlbricks.replay._data import describe_mismatch
from rlbricks.replay._data import rows
from rlbricks.replay._errors import EmptyBufferError
from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayIndexError
from rlbricks.replay._errors import ReplayRuntimeError
from rlbricks.replay._errors import ReplayTypeError
from rlbricks.replay._errors import StructureError
from rlbricks.replay._index import read_index
from rlbricks.replay._index import write_index
from rlbricks.replay._interfaces import Storage
from rlbricks.tensordict import MemoryMappedTensor
from rlbricks.tensordict import TensorDict

__all__ = ["LazyMemmapStorage", "LazyTensorStorage", "ListStorage", "TensorStorage"]

PathLike = str | os.PathLike[str]
DeviceLike = torch.device | str | int | None


class ListStorage(Storage):
    """A list of up to ``max_size`` Python objects of any kind.

    Sampled rows come back as a list, which the buffer's ``collate_fn`` stacks
    (tensors, TensorDicts and dicts of tensors are stacked by default).

    Args:
        max_size: the number of rows kept.

    Example:
        >>> from rlbricks.replay import ListStorage, ReplayBuffer
        >>> rb = ReplayBuffer(storage=ListStorage(10), batch_size=2)
        >>> _ = rb.extend(["a", "b", "c"])
        >>> len(rb)
        3
    """

    def __init__(self, max_size: int = 1000) -> None:
        super().__init__(max_size)
        self._items: list[Any] = []

    def _set_one(self, index: int, item: Any) -> None:
        if index == len(self._items):
            self._items.append(item)
        elif 0 <= index < len(self._items):
            self._items[index] = item
        else:
            raise ReplayIndexError(
                f"ListStorage: cannot write row {index}, the storage holds {len(self._items)} rows "
                f"(max_size {self.max_size}); rows are written in order"
            )

    def set(self, index: Any, data: Any) -> None:
        """Write ``data`` at ``index``: an int (one item), or a tensor, list, range,
        tuple of ints or slice (one item of ``data`` per row)."""
        if not isinstance(index, Tensor) and not (
            index.__class__ is int and 0 <= index < self.max_size  # a writer's add: as is
        ):
            index = write_index(index, self.max_size, "ListStorage.set")
        if isinstance(index, int):
            self._set_one(index, data)
            return
        # in index order, so that rows past the current end are appended in turn
        for i, item in sorted(zip(index.tolist(), rows(data)), key=lambda pair: pair[0]):
            self._set_one(i, item)

    def get(self, index: Any) -> Any:
        """The item at an int index, or a list of items for a tensor, list, range,
        tuple of ints or slice (negative rows count from the last valid one)."""
        items = self._items
        if not items:
            raise EmptyBufferError("cannot sample from an empty buffer: add or extend it first")
        if not isinstance(index, Tensor) or index.dtype is not torch.long or not index.ndim:
            index = read_index(index, len(items), "ListStorage.get")
            if isinstance(index, int):
                return items[index]
        return [items[i] for i in index.tolist()]

    def __len__(self) -> int:
        return len(self._items)

    def empty(self) -> None:
        self._items = []

    def state_dict(self) -> dict[str, Any]:
        packed = [
            {"__tensordict__": item.state_dict()} if isinstance(item, TensorDict) else item
            for item in self._items
        ]
        return {"items": packed, "max_size": self.max_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.max_size = int(state_dict["max_size"])
        self._items = [
            TensorDict().load_state_dict(item["__tensordict__"])
            if isinstance(item, dict) and "__tensordict__" in item
            else item
            for item in state_dict["items"]
        ]

    def __repr__(self) -> str:
        return f"ListStorage(max_size={self.max_size}, len={len(self)})"


def _rows_fit(stored: TensorDict, data: TensorDict, batched: bool) -> bool:
    """Whether ``data`` has exactly the keys and row shapes of ``stored`` (cheap walk)."""
    if stored.entries.keys() != data.entries.keys():
        return False
    for key, want in stored.entries.items():
        value = data.entries[key]
        if isinstance(want, TensorDict):
            if not isinstance(value, TensorDict) or not _rows_fit(want, value, batched):
                return False
        elif (
            isinstance(value, TensorDict)
            or (value.shape[1:] if batched else value.shape) != want.shape[1:]
            or value.dtype != want.dtype
        ):
            return False
    return True


def _device(device: DeviceLike, where: str) -> torch.device | None:
    """``device`` checked to be usable here; ``None`` and ``"auto"`` stand for the first data's."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return None
    try:
        out = torch.device(device)
        torch.empty(0, device=out)  # "cuda" without a GPU, an unknown name, ...
    except (RuntimeError, AssertionError, TypeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReplayArgumentError(
            f"{where}: device={device!r} cannot be used here ({reason}); pass a device torch can "
            "allocate on (e.g. 'cpu', or 'cuda' when torch.cuda.is_available()), or 'auto' to "
            "keep the device of the first data written"
        ) from None
    if out.type == "cuda" and out.index is None:  # rows report cuda:N: compare like with like
        out = torch.device("cuda", torch.cuda.current_device())
    return out


def _device_of(data: TensorDict | Tensor) -> torch.device | None:
    """Where ``data`` lives: its device, or its first leaf's for a TensorDict without one."""
    if isinstance(data, Tensor) or data.device is not None:
        return data.device
    for value in data.entries.values():  # (a cheap walk: this runs on every write)
        found = _device_of(value)
        if found is not None:
            return found
    return None


def _missing_keys(missing: set[Any], extra: set[Any]) -> str:
    return (
        "the data does not have the structure of the stored rows: missing keys "
        f"{sorted(map(str, missing))}, extra keys {sorted(map(str, extra))}. Every write must "
        "give every stored key (extra keys alone become new columns): add the missing keys to "
        "the data, or keep them out of what is stored from the first write on "
        "(data.exclude(*keys) before extend, or rlbricks.transforms.ExcludeTransform on the env)"
    )


class TensorStorage(Storage):
    """Rows of a preallocated TensorDict (or tensor) whose first dim indexes rows.

    Rows become valid as they are written (``len`` starts at 0).  A TensorDict
    written later with keys the rows lack adds them as new columns, zero in the
    rows written before (e.g. the ``"loc"``/``"scale"`` of policy steps after
    random warm-up steps); one that lacks a stored key raises ``StructureError``.

    Args:
        storage: the preallocated data, batch size ``[max_size, ...]``.
        max_size: defaults to the first dim of ``storage``.
        device: where rows live: ``storage`` and written data are moved there.
            ``None`` or ``"auto"``: the device of ``storage``.

    Example:
        >>> import torch
        >>> from rlbricks.replay import TensorStorage
        >>> from rlbricks.tensordict import TensorDict
        >>> storage = TensorStorage(TensorDict({"obs": torch.zeros(100, 4)}, batch_size=[100]))
        >>> storage.set(torch.arange(3), TensorDict({"obs": torch.ones(3, 4)}, batch_size=[3]))
        >>> len(storage), storage.get(torch.tensor([0, 2]))["obs"].sum().item()
        (3, 8.0)
        >>> storage.get([-1, 0])["obs"].shape  # lists, ranges, slices; -1 is the last valid row
        torch.Size([2, 4])
    """

    def __init__(
        self,
        storage: TensorDict | Tensor | None,
        max_size: int | None = None,
        device: DeviceLike = None,
    ) -> None:
        if storage is not None:
            rows_ = storage.batch_size[0] if isinstance(storage, TensorDict) else storage.shape[0]
            max_size = rows_ if max_size is None else max_size
            if rows_ < max_size:
                raise ReplayArgumentError(
                    f"the storage has {rows_} rows, fewer than max_size {max_size}: give a storage of "
                    "max_size rows, or leave max_size out"
                )
        if max_size is None:
            raise ReplayArgumentError(
                "max_size is needed when no storage is given: pass max_size=... or a storage"
            )
        super().__init__(max_size)
        # None until the first write when neither device nor storage says where rows live
        self.device = _device(device, type(self).__name__)
        if storage is not None:
            if self.device is None:
                self.device = _device_of(storage)
            elif _device_of(storage) != self.device:
                storage = storage.to(self.device)
        self._storage: TensorDict | Tensor | None = storage
        self._len = 0

    # -- allocation (overridden by the lazy storages) -------------------- #
    def _allocate(self, example: Any) -> TensorDict | Tensor:
        raise ReplayRuntimeError(
            "TensorStorage got no preallocated storage: pass storage=... (a TensorDict or "
            "tensor of max_size rows), or use LazyTensorStorage, which allocates on first write"
        )

    @property
    def initialized(self) -> bool:
        """True once the rows are allocated."""
        return self._storage is not None

    @property
    def data(self) -> TensorDict | Tensor:
        """The whole preallocated storage (every row, valid or not)."""
        if self._storage is None:
            raise EmptyBufferError("the storage is not allocated yet: add or extend first")
        return self._storage

    def set(self, index: Any, data: Any) -> None:
        """Write ``data`` at rows ``index``.

        Args:
            index: an int (``data`` is one row), or a 1-d tensor, list, range,
                tuple of ints or slice (``data`` has one row per index).
                Tensors are used as given (writers compute them); the other
                kinds are checked to be in ``[0, max_size)``.
            data: a TensorDict, a dict of tensors or a tensor.

        Raises:
            StructureError: ``data`` lacks a stored key, or a stored key's rows
                differ in shape or dtype (keys the rows lack are added instead).
            ReplayIndexError: a row outside ``[0, max_size)``.
        """
        if not isinstance(index, Tensor) and not (
            index.__class__ is int and 0 <= index < self.max_size  # a writer's add: as is
        ):
            index = write_index(index, self.max_size, f"{type(self).__name__}.set")
            if not isinstance(index, int) and not index.numel():
                return  # no row to write
        single = isinstance(index, int)
        storage = self._storage
        if storage is None:
            if isinstance(data, Mapping) and not isinstance(data, TensorDict):
                data = as_row(data) if single else as_batch(data)
            example = data if single else data[0]
            storage = self._storage = self._allocate(example)
            if self.device is None:  # "auto": where the first data lives, from now on
                self.device = _device_of(storage)
        device = self.device
        if device is not None and isinstance(data, (Tensor, TensorDict)):
            where = data.device  # None: a TensorDict whose leaves say where (_write_failed)
            if where is not None and where != device:
                data = data.to(device)
        if isinstance(storage, TensorDict):
            if not isinstance(data, TensorDict):
                raise StructureError(
                    f"the storage holds TensorDicts; got {type(data).__name__}: extend with a "
                    "TensorDict or a dict of tensors"
                )
            if not _rows_fit(storage, data, batched=not single):
                data = self._fit(storage, data, single)
        try:
            storage[index] = data
        except (RuntimeError, IndexError, ValueError) as err:
            self._write_failed(storage, index, data, err)
        top = index + 1 if single else int(index.max()) + 1
        if top > self._len:
            self._len = top

    def _write_failed(self, storage: Any, index: Any, data: Any, err: Exception) -> None:
        """A write raised: retry once with the leaves moved to the rows' device, else explain.

        A TensorDict without a device may hold leaves elsewhere than the rows
        (GPU steps into a CPU buffer); they are moved only when writing them
        as they are fails, so that writes of data already in place pay nothing.
        """
        device = self.device
        if device is not None and isinstance(data, TensorDict) and data.device is None:
            try:
                storage[index] = data.to(device)
                return
            except (RuntimeError, IndexError, ValueError) as again:
                err = again
        why = None
        if isinstance(storage, TensorDict) and isinstance(data, TensorDict):
            why = describe_mismatch(storage, data)
        raise StructureError(why or f"cannot write the data into the storage: {err}") from None

    def _fit(self, storage: TensorDict, data: TensorDict, single: bool) -> TensorDict:
        """``data`` made writable into ``storage``: new keys become columns, dtypes are cast.

        Raises StructureError when ``data`` lacks a stored key or a stored key's
        rows differ in shape or (castable) dtype; nothing is changed then.
        """
        have = set(storage.keys(include_nested=True, leaves_only=True))
        got = set(data.keys(include_nested=True, leaves_only=True))
        if not have <= got:
            raise StructureError(_missing_keys(have - got, got - have))
        why = describe_mismatch(storage, data, keys=have)
        if why is not None:
            raise StructureError(why)
        if got != have:
            self._add_columns(storage, data, sorted(got - have, key=str), single)
        return data.named_apply(lambda key, value: value.to(storage.get(key).dtype))

    def _add_columns(
        self, storage: TensorDict, data: TensorDict, keys: list[Any], single: bool
    ) -> None:
        """Add the columns ``keys`` of ``data`` to ``storage``, zero in every row."""
        item = tuple(storage.batch_size[1:])  # the batch shape of one stored row
        columns = {}
        for key in keys:
            value = data.get(key)
            row = tuple(value.shape if single else value.shape[1:])
            if row[: len(item)] != item:
                raise StructureError(
                    f"new key {key!r}: its rows have shape {row}, which does not start with "
                    f"the batch shape {item} of the stored rows; give it the rows' batch dims"
                )
            device = self.device if self.device is not None else value.device
            columns[key] = torch.zeros((self.max_size, *row), dtype=value.dtype, device=device)
        for key, column in columns.items():
            storage.set(key, column)
        self._columns_added(storage)

    def _columns_added(self, storage: TensorDict) -> None:
        """Hook: columns were just added to ``storage`` (memory-mapped storages map them)."""

    def get(self, index: Any) -> Any:
        """Rows ``index`` of the valid ones.

        Args:
            index: a long tensor of row indices (used as given: samplers draw
                valid rows), or an int, a list, range or tuple of ints, a slice,
                another integer tensor or a bool mask over the valid rows; these
                count from the last valid row when negative and are checked.

        Raises:
            EmptyBufferError: nothing was written yet.
            ReplayIndexError: a row that is not valid (not a tensor index).
        """
        storage = self._storage
        if storage is None or not self._len:
            raise EmptyBufferError("cannot sample from an empty buffer: add or extend it first")
        if not isinstance(index, Tensor) or index.dtype is not torch.long or not index.ndim:
            index = read_index(index, self._len, f"{type(self).__name__}.get")
        return storage[index]

    def column(self, key: Any) -> Tensor:
        """The tensor under ``key`` for the valid rows (``[len, ...]``).

        Raises:
            KeyError: the stored rows have no such key (the message lists them).
        """
        storage = self.data
        if not isinstance(storage, TensorDict):
            raise ReplayTypeError(
                f"column() needs a storage of TensorDicts, this one holds {type(storage).__name__}: "
                "store TensorDicts (or dicts of tensors) to read columns"
            )
        return storage.get(key)[: self._len]

    def __len__(self) -> int:
        return self._len

    def empty(self) -> None:
        self._len = 0

    # -- persistence ---------------------------------------------------- #
    def state_dict(self) -> dict[str, Any]:
        storage = self._storage
        if isinstance(storage, TensorDict):
            data: Any = {"tensordict": storage.state_dict()}
        else:
            data = storage
        return {"len": self._len, "max_size": self.max_size, "data": data}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        data = state_dict["data"]
        if isinstance(data, dict):
            data = TensorDict().load_state_dict(data["tensordict"])
        self.max_size = int(state_dict["max_size"])
        self._adopt(None if data is None else self._copy_in(data))
        self._len = int(state_dict["len"])

    def _adopt(self, data: TensorDict | Tensor | None) -> None:
        """Take loaded rows as the storage (copied to this storage's device)."""
        if data is not None and self.device is not None:
            data = data.to(self.device)
        self._storage = data

    def dumps(self, path: PathLike) -> None:
        """Write the rows as raw tensor files plus JSON under the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"len": self._len, "max_size": self.max_size, "kind": None}
        storage = self._storage
        if isinstance(storage, TensorDict):
            storage.memmap(path / "rows", copy_existing=True)
            meta["kind"] = "tensordict"
        elif storage is not None:
            rows_td = TensorDict({"rows": storage}, batch_size=[storage.shape[0]])
            rows_td.memmap(path / "rows", copy_existing=True)
            meta["kind"] = "tensor"
        (path / "storage.json").write_text(json.dumps(meta))

    def loads(self, path: PathLike) -> None:
        """Read rows written by ``dumps`` (no pickle)."""
        path = Path(path)
        meta = json.loads((path / "storage.json").read_text())
        kind = meta["kind"]
        data: TensorDict | Tensor | None = None
        if kind is not None:
            loaded = TensorDict.load_memmap(path / "rows")
            data = loaded if kind == "tensordict" else loaded["rows"]
        self.max_size = int(meta["max_size"])
        self._adopt(None if data is None else self._copy_in(data))
        self._len = int(meta["len"])

    def _copy_in(self, data: TensorDict | Tensor) -> TensorDict | Tensor:
        return data.clone()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(max_size={self.max_size}, len={self._len}, "
            f"device={self.device})"
        )


class LazyTensorStorage(TensorStorage):
    """A ``TensorStorage`` allocated on the first write from the data's structure.

    TensorDicts, dicts of tensors and tensors are accepted; each row keeps the
    shape and dtype of the first row written.

    Args:
        max_size: the number of rows kept.
        device: where rows live; written data is moved there and batches are
            sampled there.  ``None`` (default) or ``"auto"``: the device of the
            first data written.  (TorchRL's default is ``"cpu"``; pass
            ``device="cpu"`` to keep GPU data off the GPU.)

    Raises:
        ReplayArgumentError: ``device`` cannot be allocated on (e.g. ``"cuda"``
            on a machine without a GPU).

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(1000), batch_size=32)
        >>> _ = rb.extend({"obs": torch.randn(64, 4), "reward": torch.randn(64, 1)})
        >>> rb.sample()["obs"].shape
        torch.Size([32, 4])
        >>> on_cpu = LazyTensorStorage(1000, device="cpu")  # rows stay there, whatever is written
        >>> on_cpu.device
        device(type='cpu')
    """

    def __init__(self, max_size: int, device: DeviceLike = None) -> None:
        super().__init__(None, max_size=max_size, device=device)

    def _allocate(self, example: Any) -> TensorDict | Tensor:
        device = self.device
        n = self.max_size
        if isinstance(example, TensorDict):
            return example.apply(
                lambda x: torch.zeros((n, *x.shape), dtype=x.dtype, device=device or x.device),
                batch_size=[n, *example.batch_size],
                device=device if device is not None else example.device,
            )
        if isinstance(example, Tensor):
            return torch.zeros(
                (n, *example.shape), dtype=example.dtype, device=device or example.device
            )
        raise StructureError(
            f"{type(self).__name__} stores tensors, TensorDicts and dicts of tensors; got "
            f"{type(example).__name__}: use ListStorage for other objects"
        )


class LazyMemmapStorage(LazyTensorStorage):
    """A ``LazyTensorStorage`` whose rows live in memory-mapped files.

    Rows are allocated on the first write under ``scratch_dir`` (raw tensor
    files plus JSON; reopen them with ``TensorDict.load_memmap(scratch_dir)``
    from any process), or in anonymous shared memory when ``scratch_dir`` is
    None.  Sent to a worker process, the storage shares its rows instead of
    copying them.

    Keys that later data adds become new memory-mapped columns (files under
    ``scratch_dir``), zero in the rows written before.  Only this process sees
    them: a process that already shares the rows, or reopened the folder,
    keeps the old columns; write every key from the first write on when rows
    are shared.  A copy made by ``pickle`` holds its rows in anonymous shared
    memory (``scratch_dir`` None): it never writes to the original's files.

    Args:
        max_size: the number of rows kept.
        scratch_dir: folder of the memory-mapped files (created; ``None``: shared memory).
        existsok: allow reusing (overwriting) files already in ``scratch_dir``.
        device: ``"cpu"`` (default), ``"auto"`` or ``None``: memory-mapped rows
            live on the CPU; move sampled batches with a transform
            (``rb.append_transform(lambda td: td.to("cuda"))``).

    Raises:
        ReplayArgumentError: ``device`` is not the CPU.

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.replay import LazyMemmapStorage, ReplayBuffer
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     rb = ReplayBuffer(storage=LazyMemmapStorage(100, scratch_dir=tmp), batch_size=4)
        ...     _ = rb.extend({"obs": torch.ones(10, 3)})
        ...     rb.storage.data.is_memmap()
        True
    """

    def __init__(
        self,
        max_size: int,
        scratch_dir: PathLike | None = None,
        existsok: bool = True,
        device: DeviceLike = "cpu",
    ) -> None:
        wanted = _device(device, "LazyMemmapStorage")
        if wanted is not None and wanted.type != "cpu":
            raise ReplayArgumentError(
                f"LazyMemmapStorage: device={device!r}, but memory-mapped rows live on the CPU: "
                "pass device='cpu' and move sampled batches with "
                f"rb.append_transform(lambda td: td.to({str(wanted)!r})), or use "
                f"LazyTensorStorage(max_size, device={str(wanted)!r})"
            )
        super().__init__(max_size, device="cpu")
        self.scratch_dir = None if scratch_dir is None else str(scratch_dir)
        self.existsok = existsok

    def _allocate(self, example: Any) -> TensorDict | Tensor:
        n = self.max_size
        if isinstance(example, TensorDict):
            template = example.to("cpu").expand(n, *example.batch_size)
            return template.memmap_like(self.scratch_dir, existsok=self.existsok)
        if isinstance(example, Tensor):
            filename = None
            if self.scratch_dir is not None:
                Path(self.scratch_dir).mkdir(parents=True, exist_ok=True)
                filename = str(Path(self.scratch_dir) / "rows.memmap")
            return MemoryMappedTensor.zeros(
                (n, *example.shape), dtype=example.dtype, filename=filename, existsok=self.existsok
            )
        return super()._allocate(example)

    def _copy_in(self, data: TensorDict | Tensor) -> TensorDict | Tensor:
        # always a copy into this storage's own files: never write into the source
        if isinstance(data, TensorDict):
            return data.clone().memmap_(self.scratch_dir)
        filename = None if self.scratch_dir is None else str(Path(self.scratch_dir) / "rows.memmap")
        return MemoryMappedTensor.from_tensor(data.clone(), filename=filename, existsok=True)

    def _adopt(self, data: TensorDict | Tensor | None) -> None:
        self._storage = data

    def _columns_added(self, storage: TensorDict) -> None:
        # the rows already mapped keep their files; the new columns get theirs
        storage.memmap_(self.scratch_dir)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        data = self._storage
        if data is None:
            return
        mapped = (
            data.is_memmap()
            if isinstance(data, TensorDict)
            else isinstance(data, MemoryMappedTensor)
        )
        if not mapped:
            # pickle gives the rows as ordinary tensors (multiprocessing shares the mapped
            # ones): map a copy of one's own, never the original's files
            self.scratch_dir = None
            self._storage = self._copy_in(data)

    def __repr__(self) -> str:
        return (
            f"LazyMemmapStorage(max_size={self.max_size}, len={self._len}, "
            f"scratch_dir={self.scratch_dir!r})"
        )
