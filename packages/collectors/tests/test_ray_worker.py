"""CollectorWorker, run in this process: what each Ray actor of a RayCollector does."""

from __future__ import annotations

import functools
import sys

import pytest
import torch
from torch import nn

from rlbricks.collectors import CollectorError
from rlbricks.collectors import SyncDataCollector
from rlbricks.collectors._ray_worker import CollectorWorker
from rlbricks.collectors._ray_worker import import_ray
from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import TensorDictModule
from rlbricks.tensordict import TensorDict

ENV = functools.partial(CountingEnv, max_steps=3, batch_size=[2])


class IndexLinear(nn.Linear):
    """``Linear(1, 1)`` whose output is rounded to an int64 index: CountingEnv's action spec
    is ``Categorical(2)``, and env.step refuses float actions for it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).round().long()


def constant_policy(value: float) -> TensorDictModule:
    """Writes ``action = value`` (0 or 1) whatever the observation (CountingEnv's reward is
    the action)."""
    linear = IndexLinear(1, 1)
    nn.init.zeros_(linear.weight)
    nn.init.constant_(linear.bias, value)
    return TensorDictModule(linear, in_keys=["observation"], out_keys=["action"])


class ListBuffer:
    """A stand-in replay buffer: remembers what it was extended with."""

    def __init__(self) -> None:
        self.rows: list[TensorDict] = []

    def extend(self, data: TensorDict) -> None:
        self.rows.append(data)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(
        ImportError, match=r'RayCollector needs ray: pip install "rlbricks-collectors\[ray\]"'
    ):
        import_ray()


def test_batches_match_a_sync_collector_with_remapped_ids() -> None:
    worker = CollectorWorker(2, 3, ENV, constant_policy(0.0), 8, {})
    reference = SyncDataCollector(ENV, constant_policy(0.0), frames_per_batch=8)
    assert worker.layout() == (8, (2,), 4, worker.token)
    assert worker.incarnation() == worker.token
    for _ in range(3):
        batch, info = worker.collect(0, [None], 0)
        expected = reference.next()
        assert batch is not None
        ids = expected["collector", "traj_ids"]
        expected["collector", "traj_ids"] = ids * 3 + 2  # local id i of worker 2 of 3
        expected["collector", "worker"] = torch.full(expected.batch_size, 2)
        assert (batch == expected).all()
        assert info == {"frames": 8, "next_id": reference._traj.next_id}


def test_new_weights_are_loaded_once_per_version() -> None:
    worker = CollectorWorker(0, 1, ENV, constant_policy(0.0), 4, {})
    batch, _ = worker.collect(0, [None], 0)
    assert batch is not None
    assert bool((batch["next", "reward"] == 0).all())
    weights = constant_policy(1.0).state_dict()
    batch, _ = worker.collect(1, [weights], 0)
    assert batch is not None
    assert bool((batch["next", "reward"] == 1).all())
    assert worker.version == 1
    batch, _ = worker.collect(1, [constant_policy(0.0).state_dict()], 0)  # same version: kept
    assert batch is not None
    assert bool((batch["next", "reward"] == 1).all())


def test_a_restarted_worker_continues_the_trajectory_numbering() -> None:
    first = CollectorWorker(1, 2, ENV, None, 8, {})
    batch, info = first.collect(0, [None], 0)
    assert batch is not None
    # the replacement of a crashed worker gets the next local id of its predecessor
    second = CollectorWorker(1, 2, ENV, None, 8, {})
    again, _ = second.collect(0, [None], info["next_id"])
    assert again is not None
    before = set(batch["collector", "traj_ids"].unique().tolist())
    after = set(again["collector", "traj_ids"].unique().tolist())
    assert not before & after
    assert min(after) == info["next_id"] * 2 + 1
    assert all(i % 2 == 1 for i in before | after)


def test_remote_buffer_mode_extends_after_postproc() -> None:
    buffer = ListBuffer()

    def postproc(td: TensorDict) -> TensorDict:
        td.set("doubled", td.get("observation") * 2)
        return td

    worker = CollectorWorker(0, 2, ENV, None, 8, {}, buffer, postproc)
    batch, info = worker.collect(0, [None], 0)
    assert batch is None
    assert info["frames"] == 8
    [rows] = buffer.rows
    assert rows.batch_size == (8,)  # [2 sub-envs, 4 steps] flattened
    assert torch.equal(rows["doubled"], rows["observation"] * 2)
    assert rows["collector", "traj_ids"].tolist() == [0, 0, 0, 4, 2, 2, 2, 6]


def test_seed_state_and_shutdown_are_the_collectors() -> None:
    worker = CollectorWorker(0, 1, ENV, None, 4, {"max_frames_per_traj": 2})
    assert worker.set_seed(5) == 7
    worker.collect(0, [None], 0)
    state = worker.state_dict()
    assert state["frames"] == 4
    other = CollectorWorker(0, 1, ENV, None, 4, {})
    other.load_state_dict(state)
    assert other.collector.frames == 4
    assert not other.fresh  # the loaded counter is not shifted again
    worker.shutdown()
    assert worker.collector.env.is_closed


def test_weights_for_a_policy_without_weights_are_refused() -> None:
    worker = CollectorWorker(0, 1, ENV, None, 4, {})
    with pytest.raises(CollectorError, match=r"its policy is a NoneType, not an nn\.Module"):
        worker.collect(1, [{"weight": torch.zeros(1)}], 0)


def test_torch_seeds_make_random_actions_differ_between_workers() -> None:
    def actions(seed: int) -> torch.Tensor:
        worker = CollectorWorker(0, 1, ENV, None, 64, {}, torch_seed=seed)
        batch, _ = worker.collect(0, [None], 0)
        assert batch is not None
        return batch["action"]

    assert torch.equal(actions(1), actions(1))
    assert not torch.equal(actions(1), actions(2))
