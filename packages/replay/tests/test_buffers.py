"""ReplayBuffer: writing, sampling, iteration, transforms, collate, prefetch and errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rlbricks.replay import EmptyBufferError
from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import ReplayArgumentError
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import ReplayError
from rlbricks.replay import ReplayIndexError
from rlbricks.replay import ReplayTypeError
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import SliceSampler
from rlbricks.replay import StructureError
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.tensordict import TensorDict


def steps(start: int, n: int) -> dict:
    """A nested dict of tensors whose every value is derived from the row id."""
    ids = torch.arange(start, start + n)
    return {
        "id": ids,
        "obs": ids[:, None].float().expand(n, 3).clone(),
        "next": {"reward": ids[:, None].float() / 10, "done": (ids % 3 == 0)[:, None]},
    }


def check_rows(batch: TensorDict) -> None:
    """Every sampled row is a row that was written (its values match its id)."""
    ids = batch["id"].float()
    assert torch.equal(batch["obs"], ids[:, None].expand(-1, 3))
    assert torch.allclose(batch["next", "reward"].view(-1), ids / 10)
    assert torch.equal(batch["next", "done"].view(-1), batch["id"] % 3 == 0)


STORAGES = {
    "list": lambda tmp: ListStorage(20),
    "lazy": lambda tmp: LazyTensorStorage(20),
    "memmap": lambda tmp: LazyMemmapStorage(20, scratch_dir=tmp / "mm"),
}


@pytest.fixture(params=list(STORAGES))
def rb(request, tmp_path):
    return ReplayBuffer(storage=STORAGES[request.param](tmp_path), batch_size=5)


# --------------------------------------------------------------------------- #
# writing and sampling
# --------------------------------------------------------------------------- #
def test_extend_returns_indices_and_len(rb):
    assert rb.extend(steps(0, 6)).tolist() == list(range(6))
    assert len(rb) == 6
    assert rb.add({k: v[0] for k, v in TensorDict(steps(6, 1), batch_size=[1]).items()}) == 6
    assert len(rb) == 7


def test_sample_default_and_explicit_batch_size(rb):
    rb.extend(steps(0, 12))
    batch = rb.sample()
    assert isinstance(batch, TensorDict)
    assert batch.batch_size == (5,)
    check_rows(batch)
    assert rb.sample(batch_size=7).batch_size == (7,)
    assert rb.sample(7)["obs"].shape == (7, 3)


def test_sample_return_info_index_points_at_the_rows(rb):
    rb.extend(steps(0, 12))
    batch, info = rb.sample(return_info=True)
    assert set(info) == {"index"}
    assert info["index"].dtype == torch.long
    assert info["index"].shape == (5,)
    assert torch.equal(batch["id"], info["index"])  # ids were written at their own rows


def test_accepts_tensordict(rb):
    rb.extend(TensorDict(steps(0, 4), batch_size=[4]))
    check_rows(rb.sample())


def test_accepts_tensors():
    rb = ReplayBuffer(storage=LazyTensorStorage(8), batch_size=3)
    rb.extend(torch.arange(5.0)[:, None].expand(5, 2))
    rb.add(torch.tensor([9.0, 9.0]))
    batch = rb.sample()
    assert batch.shape == (3, 2)
    assert set(batch[:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0, 9.0}


def test_list_storage_holds_any_object():
    rb = ReplayBuffer(storage=ListStorage(10), batch_size=4)
    obj = object()
    rb.extend(["a", "b"])
    rb.add(obj)
    batch = rb.sample()
    assert isinstance(batch, list)
    assert len(batch) == 4
    assert all(x in ("a", "b", obj) for x in batch)


def test_list_storage_add_dict_of_objects():
    """Bug: add() turns every dict into a TensorDict, so ListStorage refuses dicts of objects."""
    rb = ReplayBuffer(storage=ListStorage(10), batch_size=2)
    rb.add({"name": "x", "value": 1})
    assert rb.sample() == [{"name": "x", "value": 1}] * 2


def test_default_collate_of_list_storage():
    rb = ReplayBuffer(storage=ListStorage(10), batch_size=3)
    rb.extend([torch.zeros(2), torch.ones(2)])
    assert rb.sample().shape == (3, 2)
    rb = ReplayBuffer(storage=ListStorage(10), batch_size=3)
    rb.extend([{"a": torch.zeros(2)}, {"a": torch.ones(2)}])
    stacked = rb.sample()
    assert isinstance(stacked, TensorDict)
    assert stacked["a"].shape == (3, 2)


def test_custom_collate_fn():
    seen = []

    def collate(rows):
        seen.append(rows)
        return len(rows)

    rb = ReplayBuffer(storage=ListStorage(10), batch_size=3, collate_fn=collate)
    rb.extend(["a", "b"])
    assert rb.sample() == 3
    assert len(seen[0]) == 3


def test_tensor_storages_are_not_collated():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=3)
    rb.extend(steps(0, 4))
    assert isinstance(rb.sample(), TensorDict)


def test_wrap_keeps_the_last_rows(rb):
    for start in range(0, 50, 7):
        rb.extend(steps(start, 7))
    assert len(rb) == 20
    stored = rb.sample(200)["id"]
    assert set(stored.tolist()) <= set(range(36, 56))
    assert rb.writer.cursor == 56 % 20


# --------------------------------------------------------------------------- #
# iteration, empty, transforms, prefetch
# --------------------------------------------------------------------------- #
def test_iter_with_random_sampler_never_ends(rb):
    rb.extend(steps(0, 3))
    batches = list(itertools.islice(rb, 7))
    assert len(batches) == 7
    assert all(b.batch_size == (5,) for b in batches)


def test_iter_without_replacement_is_one_epoch():
    rb = ReplayBuffer(
        storage=LazyTensorStorage(10), sampler=SamplerWithoutReplacement(), batch_size=4
    )
    rb.extend(steps(0, 10))
    ids = torch.cat([b["id"] for b in rb]).tolist()
    assert sorted(ids) == list(range(10))


def test_empty(rb):
    rb.extend(steps(0, 6))
    rb.empty()
    assert len(rb) == 0
    with pytest.raises(EmptyBufferError):
        rb.sample()
    assert rb.extend(steps(100, 2)).tolist() == [0, 1]
    assert set(rb.sample(10)["id"].tolist()) <= {100, 101}


def test_transforms_run_in_order():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=2, transform=lambda x: x + 1)
    rb.extend(torch.zeros(4))
    assert rb.sample().tolist() == [1.0, 1.0]
    assert rb.append_transform(lambda x: x * 10) is rb
    assert rb.sample().tolist() == [10.0, 10.0]
    rb.insert_transform(0, lambda x: x - 3)
    assert rb.sample().tolist() == [-20.0, -20.0]  # ((0 - 3) + 1) * 10
    assert len(rb.transforms) == 3
    listed = ReplayBuffer(
        storage=LazyTensorStorage(4), batch_size=1, transform=[torch.neg, torch.exp]
    )
    listed.extend(torch.ones(1))
    assert torch.allclose(listed.sample(), torch.exp(torch.tensor([-1.0])))


def test_transform_does_not_change_the_storage():
    rb = ReplayBuffer(storage=LazyTensorStorage(4), batch_size=4)
    rb.extend(steps(0, 4))
    rb.append_transform(lambda td: td.set("obs", td["obs"] * 0))
    rb.sample()
    assert rb.storage.get(torch.arange(4))["obs"].sum() > 0


def test_prefetch_serves_batches_and_drops_stale_ones():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=4, prefetch=3)
    rb.extend(torch.zeros(10))
    for _ in range(5):
        assert rb.sample().tolist() == [0.0] * 4
    rb.extend(torch.ones(10))  # overwrites every row: no prefetched zero may come out
    for _ in range(5):
        assert rb.sample().tolist() == [1.0] * 4
    _batch, info = rb.sample(return_info=True)
    assert info["index"].shape == (4,)
    rb.append_transform(lambda x: x * 2)
    assert rb.sample().tolist() == [2.0] * 4


def test_prefetch_on_empty_buffer_raises():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=4, prefetch=2)
    with pytest.raises(EmptyBufferError):
        rb.sample()


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
def test_empty_buffer_error(rb):
    with pytest.raises(EmptyBufferError, match="add or extend") as err:
        rb.sample()
    assert isinstance(err.value, ReplayError)
    assert isinstance(err.value, IndexError)


def test_default_buffer_is_list_storage():
    rb = ReplayBuffer()
    assert isinstance(rb.storage, ListStorage)
    with pytest.raises(ValueError, match="batch_size"):
        rb.sample()
    with pytest.raises(ValueError, match="batch size"):
        next(iter(rb))


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -2}, {"prefetch": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        ReplayBuffer(**kwargs)


@pytest.mark.parametrize(
    ("batch_size", "kind"),
    [(-3, ValueError), (0, ValueError), (2.5, TypeError), ("4", TypeError), (True, TypeError)],
)
def test_bad_batch_size_is_named(batch_size, kind):
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    rb.extend(torch.zeros(4, 2))
    match = rf"^ReplayBuffer.sample: batch_size must be a positive int, got {batch_size!r}"
    with pytest.raises(ReplayError, match=match) as err:
        rb.sample(batch_size)
    assert isinstance(err.value, kind)
    with pytest.raises(kind, match=match.replace(".sample", r"\(\)")):
        ReplayBuffer(batch_size=batch_size)


def test_integer_like_batch_sizes_are_accepted():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=np.int64(3))
    rb.extend(torch.zeros(4, 2))
    assert rb.sample().shape == (3, 2)
    assert rb.sample(np.int32(2)).shape == (2, 2)
    assert rb.batch_size == 3
    assert type(rb.batch_size) is int


@pytest.mark.parametrize("kind", ["lazy", "memmap"])
def test_missing_and_extra_keys_are_named(kind, tmp_path):
    rb = ReplayBuffer(storage=STORAGES[kind](tmp_path), batch_size=2)
    rb.extend(steps(0, 3))
    data = steps(3, 2)
    del data["next"]["reward"]
    data["extra"] = torch.zeros(2)
    with pytest.raises(
        StructureError, match=r"missing keys \[.*reward.*\], extra keys \['extra'\]"
    ):
        rb.extend(data)
    assert len(rb) == 3


@pytest.mark.parametrize("kind", ["lazy", "memmap"])
@pytest.mark.parametrize("shape", [(2, 4), (2, 3, 1)], ids=["wider", "more_dims"])
def test_wrong_shape_names_the_key(kind, shape, tmp_path):
    rb = ReplayBuffer(storage=STORAGES[kind](tmp_path), batch_size=2)
    rb.extend(steps(0, 3))
    data = steps(3, 2)
    data["obs"] = torch.zeros(shape)
    with pytest.raises(StructureError, match="key 'obs'") as err:
        rb.extend(data)
    assert "(3,)" in str(err.value)
    assert str(tuple(shape[1:])) in str(err.value)


@pytest.mark.parametrize("shape", [(2, 1), (2,)], ids=["singleton", "scalar_rows"])
def test_broadcastable_shape_is_a_mismatch_too(shape):
    """Bug: rows whose shape broadcasts to the stored one are written silently."""
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=2)
    rb.extend(steps(0, 3))
    data = steps(3, 2)
    data["obs"] = torch.zeros(shape)
    with pytest.raises(StructureError, match="'obs'"):
        rb.extend(data)


def test_dtype_that_cannot_be_held():
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    rb.extend({"a": torch.zeros(3, dtype=torch.long)})
    with pytest.raises(StructureError, match=r"'a'.*int64.*float32"):
        rb.extend({"a": torch.full((2,), 1.5)})


def test_tensor_into_tensordict_storage():
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    rb.extend(steps(0, 2))
    with pytest.raises(StructureError, match="TensorDict"):
        rb.extend(torch.zeros(2))


@pytest.mark.parametrize(
    "data",
    [
        TensorDict({"a": torch.zeros(3)}),
        {"a": torch.tensor(1.0)},
        torch.tensor(1.0),
    ],
    ids=["td_no_batch", "dict_of_scalars", "0d_tensor"],
)
def test_extend_needs_a_batch(data):
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    with pytest.raises(ValueError, match="add\\(\\)"):
        rb.extend(data)


def test_extend_with_empty_dict():
    with pytest.raises(ValueError, match="empty dict"):
        ReplayBuffer(storage=LazyTensorStorage(4)).extend({})


def test_update_priority_needs_a_prioritized_sampler():
    rb = ReplayBuffer(storage=LazyTensorStorage(4))
    rb.extend(torch.zeros(2))
    with pytest.raises(TypeError, match="PrioritizedSampler"):
        rb.update_priority(0, 1.0)


def test_repr_names_the_components():
    text = repr(ReplayBuffer(storage=LazyTensorStorage(4), batch_size=3))
    assert "LazyTensorStorage" in text
    assert "RandomSampler" in text
    assert "RoundRobinWriter" in text
    assert "batch_size=3" in text


# --------------------------------------------------------------------------- #
# rb[index]: the stored rows, without sampling (issue 21)
# --------------------------------------------------------------------------- #
def test_getitem_reads_rows_in_storage_order(rb):
    rb.extend(steps(0, 23))  # a ring of 20 rows: rows 0..2 hold ids 20..22
    assert rb[0]["id"].item() == 20
    assert rb[3]["id"].item() == 3
    assert rb[-1]["id"].item() == 19  # the last row of the storage, not the newest one
    assert rb[[0, 5]]["id"].tolist() == [20, 5]
    assert rb[(1, 2)]["id"].tolist() == [21, 22]
    assert rb[range(4, 6)]["id"].tolist() == [4, 5]
    assert rb[18:]["id"].tolist() == [18, 19]
    assert rb[torch.tensor([7, -20])]["id"].tolist() == [7, 20]
    assert rb[:]["id"].shape == (20,)
    check_rows(rb[:])


def test_getitem_of_a_filling_buffer_sees_valid_rows_only(rb):
    rb.extend(steps(0, 6))
    assert rb[-1]["id"].item() == 5
    assert rb[:]["id"].tolist() == list(range(6))
    mask = torch.tensor([True, False] * 3)
    assert rb[mask]["id"].tolist() == [0, 2, 4]
    with pytest.raises(ReplayIndexError, match=r"row 6 is out of range.*0 \.\. 5"):
        rb[6]
    with pytest.raises(ReplayIndexError, match="row 9"):
        rb[torch.tensor([0, 9])]


@pytest.mark.parametrize("index", [0, slice(0, 2), [0, 1]], ids=repr)
def test_getitem_gives_copies(rb, index):
    rb.extend(steps(0, 4))
    rows = rb[index]
    rows["obs"].mul_(0)
    assert rb[0]["obs"].tolist() == [0.0] * 3  # (row 0 is id 0: its obs are zeros anyway)
    assert rb[1]["obs"].tolist() == [1.0] * 3
    check_rows(rb[:])


def test_getitem_does_not_touch_the_sampler():
    rb = ReplayBuffer(
        storage=LazyTensorStorage(10), sampler=SamplerWithoutReplacement(), batch_size=4
    )
    rb.extend(steps(0, 10))
    rb.sample()  # an epoch under way
    state = rb.sampler.state_dict()
    rb[:]
    rb[[1, 2]]
    after = rb.sampler.state_dict()
    assert torch.equal(after["order"], state["order"])
    assert after["pos"] == state["pos"]


def test_getitem_of_plain_tensors_and_objects():
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    rb.extend(torch.arange(6.0))
    assert rb[2].item() == 2.0
    assert rb[1:3].tolist() == [1.0, 2.0]
    objects = ReplayBuffer(storage=ListStorage(10))
    objects.extend(["a", "b", "c"])
    assert objects[1] == "b"
    assert objects[[2, 0]] == ["c", "a"]


def test_getitem_collates_and_transforms_like_a_sample():
    rb = ReplayBuffer(storage=ListStorage(10), transform=lambda x: x * 10)
    rb.extend([torch.ones(2), torch.zeros(2)])
    got = rb[[0, 1]]
    assert got.shape == (2, 2)  # stacked by the default collate of a ListStorage
    assert got.tolist() == [[10.0, 10.0], [0.0, 0.0]]


def test_getitem_of_a_tensordict_buffer_has_no_sampling_keys():
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(10), batch_size=2
    )
    rb.extend(steps(0, 5))
    assert sorted(rb[[0, 1]].keys()) == ["id", "next", "obs"]
    assert sorted(rb.sample().keys()) == ["_weight", "id", "index", "next", "obs"]


def test_getitem_errors():
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    with pytest.raises(EmptyBufferError):
        rb[0]
    rb.extend(steps(0, 3))
    with pytest.raises(ReplayTypeError, match="str"):
        rb["obs"]
    with pytest.raises(ReplayTypeError):
        rb[[0.5]]


# --------------------------------------------------------------------------- #
# iteration without a batch size (issue 21)
# --------------------------------------------------------------------------- #
def test_iterating_without_a_batch_size_names_the_fix():
    """TorchRL raises too ("Cannot iterate over the replay buffer. Batch_size was not
    specified"); ours raises at ``iter(rb)``, before any loop starts."""
    rb = ReplayBuffer(storage=LazyTensorStorage(10))
    rb.extend(steps(0, 4))
    with pytest.raises(ReplayArgumentError, match=r"batch size.*batch_size=") as err:
        iter(rb)
    assert isinstance(err.value, ValueError)
    with pytest.raises(ReplayArgumentError):
        for _ in rb:
            pass


def test_iteration_with_a_batch_size_set_later_by_load():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=2)
    rb.extend(steps(0, 4))
    plain = ReplayBuffer(storage=LazyTensorStorage(10))
    plain.load_state_dict(rb.state_dict())
    assert next(iter(plain)).batch_size == (2,)


# --------------------------------------------------------------------------- #
# pin_memory (issue 21)
# --------------------------------------------------------------------------- #
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


@without_cuda
def test_pin_memory_without_cuda_does_nothing():
    rb = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=2, pin_memory=True)
    assert rb.pin_memory is False
    rb.extend(steps(0, 4))
    check_rows(rb.sample())
    check_rows(rb[:])


@needs_cuda
@pytest.mark.parametrize("prefetch", [None, 2])
def test_pin_memory_pins_samples(prefetch):
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(10), batch_size=2, pin_memory=True, prefetch=prefetch
    )
    assert rb.pin_memory is True
    rb.extend(steps(0, 4))
    sample = rb.sample()
    assert all(leaf.is_pinned() for leaf in sample.values(True, True))
    assert all(leaf.is_pinned() for leaf in rb[[0, 1]].values(True, True))
    assert not ReplayBuffer(storage=LazyTensorStorage(4), batch_size=2).pin_memory


@pytest.mark.parametrize("prefetch", [None, 2])
def test_pin_memory_pins_every_cpu_batch(prefetch, monkeypatch):
    """The wiring, on any machine: with CUDA said to be there, every CPU leaf of a
    sample, of rb[index] and of a prefetched batch goes through Tensor.pin_memory."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    made: list[torch.Tensor] = []  # what the fake Tensor.pin_memory returned

    def fake_pin(self):
        made.append(self.clone())
        return made[-1]

    def all_pinned(data) -> bool:
        leaves = list(data.values(True, True)) if isinstance(data, TensorDict) else [data]
        return all(any(leaf is out for out in made) for leaf in leaves)

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(10), batch_size=3, pin_memory=True, prefetch=prefetch
    )
    assert rb.pin_memory is True
    rb.extend(steps(0, 4))
    sample = rb.sample()
    check_rows(sample)
    assert all_pinned(sample)  # "index" included
    assert "index" in sample.keys()
    assert all_pinned(rb[[0, 1]])
    tensors = ReplayBuffer(storage=LazyTensorStorage(10), batch_size=2, pin_memory=True)
    tensors.extend(torch.zeros(4, 2))
    assert all_pinned(tensors.sample())
    assert all_pinned(tensors[0])


def test_pin_memory_must_be_a_bool():
    with pytest.raises(ReplayTypeError, match="pin_memory"):
        ReplayBuffer(pin_memory="yes")


# --------------------------------------------------------------------------- #
# random warm-up steps, then policy steps with more keys (issue 21)
# --------------------------------------------------------------------------- #
def policy_steps(start: int, n: int) -> dict:
    data = steps(start, n)
    data["loc"] = torch.ones(n, 2)
    data["scale"] = torch.full((n, 2), 2.0)
    data["sample_log_prob"] = torch.full((n,), -1.0)
    return data


@pytest.mark.parametrize("kind", ["lazy", "memmap"])
def test_policy_keys_after_random_warmup(kind, tmp_path):
    """The usual off-policy loop: random frames first (observation, action, next...),
    then frames of the policy with its extra keys; both are stored."""
    rb = TensorDictReplayBuffer(storage=STORAGES[kind](tmp_path), batch_size=40)
    rb.extend(steps(0, 8))
    rb.extend(policy_steps(8, 8))
    sample = rb.sample()
    check_rows(sample)
    warm = sample["id"] < 8
    assert torch.equal(sample["loc"][warm], torch.zeros(int(warm.sum()), 2))
    assert torch.equal(sample["loc"][~warm], torch.ones(int((~warm).sum()), 2))
    with pytest.raises(StructureError, match=r"missing keys.*loc.*ExcludeTransform"):
        rb.extend(steps(16, 2))  # frames without the policy's keys, once stored


def test_policy_keys_in_a_list_storage_read_zeros_where_a_row_lacks_them():
    """A ListStorage keeps each row as written; a batch mixing warm-up and policy rows
    gets zeros where a row lacks a key, as a tensor storage would hold them."""
    rb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, batch_size=40)  # a ListStorage
    rb.extend(steps(0, 8))
    rb.extend(policy_steps(8, 8))
    sample = rb.sample()
    check_rows(sample)
    policy = (sample["id"] >= 8).float()
    assert torch.equal(sample["loc"], policy[:, None].expand(40, 2))
    assert torch.equal(sample["sample_log_prob"], -policy)
    assert "loc" not in rb.storage.get(0).keys()  # the stored rows are untouched
    sample["td_error"] = torch.rand(40)
    rb.update_tensordict_priority(sample)


def test_policy_keys_with_slices_and_priorities():
    done = lambda n: (torch.arange(n) % 4 == 3)[:, None]  # noqa: E731 - trajectories of 4 steps
    sliced = TensorDictReplayBuffer(
        storage=LazyTensorStorage(32), sampler=SliceSampler(slice_len=4), batch_size=8
    )
    prioritized = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(32), batch_size=8
    )
    for rb in (sliced, prioritized):
        warm, policy = steps(0, 8), policy_steps(8, 8)
        warm["next"]["done"], policy["next"]["done"] = done(8), done(8)
        rb.extend(warm)
        rb.extend(policy)
        sample = rb.sample()
        assert torch.equal(sample["loc"][:, 0], (sample["id"] >= 8).float())
        sample["td_error"] = torch.rand(8)
        if rb is prioritized:
            rb.update_tensordict_priority(sample)
        else:  # slices never cross a trajectory: the 4 steps share their warm-up status
            assert (sample["id"].view(2, 4) // 4 == sample["id"].view(2, 4)[:, :1] // 4).all()
