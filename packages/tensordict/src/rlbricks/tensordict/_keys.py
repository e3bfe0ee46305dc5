"""Nested keys: normalisation and the key views returned by ``TensorDict.keys``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any
from typing import Union

from rlbricks.tensordict import _td
from rlbricks.tensordict._errors import TensorDictTypeError

if TYPE_CHECKING:
    from rlbricks.tensordict._td import TensorDict

__all__ = ["NestedKey", "KeysView", "unravel_key"]

NestedKey = Union[str, tuple[str, ...]]  # noqa: UP007 (runtime alias, py3.10 safe)
"""A key of a TensorDict: a string, or a tuple of strings for a nested entry."""


def unravel_key(key: Any) -> NestedKey:
    """Return ``key`` in canonical form: a ``str``, or a flat tuple of at least two strings.

    Nested tuples are flattened and one-element tuples collapse to their string.

    Example:
        >>> unravel_key(("next", ("agent", "reward")))
        ('next', 'agent', 'reward')
        >>> unravel_key(("obs",))
        'obs'
    """
    if key.__class__ is str:
        return key
    if not isinstance(key, tuple):
        raise TensorDictTypeError(
            f"a key must be a str or a tuple of str, got {type(key).__name__}: {key!r}"
        )
    flat: list[str] = []
    for part in key:
        if part.__class__ is str:
            flat.append(part)
        elif isinstance(part, tuple):
            sub = unravel_key(part)
            flat.extend((sub,) if isinstance(sub, str) else sub)
        else:
            raise TensorDictTypeError(
                f"a nested key holds only strings, got {type(part).__name__} {part!r} in {key!r}"
            )
    if not flat:
        raise TensorDictTypeError("an empty tuple is not a key")
    return flat[0] if len(flat) == 1 else tuple(flat)


def iter_keys(
    td: TensorDict, include_nested: bool, leaves_only: bool, prefix: tuple[str, ...] = ()
) -> Iterator[NestedKey]:
    for key, value in td._tensordict.items():
        is_td = isinstance(value, _td.TensorDict)
        full: NestedKey = prefix + (key,) if prefix else key
        if not (leaves_only and is_td):
            yield full
        if include_nested and isinstance(value, _td.TensorDict):
            yield from iter_keys(value, True, leaves_only, prefix + (key,))


class KeysView:
    """A live, iterable view over the keys of a TensorDict.

    ``in`` accepts nested keys; iteration yields strings for the top level and
    tuples for nested entries (when ``include_nested=True``).

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict({"a": torch.zeros(()), "next": {"b": torch.zeros(())}})
        >>> list(td.keys(include_nested=True, leaves_only=True))
        ['a', ('next', 'b')]
        >>> ("next", "b") in td.keys(include_nested=True)
        True
    """

    __slots__ = ("_include_nested", "_leaves_only", "_td")

    def __init__(self, td: TensorDict, include_nested: bool = False, leaves_only: bool = False):
        self._td = td
        self._include_nested = include_nested
        self._leaves_only = leaves_only

    def __iter__(self) -> Iterator[NestedKey]:
        if not self._include_nested and not self._leaves_only:
            return iter(self._td._tensordict)
        return iter_keys(self._td, self._include_nested, self._leaves_only)

    def __len__(self) -> int:
        if not self._include_nested and not self._leaves_only:
            return len(self._td._tensordict)
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if key.__class__ is str:
            value = self._td._tensordict.get(key)
        else:
            try:
                key = unravel_key(key)
            except TypeError:
                return False
            if isinstance(key, str):
                return key in self
            if not self._include_nested:
                return False
            node: Any = self._td
            for part in key:
                if not isinstance(node, _td.TensorDict):
                    return False
                node = node._tensordict.get(part)
                if node is None:
                    return False
            value = node
        if value is None:
            return False
        return not (self._leaves_only and isinstance(value, _td.TensorDict))

    def __eq__(self, other: object) -> bool:
        try:
            return set(self) == set(other)  # type: ignore[call-overload]
        except TypeError:
            return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KeysView({list(self)})"
