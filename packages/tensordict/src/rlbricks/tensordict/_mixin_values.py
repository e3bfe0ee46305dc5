# mypy: disable-error-code="misc"
"""Value operations of TensorDict: apply, dtype and device moves, in-place fills, comparisons.

``ValueOpsMixin`` is one of the bases of ``TensorDict``; its methods act on
every leaf at once and keep the batch structure.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import torch
from torch import Tensor

from rlbricks.tensordict import _shape
from rlbricks.tensordict import _td
from rlbricks.tensordict._errors import TensorDictKeyError
from rlbricks.tensordict._errors import TensorDictValueError
from rlbricks.tensordict._keys import NestedKey
from rlbricks.tensordict._sentinel import NO_DEFAULT

if TYPE_CHECKING:
    from rlbricks.tensordict._td import DeviceLike
    from rlbricks.tensordict._td import TensorDict
    from rlbricks.tensordict._td import Value

__all__ = ["ValueOpsMixin", "apply_leaves", "expand_mask"]

_Dims = builtins.int | tuple[builtins.int, ...] | None


class ValueOpsMixin:
    """Leaf-wise operations of ``TensorDict`` (see the class for examples)."""

    __slots__ = ()

    def apply(
        self: TensorDict,
        fn: Callable[..., Tensor | None],
        *others: TensorDict,
        batch_size: Sequence[builtins.int] | torch.Size | None = None,
        device: DeviceLike = NO_DEFAULT,
    ) -> TensorDict:
        """A new TensorDict with ``fn(value, *other_values)`` for every tensor.

        ``others`` are TensorDicts with the same structure whose leaves are passed
        as extra arguments.  Leaves for which ``fn`` returns ``None`` are dropped.

        Args:
            fn: the function applied to every leaf.
            *others: TensorDicts with the same keys.
            batch_size: the result's batch size when ``fn`` changes the batch dims.
            device: the result's device (default: the same as ``self``).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.ones(2), "n": {"b": torch.ones(2)}}, batch_size=[2])
            >>> td.apply(lambda x: x * 3)["n", "b"]
            tensor([3., 3.])
        """
        bs = self._batch_size if batch_size is None else _td._as_size(batch_size)
        dev = self._device if device is NO_DEFAULT else _td._as_device(device)
        return apply_leaves(self, fn, others, bs, dev)

    def apply_(self: TensorDict, fn: Callable[..., Tensor], *others: TensorDict) -> TensorDict:
        """Write ``fn(leaf, *other_leaves)`` into every leaf's own storage; return ``self``.

        The tensors stay the same objects, so shared-memory and memory-mapped
        leaves (and references taken earlier) see the new values.
        """
        for key, value in self._tensordict.items():
            other_values = [o._tensordict[key] for o in others]
            if isinstance(value, _td.TensorDict):
                value.apply_(fn, *other_values)  # type: ignore[arg-type]
            else:
                res = fn(value, *other_values)
                if res is not value:
                    value.copy_(res)
        return self

    def named_apply(
        self: TensorDict,
        fn: Callable[[NestedKey, Tensor], Tensor | None],
        *,
        prefix: tuple[str, ...] = (),
    ) -> TensorDict:
        """Like ``apply`` but ``fn`` also receives the (nested) key of each leaf."""
        source: dict[str, Value] = {}
        for key, value in self._tensordict.items():
            full = prefix + (key,)
            if isinstance(value, _td.TensorDict):
                source[key] = value.named_apply(fn, prefix=full)
            else:
                res = fn(full if len(full) > 1 else key, value)
                if res is not None:
                    source[key] = res
        return self._new_like(source)

    def to(self: TensorDict, *args: Any, **kwargs: Any) -> TensorDict:
        """Move to a device and/or cast every leaf to a dtype (``torch.Tensor.to`` arguments).

        Returns ``self`` when nothing changes.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.zeros(2, dtype=torch.int64)}, batch_size=[2])
            >>> td.to(torch.float32)["a"].dtype
            torch.float32
            >>> td.to("cpu").device
            device(type='cpu')
        """
        if args and isinstance(args[0], _td.TensorDict):
            return self.to(args[0].device) if args[0].device is not None else self
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is None and dtype is None:
            return self
        out_device = self._device if device is None else device
        if dtype is None and out_device == self._device and device is not None:
            return self

        def move(x: Tensor) -> Tensor:
            return x.to(device=device, dtype=dtype, non_blocking=non_blocking)

        return apply_leaves(self, move, (), self._batch_size, out_device)

    def cpu(self: TensorDict) -> TensorDict:
        """``to("cpu")``."""
        return self.to("cpu")

    def cuda(self: TensorDict, device: builtins.int | None = None) -> TensorDict:
        """``to("cuda")`` (or ``cuda:<device>``)."""
        return self.to("cuda" if device is None else f"cuda:{device}")

    def float(self: TensorDict) -> TensorDict:
        """Cast every leaf to float32."""
        return self.apply(lambda x: x.float())

    def double(self: TensorDict) -> TensorDict:
        """Cast every leaf to float64."""
        return self.apply(lambda x: x.double())

    def half(self: TensorDict) -> TensorDict:
        """Cast every leaf to float16."""
        return self.apply(lambda x: x.half())

    def int(self: TensorDict) -> TensorDict:
        """Cast every leaf to int32."""
        return self.apply(lambda x: x.int())

    def long(self: TensorDict) -> TensorDict:
        """Cast every leaf to int64."""
        return self.apply(lambda x: x.long())

    def bool(self: TensorDict) -> TensorDict:
        """Cast every leaf to bool."""
        return self.apply(lambda x: x.bool())

    def detach(self: TensorDict) -> TensorDict:
        """A TensorDict of detached leaves (no autograd history)."""
        return self.apply(lambda x: x.detach())

    def detach_(self: TensorDict) -> TensorDict:
        """Detach every leaf in place."""
        return self.apply_(lambda x: x.detach_())

    def requires_grad_(self: TensorDict, requires_grad: builtins.bool = True) -> TensorDict:
        """Set ``requires_grad`` on every floating-point leaf."""
        for _, value in _td.iter_leaves(self):
            if value.is_floating_point():
                value.requires_grad_(requires_grad)
        return self

    def contiguous(self: TensorDict) -> TensorDict:
        """A TensorDict of contiguous leaves."""
        return self.apply(lambda x: x.contiguous())

    def share_memory_(self: TensorDict) -> TensorDict:
        """Move every leaf's storage to shared memory (for worker processes); return ``self``."""
        for _, value in _td.iter_leaves(self):
            value.share_memory_()
        return self

    def is_shared(self: TensorDict) -> builtins.bool:
        """True when every leaf is in shared memory (or on a CUDA device)."""
        leaves = [v for _, v in _td.iter_leaves(self)]
        return bool(leaves) and all(v.is_shared() or v.is_cuda for v in leaves)

    def zero_(self: TensorDict) -> TensorDict:
        """Zero every leaf in place; return ``self``."""
        for _, value in _td.iter_leaves(self):
            value.zero_()
        return self

    def fill_(
        self: TensorDict, key: NestedKey, value: builtins.float | builtins.bool
    ) -> TensorDict:
        """Fill the tensor (or every leaf of the nested TensorDict) at ``key`` with ``value``."""
        target = self.get(key)
        if isinstance(target, _td.TensorDict):
            for _, leaf in _td.iter_leaves(target):
                leaf.fill_(value)
        else:
            target.fill_(value)
        return self

    def masked_fill(
        self: TensorDict, mask: Tensor, value: builtins.float | builtins.bool
    ) -> TensorDict:
        """Leaves with ``value`` where ``mask`` (shaped like the leading batch dims) is True."""
        return self.apply(lambda x: x.masked_fill(expand_mask(mask, x), value))

    def masked_fill_(
        self: TensorDict, mask: Tensor, value: builtins.float | builtins.bool
    ) -> TensorDict:
        """In-place ``masked_fill``."""
        for _, leaf in _td.iter_leaves(self):
            leaf.masked_fill_(expand_mask(mask, leaf), value)
        return self

    def where(
        self: TensorDict, condition: Tensor, other: TensorDict | Tensor | builtins.float
    ) -> TensorDict:
        """``torch.where(condition, self, other)`` leaf by leaf."""
        from rlbricks.tensordict._functional import where

        return where(condition, self, other)

    def all(self: TensorDict, dim: builtins.int | None = None) -> Any:
        """True when every element of every leaf is true; with ``dim``, a reduced TensorDict."""
        if dim is None:
            return all(bool(v.all()) for _, v in _td.iter_leaves(self))
        return _shape.reduce_dim(self, dim, torch.all)

    def any(self: TensorDict, dim: builtins.int | None = None) -> Any:
        """True when some element of some leaf is true; with ``dim``, a reduced TensorDict."""
        if dim is None:
            return any(bool(v.any()) for _, v in _td.iter_leaves(self))
        return _shape.reduce_dim(self, dim, torch.any)

    # ------------------------------------------------------------------ #
    # reductions
    # ------------------------------------------------------------------ #
    def sum(self: TensorDict, dim: _Dims = None, keepdim: builtins.bool = False, *,
            reduce: builtins.bool = False) -> Any:  # fmt: skip
        """The sum of every leaf: over all its elements (``dim=None``) or over batch dims.

        Args:
            dim: None (every element of each leaf: the result has batch size
                ``[]``), a batch dim or a tuple of batch dims.
            keepdim: keep the reduced batch dims with size one.
            reduce: one tensor, the sum of every element of every leaf
                (only with ``dim=None``).

        Raises:
            TensorDictIndexError: a dim outside the batch dims.
            TensorDictValueError: ``reduce=True`` with a ``dim``, or without leaves.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.ones(2, 3), "n": {"b": torch.ones(2, 3, 4)}}, [2, 3])
            >>> td.sum(dim=1)["n", "b"].shape, td.sum(dim=1).batch_size
            (torch.Size([2, 4]), torch.Size([2]))
            >>> td.sum()["a"], td.sum(reduce=True)
            (tensor(6.), tensor(30.))
        """
        return _reduction(self, "sum", torch.sum, dim, keepdim, reduce)

    def mean(self: TensorDict, dim: _Dims = None, keepdim: builtins.bool = False, *,
             reduce: builtins.bool = False) -> Any:  # fmt: skip
        """The mean of every leaf, over all its elements or over batch dims (see :meth:`sum`).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.arange(6.0).reshape(2, 3)}, [2, 3])
            >>> td.mean(dim=0)["a"], td.mean(dim=(0, 1), keepdim=True).batch_size
            (tensor([1.5000, 2.5000, 3.5000]), torch.Size([1, 1]))
        """
        return _reduction(self, "mean", torch.mean, dim, keepdim, reduce)

    def nansum(self: TensorDict, dim: _Dims = None, keepdim: builtins.bool = False, *,
               reduce: builtins.bool = False) -> Any:  # fmt: skip
        """The sum of every leaf with NaNs counted as zero (see :meth:`sum`).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> TensorDict({"a": torch.tensor([1.0, float("nan")])}, [2]).nansum()["a"]
            tensor(1.)
        """
        return _reduction(self, "nansum", torch.nansum, dim, keepdim, reduce)

    def nanmean(self: TensorDict, dim: _Dims = None, keepdim: builtins.bool = False, *,
                reduce: builtins.bool = False) -> Any:  # fmt: skip
        """The mean of every leaf, NaNs left out (see :meth:`sum`).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> TensorDict({"a": torch.tensor([1.0, float("nan"), 3.0])}, [3]).nanmean()["a"]
            tensor(2.)
        """
        return _reduction(self, "nanmean", torch.nanmean, dim, keepdim, reduce)

    def std(self: TensorDict, dim: _Dims = None, keepdim: builtins.bool = False, *,
            correction: builtins.int = 1, reduce: builtins.bool = False) -> Any:  # fmt: skip
        """The standard deviation of every leaf (``correction=1``: Bessel's; see :meth:`sum`).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.tensor([[1.0, 3.0], [5.0, 7.0]])}, [2, 2])
            >>> td.std(dim=1)["a"], td.std(correction=0, reduce=True)
            (tensor([1.4142, 1.4142]), tensor(2.2361))
        """

        def fn(x: Tensor, **kw: Any) -> Tensor:
            return torch.std(x, correction=correction, **kw)

        return _reduction(self, "std", fn, dim, keepdim, reduce)

    def var(self: TensorDict, dim: _Dims = None, keepdim: builtins.bool = False, *,
            correction: builtins.int = 1, reduce: builtins.bool = False) -> Any:  # fmt: skip
        """The variance of every leaf (``correction=1``: Bessel's; see :meth:`sum`).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> TensorDict({"a": torch.tensor([1.0, 3.0])}, [2]).var()["a"]
            tensor(2.)
        """

        def fn(x: Tensor, **kw: Any) -> Tensor:
            return torch.var(x, correction=correction, **kw)

        return _reduction(self, "var", fn, dim, keepdim, reduce)

    def prod(self: TensorDict, dim: _Dims = None, keepdim: builtins.bool = False, *,
             reduce: builtins.bool = False) -> Any:  # fmt: skip
        """The product of every leaf, over all its elements or over batch dims (see :meth:`sum`).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}, [2, 2])
            >>> td.prod(dim=(0, 1))["a"], td.prod(dim=0)["a"]
            (tensor(24.), tensor([3., 8.]))
        """
        return _reduction(self, "prod", _prod, dim, keepdim, reduce)

    def setdefault(self: TensorDict, key: NestedKey, default: Any) -> Any:
        """The value at ``key``; when absent, ``default`` is set there first (as ``dict.setdefault``).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.zeros(2)}, [2])
            >>> td.setdefault("b", torch.ones(2)), td.setdefault("b", torch.zeros(2))
            (tensor([1., 1.]), tensor([1., 1.]))
        """
        if key not in self.keys(include_nested=True):
            self.set(key, default)
        return self.get(key)

    def to_tensordict(self: TensorDict) -> TensorDict:
        """A new ``TensorDict`` with copies of every leaf (TorchRL's name for a deep copy).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.zeros(2)}, [2])
            >>> copy = td.to_tensordict()
            >>> copy["a"] += 1
            >>> td["a"]
            tensor([0., 0.])
        """
        return self.clone()

    def _compare(self: TensorDict, other: Any, op: Callable[[Tensor, Any], Tensor]) -> TensorDict:
        if isinstance(other, _td.TensorDict):
            if set(other._tensordict) != set(self._tensordict):
                raise TensorDictKeyError(
                    f"cannot compare TensorDicts with different keys: "
                    f"{sorted(self._tensordict)} vs {sorted(other._tensordict)}"
                )
            return self.apply(op, other)
        if isinstance(other, Mapping):
            return self._compare(_td.TensorDict(other, self._batch_size), op)
        if not isinstance(other, (Tensor, builtins.int, builtins.float, builtins.bool)):
            return NotImplemented
        return self.apply(lambda x: op(x, other))

    def __eq__(self: TensorDict, other: object) -> TensorDict:  # type: ignore[override]
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self: TensorDict, other: object) -> TensorDict:  # type: ignore[override]
        return self._compare(other, lambda a, b: a != b)


def apply_leaves(
    td: TensorDict,
    fn: Callable[..., Tensor | None],
    others: Sequence[TensorDict],
    batch_size: torch.Size,
    device: torch.device | None,
) -> TensorDict:
    if not others:
        return _apply_single(td, fn, batch_size, device)
    source: dict[str, Value] = {}
    for key, value in td._tensordict.items():
        try:
            other_values = [o._tensordict[key] for o in others]
        except KeyError:
            raise TensorDictKeyError(
                f"apply: key {key!r} is missing from one of the other TensorDicts"
            ) from None
        if isinstance(value, _td.TensorDict):
            nested_bs = batch_size + value._batch_size[len(td._batch_size) :]
            source[key] = apply_leaves(value, fn, other_values, nested_bs, device)  # type: ignore[arg-type]
        else:
            res = fn(value, *other_values)
            if res is not None:
                source[key] = res
    return _td.TensorDict._new_unsafe(source, batch_size, device)


def _apply_single(
    td: TensorDict,
    fn: Callable[..., Tensor | None],
    batch_size: torch.Size,
    device: torch.device | None,
) -> TensorDict:
    source: dict[str, Value] = {}
    for key, value in td._tensordict.items():
        if isinstance(value, _td.TensorDict):
            extra = len(value._batch_size) - len(td._batch_size)
            nested_bs = batch_size + value._batch_size[-extra:] if extra else batch_size
            source[key] = _apply_single(value, fn, nested_bs, device)
        else:
            res = fn(value)
            if res is not None:
                source[key] = res
    return _td.TensorDict._new_unsafe(source, batch_size, device)


def expand_mask(mask: Tensor, leaf: Tensor) -> Tensor:
    extra = leaf.ndim - mask.ndim
    if extra <= 0:
        return mask
    return mask.reshape(mask.shape + (1,) * extra)


def _prod(x: Tensor, dim: tuple[int, ...] | None = None, keepdim: bool = False) -> Tensor:
    """``torch.prod`` over several dims (torch's takes one)."""
    if dim is None:
        return torch.prod(x)
    for d in sorted(dim, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdim)
    return x


def _reduction(
    td: TensorDict,
    name: str,
    fn: Callable[..., Tensor],
    dim: _Dims,
    keepdim: bool,
    reduce: bool,
) -> Any:
    """Reduce every leaf with ``fn``: all elements, batch dims, or all leaves into one tensor."""
    if reduce:
        if dim is not None:
            raise TensorDictValueError(
                f"{name}(reduce=True) reduces every element of every leaf into one tensor; "
                f"leave dim=None (got dim={dim!r}) or drop reduce=True"
            )
        leaves = [value.reshape(-1) for _, value in _td.iter_leaves(td)]
        if not leaves:
            raise TensorDictValueError(f"{name}(reduce=True): the TensorDict has no leaf to reduce")
        return fn(torch.cat(leaves))
    if dim is None:
        return td.apply(fn, batch_size=torch.Size([]))
    nd = td.batch_dims
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    picked = sorted({_shape._dim(d, nd, name) for d in dims})
    if len(picked) != len(dims):
        raise TensorDictValueError(f"{name}: dim {dim!r} names a batch dim twice")
    bs = td.batch_size
    if keepdim:
        new_bs = torch.Size(1 if i in picked else size for i, size in enumerate(bs))
    else:
        new_bs = torch.Size(size for i, size in enumerate(bs) if i not in picked)
    return td.apply(lambda x: fn(x, dim=tuple(picked), keepdim=keepdim), batch_size=new_bs)
