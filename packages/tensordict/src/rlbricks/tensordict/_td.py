"""The TensorDict class: a dict of tensors sharing leading batch dimensions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Union, cast

import torch
from torch import Tensor

from rlbricks.tensordict import _index, _shape
from rlbricks.tensordict._errors import BatchSizeError, TensorDictKeyError
from rlbricks.tensordict._keys import KeysView, NestedKey, iter_keys, unravel_key

__all__ = ["TensorDict"]

Value = Union[Tensor, "TensorDict"]
DeviceLike = Union[torch.device, str, int, None]
_NO_DEFAULT: Any = object()


def _as_size(batch_size: Any) -> torch.Size:
    if batch_size.__class__ is torch.Size:
        return cast(torch.Size, batch_size)
    if batch_size is None:
        return torch.Size(())
    if isinstance(batch_size, int):
        return torch.Size((batch_size,))
    try:
        return torch.Size(batch_size)
    except TypeError:
        raise TypeError(
            f"batch_size must be a sequence of ints (e.g. [4] or torch.Size([4, 2])), "
            f"got {batch_size!r}"
        ) from None


def _as_device(device: DeviceLike) -> torch.device | None:
    if device is None or device.__class__ is torch.device:
        return device  # type: ignore[return-value]
    return torch.device(device)  # type: ignore[arg-type]


class TensorDict:
    """A dictionary of tensors (or nested TensorDicts) sharing leading batch dimensions.

    Every value's leading dims equal ``batch_size``; the dims after them (the
    *feature* dims) are free and may differ between keys.  Indexing, shape ops,
    stacking and device moves act on the batch dims of every value at once.

    Args:
        source: mapping from ``str`` (or nested tuple) keys to tensors, nested
            dicts or TensorDicts; numbers, lists and numpy arrays are converted
            with ``torch.as_tensor``.
        batch_size: the shared leading shape, ``()`` by default.
        device: if given, every value is moved to this device when set.

    Raises:
        BatchSizeError: a value's leading dims disagree with ``batch_size``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict(
        ...     {"observation": torch.zeros(4, 3), "next": {"reward": torch.ones(4, 1)}},
        ...     batch_size=[4],
        ... )
        >>> td["next", "reward"].shape
        torch.Size([4, 1])
        >>> td[1:3].batch_size
        torch.Size([2])
    """

    __slots__ = ("_tensordict", "_batch_size", "_device", "__weakref__")

    _tensordict: dict[str, Value]
    _batch_size: torch.Size
    _device: torch.device | None

    def __init__(
        self,
        source: Mapping[Any, Any] | TensorDict | None = None,
        batch_size: Sequence[int] | torch.Size | int | None = None,
        device: DeviceLike = None,
    ) -> None:
        self._batch_size = _as_size(batch_size)
        self._device = _as_device(device)
        self._tensordict = {}
        if source is None:
            return
        items = source._tensordict.items() if isinstance(source, TensorDict) else source.items()
        for key, value in items:
            if key.__class__ is str:
                self._tensordict[key] = self._check_value(key, value)
            else:
                self.set(key, value)

    @classmethod
    def _new_unsafe(
        cls, source: dict[str, Value], batch_size: torch.Size, device: torch.device | None = None
    ) -> TensorDict:
        """Build from an already validated one-level dict, without any check."""
        td = object.__new__(cls)
        td._tensordict = source
        td._batch_size = batch_size
        td._device = device
        return td

    # ------------------------------------------------------------------ #
    # value checks
    # ------------------------------------------------------------------ #
    def _check_value(self, key: str, value: Any) -> Value:
        if isinstance(value, Tensor):
            device = self._device
            if device is not None and value.device != device:
                value = value.to(device)
            nd = len(self._batch_size)
            if value.shape[:nd] != self._batch_size:
                raise self._shape_error(key, tuple(value.shape))
            return value
        if isinstance(value, TensorDict):
            if value._batch_size[: len(self._batch_size)] != self._batch_size:
                raise self._shape_error(key, tuple(value._batch_size), what="batch_size")
            if self._device is not None and value._device != self._device:
                value = value.to(self._device)
            return value
        if isinstance(value, Mapping):
            return TensorDict(value, self._batch_size, self._device)
        try:
            tensor = torch.as_tensor(value, device=self._device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"key {key!r}: a TensorDict holds tensors, TensorDicts or dicts; "
                f"cannot convert {type(value).__name__} to a tensor ({err})"
            ) from None
        return self._check_value(key, tensor)

    def _shape_error(self, key: NestedKey, shape: tuple[int, ...], what: str = "shape") -> Exception:
        return BatchSizeError(
            f"key {key!r} has {what} {shape} but the TensorDict has batch_size "
            f"{tuple(self._batch_size)}: a value's leading dims must equal batch_size"
        )

    def _missing(self, key: NestedKey) -> TensorDictKeyError:
        available = list(iter_keys(self, True, False))
        return TensorDictKeyError(f"key {key!r} not found; available keys: {available}")

    # ------------------------------------------------------------------ #
    # shape and device properties
    # ------------------------------------------------------------------ #
    @property
    def batch_size(self) -> torch.Size:
        """The shared leading shape of every value; settable (values are checked)."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, new: Sequence[int] | torch.Size) -> None:
        self._set_batch_size(_as_size(new))

    def _set_batch_size(self, new: torch.Size) -> None:
        self._check_new_batch_size(new, ())
        self._assign_batch_size(new)

    def _check_new_batch_size(self, new: torch.Size, prefix: tuple[str, ...]) -> None:
        nd = len(new)
        for key, value in self._tensordict.items():
            if isinstance(value, TensorDict):
                if value._batch_size == self._batch_size:  # follows its parent
                    value._check_new_batch_size(new, prefix + (key,))
                    continue
                if value._batch_size[:nd] == new:
                    continue
                shape = value._batch_size
            elif value.shape[:nd] == new:
                continue
            else:
                shape = value.shape
            raise BatchSizeError(
                f"cannot set batch_size to {tuple(new)}: key {unravel_key(prefix + (key,))!r} "
                f"has shape {tuple(shape)}"
            )

    def _assign_batch_size(self, new: torch.Size) -> None:
        old = self._batch_size
        for value in self._tensordict.values():
            if isinstance(value, TensorDict) and value._batch_size == old:
                value._assign_batch_size(new)
        self._batch_size = new

    @property
    def shape(self) -> torch.Size:
        """Alias of ``batch_size``."""
        return self._batch_size

    @property
    def batch_dims(self) -> int:
        """Number of batch dimensions."""
        return len(self._batch_size)

    ndim = batch_dims

    def dim(self) -> int:
        """Number of batch dimensions."""
        return len(self._batch_size)

    def size(self, dim: int | None = None) -> torch.Size | int:
        """The batch size, or its ``dim``-th entry."""
        return self._batch_size if dim is None else self._batch_size[dim]

    def numel(self) -> int:
        """Number of elements in the batch (product of ``batch_size``)."""
        return self._batch_size.numel()

    @property
    def device(self) -> torch.device | None:
        """The device of every value, or ``None`` when values may live on different devices."""
        return self._device

    def __len__(self) -> int:
        return self._batch_size[0] if self._batch_size else 0

    # ------------------------------------------------------------------ #
    # get / set / delete
    # ------------------------------------------------------------------ #
    def get(self, key: NestedKey, default: Any = _NO_DEFAULT) -> Any:
        """The value at ``key`` (a str or a tuple for nested keys).

        Args:
            key: the key.
            default: returned when the key is missing; without it a
                ``TensorDictKeyError`` listing the available keys is raised.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"next": {"reward": torch.ones(1)}})
            >>> td.get(("next", "reward"))
            tensor([1.])
            >>> td.get("missing", None) is None
            True
        """
        if key.__class__ is str:
            value = self._tensordict.get(key, _NO_DEFAULT)  # type: ignore[arg-type]
        else:
            value = self._get_nested(key)
        if value is _NO_DEFAULT:
            if default is _NO_DEFAULT:
                raise self._missing(key)
            return default
        return value

    def _get_nested(self, key: Any) -> Any:
        if key.__class__ is not tuple:
            key = unravel_key(key)
            if key.__class__ is str:
                return self._tensordict.get(key, _NO_DEFAULT)
        node: Any = self
        for part in key:
            if not isinstance(node, TensorDict):
                if isinstance(part, tuple):
                    return self._get_nested(unravel_key(key))
                return _NO_DEFAULT
            if part.__class__ is not str:
                return self._get_nested(unravel_key(key))
            node = node._tensordict.get(part, _NO_DEFAULT)
            if node is _NO_DEFAULT:
                return _NO_DEFAULT
        return node

    def set(self, key: NestedKey, value: Any, *, inplace: bool = False) -> TensorDict:
        """Set ``key`` to ``value`` and return ``self``.

        Missing intermediate TensorDicts of a nested key are created with this
        TensorDict's batch size.

        Args:
            key: a str or a tuple of str.
            value: a tensor, TensorDict, dict, number or array.
            inplace: copy into the existing tensor (keeping its storage) when the
                key exists.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict(batch_size=[2])
            >>> td.set(("next", "done"), torch.zeros(2, 1, dtype=torch.bool))["next"].batch_size
            torch.Size([2])
        """
        if key.__class__ is str:
            if inplace:
                existing = self._tensordict.get(key)  # type: ignore[call-overload]
                if existing is not None:
                    _copy_into(existing, value)
                    return self
            self._tensordict[key] = self._check_value(key, value)  # type: ignore[index]
            return self
        key = unravel_key(key)
        if key.__class__ is str:
            return self.set(key, value, inplace=inplace)
        node = self
        for part in key[:-1]:
            child = node._tensordict.get(part)
            if child is None:
                child = TensorDict._new_unsafe({}, node._batch_size, node._device)
                node._tensordict[part] = child
            elif not isinstance(child, TensorDict):
                raise TypeError(
                    f"cannot set {key!r}: {part!r} holds a tensor, not a nested TensorDict"
                )
            node = child
        node.set(key[-1], value, inplace=inplace)
        return self

    def set_(self, key: NestedKey, value: Any) -> TensorDict:
        """Copy ``value`` into the existing tensor at ``key`` (in place), return ``self``."""
        existing = self.get(key)
        _copy_into(existing, value)
        return self

    def __getitem__(self, index: Any) -> Any:
        if index.__class__ is str:
            try:
                return self._tensordict[index]
            except KeyError:
                raise self._missing(index) from None
        if index.__class__ is tuple and index and index[0].__class__ is str:
            value = self._get_nested(index)
            if value is _NO_DEFAULT:
                raise self._missing(unravel_key(index))
            return value
        return _index.get_index(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if index.__class__ is str:
            self._tensordict[index] = self._check_value(index, value)
        elif index.__class__ is tuple and index and index[0].__class__ is str:
            self.set(index, value)
        else:
            _index.set_index(self, index, value)

    def __delitem__(self, key: NestedKey) -> None:
        self.del_(key)

    def del_(self, key: NestedKey) -> TensorDict:
        """Remove ``key`` (nested keys accepted) and return ``self``."""
        key = unravel_key(key)
        if isinstance(key, str):
            parent, last = self, key
        else:
            parent = self.get(key[:-1])
            last = key[-1]
            if not isinstance(parent, TensorDict):
                raise self._missing(key)
        if last not in parent._tensordict:
            raise self._missing(key)
        del parent._tensordict[last]
        return self

    def pop(self, key: NestedKey, default: Any = _NO_DEFAULT) -> Any:
        """Remove ``key`` and return its value (or ``default`` if missing)."""
        value = self.get(key, _NO_DEFAULT)
        if value is _NO_DEFAULT:
            if default is _NO_DEFAULT:
                raise self._missing(key)
            return default
        self.del_(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in KeysView(self, include_nested=True)

    # ------------------------------------------------------------------ #
    # views
    # ------------------------------------------------------------------ #
    def keys(self, include_nested: bool = False, leaves_only: bool = False) -> KeysView:
        """A view of the keys; nested keys come as tuples when ``include_nested``."""
        return KeysView(self, include_nested, leaves_only)

    def values(self, include_nested: bool = False, leaves_only: bool = False) -> Iterator[Any]:
        """The values, in the order of ``keys(include_nested, leaves_only)``."""
        if not include_nested and not leaves_only:
            return iter(self._tensordict.values())
        return (self.get(k) for k in iter_keys(self, include_nested, leaves_only))

    def items(
        self, include_nested: bool = False, leaves_only: bool = False
    ) -> Iterator[tuple[NestedKey, Any]]:
        """``(key, value)`` pairs, in the order of ``keys(include_nested, leaves_only)``."""
        if not include_nested and not leaves_only:
            return iter(self._tensordict.items())
        return ((k, self.get(k)) for k in iter_keys(self, include_nested, leaves_only))

    def is_empty(self) -> bool:
        """True when the TensorDict holds no tensor (nested empty TensorDicts count as empty)."""
        return not any(True for _ in iter_keys(self, True, True))

    def __iter__(self) -> Iterator[TensorDict]:
        if not self._batch_size:
            raise TypeError("iteration over a TensorDict with empty batch_size; use .keys()")
        return iter(self.unbind(0))

    def __bool__(self) -> bool:
        raise ValueError(
            "the truth value of a TensorDict is ambiguous: use td.is_empty(), td.all() or td.any()"
        )

    # ------------------------------------------------------------------ #
    # structure
    # ------------------------------------------------------------------ #
    def _new_like(self, source: dict[str, Value]) -> TensorDict:
        return TensorDict._new_unsafe(source, self._batch_size, self._device)

    def clone(self, recurse: bool = True) -> TensorDict:
        """A copy; ``recurse=False`` copies the structure but shares the tensors."""
        if not recurse:
            return self._new_like(
                {
                    k: v.clone(False) if isinstance(v, TensorDict) else v
                    for k, v in self._tensordict.items()
                }
            )
        return self._new_like({k: v.clone() for k, v in self._tensordict.items()})

    def copy(self) -> TensorDict:
        """Shallow copy: new structure, same tensors."""
        return self.clone(recurse=False)

    def empty(self, recurse: bool = False) -> TensorDict:
        """A TensorDict with the same batch size and device and no values.

        With ``recurse=True`` the nested structure is kept (empty nested TensorDicts).
        """
        if not recurse:
            return self._new_like({})
        return self._new_like(
            {k: v.empty(True) for k, v in self._tensordict.items() if isinstance(v, TensorDict)}
        )

    def update(
        self,
        other: Mapping[Any, Any] | TensorDict,
        *,
        inplace: bool = False,
        keys_to_update: Sequence[NestedKey] | None = None,
    ) -> TensorDict:
        """Write every entry of ``other`` into ``self`` (nested dicts merge), return ``self``.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.zeros(()), "next": {"b": torch.zeros(())}})
            >>> _ = td.update({"next": {"c": torch.ones(())}})
            >>> sorted(td.keys(include_nested=True, leaves_only=True))
            ['a', ('next', 'b'), ('next', 'c')]
        """
        allowed = None
        if keys_to_update is not None:
            allowed = {unravel_key(k) for k in keys_to_update}
        items = other._tensordict.items() if isinstance(other, TensorDict) else other.items()
        for key, value in items:
            if allowed is not None and key not in allowed:
                prefixes = {k[0] for k in allowed if isinstance(k, tuple)}
                if key not in prefixes:
                    continue
                sub = [k[1:] for k in allowed if isinstance(k, tuple) and k[0] == key]
            else:
                sub = None
            target = self._tensordict.get(key) if key.__class__ is str else None
            if isinstance(target, TensorDict) and isinstance(value, (Mapping, TensorDict)):
                target.update(value, inplace=inplace, keys_to_update=sub)
            else:
                self.set(key, value, inplace=inplace)
        return self

    def update_(self, other: Mapping[Any, Any] | TensorDict) -> TensorDict:
        """``update`` copying into the existing tensors (keys must exist)."""
        items = other._tensordict.items() if isinstance(other, TensorDict) else other.items()
        for key, value in items:
            target = self.get(key)
            if isinstance(target, TensorDict):
                target.update_(value)
            else:
                _copy_into(target, value)
        return self

    def select(self, *keys: NestedKey, strict: bool = True, inplace: bool = False) -> TensorDict:
        """A TensorDict holding only ``keys`` (nested keys keep their path).

        Args:
            *keys: keys to keep.
            strict: raise on a missing key; otherwise skip it.
            inplace: drop the other keys from ``self`` and return it.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.zeros(()), "b": torch.zeros(()), "n": {"c": torch.zeros(())}})
            >>> list(td.select("a", ("n", "c")).keys(include_nested=True))
            ['a', 'n', ('n', 'c')]
        """
        out = self._new_like({})
        for key in keys:
            value = self.get(key, _NO_DEFAULT)
            if value is _NO_DEFAULT:
                if strict:
                    raise self._missing(key)
                continue
            key = unravel_key(key)
            if isinstance(key, str):
                out._tensordict[key] = value
            else:
                node = out
                src = self
                for part in key[:-1]:
                    src = src._tensordict[part]  # type: ignore[assignment]
                    child = node._tensordict.get(part)
                    if child is None:
                        child = src._new_like({})
                        node._tensordict[part] = child
                    node = child  # type: ignore[assignment]
                node._tensordict[key[-1]] = value
        if inplace:
            self._tensordict = out._tensordict
            return self
        return out

    def exclude(self, *keys: NestedKey, inplace: bool = False) -> TensorDict:
        """A TensorDict without ``keys`` (missing keys are ignored)."""
        out = self if inplace else self.clone(recurse=False)
        for key in keys:
            key = unravel_key(key)
            if isinstance(key, str):
                out._tensordict.pop(key, None)
                continue
            parent = out._get_nested(key[:-1])
            if isinstance(parent, TensorDict):
                parent._tensordict.pop(key[-1], None)
        return out

    def rename_key_(self, old_key: NestedKey, new_key: NestedKey, safe: bool = False) -> TensorDict:
        """Move the value at ``old_key`` to ``new_key``; with ``safe`` refuse to overwrite."""
        if safe and new_key in self.keys(include_nested=True):
            raise KeyError(f"rename_key_ with safe=True: key {new_key!r} already exists")
        value = self.pop(old_key)
        self.set(new_key, value)
        return self

    def flatten_keys(self, separator: str = ".", inplace: bool = False) -> TensorDict:
        """Nested keys become top-level keys joined by ``separator``.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"next": {"reward": torch.zeros(())}})
            >>> list(td.flatten_keys().keys())
            ['next.reward']
        """
        source: dict[str, Value] = {}
        for key, value in iter_leaves(self):
            flat = key if isinstance(key, str) else separator.join(key)
            if flat in source:
                raise KeyError(f"flatten_keys: two keys flatten to {flat!r}")
            source[flat] = value
        if inplace:
            self._tensordict = source
            return self
        return self._new_like(source)

    def unflatten_keys(self, separator: str = ".", inplace: bool = False) -> TensorDict:
        """Inverse of ``flatten_keys``: keys holding ``separator`` become nested keys."""
        out = self._new_like({})
        for key, value in self._tensordict.items():
            if isinstance(value, TensorDict):
                value = value.unflatten_keys(separator)
            out.set(tuple(key.split(separator)) if separator in key else key, value)
        if inplace:
            self._tensordict = out._tensordict
            return self
        return out

    # ------------------------------------------------------------------ #
    # apply
    # ------------------------------------------------------------------ #
    def apply(
        self,
        fn: Callable[..., Tensor | None],
        *others: TensorDict,
        batch_size: Sequence[int] | torch.Size | None = None,
        device: DeviceLike = _NO_DEFAULT,
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
        bs = self._batch_size if batch_size is None else _as_size(batch_size)
        dev = self._device if device is _NO_DEFAULT else _as_device(device)
        return _apply(self, fn, others, bs, dev)

    def apply_(self, fn: Callable[..., Tensor], *others: TensorDict) -> TensorDict:
        """Replace every leaf by ``fn(leaf, *other_leaves)`` in this TensorDict; return it."""
        for key, value in self._tensordict.items():
            other_values = [o._tensordict[key] for o in others]
            if isinstance(value, TensorDict):
                value.apply_(fn, *other_values)  # type: ignore[arg-type]
            else:
                self._tensordict[key] = fn(value, *other_values)
        return self

    def named_apply(
        self, fn: Callable[[NestedKey, Tensor], Tensor | None], *, prefix: tuple[str, ...] = ()
    ) -> TensorDict:
        """Like ``apply`` but ``fn`` also receives the (nested) key of each leaf."""
        source: dict[str, Value] = {}
        for key, value in self._tensordict.items():
            full = prefix + (key,)
            if isinstance(value, TensorDict):
                source[key] = value.named_apply(fn, prefix=full)
            else:
                res = fn(full if len(full) > 1 else key, value)
                if res is not None:
                    source[key] = res
        return self._new_like(source)

    # ------------------------------------------------------------------ #
    # dtype / device
    # ------------------------------------------------------------------ #
    def to(self, *args: Any, **kwargs: Any) -> TensorDict:
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
        if args and isinstance(args[0], TensorDict):
            return self.to(args[0].device) if args[0].device is not None else self
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is None and dtype is None:
            return self
        out_device = self._device if device is None else device
        if dtype is None and out_device == self._device and device is not None:
            return self

        def move(x: Tensor) -> Tensor:
            return x.to(device=device, dtype=dtype, non_blocking=non_blocking)

        return _apply(self, move, (), self._batch_size, out_device)

    def cpu(self) -> TensorDict:
        """``to("cpu")``."""
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> TensorDict:
        """``to("cuda")`` (or ``cuda:<device>``)."""
        return self.to("cuda" if device is None else f"cuda:{device}")

    def float(self) -> TensorDict:
        """Cast every leaf to float32."""
        return self.apply(lambda x: x.float())

    def double(self) -> TensorDict:
        """Cast every leaf to float64."""
        return self.apply(lambda x: x.double())

    def half(self) -> TensorDict:
        """Cast every leaf to float16."""
        return self.apply(lambda x: x.half())

    def int(self) -> TensorDict:
        """Cast every leaf to int32."""
        return self.apply(lambda x: x.int())

    def long(self) -> TensorDict:
        """Cast every leaf to int64."""
        return self.apply(lambda x: x.long())

    def bool(self) -> TensorDict:
        """Cast every leaf to bool."""
        return self.apply(lambda x: x.bool())

    def detach(self) -> TensorDict:
        """A TensorDict of detached leaves (no autograd history)."""
        return self.apply(lambda x: x.detach())

    def detach_(self) -> TensorDict:
        """Detach every leaf in place."""
        return self.apply_(lambda x: x.detach_())

    def requires_grad_(self, requires_grad: bool = True) -> TensorDict:
        """Set ``requires_grad`` on every floating-point leaf."""
        for _, value in iter_leaves(self):
            if value.is_floating_point():
                value.requires_grad_(requires_grad)
        return self

    def contiguous(self) -> TensorDict:
        """A TensorDict of contiguous leaves."""
        return self.apply(lambda x: x.contiguous())

    def share_memory_(self) -> TensorDict:
        """Move every leaf's storage to shared memory (for worker processes); return ``self``."""
        for _, value in iter_leaves(self):
            value.share_memory_()
        return self

    def is_shared(self) -> bool:
        """True when every leaf is in shared memory (or on a CUDA device)."""
        leaves = [v for _, v in iter_leaves(self)]
        return bool(leaves) and all(v.is_shared() or v.is_cuda for v in leaves)

    # ------------------------------------------------------------------ #
    # in-place value ops
    # ------------------------------------------------------------------ #
    def zero_(self) -> TensorDict:
        """Zero every leaf in place; return ``self``."""
        for _, value in iter_leaves(self):
            value.zero_()
        return self

    def fill_(self, key: NestedKey, value: float | bool) -> TensorDict:
        """Fill the tensor (or every leaf of the nested TensorDict) at ``key`` with ``value``."""
        target = self.get(key)
        if isinstance(target, TensorDict):
            for _, leaf in iter_leaves(target):
                leaf.fill_(value)
        else:
            target.fill_(value)
        return self

    def masked_fill(self, mask: Tensor, value: float | bool) -> TensorDict:
        """Leaves with ``value`` where ``mask`` (shaped like the leading batch dims) is True."""
        return self.apply(lambda x: x.masked_fill(_expand_mask(mask, x), value))

    def masked_fill_(self, mask: Tensor, value: float | bool) -> TensorDict:
        """In-place ``masked_fill``."""
        for _, leaf in iter_leaves(self):
            leaf.masked_fill_(_expand_mask(mask, leaf), value)
        return self

    def where(self, condition: Tensor, other: TensorDict | Tensor | float) -> TensorDict:
        """``torch.where(condition, self, other)`` leaf by leaf."""
        from rlbricks.tensordict._functional import where

        return where(condition, self, other)

    def all(self, dim: int | None = None) -> Any:
        """True when every element of every leaf is true; with ``dim``, a reduced TensorDict."""
        if dim is None:
            return all(bool(v.all()) for _, v in iter_leaves(self))
        return _shape.reduce_dim(self, dim, torch.all)

    def any(self, dim: int | None = None) -> Any:
        """True when some element of some leaf is true; with ``dim``, a reduced TensorDict."""
        if dim is None:
            return any(bool(v.any()) for _, v in iter_leaves(self))
        return _shape.reduce_dim(self, dim, torch.any)

    def _compare(self, other: Any, op: Callable[[Tensor, Any], Tensor]) -> TensorDict:
        if isinstance(other, TensorDict):
            if set(other._tensordict) != set(self._tensordict):
                raise TensorDictKeyError(
                    f"cannot compare TensorDicts with different keys: "
                    f"{sorted(self._tensordict)} vs {sorted(other._tensordict)}"
                )
            return self.apply(op, other)
        if isinstance(other, Mapping):
            return self._compare(TensorDict(other, self._batch_size), op)
        return self.apply(lambda x: op(x, other))

    def __eq__(self, other: object) -> TensorDict:  # type: ignore[override]
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other: object) -> TensorDict:  # type: ignore[override]
        return self._compare(other, lambda a, b: a != b)

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ #
    # shape ops (implemented in _shape.py)
    # ------------------------------------------------------------------ #
    def reshape(self, *shape: Any) -> TensorDict:
        """Reshape the batch dims (``-1`` infers one dim); feature dims are kept."""
        return _shape.reshape(self, _shape.shape_arg(shape), view=False)

    def view(self, *shape: Any) -> TensorDict:
        """Like ``reshape`` but every leaf must be viewable (no copy)."""
        return _shape.reshape(self, _shape.shape_arg(shape), view=True)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> TensorDict:
        """Merge batch dims ``start_dim..end_dim`` into one."""
        return _shape.flatten(self, start_dim, end_dim)

    def unflatten(self, dim: int, sizes: Sequence[int]) -> TensorDict:
        """Split batch dim ``dim`` into ``sizes``."""
        return _shape.unflatten(self, dim, sizes)

    def unsqueeze(self, dim: int) -> TensorDict:
        """Insert a batch dim of size one at ``dim``."""
        return _shape.unsqueeze(self, dim)

    def squeeze(self, dim: int | None = None) -> TensorDict:
        """Remove batch dims of size one (all, or only ``dim``)."""
        return _shape.squeeze(self, dim)

    def permute(self, *dims: Any) -> TensorDict:
        """Permute the batch dims."""
        return _shape.permute(self, _shape.shape_arg(dims))

    def transpose(self, dim0: int, dim1: int) -> TensorDict:
        """Swap two batch dims."""
        return _shape.transpose(self, dim0, dim1)

    def expand(self, *shape: Any) -> TensorDict:
        """Expand (broadcast, without copy) to a new batch shape; ``-1`` keeps a dim."""
        return _shape.expand(self, _shape.shape_arg(shape))

    def split(self, split_size: int | Sequence[int], dim: int = 0) -> tuple[TensorDict, ...]:
        """Split along batch dim ``dim`` like ``torch.split``."""
        return _shape.split(self, split_size, dim)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[TensorDict, ...]:
        """Split into ``chunks`` pieces along batch dim ``dim`` like ``torch.chunk``."""
        return _shape.chunk(self, chunks, dim)

    def unbind(self, dim: int = 0) -> tuple[TensorDict, ...]:
        """The slices along batch dim ``dim``, like ``torch.unbind``."""
        return _shape.unbind(self, dim)

    # ------------------------------------------------------------------ #
    # conversion, persistence
    # ------------------------------------------------------------------ #
    def to_dict(self) -> dict[str, Any]:
        """A nested ``dict`` of tensors."""
        return {
            k: v.to_dict() if isinstance(v, TensorDict) else v for k, v in self._tensordict.items()
        }

    @classmethod
    def from_dict(
        cls,
        source: Mapping[Any, Any],
        batch_size: Sequence[int] | torch.Size | None = None,
        device: DeviceLike = None,
    ) -> TensorDict:
        """Build from a nested dict; ``batch_size=None`` infers the largest common leading shape.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> TensorDict.from_dict({"a": torch.zeros(3, 4), "b": {"c": torch.zeros(3, 4, 2)}}).batch_size
            torch.Size([3, 4])
        """
        if batch_size is not None:
            return cls(source, batch_size, device)
        td = cls(source, (), device)
        td.auto_batch_size_()
        return td

    def auto_batch_size_(self) -> TensorDict:
        """Set ``batch_size`` to the longest leading shape shared by every leaf (and nested td)."""
        common: list[int] | None = None
        for _, leaf in iter_leaves(self):
            shape = list(leaf.shape)
            if common is None:
                common = shape
            else:
                n = 0
                for a, b in zip(common, shape):
                    if a != b:
                        break
                    n += 1
                common = common[:n]
        new = torch.Size(common or ())
        for _, value in iter_keys_values_nested_tds(self):
            value._batch_size = new
        self._batch_size = new
        return self

    def state_dict(self) -> dict[str, Any]:
        """A nested dict of tensors and plain values that ``torch.save`` stores and
        ``torch.load(weights_only=True)`` reads back; see ``load_state_dict``."""
        out: dict[str, Any] = {
            k: v.state_dict() if isinstance(v, TensorDict) else v
            for k, v in self._tensordict.items()
        }
        out["__batch_size"] = list(self._batch_size)
        out["__device"] = None if self._device is None else str(self._device)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> TensorDict:
        """Restore from ``state_dict()``: batch size, device and every value; return ``self``.

        With ``strict=True`` the keys must match exactly.
        """
        restored = _from_state_dict(state_dict)
        if strict:
            mine = set(self.keys(include_nested=True, leaves_only=True))
            theirs = set(restored.keys(include_nested=True, leaves_only=True))
            if mine and mine != theirs:
                raise TensorDictKeyError(
                    f"load_state_dict(strict=True): missing {sorted(map(str, mine - theirs))}, "
                    f"unexpected {sorted(map(str, theirs - mine))}"
                )
        self._tensordict = restored._tensordict
        self._batch_size = restored._batch_size
        self._device = restored._device
        return self

    # memory mapping (implemented in _memmap.py)
    def memmap_(self, prefix: str | None = None, *, copy_existing: bool = False) -> TensorDict:
        """Move every leaf into a memory-mapped file under ``prefix`` (in place); return ``self``.

        Without ``prefix`` the leaves go to anonymous shared memory.  The folder
        holds raw tensor files plus JSON metadata; ``TensorDict.load_memmap``
        reopens it, in this or another process.
        """
        from rlbricks.tensordict._memmap import memmap_td

        return cast(TensorDict, memmap_td(self, prefix, copy_existing=copy_existing, inplace=True))

    def memmap(self, prefix: str | None = None, *, copy_existing: bool = False) -> TensorDict:
        """A memory-mapped copy of this TensorDict stored under ``prefix``."""
        from rlbricks.tensordict._memmap import memmap_td

        return cast(TensorDict, memmap_td(self, prefix, copy_existing=copy_existing))

    def memmap_like(self, prefix: str | None = None, *, existsok: bool = True) -> TensorDict:
        """A zero-filled memory-mapped TensorDict with the same structure, shapes and dtypes."""
        from rlbricks.tensordict._memmap import memmap_like

        return cast(TensorDict, memmap_like(self, prefix, existsok=existsok))

    @classmethod
    def load_memmap(cls, prefix: str) -> TensorDict:
        """Reopen a TensorDict saved by ``memmap_``/``memmap`` (no copy, no pickle)."""
        from rlbricks.tensordict._memmap import load_memmap

        return cast(TensorDict, load_memmap(prefix))

    def is_memmap(self) -> bool:
        """True when every leaf is a ``MemoryMappedTensor``."""
        from rlbricks.tensordict._memmap import is_memmap

        return is_memmap(self)

    def __repr__(self) -> str:
        from rlbricks.tensordict._repr import td_repr

        return td_repr(self)

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: tuple[type, ...],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        from rlbricks.tensordict._functional import TORCH_FUNCTIONS

        handler = TORCH_FUNCTIONS.get(func)
        if handler is None:
            return NotImplemented
        return handler(*args, **(kwargs or {}))


# ---------------------------------------------------------------------- #
# helpers shared by the modules of this package
# ---------------------------------------------------------------------- #
def iter_leaves(td: TensorDict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[NestedKey, Tensor]]:
    """Every ``(key, tensor)`` of ``td``, depth first, nested keys as tuples."""
    for key, value in td._tensordict.items():
        if isinstance(value, TensorDict):
            yield from iter_leaves(value, prefix + (key,))
        else:
            yield (prefix + (key,) if prefix else key), value


def iter_keys_values_nested_tds(td: TensorDict) -> Iterator[tuple[str, TensorDict]]:
    """Every nested TensorDict of ``td`` (depth first), with its last key."""
    for key, value in td._tensordict.items():
        if isinstance(value, TensorDict):
            yield key, value
            yield from iter_keys_values_nested_tds(value)


def _apply(
    td: TensorDict,
    fn: Callable[..., Tensor | None],
    others: Sequence[TensorDict],
    batch_size: torch.Size,
    device: torch.device | None,
) -> TensorDict:
    source: dict[str, Value] = {}
    for key, value in td._tensordict.items():
        try:
            other_values = [o._tensordict[key] for o in others]
        except KeyError:
            raise TensorDictKeyError(
                f"apply: key {key!r} is missing from one of the other TensorDicts"
            ) from None
        if isinstance(value, TensorDict):
            nested_bs = batch_size + value._batch_size[len(td._batch_size) :]
            source[key] = _apply(value, fn, other_values, nested_bs, device)  # type: ignore[arg-type]
        else:
            res = fn(value, *other_values)
            if res is not None:
                source[key] = res
    return TensorDict._new_unsafe(source, batch_size, device)


def _copy_into(dest: Any, value: Any) -> None:
    if isinstance(dest, TensorDict):
        dest.update_(value)
    elif isinstance(value, Tensor):
        dest.copy_(value)
    else:
        dest.copy_(torch.as_tensor(value, dtype=dest.dtype, device=dest.device))


def _expand_mask(mask: Tensor, leaf: Tensor) -> Tensor:
    extra = leaf.ndim - mask.ndim
    if extra <= 0:
        return mask
    return mask.reshape(mask.shape + (1,) * extra)


def _from_state_dict(state: Mapping[str, Any]) -> TensorDict:
    try:
        bs = torch.Size(state["__batch_size"])
        device = state["__device"]
    except KeyError:
        raise TensorDictKeyError(
            "not a TensorDict state_dict: '__batch_size'/'__device' entries are missing"
        ) from None
    source: dict[str, Value] = {}
    for key, value in state.items():
        if key in ("__batch_size", "__device"):
            continue
        source[key] = _from_state_dict(value) if isinstance(value, Mapping) else value
    return TensorDict(source, bs, device)
