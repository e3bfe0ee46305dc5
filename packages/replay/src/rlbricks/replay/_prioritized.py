"""``PrioritizedSampler``: proportional prioritized experience replay.

Row ``i`` with priority ``p_i`` is stored as ``q_i = (p_i + eps) ** alpha`` and
drawn with probability ``P(i) = q_i / sum_j q_j`` (Schaul et al. 2016,
"Prioritized Experience Replay", https://arxiv.org/abs/1511.05952).  The bias
this introduces is corrected by the importance weights
``w_i = (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta = (q_i / q_min) ** -beta``,
which are at most 1.  A sum tree draws the indices and a min tree gives ``q_min``,
both in ``O(log capacity)`` tensor operations per batch.  The two trees share the
ancestors of every write, and while no row at or past ``len(storage)`` has been
written (a filling ring buffer) their roots are the totals over the valid rows, so
sampling needs no range query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import EmptyBufferError
from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayIndexError
from rlbricks.replay._errors import ReplayRuntimeError
from rlbricks.replay._errors import ReplayTypeError
from rlbricks.replay._interfaces import Sampler
from rlbricks.replay._interfaces import Storage
from rlbricks.replay._segment_tree import DeviceLike
from rlbricks.replay._segment_tree import MinSegmentTree
from rlbricks.replay._segment_tree import SumSegmentTree

__all__ = ["PrioritizedSampler"]

_REDUCTIONS = ("max", "min", "mean", "median")


def _reduce(priority: Tensor, reduction: str) -> Tensor:
    """Reduce a ``[N, K]`` tensor over its last dim."""
    if reduction == "max":
        return priority.amax(-1)
    if reduction == "min":
        return priority.amin(-1)
    if reduction == "mean":
        return priority.mean(-1)
    return priority.median(-1).values


def _non_negative(name: str, value: float) -> float:
    """``value`` as a float, checked to be finite and ``>= 0``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReplayTypeError(f"PrioritizedSampler: {name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ReplayArgumentError(
            f"PrioritizedSampler: {name} must be finite and >= 0, got {value!r}"
        )
    return float(value)


class PrioritizedSampler(Sampler):
    """Draw rows with probability proportional to ``(priority + eps) ** alpha``.

    Rows enter with the largest priority set so far (``max_priority_init``
    before the first update), so each new row is likely to be sampled soon; afterwards
    ``update_priority`` sets them, typically to the absolute TD error of the
    last update.  Each ``sample`` draws ``batch_size`` independent masses
    uniformly in ``[0, total)`` (no stratification) and returns the importance
    weights as ``info["_weight"]``.

    ``alpha`` and ``beta`` are plain attributes that may be annealed during
    training (``sampler.beta = 0.8``).  A new ``alpha`` applies to the
    priorities written from then on; stored ones are not re-scaled.

    Args:
        max_capacity: the number of rows, the storage's ``max_size``.
        alpha: how much prioritization is used: ``0`` is uniform sampling,
            ``1`` fully proportional.
        beta: how much of the sampling bias the importance weights correct:
            ``0`` gives weights of 1, ``1`` corrects it fully.
        eps: added to every priority so that no row becomes impossible to draw.
        dtype: the floating point dtype of the trees (``float64`` keeps sums
            over millions of rows accurate).
        reduction: how a priority with dims beyond the index (for example one
            per time step, ``[B, T]``) is reduced to one per row: ``"max"``,
            ``"min"``, ``"mean"`` or ``"median"`` (the lower median).
        max_priority_init: the priority of rows added before any update.
        device: where the trees live and the sampled indices are returned.
        generator: an optional ``torch.Generator`` (on ``device``) for the
            draws; the default uses the global RNG.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, PrioritizedSampler
        >>> storage = LazyTensorStorage(8)
        >>> storage.set(torch.arange(4), torch.arange(4.0))
        >>> sampler = PrioritizedSampler(8, alpha=1.0, beta=1.0, eps=0.0)
        >>> sampler.extend(torch.arange(4))
        >>> sampler.update_priority(torch.arange(4), torch.tensor([0.0, 1.0, 2.0, 4.0]))
        >>> _ = torch.manual_seed(3)
        >>> index, info = sampler.sample(storage, 6)
        >>> index  # row 0 has priority 0: never drawn
        tensor([1, 2, 3, 2, 3, 3])
        >>> info["_weight"]  # (priority / smallest positive priority) ** -beta
        tensor([1.0000, 0.5000, 0.2500, 0.5000, 0.2500, 0.2500])
    """

    def __init__(
        self,
        max_capacity: int,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        dtype: torch.dtype = torch.float64,
        reduction: str = "max",
        max_priority_init: float = 1.0,
        device: DeviceLike = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if isinstance(max_capacity, bool) or not isinstance(max_capacity, int) or max_capacity <= 0:
            raise ReplayArgumentError(
                f"PrioritizedSampler: max_capacity must be a positive int, got {max_capacity!r}"
            )
        if reduction not in _REDUCTIONS:
            raise ReplayArgumentError(
                f"PrioritizedSampler: reduction must be one of {_REDUCTIONS}, got {reduction!r}"
            )
        self.max_capacity = max_capacity
        self.alpha = alpha
        self.beta = beta
        self.eps = _non_negative("eps", eps)
        self.reduction = reduction
        self.max_priority_init = _non_negative("max_priority_init", max_priority_init)
        self.generator = generator
        self._sum = SumSegmentTree(max_capacity, dtype=dtype, device=device)
        self._min = MinSegmentTree(max_capacity, dtype=dtype, device=device)
        # the running maximum as a float of the tree dtype (validation reads it anyway)
        self._max_priority = self._as_dtype(self.max_priority_init)
        self._updated = False  # until the first update, new rows get max_priority_init
        self._end = 0  # rows >= _end have never been written: both trees hold neutral there
        self._initial: tuple[tuple[float, float, float], Tensor, Tensor] | None = None

    # -- annealable exponents ------------------------------------------- #
    @property
    def alpha(self) -> float:
        """The prioritization exponent (``>= 0``) applied to priorities as they are written."""
        return self._alpha

    @alpha.setter
    def alpha(self, value: float) -> None:
        self._alpha = _non_negative("alpha", value)

    @property
    def beta(self) -> float:
        """The importance-weight exponent (``>= 0``) used by ``sample``."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _non_negative("beta", value)

    @property
    def device(self) -> torch.device:
        """Where the priorities live and sampled indices are returned."""
        return self._sum.device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the stored priorities."""
        return self._sum.dtype

    @property
    def max_priority(self) -> float:
        """The priority new rows get: the largest one set so far, ``max_priority_init`` before any."""
        return self._max_priority

    def _as_dtype(self, value: float | Tensor) -> float:
        """``value`` rounded to the trees' dtype, as a Python float."""
        return float(torch.as_tensor(value, dtype=self.dtype))

    # -- sampling ------------------------------------------------------- #
    def sample(self, storage: Storage, batch_size: int) -> tuple[Tensor, dict[str, Any]]:
        """Draw ``batch_size`` rows among the ``len(storage)`` valid ones.

        Args:
            storage: only ``len(storage)`` is read; rows ``0 .. len - 1`` are drawn.
            batch_size: the number of indices.

        Returns:
            ``(index, info)``: a 1-d long tensor of rows and ``{"_weight": w}``,
            the float32 importance weights ``(q_i / q_min) ** -beta`` where
            ``q_min`` is the smallest positive stored priority among the valid rows.

        Raises:
            EmptyBufferError: the storage holds no rows.
            ReplayRuntimeError: every valid row has priority 0, or the storage is
                larger than ``max_capacity``.
        """
        n = len(storage)
        if not n:
            raise EmptyBufferError("cannot sample from an empty buffer: add or extend it first")
        if n > self.max_capacity:
            raise ReplayRuntimeError(
                f"PrioritizedSampler(max_capacity={self.max_capacity}) cannot sample from a "
                f"storage of {n} rows: build the sampler with max_capacity=storage.max_size"
            )
        # rows >= n hold 0 (+inf in the min tree) unless priorities were set for rows not
        # yet written: only then do the totals over rows < n need a range query
        whole = n >= self._end
        total = float(self._sum._root if whole else self._sum.reduce(0, n))
        if not total > 0:
            raise ReplayRuntimeError(
                f"PrioritizedSampler: the {n} valid rows all have priority 0, nothing can be "
                "drawn: set positive priorities with update_priority (or use eps > 0)"
            )
        mass = torch.rand(
            batch_size, 1, generator=self.generator, dtype=self.dtype, device=self.device
        )
        index = self._sum._find(mass.mul_(total))
        if n < self.max_capacity:  # rounding (or rows >= n written) must not leave the storage
            index = index.clamp_(max=n - 1)
        if self._beta == 0.0:
            weight = torch.ones(batch_size, dtype=torch.float32, device=self.device)
        else:
            q_min = self._min._root if whole else self._min.reduce(0, n)
            q = self._sum._leaves.index_select(0, index)
            weight = q.div_(q_min).pow_(-self._beta).to(torch.float32)
        return index, {"_weight": weight}

    # -- writes --------------------------------------------------------- #
    def _index(self, index: int | Sequence[int] | Tensor) -> tuple[Tensor, int]:
        """``index`` as a long tensor on the device, checked to be in ``[0, max_capacity)``.

        Also returns the largest index (``-1`` when there is none).
        """
        if isinstance(index, Tensor):
            if index.dtype.is_floating_point or index.dtype.is_complex or index.dtype is torch.bool:
                raise ReplayTypeError(
                    f"PrioritizedSampler: index must hold integers, got dtype {index.dtype}"
                )
            index = index.to(device=self.device, dtype=torch.long)
        else:
            index = torch.as_tensor(index, dtype=torch.long, device=self.device)
        high = -1
        if index.numel():
            low, high = (int(x) for x in torch.aminmax(index))
            if low < 0 or high >= self.max_capacity:
                raise ReplayIndexError(
                    f"PrioritizedSampler: index {low if low < 0 else high} is out of range, "
                    f"rows are 0 .. {self.max_capacity - 1} (max_capacity={self.max_capacity})"
                )
        return index, high

    def _write(self, index: Tensor, value: Tensor, positive: Tensor, high: int) -> None:
        """Store the stored values ``value`` (and ``positive`` for the min tree) of rows ``index``.

        ``index`` is checked and 1-d with largest entry ``high``; the values are
        1-d and give every occurrence of a repeated index the same value.
        """
        parents = self._sum._parents(index)
        self._sum._write(index, value, parents)
        self._min._write(index, positive, parents)
        self._end = max(self._end, high + 1)

    @staticmethod
    def _positive(value: Tensor) -> Tensor:
        """The min tree's leaves: ``value`` with zeros replaced by ``+inf``.

        Rows that cannot be drawn must not set the largest importance weight.
        """
        return value.masked_fill(value == 0, math.inf)

    def _initial_values(self) -> tuple[Tensor, Tensor]:
        """The stored value of ``max_priority`` (1-element tensors for both trees), cached."""
        key = (self._max_priority, self.eps, self._alpha)
        if self._initial is None or self._initial[0] != key:
            value = torch.tensor([self._max_priority], dtype=self.dtype, device=self.device)
            value = value.add_(self.eps).pow_(self._alpha)
            self._initial = (key, value, self._positive(value))
        return self._initial[1], self._initial[2]

    def extend(self, index: Tensor, priority: Tensor | None = None) -> None:
        """Rows ``index`` were written: give them the largest priority so far.

        Args:
            index: the rows (any shape).
            priority: explicit initial priorities instead, with the same rules
                as ``update_priority``.
        """
        if priority is not None:
            self.update_priority(index, priority)
            return
        index, high = self._index(index)
        index = index.reshape(-1)
        if not index.shape[0]:
            return
        value, positive = self._initial_values()  # one value: repeated indices agree
        self._write(index, value.expand(index.shape), positive.expand(index.shape), high)

    def update_priority(
        self, index: int | Sequence[int] | Tensor, priority: float | Sequence[float] | Tensor
    ) -> None:
        """Set the priorities of rows ``index``.

        The stored value is ``(priority + eps) ** alpha``.  When an index repeats,
        its last priority is kept.

        Args:
            index: an int, a sequence of ints or an integer tensor of shape ``S``.
            priority: a scalar (for every index) or a tensor of shape ``S`` or
                ``S + extra`` (``[B, T]``, ``[B, 1]`` for ``S = [B]``); the extra
                dims are reduced with ``reduction``.  Priorities must be finite
                and ``>= 0``, e.g. the absolute TD error.

        Raises:
            ReplayIndexError: an index is outside ``[0, max_capacity)``.
            ReplayArgumentError: a priority is NaN, infinite or negative, or the shapes
                do not match.

        Example:
            >>> import torch
            >>> from rlbricks.replay import PrioritizedSampler
            >>> sampler = PrioritizedSampler(4, alpha=1.0, beta=0.5, eps=0.0)
            >>> sampler.update_priority(torch.tensor([0, 1]), torch.tensor([[1.0, 3.0], [2.0, 0.5]]))
            >>> sampler.priority(torch.arange(4))
            tensor([3., 2., 0., 0.], dtype=torch.float64)
            >>> sampler.update_priority(2, float("nan"))
            Traceback (most recent call last):
            ...
            rlbricks.replay._errors.ReplayArgumentError: PrioritizedSampler.update_priority: 1 of 1 priorities are NaN, infinite or negative (e.g. index 2: nan); priorities must be finite and >= 0, such as an absolute TD error
        """
        index, high = self._index(index)
        priority = torch.as_tensor(priority, dtype=self.dtype, device=self.device)
        shape = index.shape
        if priority.ndim == 0:
            priority = priority.expand(shape)
        elif priority.shape[: len(shape)] != shape:
            raise ReplayArgumentError(
                f"PrioritizedSampler.update_priority: priority of shape {tuple(priority.shape)} "
                f"does not match index of shape {tuple(shape)}: give one priority per index "
                "(extra trailing dims are reduced)"
            )
        if not index.numel():
            return
        priority = priority.reshape(index.numel(), -1)
        low, top = (float(x) for x in torch.aminmax(priority))  # NaN if any is NaN
        if not (low >= 0.0 and top < math.inf):
            self._raise_bad_priority(index.reshape(-1), priority)
        if priority.shape[1] > 1:
            priority = _reduce(priority, self.reduction)
            if self.reduction != "max":
                top = float(priority.max())
        else:
            priority = priority.view(-1)
        self._max_priority = max(self._max_priority, top) if self._updated else top
        self._updated = True
        index = index.reshape(-1)
        if index.shape[0] > 1:  # repeated indices keep their last priority
            priority = self._sum._last_values(index, priority)
        value = torch.add(priority, self.eps)
        if self._alpha != 1.0:
            value.pow_(self._alpha)
        self._write(index, value, self._positive(value), high)

    @staticmethod
    def _raise_bad_priority(index: Tensor, priority: Tensor) -> None:
        ok = (priority >= 0) & (priority < math.inf)  # False for NaN too
        bad_row = ~ok.all(1)
        first = int(bad_row.nonzero()[0, 0])
        value = priority[first][~ok[first]][0].item()
        raise ReplayArgumentError(
            f"PrioritizedSampler.update_priority: {int(bad_row.sum())} of {index.numel()} "
            f"priorities are NaN, infinite or negative (e.g. index {int(index[first])}: "
            f"{value}); priorities must be finite and >= 0, such as an absolute TD error"
        )

    def priority(self, index: int | Sequence[int] | Tensor) -> Tensor:
        """The stored values ``(priority + eps) ** alpha`` of rows ``index``."""
        return self._sum._leaves[self._index(index)[0]]

    # -- state ---------------------------------------------------------- #
    def empty(self) -> None:
        """Forget every priority; the running maximum restarts at ``max_priority_init``."""
        self._sum.empty()
        self._min.empty()
        self._max_priority = self._as_dtype(self.max_priority_init)
        self._updated = False
        self._end = 0

    def state_dict(self) -> dict[str, Any]:
        """Priorities, running maximum and hyper-parameters (tensors and plain values only).

        The min tree is not saved: it is rebuilt from the stored priorities.
        """
        return {
            "max_capacity": self.max_capacity,
            "alpha": self._alpha,
            "beta": self._beta,
            "eps": self.eps,
            "reduction": self.reduction,
            "max_priority_init": self.max_priority_init,
            "max_priority": torch.tensor(self._max_priority, dtype=self.dtype, device=self.device),
            "updated": self._updated,
            "sum_tree": self._sum.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from ``state_dict()`` of a sampler with the same ``max_capacity``."""
        if state_dict["max_capacity"] != self.max_capacity:
            raise ReplayArgumentError(
                f"PrioritizedSampler.load_state_dict: the state has max_capacity "
                f"{state_dict['max_capacity']}, this sampler {self.max_capacity}: build the sampler with "
                f"max_capacity={state_dict['max_capacity']}"
            )
        if state_dict["reduction"] not in _REDUCTIONS:
            raise ReplayArgumentError(
                f"PrioritizedSampler.load_state_dict: unknown reduction {state_dict['reduction']!r}; "
                f"the state was not saved by a PrioritizedSampler (reductions: {_REDUCTIONS})"
            )
        self.alpha = state_dict["alpha"]
        self.beta = state_dict["beta"]
        self.eps = _non_negative("eps", state_dict["eps"])
        self.reduction = state_dict["reduction"]
        self.max_priority_init = _non_negative("max_priority_init", state_dict["max_priority_init"])
        self._max_priority = self._as_dtype(state_dict["max_priority"])
        self._updated = bool(state_dict["updated"])
        self._sum.load_state_dict(state_dict["sum_tree"])
        leaves = self._sum._leaves[: self.max_capacity]
        positive = torch.where(leaves > 0, leaves, math.inf)
        self._min.load_state_dict({"capacity": self.max_capacity, "leaves": positive})
        written = leaves.nonzero()  # zero rows are neutral in both trees, as if never written
        self._end = int(written[-1, 0]) + 1 if written.shape[0] else 0

    def __repr__(self) -> str:
        return (
            f"PrioritizedSampler(max_capacity={self.max_capacity}, alpha={self._alpha:g}, "
            f"beta={self._beta:g}, eps={self.eps:g}, reduction={self.reduction!r}, "
            f"max_priority={self.max_priority:g}, total={self._sum.reduce().item():g})"
        )
