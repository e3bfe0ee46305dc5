"""Logging hooks: reductions of batch entries."""

from __future__ import annotations

import pytest
import torch

from rlbricks.tensordict import TensorDict
from rlbricks.trainers import LogReward
from rlbricks.trainers import LogScalar
from rlbricks.trainers import TrainerError


@pytest.mark.parametrize("reduction", ["mean", "sum", "max", "min", "last"])
def test_log_scalar_reductions(reduction: str) -> None:
    values = torch.tensor([[3.0], [-1.0], [4.0]])
    batch = TensorDict({"next": {"reward": values}}, batch_size=[3])
    expected = {"mean": 2.0, "sum": 6.0, "max": 4.0, "min": -1.0, "last": 4.0}[reduction]
    assert LogScalar(("next", "reward"), reduction=reduction)(batch) == {"next/reward": expected}


def test_log_scalar_missing_key_lists_keys() -> None:
    batch = TensorDict({"obs": torch.zeros(2)}, batch_size=[2])
    with pytest.raises(TrainerError, match="available: \\['obs'\\]"):
        LogScalar("reward")(batch)
    with pytest.raises(TrainerError, match="reduction"):
        LogScalar("reward", reduction="median")


def test_log_reward_is_the_mean_reward() -> None:
    batch = TensorDict({"next": {"reward": torch.tensor([[[1.0], [2.0]], [[3.0], [6.0]]])}}, [2, 2])
    assert LogReward()(batch) == {"reward": 3.0}
