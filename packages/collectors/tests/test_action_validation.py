"""Collectors and action checks: a bad action raises, validate_actions reaches the envs."""

from __future__ import annotations

import functools
import sys

import pytest
import torch

from rlbricks.collectors import CollectorError
from rlbricks.collectors import MultiaSyncDataCollector
from rlbricks.collectors import MultiSyncDataCollector
from rlbricks.collectors import SyncDataCollector
from rlbricks.collectors import WorkerActionError
from rlbricks.collectors._ray_worker import CollectorWorker
from rlbricks.envs import ActionError
from rlbricks.envs import GymEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict

ENV = functools.partial(CountingEnv, max_steps=3, batch_size=[2])  # Categorical(2), [2, 1]
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="fork start method")


def wrong_shape(td: TensorDict) -> TensorDict:
    """Three actions per sub-env where CountingEnv takes one (they would broadcast)."""
    return td.set("action", torch.ones(*td.batch_size, 3, dtype=torch.int64))


def index_seven(td: TensorDict) -> TensorDict:
    """Index 7 for a Categorical(2) spec: right shape and dtype, value out of range."""
    return td.set("action", torch.full((*td.batch_size, 1), 7, dtype=torch.int64))


def test_a_wrong_shaped_action_raises_instead_of_wrong_rewards() -> None:
    collector = SyncDataCollector(ENV, wrong_shape, frames_per_batch=8)
    with pytest.raises(ActionError, match=r"'action' has shape \[2, 3\].*expects shape \[2, 1\]"):
        collector.next()
    collector.shutdown()


def test_the_gym_fast_path_of_the_collector_checks_actions() -> None:
    pytest.importorskip("gymnasium")
    env = GymEnv("CartPole-v1", num_envs=2, categorical_action_encoding=True)
    collector = SyncDataCollector(env, wrong_shape, frames_per_batch=8)
    with pytest.raises(ActionError, match=r"GymEnv\.step: the action 'action' has shape \[2, 3\]"):
        collector.next()

    def out_of_range(td: TensorDict) -> TensorDict:
        return td.set("action", torch.tensor([0, 2]))

    collector = SyncDataCollector(env, out_of_range, frames_per_batch=8)
    with pytest.raises(ActionError, match=r"index \(1,\): 2"):
        collector.next()
    env.close()


def test_validate_actions_false_reaches_the_env_and_skips_values_only() -> None:
    collector = SyncDataCollector(ENV, index_seven, frames_per_batch=8, validate_actions=False)
    assert not collector.env.validate_actions
    batch = collector.next()
    assert bool((batch["next", "reward"] == 7).all())
    collector = SyncDataCollector(ENV, wrong_shape, frames_per_batch=8, validate_actions=False)
    with pytest.raises(ActionError, match="shape"):
        collector.next()


def test_validate_actions_none_keeps_the_env_setting() -> None:
    env = ENV()
    env.validate_actions = False
    assert not SyncDataCollector(env, index_seven, frames_per_batch=4).env.validate_actions
    assert SyncDataCollector(ENV, frames_per_batch=4).env.validate_actions
    strict = SyncDataCollector(env, index_seven, frames_per_batch=4, validate_actions=True)
    with pytest.raises(ActionError):
        strict.next()


@POSIX
@pytest.mark.parametrize("cls", [MultiSyncDataCollector, MultiaSyncDataCollector])
def test_multiprocess_collectors_report_the_action_error(cls: type) -> None:
    collector = cls([ENV, ENV], index_seven, frames_per_batch=8, mp_start_method="fork")
    with pytest.raises(CollectorError, match=r"(?s)ActionError.*'action'.*Categorical") as err:
        collector.next()
    assert isinstance(err.value, ActionError)  # caught like a SyncDataCollector's error
    assert isinstance(err.value, WorkerActionError)
    collector.shutdown()


@POSIX
@pytest.mark.parametrize("cls", [MultiSyncDataCollector, MultiaSyncDataCollector])
def test_multiprocess_collectors_pass_validate_actions_to_the_workers(cls: type) -> None:
    with cls(
        [ENV, ENV], index_seven, frames_per_batch=8, mp_start_method="fork", validate_actions=False
    ) as collector:
        batch = collector.next()
    assert bool((batch["next", "reward"] == 7).all())


def test_ray_actors_take_validate_actions_in_collector_kwargs() -> None:
    worker = CollectorWorker(0, 1, ENV, index_seven, 4, {"validate_actions": False})
    batch, _ = worker.collect(0, [None], 0)
    assert batch is not None
    assert bool((batch["next", "reward"] == 7).all())
    strict = CollectorWorker(0, 1, ENV, index_seven, 4, {})
    with pytest.raises(ActionError):
        strict.collect(0, [None], 0)
