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
from rlbricks.replay._interfaces import Storage
from rlbricks.tensordict import MemoryMappedTensor
from rlbricks.tensordict import TensorDict

__all__ = ["LazyMemmapStorage", "LazyTensorStorage", "ListStorage", "TensorStorage"]

PathLike = str | os.PathLike[str]


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

    def set(self, index: int | Tensor, data: Any) -> None:
        if isinstance(index, int):
            self._set_one(index, data)
            return
        # in index order, so that rows past the current end are appended in turn
        for i, item in sorted(zip(index.tolist(), rows(data)), key=lambda pair: pair[0]):
            self._set_one(i, item)

    def get(self, index: int | Tensor) -> Any:
        if not self._items:
            raise EmptyBufferError("cannot sample from an empty buffer: add or extend it first")
        if isinstance(index, int):
            return self._items[index]
        items = self._items
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


class TensorStorage(Storage):
    """Rows of a preallocated TensorDict (or tensor) whose first dim indexes rows.

    Rows become valid as they are written (``len`` starts at 0).

    Args:
        storage: the preallocated data, batch size ``[max_size, ...]``.
        max_size: defaults to the first dim of ``storage``.
        device: where rows live; written data is moved there.

    Example:
        >>> import torch
        >>> from rlbricks.replay import TensorStorage
        >>> from rlbricks.tensordict import TensorDict
        >>> storage = TensorStorage(TensorDict({"obs": torch.zeros(100, 4)}, batch_size=[100]))
        >>> storage.set(torch.arange(3), TensorDict({"obs": torch.ones(3, 4)}, batch_size=[3]))
        >>> len(storage), storage.get(torch.tensor([0, 2]))["obs"].sum().item()
        (3, 8.0)
    """

    def __init__(
        self,
        storage: TensorDict | Tensor | None,
        max_size: int | None = None,
        device: torch.device | str | None = None,
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
        self.device = torch.device(device) if device is not None else None
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

    def set(self, index: int | Tensor, data: Any) -> None:
        storage = self._storage
        if storage is None:
            if isinstance(data, Mapping) and not isinstance(data, TensorDict):
                data = as_row(data) if isinstance(index, int) else as_batch(data)
            example = data if isinstance(index, int) else data[0]
            storage = self._storage = self._allocate(example)
        device = self.device
        if device is not None and isinstance(data, (Tensor, TensorDict)) and data.device != device:
            data = data.to(device)
        if isinstance(storage, TensorDict):
            if not isinstance(data, TensorDict):
                raise StructureError(
                    f"the storage holds TensorDicts; got {type(data).__name__}: extend with a "
                    "TensorDict or a dict of tensors"
                )
            if not _rows_fit(storage, data, batched=not isinstance(index, int)):
                why = describe_mismatch(storage, data)
                if why is not None:
                    raise StructureError(why)
                data = data.named_apply(lambda key, value: value.to(storage.get(key).dtype))
        try:
            storage[index] = data
        except (RuntimeError, IndexError, ValueError) as err:
            why = None
            if isinstance(storage, TensorDict) and isinstance(data, TensorDict):
                why = describe_mismatch(storage, data)
            raise StructureError(why or f"cannot write the data into the storage: {err}") from None
        top = index + 1 if isinstance(index, int) else int(index.max()) + 1
        if top > self._len:
            self._len = top

    def get(self, index: int | Tensor) -> Any:
        storage = self._storage
        if storage is None or not self._len:
            raise EmptyBufferError("cannot sample from an empty buffer: add or extend it first")
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
        device: where rows live (default: the device of the first data).

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(1000), batch_size=32)
        >>> _ = rb.extend({"obs": torch.randn(64, 4), "reward": torch.randn(64, 1)})
        >>> rb.sample()["obs"].shape
        torch.Size([32, 4])
    """

    def __init__(self, max_size: int, device: torch.device | str | None = None) -> None:
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

    Args:
        max_size: the number of rows kept.
        scratch_dir: folder of the memory-mapped files (created; ``None``: shared memory).
        existsok: allow reusing (overwriting) files already in ``scratch_dir``.

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
        self, max_size: int, scratch_dir: PathLike | None = None, existsok: bool = True
    ) -> None:
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

    def __repr__(self) -> str:
        return (
            f"LazyMemmapStorage(max_size={self.max_size}, len={self._len}, "
            f"scratch_dir={self.scratch_dir!r})"
        )
