"""The exception family of rlbricks.modules: one root, and subclasses that are also a built-in."""

from __future__ import annotations

import pytest
import torch

import rlbricks.modules as modules
from rlbricks.modules import MLP
from rlbricks.modules import ModuleError
from rlbricks.modules import ModuleKeyError
from rlbricks.modules import ModuleValueError
from rlbricks.modules import TensorDictModule
from rlbricks.tensordict import TensorDict

EXCEPTIONS = [
    obj
    for obj in (getattr(modules, name) for name in modules.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def test_the_root_is_a_plain_exception():
    assert ModuleError.__bases__ == (Exception,)
    assert not issubclass(ModuleError, (ValueError, RuntimeError))


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, ModuleError)


@pytest.mark.parametrize(
    ("cls", "builtin"), [(ModuleValueError, ValueError), (ModuleKeyError, KeyError)]
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_the_modules_raise_belongs_to_the_family():
    with pytest.raises(ModuleValueError, match="out_features is required"):
        MLP()
    double = TensorDictModule(lambda x: 2 * x, in_keys=["observation"], out_keys=["y"])
    with pytest.raises(ModuleKeyError, match="available keys: \\['obs'\\]"):
        double(TensorDict({"obs": torch.zeros(3)}))
