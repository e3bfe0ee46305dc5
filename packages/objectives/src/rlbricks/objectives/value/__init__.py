"""Value estimators: pure functions in ``functional`` and TensorDict modules around them.

Example:
    >>> import torch
    >>> from rlbricks.objectives.value import GAE
    >>> from rlbricks.tensordict import TensorDict
    >>> flags = torch.zeros(2, 5, 1, dtype=torch.bool)
    >>> td = TensorDict({"state_value": torch.zeros(2, 5, 1), "next": {
    ...     "state_value": torch.zeros(2, 5, 1), "reward": torch.ones(2, 5, 1),
    ...     "done": flags, "terminated": flags}}, batch_size=[2, 5])
    >>> GAE(gamma=0.9, lmbda=0.95, value_network=None)(td)["advantage"].shape
    torch.Size([2, 5, 1])
"""

from rlbricks.objectives.value import functional
from rlbricks.objectives.value._base import ValueEstimatorBase
from rlbricks.objectives.value._errors import ValueEstimatorError
from rlbricks.objectives.value._errors import ValueEstimatorKeyError
from rlbricks.objectives.value._errors import ValueEstimatorTypeError
from rlbricks.objectives.value._errors import ValueEstimatorValueError
from rlbricks.objectives.value._estimators import GAE
from rlbricks.objectives.value._estimators import TD0Estimator
from rlbricks.objectives.value._estimators import TD1Estimator
from rlbricks.objectives.value._estimators import TDLambdaEstimator
from rlbricks.objectives.value._estimators import VTrace
from rlbricks.objectives.value._factory import ValueEstimators
from rlbricks.objectives.value._factory import make_value_estimator

__all__ = [
    "ValueEstimators",
    "ValueEstimatorBase",
    "TD0Estimator",
    "TD1Estimator",
    "TDLambdaEstimator",
    "GAE",
    "VTrace",
    "make_value_estimator",
    "ValueEstimatorError",
    "ValueEstimatorValueError",
    "ValueEstimatorKeyError",
    "ValueEstimatorTypeError",
    "functional",
]
