"""Buffers with priorities, and buffers that write bookkeeping keys into TensorDict samples."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._buffers import ReplayBuffer
from rlbricks.replay._buffers import Transform
from rlbricks.replay._data import expand_right
from rlbricks.replay._errors import ReplayKeyError
from rlbricks.replay._interfaces import Sampler
from rlbricks.replay._interfaces import Storage
from rlbricks.replay._interfaces import Writer
from rlbricks.replay._prioritized import PrioritizedSampler
from rlbricks.replay._storages import ListStorage
from rlbricks.replay._storages import TensorStorage
from rlbricks.replay._writers import TensorDictMaxValueWriter
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = [
    "PrioritizedReplayBuffer",
    "TensorDictPrioritizedReplayBuffer",
    "TensorDictReplayBuffer",
]


class TensorDictReplayBuffer(ReplayBuffer):
    """A ``ReplayBuffer`` of TensorDicts that writes its bookkeeping into the samples.

    Every sample holds ``"index"`` (the rows it came from) plus the sampler's
    per-row data (``"_weight"`` importance weights, slice ``("next", "truncated")``
    markers — OR-ed into existing bool entries, and into ``("next", "done")``),
    so a loss can read them and ``update_tensordict_priority(sample)`` can send
    the new priorities back.

    Args:
        priority_key: the key ``update_tensordict_priority`` reads (default ``"td_error"``).
        **kwargs: the ``ReplayBuffer`` arguments.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, TensorDictReplayBuffer
        >>> rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100), batch_size=8)
        >>> _ = rb.extend({"obs": torch.randn(20, 3)})
        >>> sorted(rb.sample().keys())
        ['index', 'obs']
    """

    def __init__(self, *, priority_key: NestedKey = "td_error", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.priority_key = priority_key

    def _postprocess(self, data: Any, index: Tensor, info: dict[str, Any]) -> Any:
        if not isinstance(data, TensorDict):
            return data
        batch = data.batch_size
        n = batch[0] if batch else None
        # stored items with a batch shape of their own ([T] trajectories: samples [B, T])
        # get their per-item bookkeeping repeated over those dims, as TorchRL does
        items = len(batch) > 1
        if n == len(index):
            data.set("index", expand_right(index, batch) if items else index)
        for key, value in info.items():
            if not isinstance(value, Tensor) or not value.ndim or value.shape[0] != n:
                continue
            if not isinstance(key, (str, tuple)) or key in ("slice_id", "slice_lengths"):
                continue
            if items and value.ndim < len(batch):
                value = expand_right(value, batch)
            old = data.get(key, None)
            if old is not None and old.dtype == torch.bool and value.dtype == torch.bool:
                value = old | value.reshape(old.shape)
            data.set(key, value)
            if key == ("next", "truncated"):  # a slice end ends the sampled trajectory
                done = data.get(("next", "done"), None)
                if done is not None:
                    data.set(("next", "done"), done | value.reshape(done.shape))
        return data

    def _item_dims(self) -> int:
        """How many batch dims one stored item has (1 for ``[T]`` trajectories, 0 for steps)."""
        storage = self._storage
        if isinstance(storage, TensorStorage) and storage.initialized:
            data = storage.data
            return data.batch_dims - 1 if isinstance(data, TensorDict) else 0
        if isinstance(storage, ListStorage) and len(storage):
            item = storage.get(0)
            return item.batch_dims if isinstance(item, TensorDict) else 0
        return 0

    def update_tensordict_priority(self, data: TensorDict) -> None:
        """Send ``data[priority_key]`` back as the priorities of rows ``data["index"]``.

        A sample of items with a batch shape (``[B, T]`` from ``[T]``
        trajectories) holds ``"index"`` repeated over ``T``: each item gets one
        priority, its ``priority_key`` values (``[B, T]`` or ``[B, T, 1]``)
        reduced with the sampler's ``reduction`` (``"max"`` by default), as in
        TorchRL.

        Example:
            >>> import torch
            >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
            >>> from rlbricks.tensordict import TensorDict
            >>> rb = TensorDictPrioritizedReplayBuffer(
            ...     alpha=1.0, beta=0.5, eps=0.0, storage=LazyTensorStorage(10), batch_size=2
            ... )
            >>> _ = rb.extend(TensorDict({"obs": torch.zeros(3, 4, 1)}, batch_size=[3, 4]))
            >>> sample = rb.sample()  # two trajectories of 4 steps
            >>> sample.batch_size, sample["index"].shape
            (torch.Size([2, 4]), torch.Size([2, 4]))
            >>> sample["td_error"] = torch.tensor([[0.125, 0.5, 0.25, 0.0], [0.25, 0.25, 0.75, 0.25]])
            >>> rb.update_tensordict_priority(sample)  # one priority per trajectory: its max
            >>> rb.sampler.priority(sample["index"][1, 0]).item()
            0.75
        """
        try:
            index = data.get("index")
            priority = data.get(self.priority_key)
        except KeyError as err:
            raise ReplayKeyError(
                f"update_tensordict_priority needs 'index' and {self.priority_key!r} in the "
                f"TensorDict ({err}); sample from this buffer and let the loss write the priority"
            ) from None
        if index.ndim > 1:
            items = self._item_dims()
            if items and index.ndim > items:  # [*S, *item] -> [*S]: it repeats over items
                index = index[(..., *([0] * items))]
        self.update_priority(index, priority.detach())


class PrioritizedReplayBuffer(ReplayBuffer):
    """Prioritized experience replay (Schaul et al., 2016): rows are drawn with
    probability ``p_i^alpha / sum_j p_j^alpha`` and come with importance weights
    ``(N P(i))^-beta`` normalised by their maximum.

    New rows get the highest priority seen so far; ``update_priority(index,
    priority)`` sets new ones (e.g. the absolute TD errors of the last batch).
    ``sample(return_info=True)`` returns the weights as ``info["_weight"]``.

    Args:
        alpha: how strongly priorities skew sampling (0: uniform).
        beta: importance-sampling correction (1: full correction); settable
            through ``buffer.sampler.beta`` for annealing.
        eps: added to priorities so that none is zero.
        dtype: dtype of the priority trees.
        storage, writer, batch_size, collate_fn, transform, prefetch, pin_memory: as for
            ``ReplayBuffer``.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, PrioritizedReplayBuffer
        >>> rb = PrioritizedReplayBuffer(alpha=0.6, beta=0.4, storage=LazyTensorStorage(100), batch_size=4)
        >>> _ = rb.extend(torch.arange(10.0))
        >>> batch, info = rb.sample(return_info=True)
        >>> rb.update_priority(info["index"], torch.rand(4))
        >>> info["_weight"].shape
        torch.Size([4])
    """

    def __init__(
        self,
        *,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        dtype: torch.dtype = torch.float64,
        storage: Storage | None = None,
        writer: Writer | None = None,
        batch_size: int | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
        transform: Transform | list[Transform] | None = None,
        prefetch: int | None = None,
        pin_memory: bool = False,
        **kwargs: Any,
    ) -> None:
        storage = storage if storage is not None else ListStorage(1000)
        sampler = PrioritizedSampler(storage.max_size, alpha, beta, eps=eps, dtype=dtype)
        super().__init__(
            storage=storage,
            sampler=sampler,
            writer=writer,
            batch_size=batch_size,
            collate_fn=collate_fn,
            transform=transform,
            prefetch=prefetch,
            pin_memory=pin_memory,
            **kwargs,
        )


class TensorDictPrioritizedReplayBuffer(TensorDictReplayBuffer, PrioritizedReplayBuffer):
    """Prioritized replay of TensorDicts: samples carry ``"index"`` and ``"_weight"``.

    If extended data holds ``priority_key``, those values are the rows' initial
    priorities; otherwise new rows get the highest priority seen so far.  After
    the loss wrote ``priority_key`` (e.g. ``"td_error"``) into the sample, call
    ``update_tensordict_priority(sample)``.

    Args:
        alpha, beta, eps, dtype: as for ``PrioritizedReplayBuffer``.
        priority_key: where priorities are read (default ``"td_error"``).
        storage, writer, batch_size, collate_fn, transform, prefetch, pin_memory: as for
            ``ReplayBuffer``.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
        >>> rb = TensorDictPrioritizedReplayBuffer(
        ...     alpha=0.7, beta=0.5, storage=LazyTensorStorage(100), batch_size=8
        ... )
        >>> _ = rb.extend({"obs": torch.randn(16, 3)})
        >>> sample = rb.sample()
        >>> sample["td_error"] = torch.rand(8)
        >>> rb.update_tensordict_priority(sample)
        >>> sorted(sample.keys())
        ['_weight', 'index', 'obs', 'td_error']
    """

    def __init__(
        self,
        *,
        alpha: float,
        beta: float,
        priority_key: NestedKey = "td_error",
        eps: float = 1e-8,
        dtype: torch.dtype = torch.float64,
        storage: Storage | None = None,
        writer: Writer | None = None,
        batch_size: int | None = None,
        collate_fn: Callable[[Any], Any] | None = None,
        transform: Transform | list[Transform] | None = None,
        prefetch: int | None = None,
        pin_memory: bool = False,
    ) -> None:
        # cooperative __init__: TensorDictReplayBuffer takes priority_key, then
        # PrioritizedReplayBuffer builds the priority sampler
        super().__init__(
            priority_key=priority_key,
            alpha=alpha,
            beta=beta,
            eps=eps,
            dtype=dtype,
            storage=storage,
            writer=writer,
            batch_size=batch_size,
            collate_fn=collate_fn,
            transform=transform,
            prefetch=prefetch,
            pin_memory=pin_memory,
        )

    def _after_write(self, index: Tensor, data: Any, single: bool) -> None:
        sampler: Sampler = self._sampler
        priority = None
        if isinstance(data, TensorDict):
            priority = data.get(self.priority_key, None)
        if priority is None or not isinstance(sampler, PrioritizedSampler):
            sampler.extend(index)
            return
        priority = priority.reshape(1, -1) if single else priority.reshape(priority.shape[0], -1)
        writer = self._writer
        if isinstance(writer, TensorDictMaxValueWriter) and not single:
            priority = priority[writer.last_kept]
        else:  # a ring writer keeps the last rows of a batch larger than the storage
            priority = priority[-len(index) :]
        sampler.extend(index, priority=priority.detach())
