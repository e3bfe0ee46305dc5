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
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import ReplayError
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import StructureError
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
