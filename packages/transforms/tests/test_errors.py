"""The exception family of rlbricks.transforms: one root, and subclasses that are also a built-in."""

from __future__ import annotations

import pytest
import torch

import rlbricks.transforms as transforms
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import Compose
from rlbricks.transforms import RewardSum
from rlbricks.transforms import StepCounter
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError
from rlbricks.transforms import TransformKeyError
from rlbricks.transforms import TransformTypeError
from rlbricks.transforms import TransformValueError

EXCEPTIONS = [
    obj
    for obj in (getattr(transforms, name) for name in transforms.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def test_the_root_is_a_plain_exception():
    assert TransformError.__bases__ == (Exception,)
    assert not issubclass(TransformError, (ValueError, RuntimeError))


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, TransformError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (TransformValueError, ValueError),
        (TransformKeyError, KeyError),
        (TransformTypeError, TypeError),
    ],
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_the_transforms_raise_belongs_to_the_family():
    with pytest.raises(TransformValueError, match="max_steps must be positive, got 0"):
        StepCounter(max_steps=0)
    with pytest.raises(TransformKeyError, match="RewardSum needs"):
        RewardSum()(TensorDict({"observation": torch.zeros(3)}, [3]))
    with pytest.raises(TransformTypeError, match="Compose holds Transform instances"):
        Compose(lambda td: td)
    counter = StepCounter()
    TransformedEnv(CountingEnv(), counter)
    with pytest.raises(TransformValueError, match="clone"):
        TransformedEnv(CountingEnv(), counter)
