"""The exception family of rlbricks.collectors: one root, and subclasses that are also a built-in."""

from __future__ import annotations

import pytest
import torch

import rlbricks.collectors as collectors
from rlbricks.collectors import CollectorError
from rlbricks.collectors import CollectorImportError
from rlbricks.collectors import CollectorRuntimeError
from rlbricks.collectors import CollectorTimeoutError
from rlbricks.collectors import SyncDataCollector
from rlbricks.collectors import WorkerActionError
from rlbricks.collectors import split_trajectories
from rlbricks.envs import ActionError
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict

EXCEPTIONS = [
    obj
    for obj in (getattr(collectors, name) for name in collectors.__all__)
    if isinstance(obj, type) and issubclass(obj, BaseException)
]


def test_the_root_is_a_plain_exception():
    assert CollectorError.__bases__ == (Exception,)
    assert not issubclass(CollectorError, (ValueError, RuntimeError))


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda cls: cls.__name__)
def test_every_exported_exception_derives_from_the_root(cls):
    assert issubclass(cls, CollectorError)


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (CollectorRuntimeError, RuntimeError),
        (CollectorTimeoutError, TimeoutError),
        (CollectorImportError, ImportError),
        (WorkerActionError, ValueError),
        (WorkerActionError, ActionError),
    ],
)
def test_each_subclass_is_also_the_builtin_callers_catch(cls, builtin):
    assert cls in EXCEPTIONS
    assert issubclass(cls, builtin)


def test_what_the_collectors_raise_belongs_to_the_family():
    with pytest.raises(CollectorRuntimeError, match="frames_per_batch must be >= 1, got 0"):
        SyncDataCollector(CountingEnv(), None, frames_per_batch=0, total_frames=10)
    with pytest.raises(CollectorRuntimeError, match="needs a batch with a time dim"):
        split_trajectories(TensorDict({"x": torch.zeros(())}))
    collector = SyncDataCollector(CountingEnv(), None, frames_per_batch=2, total_frames=4)
    collector.shutdown()
    with pytest.raises(CollectorRuntimeError, match="is shut down: create a new one"):
        next(iter(collector))
