"""The exception family of rlbricks.replay: one root, and subclasses that are also a built-in."""

from __future__ import annotations

import pytest
import torch

import rlbricks.replay as replay
from rlbricks.replay import EmptyBufferError
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import PrioritizedSampler
from rlbricks.replay import ReplayArgumentError
from rlbricks.replay import ReplayAttributeError
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import ReplayError
from rlbricks.replay import ReplayFileNotFoundError
from rlbricks.replay import ReplayImportError
from rlbricks.replay import ReplayIndexError
from rlbricks.replay import ReplayKeyError
from rlbricks.replay import ReplayOSError
from rlbricks.replay import ReplayRuntimeError
from rlbricks.replay import ReplayTypeError
from rlbricks.replay import SliceSampler
from rlbricks.replay import StructureError
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.tensordict import TensorDict

EXCEPTIONS = [
    obj
    for obj in (getattr(replay, name) for name in replay.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def test_the_root_is_a_plain_exception():
    assert ReplayError.__bases__ == (Exception,)
    assert not issubclass(ReplayError, (ValueError, RuntimeError))


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, ReplayError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (ReplayRuntimeError, RuntimeError),
        (ReplayArgumentError, ValueError),
        (StructureError, ValueError),
        (ReplayTypeError, TypeError),
        (ReplayKeyError, KeyError),
        (ReplayIndexError, IndexError),
        (EmptyBufferError, IndexError),
        (ReplayAttributeError, AttributeError),
        (ReplayImportError, ImportError),
        (ReplayFileNotFoundError, FileNotFoundError),
        (ReplayOSError, OSError),
    ],
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_the_buffers_raise_belongs_to_the_family(tmp_path):
    with pytest.raises(EmptyBufferError, match="empty buffer"):
        ReplayBuffer(batch_size=4).sample()
    with pytest.raises(ReplayArgumentError, match="batch_size"):
        ReplayBuffer(batch_size=0)
    with pytest.raises(ReplayTypeError, match="batch_size"):
        ReplayBuffer(batch_size=2.5)
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    rb.extend({"obs": torch.zeros(2, 3)})
    with pytest.raises(StructureError):
        rb.extend({"observation": torch.zeros(2, 3)})
    with pytest.raises(ReplayIndexError, match="out of range"):
        PrioritizedSampler(max_capacity=4, alpha=0.7, beta=0.5).update_priority(
            torch.tensor([9]), torch.tensor([1.0])
        )
    with pytest.raises(ReplayFileNotFoundError, match="does not exist"):
        ReplayBuffer().loads(tmp_path / "nothing")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine")
    with pytest.raises(ReplayRuntimeError, match="is not a buffer dump"):
        ReplayBuffer().dumps(tmp_path / "notes")
    sliced = TensorDictReplayBuffer(
        storage=LazyTensorStorage(10), sampler=SliceSampler(num_slices=2), batch_size=4
    )
    sliced.extend(TensorDict({"obs": torch.zeros(6, 3)}, [6]))
    with pytest.raises(ReplayKeyError, match="no trajectory boundaries"):
        sliced.sample()
