"""Row indices given by users: ints, slices, lists, ranges, tuples and tensors.

Storages and ``ReplayBuffer.__getitem__`` index *rows*.  Samplers and writers
hand storages 1-d long tensors, which pass through untouched (the hot path);
everything else is turned into an int or a long tensor here, and checked
against the rows that may be read (``len(storage)``) or written
(``max_size``), so that a wrong index names itself instead of returning
unwritten rows.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import ReplayIndexError
from rlbricks.replay._errors import ReplayTypeError

__all__ = ["read_index", "write_index"]

_KINDS = "an int, a slice, a list, range or tuple of ints, or an integer (or bool) tensor"


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is one (numpy ints too, bools refused), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _sequence(index: list[Any] | tuple[Any, ...] | range, where: str) -> Tensor:
    if isinstance(index, range):
        return torch.arange(index.start, index.stop, index.step)
    if not index:
        return torch.empty(0, dtype=torch.long)
    values = [_as_int(value) for value in index]
    if any(value is None for value in values):
        bad = next(v for v, i in zip(index, values, strict=True) if i is None)
        raise ReplayTypeError(
            f"{where}: row indices must be ints, got {bad!r} of type {type(bad).__name__} in "
            f"{type(index).__name__} index; give {_KINDS}"
        )
    return torch.tensor(values, dtype=torch.long)


def _tensor(index: Tensor, rows: int, where: str) -> Tensor:
    if index.dtype is torch.bool:
        if index.shape != (rows,):
            raise ReplayIndexError(
                f"{where}: a bool mask must have one entry per row, shape ({rows},), got "
                f"{tuple(index.shape)}"
            )
        return index.nonzero().squeeze(-1)
    if index.dtype.is_floating_point or index.dtype.is_complex:
        raise ReplayTypeError(f"{where}: an index tensor must hold integers, got {index.dtype}")
    return index.long()


def _check(index: Tensor, rows: int, where: str, what: str, wrap: bool) -> Tensor:
    """``index`` with negative entries counted from ``rows`` (``wrap``), all in ``[0, rows)``."""
    if not index.numel():
        return index
    low, high = (int(x) for x in torch.aminmax(index))
    if wrap and low < 0:
        index = torch.where(index < 0, index + rows, index)
        low, high = (int(x) for x in torch.aminmax(index))
    if low < 0 or high >= rows:
        bad = low if low < 0 else high
        raise ReplayIndexError(
            f"{where}: row {bad if bad >= 0 or not wrap else bad - rows} is out of range: "
            f"{what} holds rows 0 .. {rows - 1}"
        )
    return index


def read_index(index: Any, rows: int, where: str) -> int | Tensor:
    """A user's index of rows to read among the ``rows`` valid ones.

    Negative ints and entries count from the end, slices are taken over the
    valid rows, a bool tensor is a mask over them; the result is an int or a
    long tensor, inside ``[0, rows)``.

    Raises:
        ReplayIndexError: a row outside the valid ones.
        ReplayTypeError: an index of another kind (floats, strings, ...).
    """
    what = f"the storage ({rows} valid)"
    as_int = _as_int(index)
    if as_int is not None:
        row = as_int + rows if as_int < 0 else as_int
        if not 0 <= row < rows:
            raise ReplayIndexError(
                f"{where}: row {as_int} is out of range: {what} holds rows 0 .. {rows - 1}"
            )
        return row
    if isinstance(index, slice):  # as a tensor: reading rows copies them, slices too
        return torch.arange(*index.indices(rows))
    if isinstance(index, (list, tuple, range)):
        return _check(_sequence(index, where), rows, where, what, wrap=True)
    if isinstance(index, Tensor):
        if index.dtype is not torch.bool and index.ndim == 0:
            return read_index(int(index), rows, where)
        return _check(_tensor(index, rows, where), rows, where, what, wrap=True)
    raise ReplayTypeError(
        f"{where}: cannot index rows with {type(index).__name__} {index!r}; give {_KINDS}"
    )


def write_index(index: Any, max_size: int, where: str) -> int | Tensor:
    """A user's index of rows to write (not a tensor), as an int or a long tensor in ``[0, max_size)``.

    Slices are taken over all ``max_size`` rows; negative rows are refused
    (writes name the rows of the storage, from 0).  Tensors are not read
    here: storages write them as given (writers compute them).

    Raises:
        ReplayIndexError: a row outside ``[0, max_size)``.
        ReplayTypeError: an index of another kind.
    """
    what = f"the storage (max_size {max_size})"
    as_int = _as_int(index)
    if as_int is not None:
        if not 0 <= as_int < max_size:
            raise ReplayIndexError(
                f"{where}: row {as_int} is out of range: {what} holds rows 0 .. {max_size - 1}"
            )
        return as_int
    if isinstance(index, slice):
        return torch.arange(*index.indices(max_size))
    if isinstance(index, (list, tuple, range)):
        return _check(_sequence(index, where), max_size, where, what, wrap=False)
    raise ReplayTypeError(
        f"{where}: cannot index rows with {type(index).__name__} {index!r}; give {_KINDS}"
    )
