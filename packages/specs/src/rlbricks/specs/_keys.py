"""Nested keys of a Composite: a ``str``, or a tuple of ``str`` for nested entries."""

from __future__ import annotations

from typing import Any

from rlbricks.specs._errors import SpecTypeError

__all__ = ["NestedKey", "key_of", "key_path"]

NestedKey = str | tuple[str, ...]


def key_path(key: Any) -> tuple[str, ...]:
    """A key as a flat, non-empty tuple of strings.

    Raises:
        SpecTypeError: ``key`` is neither a str nor a non-empty tuple of str.

    Example:
        >>> key_path("obs"), key_path(("next", ("agent", "reward")))
        (('obs',), ('next', 'agent', 'reward'))
    """
    if key.__class__ is str:
        return (key,)
    if isinstance(key, tuple) and key:
        flat: list[str] = []
        for part in key:
            if isinstance(part, str):
                flat.append(part)
            elif isinstance(part, tuple):
                flat.extend(key_path(part))
            else:
                break
        else:
            return tuple(flat)
    raise SpecTypeError(f"a Composite key is a str or a non-empty tuple of str, got {key!r}")


def key_of(path: tuple[str, ...]) -> NestedKey:
    """The user-facing key of a path: a ``str`` for one part, else the tuple."""
    return path[0] if len(path) == 1 else path
