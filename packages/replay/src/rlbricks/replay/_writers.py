"""Writers: where new rows go.

* ``RoundRobinWriter`` — a ring: rows are written in order and the oldest
  rows are overwritten once the storage is full.
* ``TensorDictMaxValueWriter`` — keeps the ``max_size`` rows with the highest
  value under ``rank_key`` (e.g. the best episodes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._data import batch_len
from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayTypeError
from rlbricks.replay._interfaces import Writer
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["RoundRobinWriter", "TensorDictMaxValueWriter"]


class RoundRobinWriter(Writer):
    """Write rows in order; once the storage is full, overwrite the oldest.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer, RoundRobinWriter
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(4), writer=RoundRobinWriter())
        >>> rb.extend(torch.arange(3))
        tensor([0, 1, 2])
        >>> rb.extend(torch.arange(3))  # wraps around
        tensor([3, 0, 1])
    """

    def __init__(self) -> None:
        super().__init__()
        self._cursor = 0

    def add(self, data: Any) -> int:
        storage = self.storage
        index = self._cursor
        storage.set(index, data)
        self._cursor = (index + 1) % storage.max_size
        return index

    def extend(self, data: Any) -> Tensor:
        storage = self.storage
        n = batch_len(data)
        size = storage.max_size
        if n > size:  # only the last max_size rows can survive: skip the others
            self._cursor = (self._cursor + n - size) % size
            data = data[n - size :]
            n = size
        start = self._cursor
        index = torch.arange(start, start + n)
        if start + n > size:
            index = index.remainder_(size)
        storage.set(index, data)
        self._cursor = (start + n) % size
        return index

    @property
    def cursor(self) -> int:
        """The row the next write goes to."""
        return self._cursor

    def empty(self) -> None:
        self._cursor = 0

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self._cursor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._cursor = int(state_dict["cursor"])

    def __repr__(self) -> str:
        return f"RoundRobinWriter(cursor={self._cursor})"


class TensorDictMaxValueWriter(Writer):
    """Keep the rows with the highest ``rank_key`` values (a TensorDict storage).

    While the storage has room every row is kept; afterwards a new row replaces
    the lowest-ranked stored row if it ranks higher.  Values with extra dims
    are reduced to one number per row with ``reduction`` (``"sum"``,
    ``"mean"``, ``"max"``, ``"min"``).

    Args:
        rank_key: the key holding the rank (default ``("next", "reward")``).
        reduction: how a row's values become one rank.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer, TensorDictMaxValueWriter
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(2), writer=TensorDictMaxValueWriter("score"))
        >>> _ = rb.extend({"score": torch.tensor([1.0, 5.0, 3.0, 0.0])})
        >>> sorted(rb.storage.data["score"].tolist())
        [3.0, 5.0]
    """

    def __init__(self, rank_key: NestedKey = ("next", "reward"), reduction: str = "sum") -> None:
        super().__init__()
        if reduction not in ("sum", "mean", "max", "min"):
            raise ReplayArgumentError(f"reduction must be sum, mean, max or min; got {reduction!r}")
        self.rank_key = rank_key
        self.reduction = reduction
        self._ranks = torch.empty(0, dtype=torch.float64)
        self._kept = torch.empty(0, dtype=torch.long)

    def _rank(self, data: TensorDict, batched: bool) -> Tensor:
        if not isinstance(data, TensorDict):
            raise ReplayTypeError(
                f"TensorDictMaxValueWriter ranks TensorDicts; got {type(data).__name__}: extend the "
                "buffer with TensorDicts holding the rank key"
            )
        value = data.get(self.rank_key).double()
        value = value.reshape(value.shape[0], -1) if batched else value.reshape(1, -1)
        return _reduce(value, self.reduction)

    def _ensure_ranks(self) -> None:
        size = self.storage.max_size
        if self._ranks.numel() != size:
            self._ranks = torch.full((size,), -torch.inf, dtype=torch.float64)

    def add(self, data: Any) -> int | None:
        index = self._place(self._rank(data, batched=False))
        if not len(index):
            return None
        self.storage.set(int(index[0]), data)
        return int(index[0])

    def extend(self, data: Any) -> Tensor:
        ranks = self._rank(data, batched=True)
        index = self._place(ranks)
        keep = self._kept
        if len(index):
            self.storage.set(index, data[keep])
        return index

    def _place(self, ranks: Tensor) -> Tensor:
        """Rows the new data goes to; sets ``self._kept``, the new rows that survive.

        New rows fill the free rows best-first; the others are paired, best
        first, with the stored rows of lowest rank, and replace them where they
        rank higher (the pairing is a prefix since both orders are monotone).
        """
        self._ensure_ranks()
        filled = len(self.storage)
        order = torch.argsort(ranks, descending=True, stable=True)
        free = self.storage.max_size - filled
        first, rest = order[:free], order[free:]
        index = torch.arange(filled, filled + len(first))
        self._ranks[index] = ranks[first]
        if len(rest):
            valid = filled + len(first)
            rest = rest[:valid]  # at most one new row per stored row can be placed
            worst = torch.argsort(self._ranks[:valid], stable=True)[: len(rest)]
            better = ranks[rest] > self._ranks[worst]
            rest, worst = rest[better], worst[better]
            self._ranks[worst] = ranks[rest]
            index = torch.cat([index, worst])
            first = torch.cat([first, rest])
        self._kept = first
        return index

    @property
    def last_kept(self) -> Tensor:
        """Positions, in the last batch given to ``extend``, of the rows that were written."""
        return self._kept

    def empty(self) -> None:
        self._ranks = torch.empty(0, dtype=torch.float64)

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": self._ranks.clone()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._ranks = state_dict["ranks"].clone()

    def __repr__(self) -> str:
        return f"TensorDictMaxValueWriter(rank_key={self.rank_key!r}, reduction={self.reduction!r})"


def _reduce(value: Tensor, reduction: str) -> Tensor:
    if reduction == "sum":
        return value.sum(1)
    if reduction == "mean":
        return value.mean(1)
    if reduction == "max":
        return value.amax(1)
    return value.amin(1)
