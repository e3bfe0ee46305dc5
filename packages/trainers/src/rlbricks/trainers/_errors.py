"""The exceptions of rlbricks.trainers; each message says how to fix the problem.

``TrainerError`` is the root; each subclass is also the built-in exception
that callers would expect for its kind of problem::

    TrainerError(Exception)
    ├── TrainerValueError(ValueError)   a bad argument value (a count < 1, an unknown stage)
    │   └── ConfigError                 a config file, command line or settings field
    ├── TrainerTypeError(TypeError)     an argument of the wrong kind (a hook that is not callable)
    ├── TrainerKeyError(KeyError)       a batch without the entry a hook reads
    ├── TrainerStateError(RuntimeError) a call at the wrong time (before register(), after close())
    ├── MissingExtraError(ImportError)  an optional dependency is not installed (names the extra)
    └── CheckpointError                 a checkpoint that cannot be written or read back
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "MissingExtraError",
    "TrainerError",
    "TrainerKeyError",
    "TrainerStateError",
    "TrainerTypeError",
    "TrainerValueError",
]


class TrainerError(Exception):
    """The root of the trainers' exceptions (the message gives the fix).

    Example:
        >>> from rlbricks.trainers import TrainerError, TrainerValueError
        >>> issubclass(TrainerValueError, TrainerError), issubclass(TrainerError, RuntimeError)
        (True, False)
    """


class TrainerValueError(TrainerError, ValueError):
    """A bad argument value: a count below 1, an unknown stage or reduction, a taken name.

    Example:
        >>> from rlbricks.trainers import TrainerValueError
        >>> issubclass(TrainerValueError, ValueError)
        True
    """


class TrainerTypeError(TrainerError, TypeError):
    """An argument of the wrong kind: a hook that is not callable, settings of another trainer.

    Example:
        >>> from rlbricks.trainers import TrainerTypeError
        >>> issubclass(TrainerTypeError, TypeError)
        True
    """


class TrainerKeyError(TrainerError, KeyError):
    """A batch without the entry a hook reads (the message lists the entries it has).

    Example:
        >>> from rlbricks.trainers import TrainerKeyError
        >>> issubclass(TrainerKeyError, KeyError)
        True
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class TrainerStateError(TrainerError, RuntimeError):
    """A call at the wrong time: before ``register(trainer)``, on a closed logger, a hook
    at an algorithm stage of a trainer that runs its own steps.

    Example:
        >>> from rlbricks.trainers import TrainerStateError
        >>> issubclass(TrainerStateError, RuntimeError)
        True
    """


class MissingExtraError(TrainerError, ImportError):
    """An optional dependency is missing; the message names the extra to install.

    Example:
        >>> from rlbricks.trainers import MissingExtraError
        >>> issubclass(MissingExtraError, ImportError)
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


class ConfigError(TrainerValueError):
    """A configuration file, command line or settings field the trainers reject.

    Example:
        >>> from rlbricks.trainers import ConfigError
        >>> issubclass(ConfigError, ValueError)
        True
    """
