"""The exceptions of ``rlbricks.replay``."""

from __future__ import annotations

__all__ = [
    "EmptyBufferError",
    "ReplayArgumentError",
    "ReplayError",
    "ReplayTypeError",
    "StructureError",
]


class ReplayError(RuntimeError):
    """Base of the replay-buffer errors: a contract of the buffer was broken.

    Example:
        >>> from rlbricks.replay import ReplayError, StructureError
        >>> issubclass(StructureError, ReplayError)
        True
    """


class EmptyBufferError(ReplayError, IndexError):
    """Sampling was asked of a buffer that holds no data.

    Example:
        >>> from rlbricks.replay import ReplayBuffer, EmptyBufferError
        >>> try:
        ...     ReplayBuffer(batch_size=4).sample()
        ... except EmptyBufferError as err:
        ...     print(err)
        cannot sample from an empty buffer: add or extend it first
    """


class StructureError(ReplayError, ValueError):
    """Data written to a storage does not match the structure the storage holds.

    The message names the missing and extra keys, or the key whose shape or
    dtype differs.
    """


class ReplayArgumentError(ReplayError, ValueError):
    """An argument of a buffer has an invalid value (e.g. ``sample(batch_size=-3)``).

    Both a :class:`ReplayError` and a ``ValueError``; the message names the
    argument, the value received and what is expected.

    Example:
        >>> from rlbricks.replay import ReplayArgumentError, ReplayBuffer
        >>> try:
        ...     ReplayBuffer(batch_size=0)
        ... except ValueError as err:
        ...     print(type(err).__name__, "batch_size" in str(err))
        ReplayArgumentError True
    """


class ReplayTypeError(ReplayError, TypeError):
    """An argument of a buffer has the wrong type (e.g. ``sample(batch_size=2.5)``).

    Both a :class:`ReplayError` and a ``TypeError``; the message names the
    argument, the value received and what is expected.

    Example:
        >>> from rlbricks.replay import ReplayBuffer, ReplayTypeError
        >>> try:
        ...     ReplayBuffer(batch_size=2.5)
        ... except TypeError as err:
        ...     print(type(err).__name__, "batch_size" in str(err))
        ReplayTypeError True
    """
