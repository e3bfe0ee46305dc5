"""The exceptions of ``rlbricks.envs``."""

from __future__ import annotations

__all__ = ["EnvError"]


class EnvError(RuntimeError):
    """An environment broke its contract, or a worker process failed.

    For batched envs running in worker processes, the message carries the
    worker's index and its full traceback.

    Example:
        >>> from rlbricks.envs import EnvError
        >>> issubclass(EnvError, RuntimeError)
        True
    """
