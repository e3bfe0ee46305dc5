"""Functions over several TensorDicts (stack, cat, where) and the torch-function table.

``torch.stack``, ``torch.cat``, ``torch.where`` and friends accept TensorDicts
because ``TensorDict.__torch_function__`` routes them here.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from rlbricks.tensordict import _td
from rlbricks.tensordict._errors import BatchSizeError
from rlbricks.tensordict._errors import TensorDictKeyError
from rlbricks.tensordict._errors import TensorDictTypeError
from rlbricks.tensordict._errors import TensorDictValueError
from rlbricks.tensordict._mixin_values import expand_mask as _expand_mask
from rlbricks.tensordict._shape import _dim
from rlbricks.tensordict._td import TensorDict

__all__ = ["cat", "stack", "where", "TORCH_FUNCTIONS"]


def _check_same_keys(tds: Sequence[TensorDict], op: str) -> None:
    keys = tds[0]._tensordict.keys()
    for i, td in enumerate(tds[1:], 1):
        if td._tensordict.keys() != keys:
            only_first = sorted(set(keys) - set(td._tensordict))
            only_other = sorted(set(td._tensordict) - set(keys))
            raise TensorDictKeyError(
                f"{op}: TensorDict {i} has different keys than TensorDict 0 "
                f"(only in 0: {only_first}; only in {i}: {only_other}); give TensorDicts with the same keys"
            )


def _common_device(tds: Sequence[TensorDict]) -> torch.device | None:
    device = tds[0]._device
    for td in tds[1:]:
        if td._device != device:
            return None
    return device


def _check_tds(tds: Any, op: str) -> list[TensorDict]:
    tds = tds if tds.__class__ is list else list(tds)
    if not tds:
        raise TensorDictValueError(f"{op}: expected a non-empty sequence of TensorDicts")
    for i, td in enumerate(tds):
        if not isinstance(td, TensorDict):
            raise TensorDictTypeError(
                f"{op}: element {i} is a {type(td).__name__}, not a TensorDict"
            )
    return tds


def _stack(
    tds: list[TensorDict],
    d: int,
    nd: int,
    new_bs: torch.Size,
    out: TensorDict | None,
    device: torch.device | None,
) -> TensorDict:
    source: dict[str, Any] = {}
    for key, value in tds[0]._tensordict.items():
        try:
            values = [td._tensordict[key] for td in tds]
        except KeyError:  # same number of keys (checked by the caller) but not the same keys
            _check_same_keys(tds, "stack")
            raise
        if isinstance(value, TensorDict):
            n = len(value._tensordict)
            vbs = value._batch_size
            for v in values:
                if not isinstance(v, TensorDict):
                    raise TensorDictTypeError(
                        f"stack: key {key!r} is a TensorDict in some inputs only; every input must hold a "
                        "TensorDict (or every input a tensor) under a key"
                    )
                if v._batch_size != vbs:
                    raise BatchSizeError(
                        f"stack: key {key!r} has batch_size {tuple(v._batch_size)} in one input "
                        f"and {tuple(vbs)} in the first"
                    )
                if len(v._tensordict) != n:
                    _check_same_keys(values, "stack")  # type: ignore[arg-type]
            sub_out = None if out is None else out._tensordict[key]
            sub_bs = new_bs + vbs[len(tds[0]._batch_size) :]
            source[key] = _stack(values, d, nd, sub_bs, sub_out, device)  # type: ignore[arg-type]
        else:
            try:
                if out is not None:
                    source[key] = torch.stack(values, d, out=out._tensordict[key])  # type: ignore[arg-type]
                else:
                    source[key] = torch.stack(values, d)  # type: ignore[arg-type]
            except RuntimeError as err:
                shapes = sorted({tuple(v.shape) for v in values})
                raise BatchSizeError(
                    f"stack: key {key!r} cannot be stacked (shapes {shapes}): {err}"
                ) from None
    if out is not None:
        return out
    return TensorDict._new_unsafe(source, new_bs, device)


def stack(tds: Sequence[TensorDict], dim: int = 0, *, out: TensorDict | None = None) -> TensorDict:
    """Stack TensorDicts with equal batch sizes and keys along a new batch dim ``dim``.

    ``torch.stack`` calls this too.  With ``out`` the result is written into an
    existing TensorDict (no allocation).

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, stack
        >>> tds = [TensorDict({"a": torch.zeros(3, 2)}, batch_size=[3]) for _ in range(4)]
        >>> stack(tds, dim=1).batch_size
        torch.Size([3, 4])
        >>> torch.stack(tds)["a"].shape
        torch.Size([4, 3, 2])
    """
    tds = tds if tds.__class__ is list else list(tds)
    if not tds:
        raise TensorDictValueError("stack: expected a non-empty sequence of TensorDicts")
    first = tds[0]
    try:
        bs = first._batch_size
        n_keys = len(first._tensordict)
        device = first._device
        for td in tds:
            if td._batch_size != bs:
                raise BatchSizeError(
                    f"stack: a TensorDict has batch_size {tuple(td._batch_size)}, the first "
                    f"has {tuple(bs)}; stacked TensorDicts need equal batch sizes"
                )
            if len(td._tensordict) != n_keys:
                _check_same_keys(tds, "stack")
            if td._device != device:
                device = None
    except AttributeError:
        _check_tds(tds, "stack")
        raise
    nd = len(bs)
    d = _dim(dim, nd, "stack", extra=1)
    new_bs = bs[:d] + torch.Size((len(tds),)) + bs[d:]
    if out is not None and out._batch_size != new_bs:
        raise BatchSizeError(
            f"stack: out has batch_size {tuple(out._batch_size)}, expected {tuple(new_bs)}; pass an "
            "out of that batch_size, or no out"
        )
    return _stack(tds, d, nd, new_bs, out, device)


def _cat(tds: list[TensorDict], d: int, nd: int, new_bs: torch.Size) -> TensorDict:
    first = tds[0]
    _check_same_keys(tds, "cat")
    source: dict[str, Any] = {}
    for key, value in first._tensordict.items():
        values = [td._tensordict[key] for td in tds]
        if isinstance(value, TensorDict):
            extra = value._batch_size[len(first._batch_size) :]
            source[key] = _cat(values, d, nd, new_bs + extra)  # type: ignore[arg-type]
        else:
            try:
                source[key] = torch.cat(values, d)  # type: ignore[arg-type]
            except (RuntimeError, TypeError) as err:
                shapes = sorted({tuple(v.shape) for v in values})
                raise BatchSizeError(
                    f"cat: key {key!r} cannot be concatenated (shapes {shapes}): {err}"
                ) from None
    return TensorDict._new_unsafe(source, new_bs, _common_device(tds))


def cat(tds: Sequence[TensorDict], dim: int = 0) -> TensorDict:
    """Concatenate TensorDicts along the existing batch dim ``dim`` (``torch.cat`` too).

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, cat
        >>> a = TensorDict({"x": torch.zeros(2, 5)}, batch_size=[2])
        >>> b = TensorDict({"x": torch.ones(3, 5)}, batch_size=[3])
        >>> cat([a, b]).batch_size
        torch.Size([5])
    """
    tds = _check_tds(tds, "cat")
    bs = tds[0]._batch_size
    nd = len(bs)
    if nd == 0:
        raise BatchSizeError(
            "cat: TensorDicts with empty batch_size cannot be concatenated; stack them instead "
            "(which adds a batch dim)"
        )
    d = _dim(dim, nd, "cat")
    total = 0
    for i, td in enumerate(tds):
        other = td._batch_size
        if len(other) != nd or other[:d] != bs[:d] or other[d + 1 :] != bs[d + 1 :]:
            raise BatchSizeError(
                f"cat: TensorDict {i} has batch_size {tuple(other)}, incompatible with "
                f"{tuple(bs)} along dim {d}"
            )
        total += other[d]
    new_bs = bs[:d] + torch.Size((total,)) + bs[d + 1 :]
    return _cat(tds, d, nd, new_bs)


def where(condition: Tensor, input: Any, other: Any, *, out: Any = None) -> TensorDict:
    """``torch.where`` leaf by leaf; ``condition`` covers the leading batch dims.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict({"x": torch.zeros(3, 2)}, batch_size=[3])
        >>> torch.where(torch.tensor([True, False, True]), td, 1.0)["x"][:, 0]
        tensor([0., 1., 0.])
    """
    if out is not None:
        raise TensorDictTypeError(
            "where: out= is not supported for TensorDicts; use the returned TensorDict instead"
        )
    if isinstance(input, TensorDict):
        if isinstance(other, TensorDict):
            return input.apply(lambda x, y: torch.where(_expand_mask(condition, x), x, y), other)
        return input.apply(lambda x: torch.where(_expand_mask(condition, x), x, other))
    if isinstance(other, TensorDict):
        return other.apply(lambda y: torch.where(_expand_mask(condition, y), input, y))
    raise TensorDictTypeError("where: expected a TensorDict as input or other")


def _like(fn: Callable[..., Tensor]) -> Callable[..., TensorDict]:
    def handler(td: TensorDict, *args: Any, **kwargs: Any) -> TensorDict:
        return td.apply(lambda x: fn(x, *args, **kwargs))

    return handler


TORCH_FUNCTIONS = _td.TORCH_FUNCTIONS
TORCH_FUNCTIONS.update(
    {
        torch.stack: stack,
        torch.cat: cat,
        torch.concat: cat,
        torch.concatenate: cat,
        torch.where: where,
        torch.unbind: lambda td, dim=0: td.unbind(dim),
        torch.split: lambda td, split_size_or_sections, dim=0: td.split(
            split_size_or_sections, dim
        ),
        torch.chunk: lambda td, chunks, dim=0: td.chunk(chunks, dim),
        torch.clone: lambda td, **kwargs: td.clone(),
        torch.squeeze: lambda td, dim=None: td.squeeze(dim),
        torch.unsqueeze: lambda td, dim: td.unsqueeze(dim),
        torch.permute: lambda td, dims: td.permute(dims),
        torch.reshape: lambda td, shape: td.reshape(shape),
        torch.flatten: lambda td, start_dim=0, end_dim=-1: td.flatten(start_dim, end_dim),
        torch.unflatten: lambda td, dim, sizes: td.unflatten(dim, sizes),
        torch.transpose: lambda td, dim0, dim1: td.transpose(dim0, dim1),
        torch.zeros_like: _like(torch.zeros_like),
        torch.ones_like: _like(torch.ones_like),
        torch.empty_like: _like(torch.empty_like),
        torch.full_like: _like(torch.full_like),
        torch.rand_like: _like(torch.rand_like),
        torch.randn_like: _like(torch.randn_like),
    }
)
