"""The value estimators' exceptions: a branch of :class:`~rlbricks.objectives.LossError`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlbricks.objectives._errors import LossError

__all__ = [
    "ValueEstimatorError",
    "ValueEstimatorKeyError",
    "ValueEstimatorTypeError",
    "ValueEstimatorValueError",
    "missing_key_error",
]


class ValueEstimatorError(LossError):
    """The branch of :class:`~rlbricks.objectives.LossError` for the value estimators.

    Every exception of :mod:`rlbricks.objectives.value` (the estimator modules,
    :func:`make_value_estimator` and the pure functions of
    :mod:`rlbricks.objectives.value.functional`) derives from it, so
    ``except ValueEstimatorError`` catches the estimators' errors and
    ``except LossError`` catches them with those of the losses.  Like
    ``LossError`` it derives from no built-in; the raised subclass also is
    the built-in a caller expects (``ValueError``, ``KeyError``, ``TypeError``).

    Example:
        >>> from rlbricks.objectives import LossError
        >>> from rlbricks.objectives.value import ValueEstimatorError, ValueEstimatorValueError
        >>> issubclass(ValueEstimatorError, LossError)
        True
        >>> issubclass(ValueEstimatorValueError, ValueError)
        True
    """


class ValueEstimatorValueError(ValueEstimatorError, ValueError):
    """A value estimator got arguments or data that break its contract.

    Examples: tensors whose shapes differ (the message names both arguments
    and both shapes), a ``gamma`` outside ``[0, 1]``, an unknown estimator
    type.  Both a ``ValueError`` and a :class:`ValueEstimatorError`.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value import ValueEstimatorValueError
        >>> from rlbricks.objectives.value.functional import td0_return_estimate
        >>> try:
        ...     td0_return_estimate(0.9, torch.zeros(4, 1), torch.zeros(3, 1),
        ...                         torch.zeros(4, 1, dtype=torch.bool))
        ... except ValueEstimatorValueError as err:
        ...     print(err)
        td0_return_estimate: reward has shape (3, 1) but next_state_value has shape (4, 1); every data tensor must have the same shape
    """


class ValueEstimatorTypeError(ValueEstimatorError, TypeError):
    """A value estimator was given keyword arguments its class does not take.

    Both a ``TypeError`` and a :class:`ValueEstimatorError`; the message lists
    the arguments the estimator takes.

    Example:
        >>> from rlbricks.objectives.value import make_value_estimator
        >>> try:
        ...     make_value_estimator("td0", gamma=0.9, value_network=None, lmbda=0.95)
        ... except TypeError as err:
        ...     print(type(err).__name__)
        ValueEstimatorTypeError
    """


class ValueEstimatorKeyError(ValueEstimatorError, KeyError):
    """An entry that a value estimator reads is missing from the TensorDict.

    Both a ``KeyError`` and a :class:`ValueEstimatorError`; the message names
    the estimator, the missing key, the keys the TensorDict holds and how to
    point the estimator at another key (``set_keys``).

    Example:
        >>> import torch
        >>> from rlbricks.objectives import TD0Estimator
        >>> from rlbricks.objectives.value import ValueEstimatorKeyError
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict({"state_value": torch.zeros(3, 1)}, [3])
        >>> try:
        ...     TD0Estimator(gamma=0.9, value_network=None)(td)
        ... except ValueEstimatorKeyError as err:
        ...     print(err)  # doctest: +ELLIPSIS
        TD0Estimator reads 'next', which the TensorDict does not hold; available keys: ['state_value']...
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


def missing_key_error(who: str, key: Any, available: Sequence[Any]) -> ValueEstimatorKeyError:
    """The error raised when ``who`` reads ``key`` and the TensorDict lacks it."""
    return ValueEstimatorKeyError(
        f"{who} reads {key!r}, which the TensorDict does not hold; available keys: "
        f"{list(available)}; point the estimator at the right entry with set_keys(...)"
    )
