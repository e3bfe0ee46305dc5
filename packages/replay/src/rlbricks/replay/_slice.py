"""Sample contiguous slices of trajectories: ``SliceSampler``.

A storage written by a collector holds steps in time order, trajectory after
trajectory.  ``SliceSampler`` finds the trajectory boundaries (from the done
flags or from the trajectory ids stored with each step), then draws batches of
``num_slices`` sub-trajectories of ``slice_len`` consecutive steps each,
uniformly over every slice that fits inside one trajectory.  Recurrent
policies, n-step returns and sequence models train on such batches.

The boundaries are computed with tensor ops once per write and cached; a
sample costs a few small tensor ops.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import EmptyBufferError
from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.replay._errors import ReplayKeyError
from rlbricks.replay._errors import ReplayRuntimeError
from rlbricks.replay._errors import StructureError
from rlbricks.replay._interfaces import Sampler
from rlbricks.replay._interfaces import Storage
from rlbricks.tensordict import NestedKey

__all__ = ["SliceSampler"]

_DONE: NestedKey = ("next", "done")
_TRAJ_IDS: NestedKey = ("collector", "traj_ids")


def _per_row(column: Tensor, key: NestedKey) -> Tensor:
    """``column`` (``[len]`` or ``[len, 1]``) as a 1-d tensor; other shapes are an error."""
    if column.ndim == 1 or (column.ndim == 2 and column.shape[1] == 1):
        return column.reshape(-1)
    raise StructureError(
        f"SliceSampler reads one value per row from {key!r} but the column has shape "
        f"{tuple(column.shape)}; expected [len] or [len, 1] (store one step per row)"
    )


class _Bounds:
    """The trajectories of a storage: first row and length of each (1-d long tensors)."""

    __slots__ = ("key", "lengths", "slices", "starts")

    def __init__(self, key: tuple[int, int], starts: Tensor, lengths: Tensor) -> None:
        self.key = key  # (id(storage), len(storage)) the bounds were computed for
        self.starts = starts
        self.lengths = lengths
        # slice_len -> (valid starts per trajectory, their cumsum, total)
        self.slices: dict[int, tuple[Tensor, Tensor, int]] = {}


class SliceSampler(Sampler):
    """Draw slices of consecutive steps that never cross a trajectory boundary.

    Give exactly one of ``num_slices`` and ``slice_len``; the other follows from
    the batch size (``batch_size = num_slices * slice_len``).  Each slice is a
    trajectory chosen with replacement, with probability proportional to its
    number of valid start positions, and a start drawn uniformly among those:
    every valid slice in the storage is equally likely.

    Trajectory boundaries are read from the storage through
    ``storage.column(key)``:

    * ``traj_key`` (e.g. ``("collector", "traj_ids")``): contiguous runs of
      equal id are trajectories;
    * ``end_key`` (e.g. ``("next", "done")``): a True marks the last step of a
      trajectory.

    When neither is given, ``("next", "done")`` is used, or
    ``("collector", "traj_ids")`` if the storage has no done flags.

    Circular storages: the buffer calls ``extend`` with the written rows after
    every write, and the row written last always ends a trajectory (the row
    after it holds older data), so no slice crosses the write cursor.  A
    trajectory never wraps from the last row to row 0 either.  Boundaries are
    cached until the next ``extend``: when you drive the sampler by hand, call
    ``extend`` after writing the storage.

    ``sample`` returns ``(index, info)``: ``index`` holds the rows of slice 0,
    then slice 1, ... (1-d long tensor), and ``info`` has

    * ``truncated_key``: bool ``[n, 1]``, True at the last step of each slice,
      so that value estimators bootstrap there (unless ``truncated_key`` is
      None).  ``TensorDictReplayBuffer`` or's it into the batch's truncated and
      done flags;
    * ``"slice_id"``: long ``[n]``, the slice (0 .. num_slices-1) of each row;
    * ``"slice_lengths"``: long ``[num_slices]``, the length of each slice.

    With ``strict_length=False``, trajectories shorter than ``slice_len`` can
    be chosen too (as one slice: the whole trajectory), so ``index`` may hold
    fewer than ``batch_size`` rows; ``info["slice_lengths"]`` tells how to
    split it.  Slices from long enough trajectories are always full.

    Args:
        num_slices: the number of slices per batch.
        slice_len: the number of steps per slice.
        end_key: the key of the done flags marking trajectory ends.
        traj_key: the key of the trajectory ids (exclusive with ``end_key``).
        strict_length: only sample slices of exactly ``slice_len`` steps.
        truncated_key: where ``info`` marks slice ends (None: not at all).
        generator: an optional ``torch.Generator``; indices are created on its
            device (CPU by default).

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, SliceSampler
        >>> from rlbricks.tensordict import TensorDict
        >>> storage = LazyTensorStorage(7)
        >>> done = torch.tensor([0, 0, 1, 0, 0, 0, 1], dtype=torch.bool).unsqueeze(-1)
        >>> storage.set(torch.arange(7), TensorDict({"next": {"done": done}}, batch_size=[7]))
        >>> sampler = SliceSampler(slice_len=4)  # trajectories: rows 0-2 and rows 3-6
        >>> index, info = sampler.sample(storage, batch_size=8)  # 2 slices of 4 steps
        >>> index.tolist()
        [3, 4, 5, 6, 3, 4, 5, 6]
        >>> info["next", "truncated"].view(-1).tolist()
        [False, False, False, True, False, False, False, True]
        >>> info["slice_id"].tolist(), info["slice_lengths"].tolist()
        ([0, 0, 0, 0, 1, 1, 1, 1], [4, 4])

        In a buffer, the batch gets the slice-end markers:

        >>> from rlbricks.replay import TensorDictReplayBuffer
        >>> rb = TensorDictReplayBuffer(
        ...     storage=LazyTensorStorage(100), sampler=SliceSampler(num_slices=2), batch_size=8
        ... )
        >>> _ = rb.extend(TensorDict({"next": {"done": done}}, batch_size=[7]))
        >>> rb.sample()["next", "truncated"].view(2, 4).tolist()
        [[False, False, False, True], [False, False, False, True]]
    """

    def __init__(
        self,
        *,
        num_slices: int | None = None,
        slice_len: int | None = None,
        end_key: NestedKey | None = None,
        traj_key: NestedKey | None = None,
        strict_length: bool = True,
        truncated_key: NestedKey | None = ("next", "truncated"),
        generator: torch.Generator | None = None,
    ) -> None:
        if (num_slices is None) == (slice_len is None):
            raise ReplayArgumentError(
                "SliceSampler needs exactly one of num_slices and slice_len (the other follows "
                f"from the batch size); got num_slices={num_slices!r}, slice_len={slice_len!r}"
            )
        for name, value in (("num_slices", num_slices), ("slice_len", slice_len)):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ReplayArgumentError(f"{name} must be a positive int, got {value!r}")
        if end_key is not None and traj_key is not None:
            raise ReplayArgumentError(
                f"give end_key ({end_key!r}) or traj_key ({traj_key!r}), not both: "
                "each alone defines the trajectories"
            )
        self.num_slices = num_slices
        self.slice_len = slice_len
        self.end_key = end_key
        self.traj_key = traj_key
        self.strict_length = strict_length
        self.truncated_key = truncated_key
        self.generator = generator
        self._last_written = -1  # the row written last (-1: unknown)
        self._bounds: _Bounds | None = None

    # -- writes ----------------------------------------------------------- #
    def extend(self, index: Tensor) -> None:
        """Rows ``index`` were just written: the last one ends a trajectory."""
        if index.numel():
            self._last_written = int(index.reshape(-1)[-1])
        self._bounds = None

    def add(self, index: int) -> None:
        """Row ``index`` was just written."""
        self._last_written = int(index)
        self._bounds = None

    def empty(self) -> None:
        """Forget the write cursor and the cached boundaries."""
        self._last_written = -1
        self._bounds = None

    # -- boundaries ------------------------------------------------------- #
    @property
    def _device(self) -> torch.device:
        generator = self.generator
        return generator.device if generator is not None else torch.device("cpu")

    def _read_ends(self, storage: Storage, n: int) -> Tensor:
        """Bool ``[n]``: True at the last row of each trajectory as stored."""
        # (key, True for trajectory ids / False for done flags), in the order tried
        if self.traj_key is not None:
            tried = [(self.traj_key, True)]
        elif self.end_key is not None:
            tried = [(self.end_key, False)]
        else:
            tried = [(_DONE, False), (_TRAJ_IDS, True)]
        error: KeyError | None = None
        for key, is_ids in tried:
            try:
                column = storage.column(key)
            except KeyError as err:
                error = err
                continue
            values = _per_row(column, key).to(self._device)
            if not is_ids:
                return values.to(dtype=torch.bool, copy=True)
            ends = torch.ones(n, dtype=torch.bool, device=values.device)
            ends[:-1] = values[1:] != values[:-1]
            return ends
        said = f" ({error})" if error is not None else ""
        raise ReplayKeyError(
            f"SliceSampler found no trajectory boundaries in the storage: tried the keys "
            f"{[key for key, _ in tried]}{said}; pass end_key= (done flags) or traj_key= "
            "(trajectory ids) naming a stored column"
        )

    def _trajectories(self, storage: Storage) -> _Bounds:
        """The (cached) first row and length of every trajectory."""
        n = len(storage)
        key = (id(storage), n)
        bounds = self._bounds
        if bounds is not None and bounds.key == key:
            return bounds
        ends = self._read_ends(storage, n)
        ends[-1] = True  # trajectories never wrap from the last row to row 0
        if 0 <= self._last_written < n:
            ends[self._last_written] = True  # the next row holds older data
        stops = ends.nonzero().squeeze(-1)
        starts = torch.zeros_like(stops)
        starts[1:] = stops[:-1] + 1
        bounds = _Bounds(key, starts, stops - starts + 1)
        self._bounds = bounds
        return bounds

    def _valid_slices(self, bounds: _Bounds, slice_len: int) -> tuple[Tensor, Tensor, int]:
        """Valid starts per trajectory, their cumsum and their total (cached per length)."""
        cached = bounds.slices.get(slice_len)
        if cached is not None:
            return cached
        counts = (bounds.lengths - (slice_len - 1)).clamp_(min=0 if self.strict_length else 1)
        cumsum = counts.cumsum(0)
        total = int(cumsum[-1])
        if not total:
            raise ReplayRuntimeError(
                f"SliceSampler(slice_len={slice_len}) found no trajectory of {slice_len} steps "
                f"or more: the longest stored trajectory has {int(bounds.lengths.max())} steps; "
                "use a shorter slice_len, store longer trajectories, or strict_length=False"
            )
        cached = bounds.slices[slice_len] = (counts, cumsum, total)
        return cached

    # -- sampling --------------------------------------------------------- #
    def _shape(self, batch_size: int) -> tuple[int, int]:
        """``(num_slices, slice_len)`` for ``batch_size``."""
        if self.num_slices is not None:
            name, given = "num_slices", self.num_slices
        else:
            name, given = "slice_len", int(self.slice_len or 0)
        if batch_size <= 0 or batch_size % given:
            raise ReplayArgumentError(
                f"SliceSampler: batch_size {batch_size} is not a positive multiple of "
                f"{name} {given}; pick a batch_size divisible by {given}"
            )
        other = batch_size // given
        return (given, other) if name == "num_slices" else (other, given)

    def sample(self, storage: Storage, batch_size: int) -> tuple[Tensor, dict[str, Any]]:
        """Rows of ``num_slices`` slices, slice after slice, and the slice markers.

        Raises:
            ReplayArgumentError: ``batch_size`` is not a multiple of ``num_slices`` /
                ``slice_len``.
            ReplayKeyError: the storage has no column to find trajectories with.
            ReplayRuntimeError: no trajectory is ``slice_len`` steps long
                (``strict_length=True``).
            EmptyBufferError: the storage is empty.
        """
        num_slices, slice_len = self._shape(batch_size)
        if not len(storage):
            raise EmptyBufferError("cannot sample from an empty buffer: add or extend it first")
        bounds = self._trajectories(storage)
        counts, cumsum, total = self._valid_slices(bounds, slice_len)
        device = self._device
        # One integer draw per slice, uniform over all valid slices, mapped to
        # (trajectory, offset of the start inside it).
        draw = torch.randint(total, (num_slices,), generator=self.generator, device=device)
        traj = torch.searchsorted(cumsum, draw, right=True)
        starts = bounds.starts[traj] + draw - (cumsum[traj] - counts[traj])
        lengths = bounds.lengths[traj]
        if self.strict_length or bool((lengths >= slice_len).all()):
            steps = torch.arange(slice_len, device=device)
            index = (starts.unsqueeze(1) + steps).reshape(-1)
            slice_id = torch.arange(num_slices, device=device).repeat_interleave(slice_len)
            last = (steps == slice_len - 1).repeat(num_slices)
            lengths = torch.full((num_slices,), slice_len, dtype=torch.long, device=device)
        else:
            lengths = lengths.clamp(max=slice_len)
            n = int(lengths.sum())
            slice_id = torch.repeat_interleave(
                torch.arange(num_slices, device=device), lengths, output_size=n
            )
            first = lengths.cumsum(0) - lengths  # position of each slice in the batch
            pos = torch.arange(n, device=device) - first[slice_id]
            index = starts[slice_id] + pos
            last = pos == lengths[slice_id] - 1
        info: dict[Any, Any] = {"slice_id": slice_id, "slice_lengths": lengths}
        if self.truncated_key is not None:
            info[self.truncated_key] = last.unsqueeze(-1)
        return index, info

    # -- state ------------------------------------------------------------ #
    def state_dict(self) -> dict[str, Any]:
        """The last written row (the boundary cache is rebuilt on demand)."""
        return {"last_written": self._last_written}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from ``state_dict()``."""
        self._last_written = int(state_dict["last_written"])
        self._bounds = None

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the boundary cache, which is keyed by the storage's ``id``."""
        state = self.__dict__.copy()
        state["_bounds"] = None
        return state

    def __repr__(self) -> str:
        size = (
            f"num_slices={self.num_slices}"
            if self.num_slices is not None
            else f"slice_len={self.slice_len}"
        )
        if self.traj_key is not None:
            size += f", traj_key={self.traj_key!r}"
        elif self.end_key is not None:
            size += f", end_key={self.end_key!r}"
        return f"SliceSampler({size}, strict_length={self.strict_length})"
