"""Storages: ListStorage, TensorStorage, LazyTensorStorage, LazyMemmapStorage."""

from __future__ import annotations

import os

import pytest
import torch

from rlbricks.replay import EmptyBufferError
from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import StructureError
from rlbricks.replay import TensorStorage
from rlbricks.tensordict import MemoryMappedTensor
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close


def batch(start: int, n: int) -> TensorDict:
    """Rows ``start .. start+n-1``: ``id`` plus an obs and a nested bool derived from it."""
    ids = torch.arange(start, start + n)
    return TensorDict(
        {
            "id": ids,
            "obs": ids[:, None].float() * torch.ones(n, 3),
            "next": {"done": (ids % 2 == 0)[:, None]},
        },
        batch_size=[n],
    )


TENSOR_STORAGES = {
    "tensor": lambda n, tmp: TensorStorage(batch(0, n).apply(torch.zeros_like)),
    "lazy": lambda n, tmp: LazyTensorStorage(n),
    "memmap": lambda n, tmp: LazyMemmapStorage(n, scratch_dir=tmp / "scratch"),
    "memmap_anon": lambda n, tmp: LazyMemmapStorage(n),
}


@pytest.fixture(params=list(TENSOR_STORAGES))
def tstorage(request, tmp_path):
    return TENSOR_STORAGES[request.param](8, tmp_path)


# --------------------------------------------------------------------------- #
# the interface contract shared by every storage
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("bad", [0, -1, 1.5, "3"])
@pytest.mark.parametrize("cls", [ListStorage, LazyTensorStorage, LazyMemmapStorage])
def test_max_size_must_be_positive_int(cls, bad):
    """Bug: the tensor storages pass int(max_size) on, so 1.5 becomes 1 and "3" becomes 3."""
    with pytest.raises(ValueError, match="max_size"):
        cls(bad)


def test_tensor_storage_set_get_len(tstorage):
    assert len(tstorage) == 0
    tstorage.set(torch.arange(3), batch(0, 3))
    assert len(tstorage) == 3
    got = tstorage.get(torch.tensor([2, 0]))
    assert got["id"].tolist() == [2, 0]
    assert got["obs"].tolist() == [[2.0] * 3, [0.0] * 3]
    assert got["next", "done"].tolist() == [[True], [True]]
    # __getitem__ is get
    assert tstorage[1]["id"].item() == 1


def test_len_is_highest_written_row_plus_one(tstorage):
    tstorage.set(torch.tensor([4, 5]), batch(4, 2))
    assert len(tstorage) == 6
    tstorage.set(torch.tensor([0]), batch(0, 1))
    assert len(tstorage) == 6  # never shrinks on writes
    tstorage.set(7, batch(7, 1)[0])
    assert len(tstorage) == 8


def test_get_before_any_write_raises_empty(tstorage):
    with pytest.raises(EmptyBufferError):
        tstorage.get(torch.tensor([0]))


def test_empty_forgets_rows(tstorage):
    tstorage.set(torch.arange(4), batch(0, 4))
    tstorage.empty()
    assert len(tstorage) == 0
    with pytest.raises(EmptyBufferError):
        tstorage.get(torch.tensor([0]))
    tstorage.set(torch.arange(2), batch(10, 2))
    assert len(tstorage) == 2
    assert tstorage.get(torch.arange(2))["id"].tolist() == [10, 11]


def test_column_holds_valid_rows_only(tstorage):
    tstorage.set(torch.arange(5), batch(0, 5))
    assert tstorage.column("id").tolist() == [0, 1, 2, 3, 4]
    assert tstorage.column(("next", "done")).shape == (5, 1)


def test_column_unknown_key_lists_available(tstorage):
    tstorage.set(torch.arange(2), batch(0, 2))
    with pytest.raises(KeyError, match="obs"):
        tstorage.column("nope")


def test_state_dict_round_trip(tstorage, tmp_path):
    tstorage.set(torch.arange(5), batch(0, 5))
    fresh = TENSOR_STORAGES["lazy"](8, tmp_path)
    fresh.load_state_dict(tstorage.state_dict())
    assert len(fresh) == 5
    assert_close(fresh.get(torch.arange(5)), tstorage.get(torch.arange(5)))


# --------------------------------------------------------------------------- #
# ListStorage
# --------------------------------------------------------------------------- #
def test_list_storage_holds_any_object():
    storage = ListStorage(4)
    obj = object()
    storage.set(torch.arange(3), ["a", obj, {"k": 1}])
    assert len(storage) == 3
    assert storage.get(torch.tensor([1, 0, 2])) == [obj, "a", {"k": 1}]
    assert storage.get(1) is obj
    storage.set(0, "z")  # overwrite in place
    assert storage[0] == "z"
    assert len(storage) == 3


def test_list_storage_rows_are_written_in_order():
    storage = ListStorage(4)
    with pytest.raises(IndexError, match="in order"):
        storage.set(2, "x")


def test_list_storage_splits_tensor_and_tensordict_batches():
    storage = ListStorage(5)
    storage.set(torch.arange(2), torch.tensor([[1, 2], [3, 4]]))
    storage.set(torch.tensor([2, 3]), batch(0, 2))
    assert storage[1].tolist() == [3, 4]
    assert isinstance(storage[3], TensorDict)
    assert storage[3]["id"].item() == 1


def test_list_storage_empty_and_get_on_empty():
    storage = ListStorage(3)
    with pytest.raises(EmptyBufferError):
        storage.get(torch.tensor([0]))
    storage.set(0, "a")
    storage.empty()
    assert len(storage) == 0


def test_list_storage_has_no_columns():
    storage = ListStorage(3)
    storage.set(0, batch(0, 1)[0])
    with pytest.raises(TypeError, match="TensorStorage"):
        storage.column("id")


def test_list_storage_state_dict_restores_tensordicts_and_objects():
    storage = ListStorage(4)
    storage.set(torch.arange(3), ["a", 3, batch(0, 1)[0]])
    fresh = ListStorage(1)
    fresh.load_state_dict(storage.state_dict())
    assert fresh.max_size == 4
    assert len(fresh) == 3
    assert fresh[0] == "a"
    assert fresh[1] == 3
    assert isinstance(fresh[2], TensorDict)
    assert_close(fresh[2], storage[2])


# --------------------------------------------------------------------------- #
# TensorStorage
# --------------------------------------------------------------------------- #
def test_tensor_storage_max_size_checks():
    assert TensorStorage(torch.zeros(5, 2)).max_size == 5
    assert TensorStorage(torch.zeros(5, 2), max_size=3).max_size == 3
    with pytest.raises(ValueError, match="fewer than max_size"):
        TensorStorage(torch.zeros(5, 2), max_size=6)
    with pytest.raises(ValueError, match="max_size is needed"):
        TensorStorage(None)


def test_tensor_storage_of_a_plain_tensor():
    storage = TensorStorage(torch.zeros(4, 2))
    storage.set(torch.tensor([1, 2]), torch.tensor([[1.0, 1.0], [2.0, 2.0]]))
    assert len(storage) == 3
    assert storage.get(torch.tensor([2, 0])).tolist() == [[2.0, 2.0], [0.0, 0.0]]
    with pytest.raises(TypeError):
        storage.column("a")


def test_tensor_storage_of_tensordicts_refuses_other_data():
    storage = TensorStorage(batch(0, 4).apply(torch.zeros_like))
    with pytest.raises(StructureError, match="TensorDict"):
        storage.set(torch.arange(2), torch.zeros(2))


def test_tensor_storage_writes_into_the_given_tensordict():
    data = batch(0, 4).apply(torch.zeros_like)
    storage = TensorStorage(data)
    storage.set(torch.tensor([3]), batch(9, 1))
    assert data["id"].tolist() == [0, 0, 0, 9]
    assert storage.data is data


def test_tensor_storage_device_moves_rows():
    storage = TensorStorage(batch(0, 4).apply(torch.zeros_like), device="cpu")
    storage.set(torch.arange(2), batch(0, 2))
    assert storage.get(torch.arange(2))["obs"].device == torch.device("cpu")


# --------------------------------------------------------------------------- #
# LazyTensorStorage
# --------------------------------------------------------------------------- #
def test_lazy_allocates_from_the_first_batch():
    storage = LazyTensorStorage(10)
    assert not storage.initialized
    with pytest.raises(EmptyBufferError):
        storage.data
    data = batch(0, 3)
    data["half"] = torch.zeros(3, 2, dtype=torch.float16)
    storage.set(torch.arange(3), data)
    assert storage.initialized
    assert storage.data.batch_size == (10,)
    assert storage.data["obs"].shape == (10, 3)
    assert storage.data["half"].dtype == torch.float16
    assert storage.data["next", "done"].dtype == torch.bool


def test_lazy_allocates_from_one_row():
    storage = LazyTensorStorage(5)
    storage.set(0, {"obs": torch.ones(3), "next": {"r": torch.ones(1)}})
    assert storage.data["obs"].shape == (5, 3)
    assert storage.data["next", "r"].shape == (5, 1)
    assert len(storage) == 1


def test_lazy_tensor_rows():
    storage = LazyTensorStorage(6)
    storage.set(torch.arange(2), torch.ones(2, 4, dtype=torch.int32))
    assert storage.data.shape == (6, 4)
    assert storage.data.dtype == torch.int32


def test_lazy_refuses_python_objects():
    with pytest.raises(StructureError, match="ListStorage"):
        LazyTensorStorage(3).set(torch.arange(2), ["a", "b"])


# --------------------------------------------------------------------------- #
# LazyMemmapStorage
# --------------------------------------------------------------------------- #
def test_memmap_rows_live_in_files_under_scratch_dir(tmp_path):
    storage = LazyMemmapStorage(6, scratch_dir=tmp_path / "rows")
    storage.set(torch.arange(3), batch(0, 3))
    assert storage.data.is_memmap()
    files = {f for _, _, names in os.walk(tmp_path / "rows") for f in names}
    assert "meta.json" in files
    assert "obs.memmap" in files
    reopened = TensorDict.load_memmap(tmp_path / "rows")
    assert reopened["id"][:3].tolist() == [0, 1, 2]
    assert reopened.batch_size == (6,)


def test_memmap_anonymous_is_shared_memory():
    storage = LazyMemmapStorage(4)
    storage.set(torch.arange(2), batch(0, 2))
    assert storage.data.is_memmap()
    assert storage.scratch_dir is None


def test_memmap_of_plain_tensors(tmp_path):
    storage = LazyMemmapStorage(4, scratch_dir=tmp_path)
    storage.set(torch.arange(2), torch.tensor([5.0, 6.0]))
    assert isinstance(storage.data, MemoryMappedTensor)
    assert (tmp_path / "rows.memmap").exists()
    assert storage.get(torch.tensor([1, 0])).tolist() == [6.0, 5.0]


def test_memmap_load_state_dict_keeps_rows_memory_mapped(tmp_path):
    source = LazyTensorStorage(4)
    source.set(torch.arange(3), batch(0, 3))
    storage = LazyMemmapStorage(4, scratch_dir=tmp_path / "mm")
    storage.load_state_dict(source.state_dict())
    assert storage.data.is_memmap()
    assert storage.get(torch.arange(3))["id"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("scratch", [False, True], ids=["anon", "scratch_dir"])
def test_memmap_dumps_loads(tmp_path, scratch):
    """Bug when scratch: dumps refuses rows memory-mapped to another folder."""
    dirs = (tmp_path / "a", tmp_path / "b") if scratch else (None, None)
    storage = LazyMemmapStorage(6, scratch_dir=dirs[0])
    storage.set(torch.arange(4), batch(0, 4))
    storage.dumps(tmp_path / "dump")
    fresh = LazyMemmapStorage(6, scratch_dir=dirs[1])
    fresh.loads(tmp_path / "dump")
    assert len(fresh) == 4
    assert fresh.data.is_memmap()
    assert_close(fresh.get(torch.arange(4)), storage.get(torch.arange(4)))


def test_tensor_storage_dumps_loads_plain_tensor(tmp_path):
    storage = TensorStorage(torch.zeros(5, 2))
    storage.set(torch.arange(3), torch.arange(6.0).reshape(3, 2))
    storage.dumps(tmp_path / "d")
    fresh = TensorStorage(torch.zeros(5, 2))
    fresh.loads(tmp_path / "d")
    assert len(fresh) == 3
    assert torch.equal(fresh.get(torch.arange(3)), torch.arange(6.0).reshape(3, 2))


def test_uninitialized_storage_dumps_loads(tmp_path):
    LazyTensorStorage(4).dumps(tmp_path / "d")
    fresh = LazyTensorStorage(4)
    fresh.loads(tmp_path / "d")
    assert len(fresh) == 0
    assert not fresh.initialized


def test_storages_repr_names_size():
    assert "max_size=3" in repr(ListStorage(3))
    assert "LazyTensorStorage(max_size=3" in repr(LazyTensorStorage(3))
    assert "scratch_dir" in repr(LazyMemmapStorage(3))


def test_buffer_over_memmap_storage_samples_from_files(tmp_path):
    rb = ReplayBuffer(storage=LazyMemmapStorage(10, scratch_dir=tmp_path), batch_size=4)
    rb.extend(batch(0, 7))
    sample = rb.sample()
    assert sample.batch_size == (4,)
    assert torch.equal(sample["obs"][:, 0], sample["id"].float())
