"""``ValueEstimators`` and ``make_value_estimator``: pick an estimator by name."""

from __future__ import annotations

import enum
import inspect
from typing import Any

from rlbricks.objectives.value._base import ValueEstimatorBase
from rlbricks.objectives.value._errors import ValueEstimatorTypeError
from rlbricks.objectives.value._errors import ValueEstimatorValueError
from rlbricks.objectives.value._estimators import GAE
from rlbricks.objectives.value._estimators import TD0Estimator
from rlbricks.objectives.value._estimators import TD1Estimator
from rlbricks.objectives.value._estimators import TDLambdaEstimator
from rlbricks.objectives.value._estimators import VTrace

__all__ = ["ValueEstimators", "make_value_estimator"]


class ValueEstimators(enum.Enum):
    """The value estimators a loss can be built with.

    ``LossModule.make_value_estimator(value_type, **hyperparams)`` takes one
    of these (or its name, or its value as a string).

    Example:
        >>> from rlbricks.objectives import ValueEstimators
        >>> ValueEstimators.GAE.value, ValueEstimators("td_lambda")
        ('gae', <ValueEstimators.TDLambda: 'td_lambda'>)
    """

    TD0 = "td0"
    TD1 = "td1"
    TDLambda = "td_lambda"
    GAE = "gae"
    VTrace = "vtrace"

    @classmethod
    def parse(cls, value_type: ValueEstimators | str) -> ValueEstimators:
        """The member named by ``value_type``: a member, a name or a value, any case.

        Raises:
            ValueEstimatorValueError: no member matches; the message lists them.

        Example:
            >>> from rlbricks.objectives import ValueEstimators
            >>> ValueEstimators.parse("TDLambda"), ValueEstimators.parse("gae")
            (<ValueEstimators.TDLambda: 'td_lambda'>, <ValueEstimators.GAE: 'gae'>)
        """
        if isinstance(value_type, cls):
            return value_type
        if isinstance(value_type, str):
            wanted = value_type.lower()
            for member in cls:
                if wanted in (member.name.lower(), member.value):
                    return member
        names = [m.name for m in cls]
        raise ValueEstimatorValueError(
            f"unknown value estimator {value_type!r}; choose one of {names} "
            f"(a ValueEstimators member, its name or its value)"
        )


_CLASSES: dict[ValueEstimators, type[ValueEstimatorBase]] = {
    ValueEstimators.TD0: TD0Estimator,
    ValueEstimators.TD1: TD1Estimator,
    ValueEstimators.TDLambda: TDLambdaEstimator,
    ValueEstimators.GAE: GAE,
    ValueEstimators.VTrace: VTrace,
}


def make_value_estimator(value_type: ValueEstimators | str, **kwargs: Any) -> ValueEstimatorBase:
    """Build the estimator of ``value_type`` from keyword arguments.

    Args:
        value_type: a :class:`ValueEstimators` member, its name or its value.
        **kwargs: the estimator's arguments (``gamma``, ``value_network``,
            ``lmbda``, ...).

    Returns:
        The estimator module.

    Raises:
        ValueEstimatorValueError: ``value_type`` is unknown.
        ValueEstimatorTypeError: an argument is missing or not accepted; the message lists
            the estimator's parameters.

    Example:
        >>> from rlbricks.objectives.value import make_value_estimator
        >>> make_value_estimator("gae", gamma=0.99, lmbda=0.95, value_network=None)
        GAE(lmbda=0.95, average_gae=False, gamma=0.99, differentiable=False, skip_existing=False)
    """
    cls = _CLASSES[ValueEstimators.parse(value_type)]
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ValueEstimatorTypeError(
            f"make_value_estimator({value_type!r}): {err}; {cls.__name__} takes "
            f"{list(signature.parameters)}"
        ) from None
    return cls(**kwargs)
