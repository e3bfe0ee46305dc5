"""What a buffer accepts: TensorDicts, (nested) dicts of tensors, tensors, any object.

These helpers turn user input into the form a storage writes, count the rows
of a batch, and describe structure mismatches with the keys and shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

__all__ = ["as_batch", "as_row", "batch_len", "default_collate", "describe_mismatch", "rows"]


def _leading_dim(data: Mapping[Any, Any]) -> int:
    for key, value in data.items():
        if isinstance(value, Mapping):
            return _leading_dim(value)
        shape = value.shape if isinstance(value, Tensor) else torch.as_tensor(value).shape
        if not shape:
            raise ReplayArgumentError(
                f"extend needs a batch: key {key!r} is a scalar; use add() for one row"
            )
        return int(shape[0])
    raise ReplayArgumentError(
        "cannot extend a buffer with an empty dict: give a dict with at least one key"
    )


def as_batch(data: Any) -> Any:
    """A batch for ``extend``: dicts become TensorDicts with batch size ``[n]``."""
    if isinstance(data, (TensorDict, Tensor)):
        return data
    if isinstance(data, Mapping):
        return TensorDict(data, batch_size=[_leading_dim(data)])
    return data


def as_row(data: Any) -> Any:
    """One row for ``add``: dicts become TensorDicts with an empty batch size."""
    if isinstance(data, Mapping):
        return TensorDict(data)
    return data


def batch_len(data: Any) -> int:
    """Number of rows of a batch (first dim of tensors and TensorDicts, ``len`` otherwise)."""
    if isinstance(data, TensorDict):
        if not data.batch_dims:
            raise ReplayArgumentError(
                "extend needs a batch: this TensorDict has an empty batch_size; "
                "use add() for one row or give it a leading batch dim"
            )
        return int(data.batch_size[0])
    if isinstance(data, Tensor):
        if data.ndim == 0:
            raise ReplayArgumentError(
                "extend needs a batch: got a 0-d tensor; use add() for one row"
            )
        return int(data.shape[0])
    return len(data)


def rows(data: Any) -> list[Any]:
    """The rows of a batch as a list (for storages of Python objects)."""
    if isinstance(data, (TensorDict, Tensor)):
        return list(data.unbind(0))
    return list(data)


def default_collate(items: list[Any]) -> Any:
    """Stack rows read from a ``ListStorage``: TensorDicts, tensors and dicts of tensors
    are stacked along a new first dim; anything else stays a list.

    Example:
        >>> import torch
        >>> default_collate([torch.zeros(2), torch.ones(2)]).shape
        torch.Size([2, 2])
        >>> default_collate(["a", "b"])
        ['a', 'b']
    """
    if not items:
        return items
    first = items[0]
    if isinstance(first, TensorDict):
        return stack(items, 0)
    if isinstance(first, Tensor):
        return torch.stack(items, 0)
    if isinstance(first, Mapping):
        try:
            return stack([TensorDict(item) for item in items], 0)
        except (TypeError, ValueError, RuntimeError):
            return items
    return items


def describe_mismatch(stored: TensorDict, incoming: TensorDict) -> str | None:
    """Why ``incoming`` rows cannot be written into ``stored`` (None when they can).

    ``stored`` has batch ``[max_size, *B]``; ``incoming`` has batch ``[n, *B]`` or ``B``.
    """
    have = set(stored.keys(include_nested=True, leaves_only=True))
    got = set(incoming.keys(include_nested=True, leaves_only=True))
    if have != got:
        missing = sorted(map(str, have - got))
        extra = sorted(map(str, got - have))
        return (
            f"the data does not have the structure of the stored rows: missing keys {missing}, "
            f"extra keys {extra}"
        )
    row_dims = stored.batch_dims - 1
    for key in sorted(have, key=str):
        want = stored.get(key)
        value = incoming.get(key)
        want_row = tuple(want.shape[1:])
        got_row = tuple(value.shape[incoming.batch_dims - row_dims :])
        if want_row != got_row:
            return (
                f"key {key!r}: each stored row has shape {want_row} but the data gives rows "
                f"of shape {got_row}"
            )
        if want.dtype != value.dtype and not torch.can_cast(value.dtype, want.dtype):
            return f"key {key!r}: stored dtype {want.dtype} cannot hold {value.dtype}"
    return None
