"""Uniform samplers: with replacement (``RandomSampler``) and epoch-wise without."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import EmptyBufferError
from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._interfaces import Sampler
from rlbricks.replay._interfaces import Storage

__all__ = ["RandomSampler", "SamplerWithoutReplacement"]

_EMPTY = "cannot sample from an empty buffer: add or extend it first"


class RandomSampler(Sampler):
    """Draw indices uniformly, with replacement, from the valid rows.

    Args:
        generator: an optional ``torch.Generator`` for reproducible draws.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, RandomSampler, ReplayBuffer
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(10), sampler=RandomSampler(), batch_size=5)
        >>> _ = rb.extend(torch.arange(10))
        >>> rb.sample().shape
        torch.Size([5])
    """

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def sample(self, storage: Storage, batch_size: int) -> tuple[Tensor, dict[Any, Any]]:
        n = len(storage)
        if not n:
            raise EmptyBufferError(_EMPTY)
        if self.generator is None:
            return torch.randint(n, (batch_size,)), {}
        return torch.randint(n, (batch_size,), generator=self.generator), {}

    def __repr__(self) -> str:
        return "RandomSampler()"


class SamplerWithoutReplacement(Sampler):
    """Serve every valid row once per epoch, in random (or storage) order.

    An epoch is a permutation of the rows valid when it starts; rows written
    during an epoch join the next one.  ``ran_out`` is True right after the
    batch that ends an epoch (``ReplayBuffer.__iter__`` stops there).

    Args:
        drop_last: skip the last batch of an epoch when it would be short.
        shuffle: random order (``False``: storage order).
        generator: an optional ``torch.Generator``.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer, SamplerWithoutReplacement
        >>> rb = ReplayBuffer(
        ...     storage=LazyTensorStorage(10),
        ...     sampler=SamplerWithoutReplacement(shuffle=False),
        ...     batch_size=4,
        ... )
        >>> _ = rb.extend(torch.arange(10))
        >>> [batch.tolist() for batch in rb]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """

    def __init__(
        self,
        drop_last: bool = False,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        self.drop_last = drop_last
        self.shuffle = shuffle
        self.generator = generator
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self._ran_out = False

    def _new_epoch(self, n: int) -> None:
        if self.shuffle:
            self._order = torch.randperm(n, generator=self.generator)
        else:
            self._order = torch.arange(n)
        self._pos = 0

    def sample(self, storage: Storage, batch_size: int) -> tuple[Tensor, dict[Any, Any]]:
        n = len(storage)
        if not n:
            raise EmptyBufferError(_EMPTY)
        if self.drop_last and batch_size > n:
            raise ReplayArgumentError(
                f"drop_last=True and batch_size {batch_size} > {n} stored rows: no full batch exists; "
                "add more rows, sample a smaller batch, or use drop_last=False"
            )
        left = len(self._order) - self._pos
        if left <= 0 or (self.drop_last and left < batch_size):
            self._new_epoch(n)
        index = self._order[self._pos : self._pos + batch_size]
        self._pos += len(index)
        left = len(self._order) - self._pos
        self._ran_out = left <= 0 or (self.drop_last and left < batch_size)
        return index, {}

    @property
    def ran_out(self) -> bool:
        return self._ran_out

    def empty(self) -> None:
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0
        self._ran_out = False

    def state_dict(self) -> dict[str, Any]:
        return {"order": self._order.clone(), "pos": self._pos, "ran_out": self._ran_out}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._order = state_dict["order"].clone()
        self._pos = int(state_dict["pos"])
        self._ran_out = bool(state_dict["ran_out"])

    def __repr__(self) -> str:
        return f"SamplerWithoutReplacement(drop_last={self.drop_last}, shuffle={self.shuffle})"
