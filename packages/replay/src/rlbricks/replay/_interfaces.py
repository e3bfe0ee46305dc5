"""The three small interfaces a replay buffer is made of: Storage, Sampler, Writer.

A ``ReplayBuffer`` owns one of each.  The *writer* decides where new data goes
(``extend`` returns the indices it wrote), the *storage* holds the rows, and
the *sampler* picks the indices of a batch.  Every piece can be swapped
independently, and each keeps its own state (``state_dict``) so a whole buffer
checkpoints exactly.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayRuntimeError
from rlbricks.replay._errors import ReplayTypeError

__all__ = ["Sampler", "Storage", "Writer"]


class Storage(abc.ABC):
    """Holds up to ``max_size`` rows and reads/writes them by index.

    Subclasses implement ``set``, ``get``, ``__len__``, ``empty`` and the state
    methods.  ``len(storage)`` is the number of rows written so far (at most
    ``max_size``); rows ``0 .. len-1`` are valid.

    Writers and samplers index with 1-d long tensors (or an int for one row);
    the storages shipped here also take lists, ranges and tuples of ints and
    slices (``rlbricks.replay`` turns them into tensors and checks them).
    """

    def __init__(self, max_size: int) -> None:
        if not isinstance(max_size, int) or max_size <= 0:
            raise ReplayArgumentError(f"max_size must be a positive int, got {max_size!r}")
        self.max_size = max_size

    @abc.abstractmethod
    def set(self, index: Any, data: Any) -> None:
        """Write one row (``index`` an int) or several rows (``index`` a 1-d tensor)."""

    @abc.abstractmethod
    def get(self, index: Any) -> Any:
        """Read one row (int) or a batch of rows (1-d tensor of indices)."""

    def __getitem__(self, index: Any) -> Any:
        """Same as ``get(index)``."""
        return self.get(index)

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of valid rows."""

    @abc.abstractmethod
    def empty(self) -> None:
        """Forget every row (``len`` becomes 0); allocated memory may be kept."""

    def column(self, key: Any) -> Tensor:
        """The tensor stored under ``key`` for the valid rows (used by ``SliceSampler``)."""
        raise ReplayTypeError(
            f"{type(self).__name__} does not store tensors by key; samplers that read a "
            "column (SliceSampler) need a TensorStorage, LazyTensorStorage or LazyMemmapStorage"
        )

    @abc.abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to restore the storage (tensors and plain values only)."""

    @abc.abstractmethod
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from ``state_dict()``."""


class Sampler(abc.ABC):
    """Chooses the indices of a batch from a storage's valid rows.

    ``sample`` returns ``(index, info)``: a 1-d ``torch.long`` tensor of row
    indices and a dict of extra per-sample data (importance weights, slice
    markers, ...).  The buffer tells the sampler about writes through
    ``extend`` (and ``add``) so that stateful samplers (priorities, epochs)
    stay in sync.
    """

    @abc.abstractmethod
    def sample(self, storage: Storage, batch_size: int) -> tuple[Tensor, dict[Any, Any]]:
        """Indices (1-d long tensor) of a batch and extra per-sample info."""

    def extend(self, index: Tensor) -> None:  # noqa: B027 - stateless samplers ignore writes
        """Rows ``index`` were just written."""

    def add(self, index: int) -> None:
        """Row ``index`` was just written."""
        self.extend(torch.tensor([index]))

    def update_priority(self, index: Tensor, priority: Tensor) -> None:
        """Set new priorities (only prioritized samplers support it)."""
        raise ReplayTypeError(
            f"{type(self).__name__} has no priorities: use PrioritizedSampler "
            "(or PrioritizedReplayBuffer) to call update_priority"
        )

    @property
    def ran_out(self) -> bool:
        """True when an epoch-based sampler has served every index once."""
        return False

    def empty(self) -> None:  # noqa: B027 - stateless samplers have nothing to forget
        """Forget all state tied to stored rows."""

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: B027
        """Restore from ``state_dict()``."""


class Writer(abc.ABC):
    """Chooses where new rows go and writes them into the storage."""

    def __init__(self) -> None:
        self._storage: Storage | None = None

    def register_storage(self, storage: Storage) -> None:
        """Attach the storage this writer writes into."""
        self._storage = storage

    @property
    def storage(self) -> Storage:
        """The attached storage."""
        if self._storage is None:
            raise ReplayRuntimeError(f"{type(self).__name__} has no storage: call register_storage")
        return self._storage

    @abc.abstractmethod
    def add(self, data: Any) -> int | None:
        """Write one row; return its index (``None`` if the writer dropped it)."""

    @abc.abstractmethod
    def extend(self, data: Any) -> Tensor:
        """Write a batch of rows; return the indices written (1-d long tensor)."""

    def empty(self) -> None:  # noqa: B027 - stateless writers have nothing to forget
        """Reset the writer's cursor."""

    def state_dict(self) -> dict[str, Any]:
        """The writer's state (tensors and plain values only)."""
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # noqa: B027
        """Restore from ``state_dict()``."""
