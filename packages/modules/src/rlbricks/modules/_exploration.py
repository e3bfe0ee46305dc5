"""``ExplorationType``: how a policy turns its output into an action, and the switch for it.

The current exploration type is one **process-wide** value (not thread-local):
every thread of a process sees the same setting.  ``set_exploration_type``
changes it for the duration of a ``with`` block or of a decorated call and
always restores the previous value, so settings nest.  A process starts with
no explicit setting; :func:`exploration_type` then reports ``RANDOM``, and a
:class:`~rlbricks.modules.ProbabilisticTensorDictModule` uses its own
``default_interaction_type``.  Worker processes (collectors) start unset:
collectors pass their ``exploration_type`` to the workers explicitly.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable
from typing import Any
from typing import TypeVar

from rlbricks.modules._errors import ModuleValueError

__all__ = [
    "ExplorationType",
    "as_exploration_type",
    "exploration_type",
    "explicit_exploration_type",
    "set_exploration_type",
]

F = TypeVar("F", bound=Callable[..., Any])


class ExplorationType(enum.Enum):
    """How a policy turns its output into an action.

    * ``RANDOM`` — sample (``rsample`` when the distribution has it); the
      exploration modules (epsilon-greedy, Gaussian and OU noise) are active.
    * ``MODE`` — the most likely action (``dist.mode``; argmax for discrete ones).
    * ``MEAN`` — the mean of the distribution.
    * ``DETERMINISTIC`` — the distribution's ``deterministic_sample`` when it
      has one (e.g. ``tanh(loc)`` for a tanh-normal), else its mode, else its mean.

    Only ``RANDOM`` turns exploration noise on; evaluate with ``DETERMINISTIC``
    or ``MODE``.

    Example:
        >>> from rlbricks.modules import ExplorationType
        >>> ExplorationType.MODE
        <ExplorationType.MODE: 'mode'>
        >>> ExplorationType("random") is ExplorationType.RANDOM
        True
    """

    DETERMINISTIC = "deterministic"
    RANDOM = "random"
    MODE = "mode"
    MEAN = "mean"


_CURRENT: ExplorationType | None = None


def as_exploration_type(value: ExplorationType | str) -> ExplorationType:
    """``value`` as an :class:`ExplorationType`; strings match names case-insensitively."""
    if isinstance(value, ExplorationType):
        return value
    if isinstance(value, str):
        try:
            return ExplorationType(value.lower())
        except ValueError:
            pass
    choices = [t.value for t in ExplorationType]
    raise ModuleValueError(
        f"unknown exploration type {value!r}: use an ExplorationType or one of {choices}"
    )


def exploration_type() -> ExplorationType:
    """The current exploration type (``RANDOM`` unless something set another one).

    Example:
        >>> from rlbricks.modules import ExplorationType, exploration_type, set_exploration_type
        >>> exploration_type()
        <ExplorationType.RANDOM: 'random'>
        >>> with set_exploration_type(ExplorationType.MODE):
        ...     exploration_type()
        <ExplorationType.MODE: 'mode'>
    """
    return ExplorationType.RANDOM if _CURRENT is None else _CURRENT


def explicit_exploration_type() -> ExplorationType | None:
    """The exploration type set by :class:`set_exploration_type`, or ``None`` when unset."""
    return _CURRENT


class set_exploration_type(contextlib.ContextDecorator):
    """Set the exploration type inside a ``with`` block or a decorated function.

    The previous value is restored on exit, also when the block raises, so
    uses nest.  The setting is process-wide: other threads see it too.

    Args:
        type: an :class:`ExplorationType` or its name (``"random"``, ``"mode"``,
            ``"mean"``, ``"deterministic"``).

    Raises:
        ModuleValueError: ``type`` is not an exploration type.

    Example:
        >>> from rlbricks.modules import ExplorationType, exploration_type, set_exploration_type
        >>> @set_exploration_type("deterministic")
        ... def evaluate():
        ...     return exploration_type()
        >>> evaluate()
        <ExplorationType.DETERMINISTIC: 'deterministic'>
        >>> with set_exploration_type(ExplorationType.MEAN):
        ...     inner = evaluate()
        ...     outer = exploration_type()
        >>> inner.name, outer.name, exploration_type().name
        ('DETERMINISTIC', 'MEAN', 'RANDOM')
    """

    def __init__(self, type: ExplorationType | str) -> None:
        self.type = as_exploration_type(type)
        # one saved value per active entry: a decorated function may recurse
        self._saved: list[ExplorationType | None] = []

    def __enter__(self) -> set_exploration_type:
        global _CURRENT
        self._saved.append(_CURRENT)
        _CURRENT = self.type
        return self

    def __exit__(self, *exc: object) -> None:
        global _CURRENT
        _CURRENT = self._saved.pop()

    def __repr__(self) -> str:
        return f"set_exploration_type({self.type})"
