"""Indexing a TensorDict along its batch dims: ``td[idx]`` and ``td[idx] = value``.

An index is normalised once against the batch dims (``Ellipsis`` expanded,
lists and arrays turned into tensors) and then applied unchanged to every leaf:
since the index never reaches past the batch dims, every leaf's feature dims
stay trailing and untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from typing import Any

import torch
from torch import Tensor

from rlbricks.tensordict import _td
from rlbricks.tensordict._errors import TensorDictIndexError
from rlbricks.tensordict._errors import TensorDictKeyError
from rlbricks.tensordict._errors import TensorDictValueError

if TYPE_CHECKING:
    from rlbricks.tensordict._td import TensorDict

__all__ = ["get_index", "set_index"]


def _consumed(item: Any) -> int:
    """How many batch dims one index item consumes."""
    if item is None:
        return 0
    if isinstance(item, Tensor) and item.dtype is torch.bool:
        return item.ndim
    return 1


def _convert(item: Any) -> Any:
    cls = item.__class__
    if cls is int or cls is slice or item is None or item is Ellipsis or isinstance(item, Tensor):
        return item
    if cls is list or cls is range or hasattr(item, "__array__"):
        tensor = torch.as_tensor(item)
        if not tensor.numel() and tensor.dtype is not torch.bool:
            tensor = tensor.long()
        if tensor.dtype is not torch.bool and tensor.is_floating_point():
            raise TensorDictIndexError(f"index arrays must be integer or bool, got {tensor.dtype}")
        return tensor
    if isinstance(item, int):  # bool, numpy ints
        if isinstance(item, bool):
            return torch.tensor(item)
        return int(item)
    raise TensorDictIndexError(
        f"unsupported index {item!r} of type {type(item).__name__}: use int, slice, None, "
        "Ellipsis, a bool mask, an index tensor or a list"
    )


def normalize_index(index: Any, batch_size: torch.Size) -> Any:
    """The index with Ellipsis expanded and lists/arrays as tensors; checks the dims used."""
    nd = len(batch_size)
    items = index if index.__class__ is tuple else (index,)
    items = tuple(_convert(i) for i in items)
    used = sum(_consumed(i) for i in items if i is not Ellipsis)
    n_ellipsis = sum(1 for i in items if i is Ellipsis)
    if n_ellipsis > 1:
        raise TensorDictIndexError("an index can only have a single ellipsis ('...')")
    if used > nd:
        raise TensorDictIndexError(
            f"too many indices for a TensorDict with batch_size {tuple(batch_size)}: the index "
            f"{index!r} uses {used} dims but there are only {nd} batch dims"
        )
    if n_ellipsis:
        pos = next(i for i, it in enumerate(items) if it is Ellipsis)
        items = items[:pos] + (slice(None),) * (nd - used) + items[pos + 1 :]
    return items[0] if len(items) == 1 else items


def _index_leaves(td: TensorDict, idx: Any, batch_size: torch.Size | None) -> TensorDict:
    nd = len(td._batch_size)
    source: dict[str, Any] = {}
    res: Any
    td_cls = _td.TensorDict
    for key, value in td._tensordict.items():
        if isinstance(value, td_cls):
            if batch_size is None or len(value._batch_size) == nd:
                sub_bs = batch_size
            else:
                sub_bs = batch_size + value._batch_size[nd:]
            res = _index_leaves(value, idx, sub_bs)
            if batch_size is None:
                batch_size = res._batch_size[: len(res._batch_size) - (value.batch_dims - nd)]
        else:
            res = value[idx]
            if batch_size is None:
                batch_size = res.shape[: res.ndim - (value.ndim - nd)]
        source[key] = res
    if batch_size is None:  # no values: index a zero-stride stand-in for the batch
        batch_size = torch.zeros(()).expand(td._batch_size)[idx].shape
    return td_cls._new_unsafe(source, batch_size, td._device)


def get_index(td: TensorDict, index: Any) -> TensorDict:
    """``td[index]`` for every non-key index form."""
    bs = td._batch_size
    cls = index.__class__
    if cls is int:
        if not bs:
            raise TensorDictIndexError(
                "cannot index a TensorDict with empty batch_size (no batch dims): read entries by "
                "key, or build it with a batch_size"
            )
        if not -bs[0] <= index < bs[0]:
            raise TensorDictIndexError(
                f"index {index} is out of range for batch dim 0 of size {bs[0]}"
            )
        return _index_leaves(td, index, bs[1:])
    if cls is slice:
        if not bs:
            raise TensorDictIndexError(
                "cannot slice a TensorDict with empty batch_size (no batch dims): read entries by "
                "key, or build it with a batch_size"
            )
        start, stop, step = index.indices(bs[0])
        if step <= 0:
            raise TensorDictValueError(f"slice step must be positive, got {step}")
        length = max(0, (stop - start + step - 1) // step)
        return _index_leaves(td, index, torch.Size((length, *bs[1:])))
    if isinstance(index, torch.Tensor) and index.dtype is not torch.bool and bs:
        # an index tensor picks rows of dim 0: the batch becomes index.shape + bs[1:]
        return _index_leaves(td, index, index.shape + bs[1:])
    if index is Ellipsis:
        return td.clone(recurse=False)
    return _index_leaves(td, normalize_index(index, bs), None)


def set_index(td: TensorDict, index: Any, value: Any) -> None:
    """``td[index] = value`` where value is a TensorDict, a dict, a tensor or a number."""
    cls = index.__class__
    if cls is not int and cls is not slice:
        index = normalize_index(index, td._batch_size)
    if not td._tensordict:  # no leaf to raise for a bad index: check it on a stand-in
        torch.zeros(()).expand(td._batch_size)[index]
    _set_index(td, index, value, _td.TensorDict)


def _set_index(td: Any, idx: Any, value: Any, td_cls: type) -> None:
    if isinstance(value, (td_cls, Mapping)):
        source: Any = value
        items = source._tensordict.items() if isinstance(value, td_cls) else source.items()
        dests = td._tensordict
        for key, sub in items:
            dest = dests.get(key)
            if dest is None:
                dest = _new_entry(td, key, sub, value)
            if isinstance(dest, td_cls):
                _set_index(dest, idx, sub, td_cls)
            else:
                dest[idx] = sub
        return
    for leaf in _leaves(td, td_cls):
        leaf[idx] = value


def _leaves(td: Any, td_cls: type) -> list[Tensor]:
    out: list[Tensor] = []
    for v in td._tensordict.values():
        if isinstance(v, td_cls):
            out.extend(_leaves(v, td_cls))
        else:
            out.append(v)
    return out


def _new_entry(td: TensorDict, key: str, sub: Any, value: Any) -> Any:
    """A zero-filled entry for a key that the assigned TensorDict has and ``td`` lacks."""
    if not isinstance(value, _td.TensorDict):
        raise TensorDictKeyError(
            f"cannot assign key {key!r} by index: it does not exist in the destination (set it on "
            f"the whole TensorDict first); "
            f"available keys: {list(td._tensordict)}"
        )
    sub_bd = value.batch_dims
    if isinstance(sub, _td.TensorDict):
        entry: Any = _td.TensorDict._new_unsafe(
            {}, td._batch_size + sub._batch_size[sub_bd:], td._device
        )
    else:
        entry = torch.zeros(
            td._batch_size + sub.shape[sub_bd:],
            dtype=sub.dtype,
            device=td._device if td._device is not None else sub.device,
        )
    td._tensordict[key] = entry
    return entry
