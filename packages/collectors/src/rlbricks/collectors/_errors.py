"""The exception of the collectors package."""

from __future__ import annotations

__all__ = ["CollectorError"]


class CollectorError(RuntimeError):
    """A collector was misconfigured, misused, or one of its workers failed.

    Example:
        >>> from rlbricks.collectors import CollectorError
        >>> issubclass(CollectorError, RuntimeError)
        True
    """
