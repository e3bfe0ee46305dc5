"""What a buffer accepts: TensorDicts, (nested) dicts of tensors, tensors, any object.

These helpers turn user input into the form a storage writes, count the rows
of a batch, and describe structure mismatches with the keys and shapes.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from rlbricks.replay._errors import ReplayArgumentError
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import stack

__all__ = [
    "as_batch",
    "as_row",
    "batch_len",
    "default_collate",
    "describe_mismatch",
    "expand_right",
    "pinned",
    "rows",
]


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


def pinned(data: Any) -> Any:
    """``data`` with its CPU tensors copied to pinned memory (a TensorDict leaf by leaf).

    Tensors on another device and objects that are neither tensors nor
    TensorDicts are returned as they are.
    """
    if isinstance(data, Tensor):
        return data.pin_memory() if data.device.type == "cpu" else data
    if isinstance(data, TensorDict):
        return data.apply(lambda x: x.pin_memory() if x.device.type == "cpu" else x)
    return data


def rows(data: Any) -> list[Any]:
    """The rows of a batch as a list (for storages of Python objects)."""
    if isinstance(data, (TensorDict, Tensor)):
        return list(data.unbind(0))
    return list(data)


def _with_every_key(items: list[TensorDict]) -> list[TensorDict]:
    """``items`` where each lacking a leaf key another one has gets zeros there."""
    example: dict[Any, Tensor] = {}
    for item in items:
        for key, value in item.items(include_nested=True, leaves_only=True):
            example.setdefault(key, value)
    out = []
    for item in items:
        lacking = example.keys() - set(item.keys(include_nested=True, leaves_only=True))
        if lacking:
            item = item.apply(lambda x: x)  # new (nested) TensorDicts: the stored row stays
            for key in lacking:
                item.set(key, torch.zeros_like(example[key]))
        out.append(item)
    return out


def default_collate(items: list[Any]) -> Any:
    """Stack rows read from a ``ListStorage``: TensorDicts, tensors and dicts of tensors
    are stacked along a new first dim; anything else stays a list.

    TensorDict rows with different keys (random warm-up steps, then policy
    steps with more keys) are stacked with zeros where a row lacks a key, as a
    tensor storage holds them.

    Example:
        >>> import torch
        >>> default_collate([torch.zeros(2), torch.ones(2)]).shape
        torch.Size([2, 2])
        >>> default_collate(["a", "b"])
        ['a', 'b']
        >>> from rlbricks.tensordict import TensorDict
        >>> rows = [TensorDict({"obs": torch.ones(2)}), TensorDict({"obs": torch.ones(2), "loc": torch.ones(1)})]
        >>> default_collate(rows)["loc"]
        tensor([[0.],
                [1.]])
    """
    if not items:
        return items
    first = items[0]
    if isinstance(first, TensorDict):
        try:
            return stack(items, 0)
        except KeyError:  # rows with different keys
            return stack(_with_every_key(items), 0)
    if isinstance(first, Tensor):
        return torch.stack(items, 0)
    if isinstance(first, Mapping):
        try:
            return stack([TensorDict(item) for item in items], 0)
        except (TypeError, ValueError, RuntimeError):
            return items
    return items


def describe_mismatch(
    stored: TensorDict, incoming: TensorDict, keys: Iterable[NestedKey] | None = None
) -> str | None:
    """Why ``incoming`` rows cannot be written into ``stored`` (None when they can).

    ``stored`` has batch ``[max_size, *B]``; ``incoming`` has batch ``[n, *B]`` or ``B``.
    With ``keys``, only the row shapes and dtypes of those keys are compared
    (both TensorDicts hold them); otherwise the key sets must be equal too.
    """
    if keys is None:
        have = set(stored.keys(include_nested=True, leaves_only=True))
        got = set(incoming.keys(include_nested=True, leaves_only=True))
        if have != got:
            missing = sorted(map(str, have - got))
            extra = sorted(map(str, got - have))
            return (
                f"the data does not have the structure of the stored rows: missing keys "
                f"{missing}, extra keys {extra}"
            )
        keys = have
    row_dims = stored.batch_dims - 1
    for key in sorted(keys, key=str):
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


def expand_right(value: Tensor, shape: torch.Size) -> Tensor:
    """``value`` (shape ``shape[:k]``) repeated over the trailing dims of ``shape`` (a view).

    Example:
        >>> import torch
        >>> expand_right(torch.tensor([3, 7]), torch.Size([2, 3]))
        tensor([[3, 3, 3],
                [7, 7, 7]])
    """
    extra = len(shape) - value.ndim
    return value.reshape(*value.shape, *([1] * extra)).expand(shape)
