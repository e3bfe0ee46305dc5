"""Segment trees over a fixed number of leaves: batched sum and min queries in torch.

A tree has a branching factor ``k`` (``branching``, 16 by default) and one
tensor per level.  Level ``0`` holds the leaves, padded with the reduction's
neutral element (``0`` for a sum, ``+inf`` for a min) to a multiple of ``k``;
node ``i`` of level ``j + 1`` is the reduction of nodes ``k*i .. k*i + k - 1``
of level ``j``, so ``level[j].view(-1, k)`` holds the children of level ``j + 1``
one row per node.  Levels shrink by ``k`` until one holds at most
``min(k**4, 8192)`` nodes (``k`` at least): that top level, unpadded, is handled
with whole-tensor operations, which on so few values cost less than the
per-level work of more levels, and its reduction is the root.  Padding never
changes a result; ``N`` leaves take about ``N * k / (k - 1)`` values.  All the
levels (and the root) are views into one flat tensor, ``_tree``.

Every operation is batched over a tensor of indices and costs ``O(log_k N)``
tensor operations whatever the batch size.  A write copies the leaves, then,
level by level, gathers the ``k`` children of every touched node and
recomputes it from them, so an internal node is always exactly the reduction of
its children (a node above several written leaves is recomputed from the same
final children each time, and the copies agree); the top level is then reduced
whole.  ``SumSegmentTree.find_prefixsum_idx`` walks all masses down at once.
Each level gathers the children of the current nodes (``[B, k]``), takes their
running sums and counts those ``<= mass``: the count is the child to descend
to, and the running sum before it is subtracted from the mass.  The mass is
first clamped just below the row's total, so the walk never stops at a zero
child while a later one is positive, nor goes past the last positive child,
whatever the rounding.  Counting with a comparison avoids the mispredicted
branches of a binary search on random masses; the wide top level is searched
with ``searchsorted`` on a row the sum tree keeps ready: ``0``, then the
running sums of the top level, where those that already reached the total are
replaced by ``+inf`` (which again rules out zero nodes).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayIndexError
from rlbricks.replay._errors import ReplayTypeError

__all__ = ["MinSegmentTree", "SumSegmentTree"]

IndexLike = int | Sequence[int] | slice | Tensor
DeviceLike = torch.device | str | int | None

_STAMP_LIMIT = 2**31 - 1  # the write stamps are int32: restart them before they overflow
_TOP_SIZE = 8192  # the top level may hold up to min(k**4, _TOP_SIZE) nodes
_SCRATCH_ROWS = 4096  # SumSegmentTree keeps its search scratch for batches up to this size


class _SegmentTree(abc.ABC):
    """Shared storage, indexing, propagation and state of the segment trees."""

    _neutral: float
    _searchable = False  # True: the tree also keeps the top search row (sum tree)

    def __init__(
        self,
        capacity: int,
        dtype: torch.dtype = torch.float64,
        device: DeviceLike = None,
        *,
        branching: int = 16,
    ) -> None:
        name = type(self).__name__
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
            raise ReplayArgumentError(f"{name}: capacity must be a positive int, got {capacity!r}")
        if isinstance(branching, bool) or not isinstance(branching, int) or branching < 2:
            raise ReplayArgumentError(f"{name}: branching must be an int >= 2, got {branching!r}")
        if not dtype.is_floating_point:
            raise ReplayTypeError(f"{name}: dtype must be a floating point dtype, got {dtype}")
        self.capacity = capacity
        self.branching = k = branching
        top = max(k, min(k**4, _TOP_SIZE))
        counts = [capacity]  # real nodes per level, leaves first
        while counts[-1] > top:
            counts.append(-(-counts[-1] // k))
        self._depth = depth = len(counts) - 1  # levels whose nodes have a parent level
        self._counts = counts
        lengths = [counts[j + 1] * k for j in range(depth)] + [counts[depth]]
        # one flat tensor: the levels, the top search row (sum tree), the root
        extra = counts[depth] if self._searchable else 0
        self._tree = torch.full(
            (sum(lengths) + extra + 1,), self._neutral, dtype=dtype, device=device
        )
        self._offsets: list[int] = []  # where each level starts in the flat tensor
        self._levels: list[Tensor] = []
        start = 0
        for length in lengths:
            self._offsets.append(start)
            self._levels.append(self._tree[start : start + length])
            start += length
        self._leaves = self._levels[0]
        self._top = self._levels[-1]
        self._groups = [level.view(-1, k) for level in self._levels[:-1]]  # rows of children
        if self._searchable:
            # the top row's running sums end with the root: one cumsum writes both
            self._top_row = self._tree[start : start + extra]
            self._top_cumsum = self._tree[start + 1 : start + extra + 1]
            start += extra
        self._root = self._tree[start : start + 1]
        # ancestors of leaf i: i >> (log2(k) * level) for a power of two, else i // k**level
        powers = [k ** (j + 1) for j in range(depth)]
        self._shift = (k & (k - 1)) == 0
        self._steps = torch.tensor(
            [[(p.bit_length() - 1) if self._shift else p] for p in powers],
            dtype=torch.long,
            device=self._tree.device,
        )
        self._stamps: Tensor | None = None  # lazily allocated by _last_values
        self._stamp = 0
        self._cover_cache: tuple[int, int, Tensor, int, int] | None = None
        self._rebuild()

    # -- level refresh (subclasses) -------------------------------------- #
    @abc.abstractmethod
    def _refresh(self, level: int, parent: Tensor | None) -> None:
        """Recompute the given parents (all when ``None``) of nodes in ``level`` from their rows."""

    @abc.abstractmethod
    def _refresh_top(self) -> None:
        """Recompute the root (and the sum tree's top search row) from the top level."""

    @abc.abstractmethod
    def _reduce_all(self, values: Tensor) -> Tensor:
        """Reduce a 1-d tensor to a 0-d tensor."""

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
                raise ReplayTypeError(
                    f"{type(self).__name__}: index must hold integers, got dtype {index.dtype}"
                )
            index = index.to(device=self.device, dtype=torch.long)
        else:
            index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        if index.numel():
            low, high = (int(x) for x in torch.aminmax(index))
            if low < 0 or high >= self.capacity:
                bad = low if low < 0 else high
                raise ReplayIndexError(
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
                raise ReplayArgumentError(
                    f"{type(self).__name__}: value of shape {tuple(value.shape)} does not "
                    f"broadcast to the index shape {tuple(shape)}"
                ) from None
        return value

    def __getitem__(self, index: IndexLike) -> Tensor:
        """The values of leaves ``index`` (same shape as ``index``)."""
        return self._leaves[self._index(index)]

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
            ReplayIndexError: an index is outside ``[0, capacity)``.
            ReplayArgumentError: ``value`` does not broadcast to the shape of ``index``.
        """
        index = self._index(index)
        value = self._value(value, index.shape).reshape(-1)
        index = index.reshape(-1)
        if index.shape[0] > 1:
            value = self._last_values(index, value)
        self._write(index, value)

    def _last_values(self, index: Tensor, value: Tensor) -> Tensor:
        """``value`` where each entry is replaced by the value of its index's last occurrence.

        Writing the result makes every occurrence of a repeated index write the
        same value, so the outcome does not depend on the write order (which is
        unspecified for repeated indices, notably on CUDA).  ``index`` must be a
        1-d long tensor of in-range leaves.  Positions are stamped with
        increasing int32 numbers, so a per-leaf scratch tensor never needs
        clearing: ``scatter_reduce(amax)`` leaves the last position at each leaf.
        """
        n = index.shape[0]
        if self._stamps is None or self._stamp + n > _STAMP_LIMIT:
            self._stamps = torch.zeros(self.capacity, dtype=torch.int32, device=self.device)
            self._stamp = 0
        base = self._stamp
        self._stamp += n
        stamp = torch.arange(base, base + n, dtype=torch.int32, device=self.device)
        self._stamps.scatter_reduce_(0, index, stamp, reduce="amax")
        return value.index_select(0, self._stamps.index_select(0, index).sub_(base))

    def _parents(self, index: Tensor) -> tuple[Tensor, ...]:
        """The ancestors of leaves ``index`` (1-d), one tensor per level above the leaves."""
        if not self._depth:
            return ()
        index = index.unsqueeze(0)
        parents = index >> self._steps if self._shift else index // self._steps
        return parents.unbind(0)

    def _write(self, index: Tensor, value: Tensor, parents: Sequence[Tensor] | None = None) -> None:
        """Write leaves without checks.

        ``index`` must be a 1-d long tensor of in-range leaf indices on the
        tree's device and ``value`` a matching 1-d tensor in the tree's dtype
        that gives every occurrence of a repeated index the same value;
        ``parents`` is ``_parents(index)`` when the caller already has it.
        """
        self._leaves.index_copy_(0, index, value)
        if parents is None:
            parents = self._parents(index)
        for level, parent in enumerate(parents):
            self._refresh(level, parent)
        self._refresh_top()

    def _rebuild(self) -> None:
        """Reset the padding and recompute every internal node, one level at a time."""
        self._leaves[self.capacity :] = self._neutral
        for level in range(self._depth):
            self._refresh(level, None)
        self._refresh_top()

    # -- queries -------------------------------------------------------- #
    def reduce(self, start: int = 0, end: int | None = None) -> Tensor:
        """The reduction of leaves ``start .. end - 1`` (all leaves by default).

        Returns a 0-d tensor: the sum for a ``SumSegmentTree``, the minimum
        for a ``MinSegmentTree``, the neutral element for an empty range.
        """
        end = self.capacity if end is None else end
        if not 0 <= start <= end <= self.capacity:
            raise ReplayIndexError(
                f"{type(self).__name__}.reduce: need 0 <= start <= end <= {self.capacity}, "
                f"got start={start}, end={end}"
            )
        if start == 0 and end == self.capacity:
            return self._root[0].clone()
        if start == end:
            return torch.tensor(self._neutral, dtype=self.dtype, device=self.device)
        cache = self._cover_cache
        if cache is None or cache[0] != start or cache[1] != end:
            cache = self._cover_cache = (start, end, *self._cover(start, end))
        _, _, nodes, low, high = cache
        top = self._top[low:high]
        return self._reduce_all(torch.cat([self._tree.index_select(0, nodes), top]))

    def _cover(self, start: int, end: int) -> tuple[Tensor, int, int]:
        """The nodes that exactly cover ``[start, end)``.

        Returns the flat positions of the ``O(k log_k N)`` nodes below the top
        level and the range ``[low, high)`` of top-level nodes.
        """
        k = self.branching
        nodes: list[int] = []
        low, high = start, end
        for offset in self._offsets[:-1]:
            up, down = -(-low // k) * k, high // k * k  # the whole groups are [up, down)
            if up >= down:
                nodes.extend(range(offset + low, offset + high))
                low = high = 0
                break
            nodes.extend(range(offset + low, offset + up))
            nodes.extend(range(offset + down, offset + high))
            low, high = up // k, down // k
        return torch.tensor(nodes, dtype=torch.long, device=self.device), low, high

    # -- state ---------------------------------------------------------- #
    def empty(self) -> None:
        """Reset every leaf to the neutral element."""
        self._leaves.fill_(self._neutral)
        self._rebuild()

    def state_dict(self) -> dict[str, Any]:
        """``{"capacity": int, "leaves": Tensor}``; internal nodes are rebuilt on load."""
        return {"capacity": self.capacity, "leaves": self._leaves[: self.capacity].clone()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the leaves saved by ``state_dict`` (same capacity) and rebuild the tree."""
        name = type(self).__name__
        capacity = state_dict["capacity"]
        leaves = state_dict["leaves"]
        if capacity != self.capacity or tuple(leaves.shape) != (self.capacity,):
            raise ReplayArgumentError(
                f"{name}.load_state_dict: the state has capacity {capacity} and "
                f"{tuple(leaves.shape)} leaves, this tree has capacity {self.capacity}: build the "
                f"tree with capacity={capacity}"
            )
        self._leaves[: self.capacity] = leaves.to(self._tree)
        self._rebuild()

    # -- pickling ------------------------------------------------------- #
    def __getstate__(self) -> dict[str, Any]:
        """The constructor arguments and the leaves.

        The levels are views into one flat tensor, which pickle would copy
        separately: the copy rebuilds the tree from its leaves instead.
        """
        return {
            "capacity": self.capacity,
            "dtype": self.dtype,
            "device": self.device,
            "branching": self.branching,
            "leaves": self._leaves[: self.capacity].clone(),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        type(self).__init__(
            self, state["capacity"], state["dtype"], state["device"], branching=state["branching"]
        )
        self.load_state_dict({"capacity": state["capacity"], "leaves": state["leaves"]})

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
        branching: children per internal node (``>= 2``); a larger factor means
            fewer levels, hence fewer tensor operations per call, on wider rows.

    Example:
        >>> import torch
        >>> from rlbricks.replay import SumSegmentTree
        >>> tree = SumSegmentTree(5)
        >>> tree[torch.tensor([0, 1, 3])] = torch.tensor([1.0, 2.0, 4.0])
        >>> tree.reduce().item(), tree.reduce(1, 3).item()
        (7.0, 2.0)
        >>> tree.find_prefixsum_idx(torch.tensor([0.0, 1.0, 2.9, 3.0, 6.9]))
        tensor([0, 1, 1, 3, 3])
        >>> binary = SumSegmentTree(5, branching=2)
        >>> binary[:] = torch.tensor([1.0, 2.0, 0.0, 4.0, 0.0])
        >>> binary.find_prefixsum_idx(torch.tensor([0.0, 1.0, 2.9, 3.0, 6.9]))
        tensor([0, 1, 1, 3, 3])
    """

    _neutral = 0.0
    _searchable = True

    def __init__(
        self,
        capacity: int,
        dtype: torch.dtype = torch.float64,
        device: DeviceLike = None,
        *,
        branching: int = 16,
    ) -> None:
        super().__init__(capacity, dtype, device, branching=branching)
        self._scratch: tuple[Tensor, Tensor, Tensor] | None = None  # see _buffer
        self._zero = torch.zeros((), dtype=dtype, device=self.device)

    def _refresh(self, level: int, parent: Tensor | None) -> None:
        group = self._groups[level]
        if parent is None:
            torch.sum(group, 1, out=self._levels[level + 1][: self._counts[level + 1]])
        else:
            self._levels[level + 1].index_copy_(0, parent, group.index_select(0, parent).sum(1))

    def _refresh_top(self) -> None:
        cumsum = self._top_cumsum
        torch.cumsum(self._top, 0, out=cumsum)  # the top row after its 0, then the root
        head = cumsum[:-1]
        head.masked_fill_(head >= self._root, math.inf)

    def _rebuild(self) -> None:
        self._top_row[0] = 0.0
        super()._rebuild()

    def _reduce_all(self, values: Tensor) -> Tensor:
        return values.sum()

    def _buffer(self, batch: int) -> tuple[Tensor, Tensor, Tensor]:
        """Scratch rows ``[batch, k + 1]`` whose first column is 0, with their tail and last column.

        The last one (up to ``_SCRATCH_ROWS`` rows) is kept for the next search.
        """
        cache = self._scratch
        if cache is None or cache[0].shape[0] != batch:
            row = torch.zeros(batch, self.branching + 1, dtype=self.dtype, device=self.device)
            cache = (row, row[:, 1:], row[:, -1:])
            if batch <= _SCRATCH_ROWS:
                self._scratch = cache
        return cache

    def _find(self, mass: Tensor, safe: bool = False) -> Tensor:
        """The leaves of finite masses ``>= 0`` of shape ``[B, 1]``, which are consumed.

        Returns a 1-d long tensor of ``B`` leaves.  The root must be positive,
        unless ``safe``: then an all-zero tree walks to some leaf without error.
        """
        top = self._top_row  # starts with 0: the count is the child + 1
        child = torch.searchsorted(top, mass, right=True).sub_(1)
        node = child.view(-1)
        if not self._depth:
            return node
        mass.sub_(top.index_select(0, node).view(-1, 1))
        k = self.branching
        row, tail, last = self._buffer(mass.shape[0])
        for level in range(self._depth - 1, -1, -1):
            torch.index_select(self._groups[level], 0, node, out=tail)
            row.cumsum_(1)  # [0, running sums of the children]
            # just below the total: the walk stops at the last positive child
            torch.minimum(mass, torch.nextafter(last, self._zero), out=mass)
            # compare and count rather than searchsorted: no branch to mispredict
            child = (tail <= mass).sum(1, keepdim=True)
            if safe:  # a zero row (only in an all-zero tree) counts k
                child.clamp_(max=k - 1)
            if level:
                mass.sub_(row.gather(1, child))  # the running sum before the child
            node = torch.add(child.view(-1), node, alpha=k)
        return node

    def find_prefixsum_idx(self, mass: float | Tensor) -> Tensor:
        """For each mass, the leaf ``i`` where the prefix sum passes it.

        Leaf ``i`` is returned for masses in ``[sum(v[:i]), sum(v[:i + 1]))``,
        so masses drawn uniformly in ``[0, total)`` pick leaf ``i`` with
        probability ``v[i] / total``.  A leaf of value ``0`` is never returned
        when some leaf is positive: a mass of ``0`` skips leading zeros and a
        mass ``>= total`` (e.g. from float rounding) returns the last positive
        leaf (passing over leaves so small that they do not change the running
        sums, which are below the rounding error of the sum before them).
        Negative (and NaN) masses count as ``0``.  With all leaves at ``0``
        the result is ``0``.

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
        top = torch.finfo(self.dtype).max
        remaining = torch.nan_to_num(mass.reshape(-1, 1), nan=0.0, posinf=top).clamp_min_(0.0)
        found = self._find(remaining, safe=True).clamp_(max=self.capacity - 1)
        return torch.where(self._root > 0, found, 0).reshape(shape)


class MinSegmentTree(_SegmentTree):
    """Values whose minimum over any range is an ``O(log_k N)`` query.

    Unused leaves are ``+inf``.  Prioritized sampling uses it for the smallest
    priority, which gives the largest importance weight.

    Args:
        capacity: the number of leaves.
        dtype: a floating point dtype.
        device: where the tree lives.
        branching: children per internal node (``>= 2``), see ``SumSegmentTree``.

    Example:
        >>> import torch
        >>> from rlbricks.replay import MinSegmentTree
        >>> tree = MinSegmentTree(6)
        >>> tree.reduce().item()
        inf
        >>> tree.update(torch.tensor([0, 2, 4, 2]), torch.tensor([5.0, 1.0, 3.0, 4.0]))
        >>> tree.reduce().item(), tree.reduce(0, 2).item(), tree[2].item()
        (3.0, 5.0, 4.0)
        >>> binary = MinSegmentTree(6, branching=2)
        >>> binary[[1, 4, 5]] = torch.tensor([2.0, 7.0, 6.0])
        >>> binary.reduce(2, 6).item(), binary.reduce(2, 4).item()
        (6.0, inf)
    """

    _neutral = math.inf

    def _refresh(self, level: int, parent: Tensor | None) -> None:
        group = self._groups[level]
        if parent is None:
            torch.amin(group, 1, out=self._levels[level + 1][: self._counts[level + 1]])
        else:
            self._levels[level + 1].index_copy_(0, parent, group.index_select(0, parent).amin(1))

    def _refresh_top(self) -> None:
        torch.amin(self._levels[-1], 0, keepdim=True, out=self._root)

    def _reduce_all(self, values: Tensor) -> Tensor:
        return values.amin()
