"""The exception family of ``rlbricks.transforms``: :class:`TransformError` and its subclasses."""

from __future__ import annotations

__all__ = ["TransformError", "TransformKeyError", "TransformTypeError", "TransformValueError"]


class TransformError(Exception):
    """The root of every exception that ``rlbricks.transforms`` raises.

    It derives from ``Exception`` only: ``except TransformError`` catches
    every transform error, whichever built-in (``ValueError``, ``KeyError``,
    ``TypeError``) the raised subclass also is.

    Example:
        >>> from rlbricks.transforms import StepCounter, TransformError
        >>> try:
        ...     StepCounter(max_steps=0)
        ... except TransformError as err:
        ...     print(type(err).__name__)
        TransformValueError
    """


class TransformValueError(TransformError, ValueError):
    """A transform was misconfigured or does not fit the env (or data) it is applied to.

    Raised, for example, when a transform is attached to a second env (clone it
    first), when its ``in_keys`` name entries the env's specs do not hold, when
    a spec cannot be rewritten (a cast of a categorical spec to float), or when
    an argument is out of range (``StepCounter(max_steps=0)``).  Both a
    ``ValueError`` and a :class:`TransformError`.

    Example:
        >>> from rlbricks.transforms import StepCounter
        >>> try:
        ...     StepCounter(max_steps=0)
        ... except ValueError as err:
        ...     print(type(err).__name__, err)
        TransformValueError StepCounter: max_steps must be positive, got 0
    """


class TransformKeyError(TransformError, KeyError):
    """An entry a transform reads is missing from the data it is applied to.

    Both a ``KeyError`` and a :class:`TransformError`; the message names the
    entry and the keys the data holds.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import RewardSum
        >>> try:
        ...     RewardSum()(TensorDict({"observation": torch.zeros(3)}, [3]))
        ... except KeyError as err:
        ...     print(type(err).__name__)
        TransformKeyError
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


class TransformTypeError(TransformError, TypeError):
    """A transform or a transformed env was given an object of the wrong type.

    Both a ``TypeError`` and a :class:`TransformError`; the message names the
    argument, the type received and what is expected.

    Example:
        >>> from rlbricks.transforms import Compose
        >>> try:
        ...     Compose(lambda td: td)
        ... except TypeError as err:
        ...     print(type(err).__name__)
        TransformTypeError
    """
