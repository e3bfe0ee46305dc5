"""The trainers' exception family: one root, each subclass also the built-in callers expect."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rlbricks.trainers as trainers
from rlbricks.tensordict import TensorDict
from rlbricks.trainers import CSVLogger
from rlbricks.trainers import LinearSchedule
from rlbricks.trainers import LogScalar
from rlbricks.trainers import OnPolicyConfig
from rlbricks.trainers import OnPolicyTrainer
from rlbricks.trainers import Trainer
from rlbricks.trainers import TrainerError
from rlbricks.trainers import TrainerKeyError
from rlbricks.trainers import TrainerStateError
from rlbricks.trainers import TrainerTypeError
from rlbricks.trainers import TrainerValueError

ERRORS = [
    obj
    for name in trainers.__all__
    if isinstance(obj := getattr(trainers, name), type) and issubclass(obj, BaseException)
]


def test_the_root_is_a_plain_exception() -> None:
    assert TrainerError.__bases__ == (Exception,)


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_every_exception_derives_from_the_root(cls: type) -> None:
    assert issubclass(cls, TrainerError)


def test_each_kind_of_misuse_raises_its_class_naming_the_problem(tmp_path: Path) -> None:
    net = torch.nn.Linear(1, 1)
    with pytest.raises(TrainerValueError, match="unknown stage 'nowhere'"):
        Trainer([], 10, net, None).register_op("nowhere", lambda: None)
    with pytest.raises(TrainerTypeError, match="not callable"):
        Trainer([], 10, net, None).register_op("post_steps", 3)
    with pytest.raises(TrainerValueError, match="frames must be >= 1, got 0"):
        LinearSchedule(torch.optim.SGD(net.parameters(), lr=1.0), "lr", 0.0, frames=0)
    with pytest.raises(TrainerStateError, match="register"):
        LinearSchedule(torch.optim.SGD(net.parameters(), lr=1.0), "lr", 0.0, frames=5)()
    with pytest.raises(TrainerKeyError, match="no 'missing'") as err:
        LogScalar("missing")(TensorDict({"x": torch.ones(2)}, [2]))
    assert isinstance(err.value, KeyError)
    trainer = OnPolicyTrainer([], net, None, OnPolicyConfig(total_frames=8))
    with pytest.raises(TrainerStateError, match="override"):
        trainer.register_op("post_loss", lambda batch: None)
    logger = CSVLogger("closed", tmp_path)
    logger.close()
    with pytest.raises(TrainerStateError, match="closed"):
        logger.log_scalar("x", 1.0, step=0)
