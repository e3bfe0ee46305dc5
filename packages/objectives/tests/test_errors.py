"""The exception family of rlbricks.objectives: one root (LossError), the value estimators'
branch under it (ValueEstimatorError), and subclasses that are also a built-in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rlbricks.objectives as objectives
import rlbricks.objectives.value as value
from rlbricks.modules import QValueActor
from rlbricks.objectives import DQNLoss
from rlbricks.objectives import LossError
from rlbricks.objectives import LossKeyError
from rlbricks.objectives import LossValueError
from rlbricks.objectives import ValueEstimatorError
from rlbricks.objectives import ValueEstimatorKeyError
from rlbricks.objectives import ValueEstimatorTypeError
from rlbricks.objectives import ValueEstimatorValueError
from rlbricks.objectives.value import make_value_estimator
from rlbricks.objectives.value.functional import td0_return_estimate
from rlbricks.tensordict import TensorDict


def _exceptions(module):
    return [
        obj
        for obj in (getattr(module, name) for name in module.__all__)
        if isinstance(obj, type) and issubclass(obj, BaseException)
    ]


EXCEPTIONS = _exceptions(objectives)
VALUE_EXCEPTIONS = _exceptions(value)


def test_the_root_is_a_plain_exception():
    assert LossError.__bases__ == (Exception,)
    assert not issubclass(LossError, (ValueError, RuntimeError))


def test_the_value_estimator_branch_hangs_under_the_root_without_a_builtin():
    assert ValueEstimatorError.__bases__ == (LossError,)
    assert not issubclass(ValueEstimatorError, (ValueError, RuntimeError))


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, LossError)


@pytest.mark.parametrize("cls", VALUE_EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_value_estimator_exception_derives_from_its_branch(cls):
    assert issubclass(cls, ValueEstimatorError)
    assert cls in EXCEPTIONS  # re-exported by rlbricks.objectives too


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (LossValueError, ValueError),
        (LossKeyError, KeyError),
        (ValueEstimatorValueError, ValueError),
        (ValueEstimatorKeyError, KeyError),
        (ValueEstimatorTypeError, TypeError),
    ],
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_the_losses_and_estimators_raise_belongs_to_the_family():
    loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
    with pytest.raises(LossValueError, match="no key named 'rewrd'"):
        loss.set_keys(rewrd="r")
    with pytest.raises(LossKeyError, match="reads 'action'"):
        loss(TensorDict({"observation": torch.zeros(4, 3)}, [4]))
    with pytest.raises(ValueEstimatorValueError, match="reward has shape"):
        td0_return_estimate(
            0.9, torch.zeros(4, 1), torch.zeros(3, 1), torch.zeros(4, 1, dtype=torch.bool)
        )
    with pytest.raises(ValueEstimatorTypeError, match="TD0Estimator takes"):
        make_value_estimator("td0", gamma=0.9, value_network=None, lmbda=0.95)
    with pytest.raises(ValueEstimatorValueError, match="unknown value estimator"):
        make_value_estimator("nope", gamma=0.9, value_network=None)
