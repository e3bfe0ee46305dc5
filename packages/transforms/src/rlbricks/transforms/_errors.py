"""The exceptions of ``rlbricks.transforms``."""

from __future__ import annotations

__all__ = ["TransformError"]


class TransformError(ValueError):
    """A transform was misconfigured or does not fit the env (or data) it is applied to.

    Raised, for example, when a transform is attached to a second env (clone it
    first), when its ``in_keys`` name entries the env's specs do not hold, or
    when a spec cannot be rewritten (a cast of a categorical spec to float).

    Example:
        >>> from rlbricks.transforms import TransformError
        >>> issubclass(TransformError, ValueError)
        True
    """
