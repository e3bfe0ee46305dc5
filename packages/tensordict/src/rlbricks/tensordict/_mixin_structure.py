# mypy: disable-error-code="misc"
"""Structure operations of TensorDict: update, select, exclude, key renaming, conversions.

``StructureMixin`` is one of the bases of ``TensorDict``: methods that change
which keys a TensorDict holds, convert it to and from plain dicts and state
dicts, and move it to memory-mapped storage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import torch

from rlbricks.tensordict import _td
from rlbricks.tensordict._errors import TensorDictKeyError
from rlbricks.tensordict._keys import NestedKey
from rlbricks.tensordict._keys import unravel_key
from rlbricks.tensordict._sentinel import NO_DEFAULT

if TYPE_CHECKING:
    from rlbricks.tensordict._td import DeviceLike
    from rlbricks.tensordict._td import TensorDict
    from rlbricks.tensordict._td import Value

__all__ = ["StructureMixin"]


class StructureMixin:
    """Key-structure operations of ``TensorDict`` (see the class for examples)."""

    __slots__ = ()

    def update(
        self: TensorDict,
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
            >>> list(td.keys(include_nested=True, leaves_only=True))
            ['a', ('next', 'b'), ('next', 'c')]
        """
        allowed = None
        if keys_to_update is not None:
            allowed = {unravel_key(k) for k in keys_to_update}
        items = other._tensordict.items() if isinstance(other, _td.TensorDict) else other.items()
        for key, value in items:
            if allowed is not None and key not in allowed:
                prefixes = {k[0] for k in allowed if isinstance(k, tuple)}
                if key not in prefixes:
                    continue
                sub = [k[1:] for k in allowed if isinstance(k, tuple) and k[0] == key]
            else:
                sub = None
            target = self._tensordict.get(key) if key.__class__ is str else None
            if isinstance(target, _td.TensorDict) and isinstance(value, (Mapping, _td.TensorDict)):
                target.update(value, inplace=inplace, keys_to_update=sub)
            else:
                self.set(key, value, inplace=inplace)
        return self

    def update_(self: TensorDict, other: Mapping[Any, Any] | TensorDict) -> TensorDict:
        """``update`` copying into the existing tensors (keys must exist)."""
        items = other._tensordict.items() if isinstance(other, _td.TensorDict) else other.items()
        for key, value in items:
            target = self.get(key)
            if isinstance(target, _td.TensorDict):
                target.update_(value)  # type: ignore[arg-type]
            else:
                _td._copy_into(target, value)
        return self

    def select(
        self: TensorDict, *keys: NestedKey, strict: bool = True, inplace: bool = False
    ) -> TensorDict:
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
            value = self._lookup(key)
            if value is NO_DEFAULT:
                if strict:
                    raise self._missing(key)
                continue
            if isinstance(value, _td.TensorDict):
                value = value.copy()  # a fresh structure: edits of the result stay there
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

    def exclude(self: TensorDict, *keys: NestedKey, inplace: bool = False) -> TensorDict:
        """A TensorDict without ``keys`` (missing keys are ignored).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"a": torch.zeros(()), "n": {"b": torch.zeros(()), "c": torch.zeros(())}})
            >>> list(td.exclude("a", ("n", "b")).keys(include_nested=True))
            ['n', ('n', 'c')]
        """
        if inplace:
            for key in keys:
                key = unravel_key(key)
                if isinstance(key, str):
                    self._tensordict.pop(key, None)
                    continue
                parent = self._get_nested(key[:-1])
                if isinstance(parent, _td.TensorDict):
                    parent._tensordict.pop(key[-1], None)
            return self
        return _exclude(self, keys)

    def rename_key_(
        self: TensorDict, old_key: NestedKey, new_key: NestedKey, safe: bool = False
    ) -> TensorDict:
        """Move the value at ``old_key`` to ``new_key``; with ``safe`` refuse to overwrite."""
        if safe and new_key in self.keys(include_nested=True):
            raise TensorDictKeyError(
                f"rename_key_ with safe=True: key {new_key!r} already exists; pass safe=False to "
                "overwrite it"
            )
        value = self.pop(old_key)
        self.set(new_key, value)
        return self

    def flatten_keys(self: TensorDict, separator: str = ".", inplace: bool = False) -> TensorDict:
        """Nested keys become top-level keys joined by ``separator``.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> td = TensorDict({"next": {"reward": torch.zeros(())}})
            >>> list(td.flatten_keys().keys())
            ['next.reward']
        """
        source: dict[str, Value] = {}
        for key, value in _td.iter_leaves(self):
            flat = key if isinstance(key, str) else separator.join(key)
            if flat in source:
                raise TensorDictKeyError(
                    f"flatten_keys: two keys flatten to {flat!r}; pick a separator that no key "
                    "holds, e.g. flatten_keys('/')"
                )
            source[flat] = value
        if inplace:
            self._tensordict = source
            return self
        return self._new_like(source)

    def unflatten_keys(self: TensorDict, separator: str = ".", inplace: bool = False) -> TensorDict:
        """Inverse of ``flatten_keys``: keys holding ``separator`` become nested keys."""
        out = self._new_like({})
        for key, value in self._tensordict.items():
            if isinstance(value, _td.TensorDict):
                value = value.unflatten_keys(separator)
            out.set(tuple(key.split(separator)) if separator in key else key, value)
        if inplace:
            self._tensordict = out._tensordict
            return self
        return out

    def to_dict(self: TensorDict) -> dict[str, Any]:
        """A nested ``dict`` of tensors."""
        return {
            k: v.to_dict() if isinstance(v, _td.TensorDict) else v
            for k, v in self._tensordict.items()
        }

    @classmethod
    def from_dict(
        cls: type[TensorDict],
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

    def auto_batch_size_(self: TensorDict) -> TensorDict:
        """Set ``batch_size`` to the longest leading shape shared by every leaf (and nested td)."""
        common: list[int] | None = None
        for _, leaf in _td.iter_leaves(self):
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

    def state_dict(self: TensorDict) -> dict[str, Any]:
        """A nested dict of tensors and plain values that ``torch.save`` stores and
        ``torch.load(weights_only=True)`` reads back; see ``load_state_dict``."""
        out: dict[str, Any] = {
            k: v.state_dict() if isinstance(v, _td.TensorDict) else v
            for k, v in self._tensordict.items()
        }
        out["__batch_size"] = list(self._batch_size)
        out["__device"] = None if self._device is None else str(self._device)
        return out

    def load_state_dict(
        self: TensorDict, state_dict: Mapping[str, Any], strict: bool = True
    ) -> TensorDict:
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
                    f"unexpected {sorted(map(str, theirs - mine))}; pass strict=False to replace the "
                    "keys anyway"
                )
        self._tensordict = restored._tensordict
        self._batch_size = restored._batch_size
        self._device = restored._device
        return self

    def memmap_(
        self: TensorDict,
        prefix: str | os.PathLike[str] | None = None,
        *,
        copy_existing: bool = False,
    ) -> TensorDict:
        """Move every leaf into a memory-mapped file under ``prefix`` (in place); return ``self``.

        Without ``prefix`` the leaves go to anonymous shared memory.  The folder
        holds raw tensor files plus JSON metadata; ``TensorDict.load_memmap``
        reopens it, in this or another process.
        """
        from rlbricks.tensordict._memmap import memmap_td

        return memmap_td(self, prefix, copy_existing=copy_existing, inplace=True)

    def memmap(
        self: TensorDict,
        prefix: str | os.PathLike[str] | None = None,
        *,
        copy_existing: bool = False,
    ) -> TensorDict:
        """A memory-mapped copy of this TensorDict stored under ``prefix``."""
        from rlbricks.tensordict._memmap import memmap_td

        return memmap_td(self, prefix, copy_existing=copy_existing)

    def memmap_like(
        self: TensorDict, prefix: str | os.PathLike[str] | None = None, *, existsok: bool = True
    ) -> TensorDict:
        """A zero-filled memory-mapped TensorDict with the same structure, shapes and dtypes."""
        from rlbricks.tensordict._memmap import memmap_like

        return memmap_like(self, prefix, existsok=existsok)

    @classmethod
    def load_memmap(cls: type[TensorDict], prefix: str | os.PathLike[str]) -> TensorDict:
        """Reopen a TensorDict saved by ``memmap_``/``memmap`` (no copy, no pickle)."""
        from rlbricks.tensordict._memmap import load_memmap

        return load_memmap(prefix)

    def is_memmap(self: TensorDict) -> bool:
        """True when every leaf is a ``MemoryMappedTensor``."""
        from rlbricks.tensordict._memmap import is_memmap

        return is_memmap(self)


def iter_keys_values_nested_tds(td: TensorDict) -> Iterator[tuple[str, TensorDict]]:
    """Every nested TensorDict of ``td`` (depth first), with its last key."""
    for key, value in td._tensordict.items():
        if isinstance(value, _td.TensorDict):
            yield key, value
            yield from iter_keys_values_nested_tds(value)


def _exclude(td: TensorDict, keys: Sequence[Any]) -> TensorDict:
    top: set[str] = set()
    nested: dict[str, list[Any]] = {}
    for key in keys:
        if key.__class__ is str:
            top.add(key)
            continue
        if not (key.__class__ is tuple and len(key) == 2 and key[1].__class__ is str):
            key = unravel_key(key)
            if key.__class__ is str:
                top.add(key)
                continue
        nested.setdefault(key[0], []).append(key[1] if len(key) == 2 else key[1:])
    source: dict[str, Value] = {}
    for key, value in td._tensordict.items():
        if key in top:
            continue
        if isinstance(value, _td.TensorDict):
            sub = nested.get(key)
            value = value.copy() if sub is None else _exclude(value, sub)
        source[key] = value
    return _td.TensorDict._new_unsafe(source, td._batch_size, td._device)


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
    return _td.TensorDict(source, bs, device)
