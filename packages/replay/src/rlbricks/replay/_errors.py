"""The exceptions of ``rlbricks.replay``."""

from __future__ import annotations

__all__ = ["EmptyBufferError", "ReplayError", "StructureError"]


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
