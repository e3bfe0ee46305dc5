"""The exception family of ``rlbricks.specs``: :class:`SpecError` and its subclasses."""

from __future__ import annotations

__all__ = ["SpecError", "SpecKeyError", "SpecTypeError", "SpecValueError"]


class SpecError(Exception):
    """The root of every exception that ``rlbricks.specs`` raises.

    It derives from ``Exception`` only: ``except SpecError`` catches every
    spec error, whichever built-in (``ValueError``, ``KeyError``,
    ``TypeError``) the raised subclass also is.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Bounded, SpecError
        >>> spec = Bounded(low=-1.0, high=1.0, shape=(2,))
        >>> try:
        ...     spec.assert_is_in(torch.tensor([0.5, 3.0]))
        ... except SpecError as err:
        ...     print(type(err).__name__, "out of range" in str(err))
        SpecValueError True
    """


class SpecValueError(SpecError, ValueError):
    """A value, shape or argument does not match a spec.

    Raised by ``assert_is_in`` (naming the key, what the spec expects and what
    it got), by spec constructors given inconsistent arguments, and by
    ``encode``/``expand``/``project`` when a value cannot fit the spec.  Both a
    :class:`SpecError` and a ``ValueError``.

    Example:
        >>> from rlbricks.specs import Categorical
        >>> try:
        ...     Categorical(0)
        ... except ValueError as err:
        ...     print(type(err).__name__, err)
        SpecValueError Categorical: n must be a positive int (the number of actions), got 0
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


class SpecTypeError(SpecError, TypeError):
    """An argument of a spec has the wrong type.

    Examples: a key that is not a str, a value that is not a tensor, an entry
    of a Composite that is not a spec.  Both a ``TypeError`` and a
    :class:`SpecError`; the message names the argument, the type received and
    what is expected.

    Example:
        >>> from rlbricks.specs import Composite
        >>> try:
        ...     Composite(observation=3)
        ... except TypeError as err:
        ...     print(type(err).__name__, err)
        SpecTypeError Composite: key 'observation' must map to a spec (or a dict of specs), got int
    """
