"""The exception family of ``rlbricks.specs``."""

from __future__ import annotations

__all__ = ["SpecError", "SpecKeyError"]


class SpecError(ValueError):
    """A value, shape or argument does not match a spec.

    Raised by ``assert_is_in`` (naming the key, what the spec expects and what
    it got), by spec constructors given inconsistent arguments, and by
    ``encode``/``expand`` when a shape cannot fit the spec.  It is a
    ``ValueError``, so ``except ValueError`` also catches it.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Bounded, SpecError
        >>> spec = Bounded(low=-1.0, high=1.0, shape=(2,))
        >>> try:
        ...     spec.assert_is_in(torch.tensor([0.5, 3.0]))
        ... except SpecError as err:
        ...     print("out of range" in str(err))
        True
    """


class SpecKeyError(SpecError, KeyError):
    """A key is missing from a :class:`~rlbricks.specs.Composite` (or a value).

    Both a ``KeyError`` and a :class:`SpecError`; the message lists the keys
    that are available.

    Example:
        >>> from rlbricks.specs import Composite, Unbounded
        >>> spec = Composite(observation=Unbounded(shape=(3,)))
        >>> try:
        ...     spec["obs"]
        ... except KeyError as err:
        ...     print(err)
        key 'obs' not found in Composite; available keys: ['observation']
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""
