"""The exceptions of rlbricks.trainers; each message says how to fix the problem."""

from __future__ import annotations

__all__ = ["CheckpointError", "ConfigError", "TrainerError"]


class TrainerError(RuntimeError):
    """A misuse of the trainer, its hooks or its loggers (the message gives the fix).

    Example:
        >>> from rlbricks.trainers import TrainerError
        >>> issubclass(TrainerError, RuntimeError)
        True
    """


class CheckpointError(TrainerError):
    """A checkpoint that cannot be written or read back (missing, truncated or corrupted file).

    The message names the offending file.

    Example:
        >>> from rlbricks.trainers import CheckpointError, TrainerError
        >>> issubclass(CheckpointError, TrainerError)
        True
    """


class ConfigError(TrainerError, ValueError):
    """A configuration file or command line the parser rejects (e.g. an unknown key).

    Example:
        >>> from rlbricks.trainers import ConfigError
        >>> issubclass(ConfigError, ValueError)
        True
    """
