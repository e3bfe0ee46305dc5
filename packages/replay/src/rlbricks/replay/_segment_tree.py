"""Segment trees over a fixed number of leaves: batched sum and min queries in torch.

A tree of ``capacity`` leaves lives in one flat tensor of ``2 * P`` entries,
where ``P`` is the smallest power of two ``>= capacity``.  Node ``k`` has
children ``2k`` and ``2k + 1``, the root is node ``1`` (entry ``0`` is unused)
and leaf ``i`` is node ``P + i``.  Leaves ``capacity .. P - 1`` hold the
reduction's neutral element (``0`` for a sum, ``+inf`` for a min), so they
never change a result.

Every operation is batched over a tensor of indices and costs ``O(log P)``
tensor operations, whatever the batch size: writes recompute the parents of
the written leaves one level at a time (each parent from both its children,
so an internal node is always exactly the reduction of its children), and
``SumSegmentTree.find_prefixsum_idx`` walks all masses down the tree at once.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["MinSegmentTree", "SumSegmentTree"]

IndexLike = int | Sequence[int] | slice | Tensor
DeviceLike = torch.device | str | int | None


def last_write(index: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """Drop repeated indices, keeping the value of the last occurrence.

    Returns the unique indices in increasing order and their values.  This is
    deterministic on every device, unlike ``tensor[index] = value`` with
    repeated indices.
    """
    unique, inverse = torch.unique(index, sorted=True, return_inverse=True)
    position = torch.arange(index.shape[0], device=index.device)
    last = torch.full_like(unique, -1).scatter_reduce_(0, inverse, position, reduce="amax")
    return unique, value[last]


class _SegmentTree(abc.ABC):
    """Shared storage, indexing, propagation and state of the segment trees."""

    _neutral: float

    def __init__(
        self, capacity: int, dtype: torch.dtype = torch.float64, device: DeviceLike = None
    ) -> None:
        name = type(self).__name__
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
            raise ValueError(f"{name}: capacity must be a positive int, got {capacity!r}")
        if not dtype.is_floating_point:
            raise TypeError(f"{name}: dtype must be a floating point dtype, got {dtype}")
        self.capacity = capacity
        self._size = 1 << (capacity - 1).bit_length()  # P: leaves start here
        self._depth = self._size.bit_length() - 1  # levels above the leaves
        self._tree = torch.full((2 * self._size,), self._neutral, dtype=dtype, device=device)
        self._shifts = torch.arange(1, self._depth + 1, device=self._tree.device).unsqueeze(1)

    @abc.abstractmethod
    def _combine(self, pairs: Tensor) -> Tensor:
        """Reduce ``pairs`` (shape ``[..., 2]``) over its last dim."""

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the stored values."""
        return self._tree.dtype

    @property
    def device(self) -> torch.device:
        """The device of the stored values."""
        return self._tree.device

    def __len__(self) -> int:
        return self.capacity

    # -- indexing ------------------------------------------------------- #
    def _index(self, index: IndexLike) -> Tensor:
        """``index`` as a long tensor on the tree's device, checked to be in range."""
        if isinstance(index, slice):
            return torch.arange(self.capacity, device=self.device)[index]
        if isinstance(index, Tensor):
            if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype is torch.bool:
                raise TypeError(
                    f"{type(self).__name__}: index must hold integers, got dtype {index.dtype}"
                )
            index = index.to(device=self.device, dtype=torch.long)
        else:
            index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        if index.numel():
            low, high = (int(x) for x in torch.aminmax(index))
            if low < 0 or high >= self.capacity:
                bad = low if low < 0 else high
                raise IndexError(
                    f"{type(self).__name__}: index {bad} is out of range, "
                    f"indices must be in [0, {self.capacity})"
                )
        return index

    def _value(self, value: float | Tensor, shape: torch.Size) -> Tensor:
        """``value`` broadcast to ``shape``, in the tree's dtype and device."""
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        if value.shape != shape:
            try:
                value = value.expand(shape)
            except RuntimeError:
                raise ValueError(
                    f"{type(self).__name__}: value of shape {tuple(value.shape)} does not "
                    f"broadcast to the index shape {tuple(shape)}"
                ) from None
        return value

    def __getitem__(self, index: IndexLike) -> Tensor:
        """The values of leaves ``index`` (same shape as ``index``)."""
        return self._tree[self._index(index) + self._size]

    def __setitem__(self, index: IndexLike, value: float | Tensor) -> None:
        """Same as ``update(index, value)``."""
        self.update(index, value)

    def update(self, index: IndexLike, value: float | Tensor) -> None:
        """Write ``value`` into leaves ``index`` and refresh their ancestors.

        Args:
            index: leaf indices in ``[0, capacity)``: an int, a sequence, a
                slice or an integer tensor of any shape.
            value: a scalar or a tensor that broadcasts to the shape of ``index``.
                When an index repeats, the value of its last occurrence is kept.

        Raises:
            IndexError: an index is outside ``[0, capacity)``.
            ValueError: ``value`` does not broadcast to the shape of ``index``.
        """
        index = self._index(index)
        value = self._value(value, index.shape).reshape(-1)
        index = index.reshape(-1)
        if index.shape[0] > 1:
            index, value = last_write(index, value)
        self._write(index, value)

    def _ancestors(self, index: Tensor) -> Tensor:
        """Nodes above leaves ``index`` (1-d), level by level: shape ``[depth, len(index)]``."""
        return (index + self._size).unsqueeze(0) >> self._shifts

    def _write(self, index: Tensor, value: Tensor, ancestors: Tensor | None = None) -> None:
        """Write leaves without checks.

        ``index`` must be a 1-d long tensor of distinct, in-range leaf indices
        on the tree's device and ``value`` a matching 1-d tensor; ``ancestors``
        is ``_ancestors(index)`` when the caller already has it.  A node above
        several written leaves is recomputed once per such leaf, each time from
        the same (final) children, so the repeated writes agree.
        """
        tree = self._tree
        tree.index_copy_(0, index + self._size, value.to(tree.dtype))
        if ancestors is None:
            ancestors = self._ancestors(index)
        pairs = tree.view(-1, 2)  # row k holds the children of node k
        for node in ancestors:  # bottom level first
            tree.index_copy_(0, node, self._combine(pairs.index_select(0, node)))

    def _rebuild(self) -> None:
        """Recompute every internal node from the leaves, one level at a time."""
        tree = self._tree
        tree[self._size + self.capacity :] = self._neutral
        for level in reversed(range(self._depth)):
            start, stop = 1 << level, 2 << level
            tree[start:stop] = self._combine(tree[2 * start : 2 * stop].view(-1, 2))

    # -- queries -------------------------------------------------------- #
    def reduce(self, start: int = 0, end: int | None = None) -> Tensor:
        """The reduction of leaves ``start .. end - 1`` (all leaves by default).

        Returns a 0-d tensor: the sum for a ``SumSegmentTree``, the minimum
        for a ``MinSegmentTree``, the neutral element for an empty range.
        """
        end = self.capacity if end is None else end
        if not 0 <= start <= end <= self.capacity:
            raise IndexError(
                f"{type(self).__name__}.reduce: need 0 <= start <= end <= {self.capacity}, "
                f"got start={start}, end={end}"
            )
        if start == 0 and end == self.capacity:
            return self._tree[1].clone()
        # cover [start, end) with the O(log P) largest aligned nodes
        nodes = []
        low, high = start + self._size, end + self._size
        while low < high:
            if low & 1:
                nodes.append(low)
                low += 1
            if high & 1:
                high -= 1
                nodes.append(high)
            low >>= 1
            high >>= 1
        if not nodes:
            return torch.tensor(self._neutral, dtype=self.dtype, device=self.device)
        return self._reduce_all(self._tree[torch.tensor(nodes, device=self.device)])

    @abc.abstractmethod
    def _reduce_all(self, values: Tensor) -> Tensor:
        """Reduce a 1-d tensor to a 0-d tensor."""

    # -- state ---------------------------------------------------------- #
    def empty(self) -> None:
        """Reset every leaf to the neutral element."""
        self._tree.fill_(self._neutral)

    def state_dict(self) -> dict[str, Any]:
        """``{"capacity": int, "leaves": Tensor}``; internal nodes are rebuilt on load."""
        leaves = self._tree[self._size : self._size + self.capacity].clone()
        return {"capacity": self.capacity, "leaves": leaves}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the leaves saved by ``state_dict`` (same capacity) and rebuild the tree."""
        name = type(self).__name__
        capacity = state_dict["capacity"]
        leaves = state_dict["leaves"]
        if capacity != self.capacity or tuple(leaves.shape) != (self.capacity,):
            raise ValueError(
                f"{name}.load_state_dict: the state has capacity {capacity} and "
                f"{tuple(leaves.shape)} leaves, this tree has capacity {self.capacity}"
            )
        self._tree[self._size : self._size + self.capacity] = leaves.to(self._tree)
        self._rebuild()

    def __repr__(self) -> str:
        value = self.reduce().item()
        return (
            f"{type(self).__name__}(capacity={self.capacity}, dtype={self.dtype}, "
            f"device={self.device}, reduce={value:g})"
        )


class SumSegmentTree(_SegmentTree):
    """Non-negative values whose prefix sums can be searched: the heart of prioritized sampling.

    Unused leaves are ``0``.  ``reduce()`` is the total and
    ``find_prefixsum_idx(mass)`` the leaf where the running sum crosses
    ``mass``, which turns uniform masses in ``[0, total)`` into indices drawn
    with probability proportional to their value.

    Args:
        capacity: the number of leaves.
        dtype: a floating point dtype; ``float64`` keeps sums over millions of
            leaves accurate.
        device: where the tree lives.

    Example:
        >>> import torch
        >>> from rlbricks.replay import SumSegmentTree
        >>> tree = SumSegmentTree(5)
        >>> tree[torch.tensor([0, 1, 3])] = torch.tensor([1.0, 2.0, 4.0])
        >>> tree.reduce().item(), tree.reduce(1, 3).item()
        (7.0, 2.0)
        >>> tree.find_prefixsum_idx(torch.tensor([0.0, 1.0, 2.9, 3.0, 6.9]))
        tensor([0, 1, 1, 3, 3])
    """

    _neutral = 0.0

    def _combine(self, pairs: Tensor) -> Tensor:
        return pairs.sum(-1)

    def _reduce_all(self, values: Tensor) -> Tensor:
        return values.sum()

    def find_prefixsum_idx(self, mass: float | Tensor) -> Tensor:
        """For each mass, the leaf ``i`` where the prefix sum passes it.

        Leaf ``i`` is returned for masses in ``[sum(v[:i]), sum(v[:i + 1]))``,
        so masses drawn uniformly in ``[0, total)`` pick leaf ``i`` with
        probability ``v[i] / total``.  A leaf of value ``0`` is never returned
        when some leaf is positive: a mass of ``0`` skips leading zeros and a
        mass ``>= total`` (e.g. from float rounding) returns the last positive
        leaf.  Negative masses count as ``0``.  With all leaves at ``0`` the
        result is ``0``.

        Args:
            mass: a scalar or a tensor of any shape.

        Returns:
            Long tensor of leaf indices in ``[0, capacity)``, shaped like ``mass``.

        Example:
            >>> import torch
            >>> from rlbricks.replay import SumSegmentTree
            >>> tree = SumSegmentTree(4)
            >>> tree[torch.tensor([1, 2])] = torch.tensor([1.0, 3.0])  # leaves 0 and 3 stay 0
            >>> tree.find_prefixsum_idx(torch.tensor([0.0, 0.99, 1.0, 3.99, 4.0, 100.0]))
            tensor([1, 1, 2, 2, 2, 2])
        """
        mass = torch.as_tensor(mass, dtype=self.dtype, device=self.device)
        shape = mass.shape
        remaining = mass.reshape(-1).clamp_min(0.0)  # a fresh tensor: updated in place below
        pairs = self._tree.view(-1, 2)
        node = torch.ones(remaining.shape, dtype=torch.long, device=self.device)
        for _ in range(self._depth):
            left, right = pairs.index_select(0, node).unbind(1)
            # go right when the mass is past the left subtree, unless the right one is empty:
            # this keeps the walk inside positive subtrees whatever the rounding
            go_right = (remaining >= left) & (right > 0)
            remaining.sub_(left * go_right)
            node = torch.add(go_right, node, alpha=2)
        return (node - self._size).clamp_(max=self.capacity - 1).reshape(shape)


class MinSegmentTree(_SegmentTree):
    """Values whose minimum over any range is an ``O(log P)`` query.

    Unused leaves are ``+inf``.  Prioritized sampling uses it for the smallest
    priority, which gives the largest importance weight.

    Args:
        capacity: the number of leaves.
        dtype: a floating point dtype.
        device: where the tree lives.

    Example:
        >>> import torch
        >>> from rlbricks.replay import MinSegmentTree
        >>> tree = MinSegmentTree(6)
        >>> tree.reduce().item()
        inf
        >>> tree.update(torch.tensor([0, 2, 4, 2]), torch.tensor([5.0, 1.0, 3.0, 4.0]))
        >>> tree.reduce().item(), tree.reduce(0, 2).item(), tree[2].item()
        (3.0, 5.0, 4.0)
    """

    _neutral = math.inf

    def _combine(self, pairs: Tensor) -> Tensor:
        return pairs.amin(-1)

    def _reduce_all(self, values: Tensor) -> Tensor:
        return values.amin()
