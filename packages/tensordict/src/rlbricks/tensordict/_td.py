"""The TensorDict class: a dict of tensors sharing leading batch dimensions."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Union

import torch
from torch import Tensor

from rlbricks.tensordict import _index
from rlbricks.tensordict._errors import BatchSizeError
from rlbricks.tensordict._errors import TensorDictKeyError
from rlbricks.tensordict._errors import TensorDictTypeError
from rlbricks.tensordict._errors import TensorDictValueError
from rlbricks.tensordict._keys import KeysView
from rlbricks.tensordict._keys import NestedKey
from rlbricks.tensordict._keys import iter_keys
from rlbricks.tensordict._keys import unravel_key
from rlbricks.tensordict._mixin_structure import StructureMixin
from rlbricks.tensordict._mixin_values import ValueOpsMixin
from rlbricks.tensordict._sentinel import NO_DEFAULT
from rlbricks.tensordict._shape import ShapeMixin

__all__ = ["TensorDict"]

Value = Union[Tensor, "TensorDict"]
# torch functions that accept TensorDicts; filled by _functional at import
TORCH_FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {}
DeviceLike = torch.device | str | int | None
_NO_DEFAULT = NO_DEFAULT


def _as_size(batch_size: Any) -> torch.Size:
    if batch_size.__class__ is torch.Size:
        size: torch.Size = batch_size
    elif batch_size is None:
        return torch.Size(())
    elif isinstance(batch_size, int):
        size = torch.Size((batch_size,))
    else:
        try:
            size = torch.Size(batch_size)
        except TypeError:
            raise TensorDictTypeError(
                f"batch_size must be a sequence of ints (e.g. [4] or torch.Size([4, 2])), "
                f"got {batch_size!r}"
            ) from None
    if size and min(size) < 0:
        raise TensorDictValueError(f"batch_size {tuple(size)} has a negative dim")
    return size


def _as_device(device: DeviceLike) -> torch.device | None:
    if device is None or device.__class__ is torch.device:
        return device
    return torch.device(device)


class TensorDict(StructureMixin, ValueOpsMixin, ShapeMixin):
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

    __slots__ = ("__weakref__", "_batch_size", "_device", "_tensordict")

    _tensordict: dict[str, Value]
    _batch_size: torch.Size
    _device: torch.device | None

    def __init__(
        self,
        source: Mapping[Any, Any] | TensorDict | None = None,
        batch_size: Sequence[int] | torch.Size | int | None = None,
        device: DeviceLike = None,
    ) -> None:
        if batch_size.__class__ is torch.Size:
            bs = batch_size
        elif batch_size.__class__ is list and batch_size and min(batch_size) >= 0:
            bs = torch.Size(batch_size)
        else:
            bs = _as_size(batch_size)
        self._batch_size = bs
        self._device = None if device is None else _as_device(device)
        if source is None:
            self._tensordict = {}
        elif self._device is None and source.__class__ is dict:
            self._tensordict = _fast_source(self, source, bs, len(bs))
        else:
            self._tensordict = {}
            items = source._tensordict.items() if isinstance(source, TensorDict) else source.items()
            for key, value in items:
                if key.__class__ is str:
                    self._tensordict[key] = self._check_value(key, value)
                else:
                    self.set(key, value)

    @classmethod
    def from_trusted(
        cls, source: dict[str, Value], batch_size: torch.Size, device: torch.device | None = None
    ) -> TensorDict:
        """Build a TensorDict from already validated entries, without any check or copy.

        The fast constructor for code that builds TensorDicts in a loop (env
        steps, rollouts, storages) and already knows its values fit.  Nothing is
        checked, converted or copied: ``source`` itself becomes the TensorDict's
        :attr:`entries`.  The caller guarantees that

        * ``source`` is a plain ``dict`` with ``str`` keys only (no tuple keys,
          no nested plain dicts: a nested level is itself a ``TensorDict``);
        * every value is a ``torch.Tensor`` whose leading dims equal
          ``batch_size``, or a ``TensorDict`` whose ``batch_size`` starts with
          ``batch_size``;
        * ``batch_size`` is a ``torch.Size`` (not a list or int);
        * ``device`` is ``None`` or a ``torch.device`` (not a str) and, when
          given, every value (nested ones too) already lives on it;
        * ``source`` is handed over: later changes to the dict show in the
          TensorDict.

        A broken guarantee is not detected here; later operations may then fail
        or give wrong results.  Use ``TensorDict(source, batch_size, device)``
        for checked construction.

        Args:
            source: the one-level entries, adopted as they are.
            batch_size: the shared leading shape.
            device: the device of every value, or ``None``.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> nxt = TensorDict.from_trusted({"reward": torch.ones(4, 1)}, torch.Size([4]))
            >>> td = TensorDict.from_trusted(
            ...     {"observation": torch.zeros(4, 3), "next": nxt}, torch.Size([4])
            ... )
            >>> td["next", "reward"].shape, td.batch_size
            (torch.Size([4, 1]), torch.Size([4]))
        """
        td = object.__new__(cls)
        td._tensordict = source
        td._batch_size = batch_size
        td._device = device
        return td

    # the name used inside this package before ``from_trusted`` was public
    _new_unsafe = from_trusted

    @property
    def entries(self) -> dict[str, Value]:
        """The live one-level dict of this TensorDict's entries (not a copy).

        Keys are ``str``; values are tensors or nested TensorDicts.
        Reading it is free: no copy, no check, the fastest way to look at many
        entries or to test ``"key" in td.entries`` without nested-key handling.

        Writing into it (``td.entries["x"] = t``, ``del td.entries["x"]``)
        changes the TensorDict and skips every validation: the caller is
        responsible for what :meth:`from_trusted` requires of each value
        (leading dims equal to ``batch_size``, on ``device`` when it is set,
        nested levels as TensorDicts).  Use ``td["x"] = t`` or :meth:`set` for
        checked writes.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.zeros(2), "next": {"b": torch.ones(2)}}, [2])
            >>> sorted(td.entries), type(td.entries["next"]).__name__
            (['a', 'next'], 'TensorDict')
            >>> td.entries["c"] = torch.arange(2)  # unchecked write: shape [2] is the caller's job
            >>> td["c"]
            tensor([0, 1])
        """
        return self._tensordict

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
            try:
                return TensorDict(value, self._batch_size, self._device)
            except BatchSizeError as err:
                raise err.under(key, tuple(self._batch_size)) from None
        try:
            tensor = torch.as_tensor(value, device=self._device)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TensorDictTypeError(
                f"key {key!r}: a TensorDict holds tensors, TensorDicts or dicts; "
                f"cannot convert {type(value).__name__} to a tensor ({err})"
            ) from None
        return self._check_value(key, tensor)

    def _shape_error(
        self, key: NestedKey, shape: tuple[int, ...], what: str = "shape"
    ) -> Exception:
        return BatchSizeError.for_key(key, shape, tuple(self._batch_size), what)

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
            value = self._tensordict.get(key, _NO_DEFAULT)
        else:
            value = self._get_nested(key)
        if value is _NO_DEFAULT:
            if default is _NO_DEFAULT:
                raise self._missing(key)
            return default
        return value

    def _lookup(self, key: Any) -> Any:
        """The value at ``key``, or the ``NO_DEFAULT`` marker when it is missing."""
        if key.__class__ is str:
            return self._tensordict.get(key, _NO_DEFAULT)
        return self._get_nested(key)

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
                existing = self._tensordict.get(key)
                if existing is not None:
                    _copy_into(existing, value)
                    return self
            self._tensordict[key] = self._check_value(key, value)
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
                raise TensorDictTypeError(
                    f"cannot set {key!r}: {part!r} holds a tensor, not a nested TensorDict"
                )
            node = child
        try:
            node.set(key[-1], value, inplace=inplace)
        except BatchSizeError as err:
            raise err.under(key[:-1], tuple(self._batch_size)) from None
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
        if index.__class__ is tuple:
            node: Any = self
            try:
                for part in index:
                    node = node._tensordict[part]
                return node
            except (KeyError, TypeError, AttributeError):
                pass
            if index and index[0].__class__ is str:
                value = self._get_nested(index)
                if value is _NO_DEFAULT:
                    raise self._missing(unravel_key(index)) from None
                return value
        return _index.get_index(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if index.__class__ is str:
            bs = self._batch_size
            if self._device is None and isinstance(value, Tensor):
                if len(bs) == 1:
                    try:
                        ok = value.shape[0] == bs[0]
                    except IndexError:
                        ok = False
                else:
                    ok = value.shape[: len(bs)] == bs
                if ok:
                    self._tensordict[index] = value
                    return
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
            parent = self._lookup(key[:-1])
            last = key[-1]
            if not isinstance(parent, TensorDict):
                raise self._missing(key)
        if last not in parent._tensordict:
            raise self._missing(key)
        del parent._tensordict[last]
        return self

    def pop(self, key: NestedKey, default: Any = _NO_DEFAULT) -> Any:
        """Remove ``key`` and return its value (or ``default`` if missing)."""
        value = self._lookup(key)
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
            raise TensorDictTypeError(
                "iteration over a TensorDict with empty batch_size; use .keys()"
            )
        return iter(self.unbind(0))

    def __bool__(self) -> bool:
        raise TensorDictValueError(
            "the truth value of a TensorDict is ambiguous: use td.is_empty(), td.all() or td.any()"
        )

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

    __hash__ = None  # type: ignore[assignment]

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


def _fast_source(
    td: TensorDict, source: dict[Any, Any], bs: torch.Size, nd: int
) -> dict[str, Value]:
    """Validate a plain dict source for a device-less TensorDict (the common case)."""
    out: dict[str, Value] = {}
    b0 = bs[0] if nd == 1 else -1
    for key, value in source.items():
        if key.__class__ is str:
            if isinstance(value, Tensor):
                if nd == 1:  # the common case: compare one int instead of slicing a Size
                    try:
                        ok = value.shape[0] == b0
                    except IndexError:
                        ok = False
                else:
                    ok = value.shape[:nd] == bs
                if ok:
                    out[key] = value
                    continue
            if value.__class__ is dict:
                sub = TensorDict._new_unsafe(None, bs, None)  # type: ignore[arg-type]
                try:
                    sub._tensordict = _fast_source(sub, value, bs, nd)
                except BatchSizeError as err:
                    raise err.under(key, tuple(bs)) from None
                out[key] = sub
                continue
            out[key] = td._check_value(key, value)
        else:
            td._tensordict = out
            td.set(key, value)
    return out


def _copy_into(dest: Any, value: Any) -> None:
    if isinstance(dest, TensorDict):
        dest.update_(value)
    elif isinstance(value, Tensor):
        dest.copy_(value)
    else:
        dest.copy_(torch.as_tensor(value, dtype=dest.dtype, device=dest.device))
