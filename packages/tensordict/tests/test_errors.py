"""The exception family of rlbricks.tensordict: one root, and subclasses that are also a built-in."""

from __future__ import annotations

import pytest
import torch

import rlbricks.tensordict as tensordict
from rlbricks.tensordict import BatchSizeError
from rlbricks.tensordict import MemoryMappedTensor
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import TensorDictAssertionError
from rlbricks.tensordict import TensorDictError
from rlbricks.tensordict import TensorDictFileExistsError
from rlbricks.tensordict import TensorDictFileNotFoundError
from rlbricks.tensordict import TensorDictIndexError
from rlbricks.tensordict import TensorDictKeyError
from rlbricks.tensordict import TensorDictTypeError
from rlbricks.tensordict import TensorDictValueError
from rlbricks.tensordict import assert_close

EXCEPTIONS = [
    obj
    for obj in (getattr(tensordict, name) for name in tensordict.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def test_the_root_is_a_plain_exception():
    assert TensorDictError.__bases__ == (Exception,)
    assert not issubclass(TensorDictError, (ValueError, RuntimeError))


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, TensorDictError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (TensorDictKeyError, KeyError),
        (TensorDictValueError, ValueError),
        (BatchSizeError, ValueError),
        (TensorDictTypeError, TypeError),
        (TensorDictIndexError, IndexError),
        (TensorDictFileNotFoundError, FileNotFoundError),
        (TensorDictFileExistsError, FileExistsError),
        (TensorDictAssertionError, AssertionError),
    ],
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_a_tensordict_raises_belongs_to_the_family(tmp_path):
    td = TensorDict({"obs": torch.zeros(4, 2)}, batch_size=[4])
    with pytest.raises(TensorDictKeyError, match="available keys"):
        td["observation"]
    with pytest.raises(BatchSizeError, match="'reward'"):
        td["reward"] = torch.zeros(3)
    with pytest.raises(TensorDictValueError, match="cannot become"):
        td.reshape(3)
    with pytest.raises(TensorDictIndexError, match="out of range"):
        td[7]
    with pytest.raises(TensorDictTypeError, match="cannot convert str"):
        TensorDict({"x": "text"})
    with pytest.raises(TensorDictFileNotFoundError, match="does not exist"):
        TensorDict.load_memmap(tmp_path / "nothing")
    path = tmp_path / "x.memmap"
    MemoryMappedTensor.from_tensor(torch.zeros(2), filename=path)
    with pytest.raises(TensorDictFileExistsError, match="existsok=True"):
        MemoryMappedTensor.from_tensor(torch.zeros(2), filename=path)
    with pytest.raises(TensorDictAssertionError, match="values differ at key 'obs'"):
        assert_close(td, td.apply(lambda x: x + 1))
