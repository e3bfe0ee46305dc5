"""The exception family of rlbricks.specs: one root, and subclasses that are also a built-in."""

from __future__ import annotations

import pytest
import torch

import rlbricks.specs as specs
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import SpecError
from rlbricks.specs import SpecKeyError
from rlbricks.specs import SpecTypeError
from rlbricks.specs import SpecValueError
from rlbricks.specs import Unbounded

EXCEPTIONS = [
    obj
    for obj in (getattr(specs, name) for name in specs.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def test_the_root_is_a_plain_exception():
    assert SpecError.__bases__ == (Exception,)
    assert not issubclass(SpecError, (ValueError, RuntimeError))


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, SpecError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [(SpecValueError, ValueError), (SpecKeyError, KeyError), (SpecTypeError, TypeError)],
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_the_specs_raise_belongs_to_the_family():
    with pytest.raises(SpecValueError, match="n must be a positive int"):
        Categorical(0)
    with pytest.raises(SpecKeyError, match="available keys"):
        Composite(observation=Unbounded(shape=(3,)))["obs"]
    with pytest.raises(SpecTypeError, match="must map to a spec"):
        Composite(observation=3)
    with pytest.raises(SpecValueError, match="out of range"):
        Categorical(2).assert_is_in(torch.tensor(5))
