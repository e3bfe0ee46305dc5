"""The exceptions raised by the value estimators."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["ValueEstimatorError", "ValueEstimatorKeyError", "missing_key_error"]


class ValueEstimatorError(ValueError):
    """A value estimator got arguments or data that break its contract.

    Examples: tensors whose shapes differ (the message names both arguments
    and both shapes), a ``gamma`` outside ``[0, 1]``, an unknown estimator
    type.  It is a ``ValueError``, so ``except ValueError`` also catches it.

    Example:
        >>> import torch
        >>> from rlbricks.objectives.value import ValueEstimatorError
        >>> from rlbricks.objectives.value.functional import td0_return_estimate
        >>> try:
        ...     td0_return_estimate(0.9, torch.zeros(4, 1), torch.zeros(3, 1),
        ...                         torch.zeros(4, 1, dtype=torch.bool))
        ... except ValueEstimatorError as err:
        ...     print(err)
        td0_return_estimate: reward has shape (3, 1) but next_state_value has shape (4, 1); every data tensor must have the same shape
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
