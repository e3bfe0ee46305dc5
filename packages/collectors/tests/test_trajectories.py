"""Trajectory ids and split_trajectories against plain-loop references."""

from __future__ import annotations

import pytest
import torch

from rlbricks.collectors import CollectorError
from rlbricks.collectors import SyncDataCollector
from rlbricks.collectors import split_trajectories
from rlbricks.collectors._trajectories import TrajectoryCounter
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict


def _naive(done_batches: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    current, next_id, out = list(range(n)), n, []
    for done in done_batches:
        ids = torch.empty_like(done, dtype=torch.int64)
        for t in range(done.shape[1]):
            ids[:, t] = torch.tensor(current)
            for i in range(n):
                if done[i, t]:
                    current[i], next_id = next_id, next_id + 1
        out.append(ids)
    return out


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("steps", [1, 2, 7])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_counter_matches_a_plain_loop_over_batches(n: int, steps: int, p: float) -> None:
    gen = torch.Generator().manual_seed(n * 100 + steps)
    batches = [torch.rand(n, steps, generator=gen) < p for _ in range(4)]
    counter = TrajectoryCounter(n)
    got = [counter.ids(done) for done in batches]
    for ours, ref in zip(got, _naive(batches, n)):
        assert torch.equal(ours, ref)
    ids = torch.cat(got, dim=1)
    assert counter.next_id == n + int(torch.cat(batches, 1).sum())
    # an id never appears in two sub-envs
    for value in ids.unique():
        assert len({int(i) for i in (ids == value).nonzero()[:, 0]}) == 1


def test_counter_checks_the_number_of_sub_envs() -> None:
    with pytest.raises(CollectorError, match="sub-envs"):
        TrajectoryCounter(2).ids(torch.zeros(3, 4, dtype=torch.bool))


def test_collector_ids_with_a_two_dim_env_batch() -> None:
    collector = SyncDataCollector(CountingEnv(max_steps=2, batch_size=[2, 3]), frames_per_batch=24)
    batch = collector.next()
    assert batch.batch_size == (2, 3, 4)
    ids = batch["collector", "traj_ids"].reshape(6, 4)
    done = batch["next", "done"].reshape(6, 4)
    assert torch.equal(ids, _naive([done], 6)[0])


def _naive_split(batch: TensorDict) -> dict[int, list[float]]:
    flat = batch.reshape(-1, batch.batch_size[-1])
    out: dict[int, list[float]] = {}
    for i in range(flat.batch_size[0]):
        for t in range(flat.batch_size[1]):
            key = int(flat["collector", "traj_ids"][i, t])
            out.setdefault(key, []).append(float(flat["x"][i, t, 0]))
    return out


def test_split_trajectories_matches_a_plain_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    done = torch.rand(2, 3, 9, generator=gen) < 0.3
    ids = TrajectoryCounter(6).ids(done.reshape(6, 9)).reshape(2, 3, 9)
    batch = TensorDict(
        {"x": torch.randn(2, 3, 9, 1, generator=gen), "collector": {"traj_ids": ids}},
        batch_size=[2, 3, 9],
    )
    out = split_trajectories(batch)
    reference = _naive_split(batch)
    assert out.batch_size == (len(reference), max(len(v) for v in reference.values()))
    for row, key in enumerate(sorted(reference)):
        length = len(reference[key])
        assert out["collector", "mask"][row].tolist() == [True] * length + [False] * (
            out.batch_size[1] - length
        )
        assert out["x"][row, :length, 0].tolist() == pytest.approx(reference[key])
        assert bool((out["x"][row, length:] == 0).all())
        assert bool((out["collector", "traj_ids"][row, :length] == key).all())


def test_split_trajectories_needs_ids_and_a_time_dim() -> None:
    with pytest.raises(CollectorError, match="traj_ids"):
        split_trajectories(TensorDict({"x": torch.zeros(2, 3)}, batch_size=[2, 3]))
    with pytest.raises(CollectorError, match="time dim"):
        split_trajectories(TensorDict({"x": torch.zeros(())}))
