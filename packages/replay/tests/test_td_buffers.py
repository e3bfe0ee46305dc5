"""TensorDictReplayBuffer, PrioritizedReplayBuffer and TensorDictPrioritizedReplayBuffer."""

from __future__ import annotations

import pytest
import torch

from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import PrioritizedReplayBuffer
from rlbricks.replay import PrioritizedSampler
from rlbricks.replay import SliceSampler
from rlbricks.replay import TensorDictMaxValueWriter
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.tensordict import TensorDict

DONE = ("next", "done")
TRUNC = ("next", "truncated")
IDS = ("collector", "traj_ids")


def rows(n: int, start: int = 0, **extra) -> TensorDict:
    ids = torch.arange(start, start + n)
    td = TensorDict({"id": ids, "obs": ids[:, None].float().expand(n, 2).clone()}, batch_size=[n])
    for key, value in extra.items():
        td[key] = value
    return td


def prb(
    capacity: int = 8, storage=LazyTensorStorage, **kwargs
) -> TensorDictPrioritizedReplayBuffer:
    kwargs.setdefault("batch_size", 6)
    return TensorDictPrioritizedReplayBuffer(
        alpha=1.0, beta=1.0, eps=0.0, storage=storage(capacity), **kwargs
    )


# --------------------------------------------------------------------------- #
# TensorDictReplayBuffer
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("storage", [LazyTensorStorage, ListStorage])
def test_index_is_written_into_the_sample(storage):
    rb = TensorDictReplayBuffer(storage=storage(10), batch_size=5)
    rb.extend(rows(7))
    sample, info = rb.sample(return_info=True)
    assert torch.equal(sample["index"], info["index"])
    assert torch.equal(sample["id"], sample["index"])  # id i was written at row i
    assert sorted(sample.keys()) == ["id", "index", "obs"]
    if storage is LazyTensorStorage:  # the bookkeeping goes into the sample, not the storage
        assert "index" not in rb.storage.get(torch.arange(7)).keys()


def test_tensor_samples_are_left_alone():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=3)
    rb.extend(torch.arange(5))
    sample = rb.sample()
    assert isinstance(sample, torch.Tensor)
    assert sample.shape == (3,)


def test_update_tensordict_priority_needs_the_keys():
    rb = prb()
    rb.extend(rows(4))
    sample = rb.sample()
    with pytest.raises(KeyError, match="td_error"):
        rb.update_tensordict_priority(sample)


def test_custom_priority_key():
    rb = prb(priority_key=("loss", "err"))
    rb.extend(rows(4))
    sample = rb.sample()
    sample["loss", "err"] = torch.full((6,), 3.0)
    rb.update_tensordict_priority(sample)
    assert rb.sampler.priority(sample["index"]).tolist() == [3.0] * 6


# --------------------------------------------------------------------------- #
# priorities
# --------------------------------------------------------------------------- #
def test_tdprb_sample_holds_index_and_weight():
    rb = prb()
    rb.extend(rows(5))
    sample, info = rb.sample(return_info=True)
    assert torch.equal(sample["_weight"], info["_weight"])
    assert sample["_weight"].dtype == torch.float32
    assert sample["_weight"].shape == (6,)
    # every row enters with the same priority: the weights are all 1
    assert torch.allclose(sample["_weight"], torch.ones(6))


def test_update_tensordict_priority_sets_the_sampled_rows():
    rb = prb()
    rb.extend(rows(8))
    torch.manual_seed(0)
    sample = rb.sample()
    sample["td_error"] = torch.arange(1.0, 7.0).requires_grad_()
    rb.update_tensordict_priority(sample)
    expected = dict(zip(sample["index"].tolist(), sample["td_error"].tolist()))  # last wins
    for row, priority in expected.items():
        assert rb.sampler.priority(row).item() == priority


def test_golden_weights_and_frequencies():
    rb = prb(capacity=3, batch_size=30_000)
    rb.extend(rows(3))
    rb.update_priority(torch.arange(3), torch.tensor([1.0, 2.0, 4.0]))
    torch.manual_seed(1)
    sample = rb.sample()
    # w_i = (p_i / p_min) ** -beta with alpha = beta = 1
    golden = torch.tensor([1.0, 0.5, 0.25])
    assert torch.allclose(sample["_weight"], golden[sample["index"]])
    freq = torch.bincount(sample["index"], minlength=3).double() / 30_000
    assert torch.allclose(
        freq, torch.tensor([1 / 7, 2 / 7, 4 / 7], dtype=torch.float64), atol=0.015
    )


def test_initial_priorities_come_from_the_data():
    rb = prb(storage=ListStorage)  # a ListStorage takes rows with and without td_error
    rb.extend(rows(4, td_error=torch.tensor([0.5, 1.0, 2.0, 3.0])))
    assert rb.sampler.priority(torch.arange(4)).tolist() == [0.5, 1.0, 2.0, 3.0]
    rb.extend(rows(2, start=4))  # no td_error: the largest priority so far
    assert rb.sampler.priority(torch.arange(4, 6)).tolist() == [3.0, 3.0]


def test_initial_priorities_with_a_batch_larger_than_the_storage():
    rb = prb(capacity=4)
    rb.extend(rows(6, td_error=torch.tensor([9.0, 9.0, 1.0, 2.0, 3.0, 0.0])))
    # the ring keeps rows 2..5 at (0 + 2 + k) % 4
    assert rb.storage.get(torch.arange(4))["id"].tolist() == [4, 5, 2, 3]
    assert rb.sampler.priority(torch.arange(4)).tolist() == [3.0, 0.0, 1.0, 2.0]


def test_initial_priorities_follow_the_max_value_writer():
    rb = prb(capacity=2, writer=TensorDictMaxValueWriter("s"))
    rb.extend(rows(3, s=torch.tensor([1.0, 5.0, 3.0]), td_error=torch.tensor([10.0, 50.0, 30.0])))
    stored = rb.storage.get(torch.arange(2))
    assert rb.sampler.priority(torch.arange(2)).tolist() == (stored["s"] * 10).tolist()


def test_initial_priority_of_one_added_row():
    rb = prb()
    rb.add({"id": torch.tensor(0), "obs": torch.zeros(2), "td_error": torch.tensor(7.0)})
    rb.add({"id": torch.tensor(1), "obs": torch.zeros(2), "td_error": torch.tensor(2.0)})
    assert rb.sampler.priority(torch.arange(3)).tolist() == [7.0, 2.0, 0.0]


def test_initial_priorities_with_extra_dims_are_reduced():
    rb = prb()
    rb.extend(rows(2, td_error=torch.tensor([[1.0, 4.0], [2.0, 0.5]])))
    assert rb.sampler.priority(torch.arange(2)).tolist() == [4.0, 2.0]  # reduction "max"


def test_tdprb_defaults_to_list_storage():
    rb = TensorDictPrioritizedReplayBuffer(alpha=0.6, beta=0.4, batch_size=3)
    assert isinstance(rb.storage, ListStorage)
    assert rb.sampler.max_capacity == rb.storage.max_size
    rb.extend(rows(4))
    sample = rb.sample()
    assert sorted(sample.keys()) == ["_weight", "id", "index", "obs"]


def test_prioritized_replay_buffer():
    rb = PrioritizedReplayBuffer(
        alpha=1.0, beta=0.5, eps=0.0, storage=LazyTensorStorage(10), batch_size=4
    )
    assert isinstance(rb.sampler, PrioritizedSampler)
    rb.extend(torch.arange(10.0))
    batch, info = rb.sample(return_info=True)
    assert set(info) == {"_weight", "index"}
    assert torch.equal(batch, info["index"].float())
    rb.update_priority(torch.arange(10), torch.tensor([0.0] * 9 + [1.0]))
    assert rb.sample(50).tolist() == [9.0] * 50  # priority 0 rows are never drawn
    rb.update_priority(3, 2.0)  # int index, float priority
    assert rb.sampler.priority(3).item() == 2.0
    rb.sampler.beta = 0.0
    assert torch.equal(rb.sample(return_info=True)[1]["_weight"], torch.ones(4))


def test_prioritized_empty_resets_priorities():
    rb = prb()
    rb.extend(rows(4, td_error=torch.tensor([5.0, 1.0, 1.0, 1.0])))
    rb.empty()
    rb.extend(rows(2, td_error=torch.tensor([2.0, 0.5])))
    rb.extend(rows(1, td_error=torch.tensor([1.5])))
    assert rb.sampler.priority(torch.arange(4)).tolist() == [2.0, 0.5, 1.5, 0.0]
    rb.empty()
    rb.update_priority(torch.arange(1), torch.tensor([0.0]))
    assert rb.sampler.priority(torch.arange(4)).tolist() == [0.0] * 4


def test_prioritized_empty_restarts_the_max_priority():
    rb = prb(storage=ListStorage)
    rb.extend(rows(4, td_error=torch.tensor([5.0, 1.0, 1.0, 1.0])))
    rb.empty()
    rb.extend(rows(2))
    assert rb.sampler.priority(torch.arange(4)).tolist() == [1.0, 1.0, 0.0, 0.0]


# --------------------------------------------------------------------------- #
# slice markers
# --------------------------------------------------------------------------- #
def trajectories(with_truncated: bool = True) -> TensorDict:
    """Two trajectories of 10 steps (by trajectory id); done ends both.

    With ``with_truncated``, step 4 also carries a stored truncated (and so done)
    flag; the trajectory ids still define the slices, so a stored flag can fall
    inside a slice and must survive the OR with the slice-end markers.
    """
    done = torch.zeros(20, 1, dtype=torch.bool)
    done[[9, 19]] = True
    td = rows(20)
    td[IDS] = torch.arange(20) // 10
    if with_truncated:
        trunc = torch.zeros(20, 1, dtype=torch.bool)
        trunc[4] = True
        done[4] = True  # done = terminated | truncated
        td[TRUNC] = trunc
    td[DONE] = done
    return td


def slice_buffer() -> TensorDictReplayBuffer:
    return TensorDictReplayBuffer(
        storage=LazyTensorStorage(20),
        sampler=SliceSampler(slice_len=5, traj_key=IDS),
        batch_size=20,
    )


def test_slice_markers_are_ored_into_truncated_and_done():
    rb = slice_buffer()
    rb.extend(trajectories())
    torch.manual_seed(0)
    sample = rb.sample()
    ends = torch.zeros(4, 5, dtype=torch.bool)
    ends[:, -1] = True
    ends = ends.reshape(-1)
    ids = sample["id"]
    stored_trunc = ids == 4
    stored_done = (ids == 4) | (ids == 9) | (ids == 19)
    assert torch.equal(sample[TRUNC].view(-1), ends | stored_trunc)
    assert torch.equal(sample[DONE].view(-1), ends | stored_done)
    assert sample[TRUNC].shape == sample[DONE].shape == (20, 1)
    # the bookkeeping of the slices stays out of the sample
    assert "slice_id" not in sample.keys()
    assert "slice_lengths" not in sample.keys()
    assert torch.equal(sample["index"], ids)
    # the stored flags are untouched
    assert int(rb.storage.column(TRUNC).sum()) == 1
    assert int(rb.storage.column(DONE).sum()) == 3


def test_slice_markers_without_stored_truncated():
    """Bug: without a stored ("next", "truncated") the slice ends are not OR-ed into done."""
    rb = slice_buffer()
    rb.extend(trajectories(with_truncated=False))
    sample = rb.sample()
    ends = torch.zeros(4, 5, dtype=torch.bool)
    ends[:, -1] = True
    assert torch.equal(sample[TRUNC].view(-1), ends.reshape(-1))
    assert bool(sample[DONE].view(4, 5)[:, -1].all())


def test_slices_are_consecutive_rows_of_one_trajectory():
    rb = slice_buffer()
    rb.extend(trajectories())
    sample, info = rb.sample(return_info=True)
    ids = sample["id"].view(4, 5)
    assert torch.equal(ids - ids[:, :1], torch.arange(5).expand(4, 5))
    assert bool(((ids // 10) == (ids[:, :1] // 10)).all())
    assert info["slice_lengths"].tolist() == [5] * 4


def test_short_slices_keep_index_aligned():
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(20),
        sampler=SliceSampler(slice_len=8, strict_length=False),
        batch_size=16,
    )
    data = trajectories()
    del data[IDS]
    data[DONE] = torch.zeros(20, 1, dtype=torch.bool)
    data[DONE][[2, 19]] = True  # a 3-step and a 17-step trajectory
    rb.extend(data)
    torch.manual_seed(0)
    for _ in range(10):
        sample, info = rb.sample(return_info=True)
        n = int(info["slice_lengths"].sum())
        assert sample.batch_size == (n,)
        assert torch.equal(sample["index"], sample["id"])
        assert int(sample[TRUNC][:, 0].sum()) >= len(info["slice_lengths"])


def test_tensordict_prioritized_buffer_is_a_prioritized_buffer():
    from rlbricks.replay import PrioritizedReplayBuffer
    from rlbricks.replay import TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(alpha=0.5, beta=0.5, batch_size=2)
    assert isinstance(rb, PrioritizedReplayBuffer)
    assert rb.sampler.alpha == 0.5


# --------------------------------------------------------------------------- #
# items that are batches themselves: [T] trajectories (issue 21)
# --------------------------------------------------------------------------- #
T = 4


def trajectory_batch(n: int, start: int = 0, **extra) -> TensorDict:
    """``n`` whole trajectories of ``T`` steps, a ``[n, T]`` TensorDict; step t of
    trajectory i has ``step`` 10 i + t."""
    ids = torch.arange(start, start + n)
    step = ids[:, None] * 10 + torch.arange(T)
    td = TensorDict(
        {
            "traj": ids[:, None].expand(n, T).clone(),
            "step": step,
            "obs": step[..., None].float().expand(n, T, 3).clone(),
            "next": {"done": (torch.arange(T) == T - 1).expand(n, T)[..., None].clone()},
        },
        batch_size=[n, T],
    )
    for key, value in extra.items():
        td[key] = value
    return td


@pytest.mark.parametrize("storage", [LazyTensorStorage, LazyMemmapStorage, ListStorage])
def test_sampled_trajectories_keep_their_steps(storage):
    """TorchRL usage: ``rb.extend(td)`` with ``td.batch_size == [N, T]`` stores N items of
    ``[T]`` steps; ``rb.sample(2)`` is ``[2, T]`` and ``"index"`` is repeated over T."""
    rb = TensorDictReplayBuffer(storage=storage(10), batch_size=2)
    rb.extend(trajectory_batch(5))
    assert len(rb) == 5
    for _ in range(5):
        sample, info = rb.sample(2, return_info=True)
        assert sample.batch_size == (2, T)
        assert info["index"].shape == (2,)
        assert torch.equal(sample["index"], info["index"][:, None].expand(2, T))
        assert torch.equal(sample["traj"], sample["index"])  # trajectory i was written at row i
        assert torch.equal(sample["step"], sample["traj"] * 10 + torch.arange(T))
        assert sample["next", "done"].shape == (2, T, 1)


def test_prioritized_trajectories_weights_fit_the_sample():
    rb = prb(capacity=10, batch_size=3)
    rb.extend(trajectory_batch(4))
    rb.update_priority(torch.arange(4), torch.tensor([1.0, 2.0, 4.0, 8.0]))
    torch.manual_seed(0)
    sample = rb.sample()
    assert sample.batch_size == (3, T)
    assert sample["_weight"].shape == (3, T)
    # one weight per trajectory, (p_i / p_min) ** -beta, repeated over its steps
    golden = torch.tensor([1.0, 0.5, 0.25, 0.125])
    assert torch.allclose(sample["_weight"], golden[sample["index"]])


@pytest.mark.parametrize("shape", [(3, T), (3, T, 1)], ids=["per_step", "trailing_1"])
def test_update_tensordict_priority_of_trajectories(shape):
    """One priority per stored trajectory: its steps' values reduced by the sampler's
    reduction ("max", TorchRL's default too); the other trajectories keep theirs."""
    rb = prb(capacity=10, batch_size=3)
    rb.extend(trajectory_batch(6))
    torch.manual_seed(1)
    sample = rb.sample()
    error = torch.rand(shape)
    sample["td_error"] = error
    rb.update_tensordict_priority(sample)
    per_item = error.reshape(3, -1).amax(1)
    expected = dict.fromkeys(range(6), 1.0)  # rows enter with priority 1
    expected.update(zip(sample["index"][:, 0].tolist(), per_item.tolist()))  # the last wins
    got = rb.sampler.priority(torch.arange(6))
    assert torch.allclose(got, torch.tensor([expected[i] for i in range(6)], dtype=got.dtype))


def test_initial_priorities_of_trajectories_are_reduced():
    rb = prb(capacity=10)
    error = torch.tensor([[1.0, 3.0, 0.0, 2.0], [0.5, 0.5, 0.5, 0.25]])
    rb.extend(trajectory_batch(2, td_error=error))
    assert rb.sampler.priority(torch.arange(2)).tolist() == [3.0, 0.5]


def test_reshaped_samples_of_steps_keep_one_priority_per_step():
    """Steps stored one per row: a sample reshaped to [slices, steps] still sends one
    priority per step (only the dims of stored items are reduced)."""
    rb = prb(capacity=8, batch_size=6)
    rb.extend(rows(8))
    torch.manual_seed(2)
    sample = rb.sample().reshape(2, 3)
    sample["td_error"] = torch.arange(1.0, 7.0).reshape(2, 3)
    rb.update_tensordict_priority(sample)
    expected = dict(zip(sample["index"].reshape(-1).tolist(), range(1, 7)))  # last wins
    for row, priority in expected.items():
        assert rb.sampler.priority(row).item() == priority
