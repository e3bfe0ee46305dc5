"""Storages: ListStorage, TensorStorage, LazyTensorStorage, LazyMemmapStorage."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from rlbricks.replay import EmptyBufferError
from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import ReplayArgumentError
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import ReplayIndexError
from rlbricks.replay import ReplayTypeError
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


# --------------------------------------------------------------------------- #
# later data with new keys: new columns (issue 21)
# --------------------------------------------------------------------------- #
def policy_batch(start: int, n: int) -> TensorDict:
    """What a policy adds to the steps of random warm-up: its distribution and log-prob."""
    data = batch(start, n)
    data["loc"] = torch.full((n, 2), 1.0)
    data["scale"] = torch.full((n, 2), 2.0)
    data["sample_log_prob"] = torch.full((n,), -3.0, dtype=torch.float64)
    data["next", "value"] = torch.ones(n, 1)
    return data


NEW_KEYS = ["loc", "scale", "sample_log_prob", ("next", "value")]


def test_new_keys_become_columns_zero_in_earlier_rows(tstorage):
    """TorchRL's LazyTensorStorage does the same (tensordict creates the missing keys
    with zeros when writing rows of a TensorDict that has more keys)."""
    tstorage.set(torch.arange(3), batch(0, 3))  # random warm-up steps
    tstorage.set(torch.arange(3, 5), policy_batch(3, 2))  # policy steps
    assert len(tstorage) == 5
    got = tstorage.get(torch.arange(5))
    assert got["id"].tolist() == [0, 1, 2, 3, 4]
    assert got["loc"].tolist() == [[0.0, 0.0]] * 3 + [[1.0, 1.0]] * 2
    assert got["scale"][3:].eq(2.0).all()
    assert got["sample_log_prob"].dtype == torch.float64  # the dtype of the new data
    assert got["sample_log_prob"].tolist() == [0.0] * 3 + [-3.0] * 2
    assert got["next", "value"].view(-1).tolist() == [0.0] * 3 + [1.0] * 2
    assert tstorage.data["loc"].shape == (8, 2)  # a whole column: every row, valid or not
    tstorage.set(torch.arange(5, 7), policy_batch(5, 2))  # same keys again: the usual path
    assert tstorage.get(torch.arange(7))["loc"][5:].eq(1.0).all()


def test_new_keys_from_one_added_row(tstorage):
    tstorage.set(torch.arange(2), batch(0, 2))
    tstorage.set(2, policy_batch(2, 1)[0])
    assert tstorage.get(torch.arange(3))["loc"].tolist() == [[0.0, 0.0]] * 2 + [[1.0, 1.0]]


def test_data_without_a_stored_key_names_it_and_the_fix(tstorage):
    tstorage.set(torch.arange(3), policy_batch(0, 3))
    warmup = batch(3, 2)
    with pytest.raises(StructureError, match=r"missing keys \[.*'loc'.*\]") as err:
        tstorage.set(torch.arange(3, 5), warmup)
    message = str(err.value)
    for key in NEW_KEYS:
        assert str(key) in message
    assert "exclude" in message
    assert "ExcludeTransform" in message
    assert len(tstorage) == 3  # nothing written


def test_new_keys_do_not_skip_the_checks_of_stored_keys(tstorage):
    tstorage.set(torch.arange(3), batch(0, 3))
    data = policy_batch(3, 2)
    data["obs"] = torch.zeros(2, 4)
    with pytest.raises(StructureError, match="key 'obs'"):
        tstorage.set(torch.arange(3, 5), data)
    assert "loc" not in tstorage.data.keys()  # a refused write adds no column
    data = policy_batch(3, 2)
    data["id"] = torch.full((2,), 0.5)
    with pytest.raises(StructureError, match=r"'id'.*int64.*float32"):
        tstorage.set(torch.arange(3, 5), data)
    assert "loc" not in tstorage.data.keys()


def test_new_keys_of_rows_with_a_batch_shape():
    storage = LazyTensorStorage(6)
    steps = TensorDict({"obs": torch.zeros(2, 4, 3)}, batch_size=[2, 4])  # rows of 4 steps
    storage.set(torch.arange(2), steps)
    data = TensorDict({"obs": torch.ones(2, 4, 3), "extra": torch.ones(2, 4, 5)}, [2, 4])
    storage.set(torch.arange(2, 4), data)  # a new column of 4-step rows
    assert storage.data["extra"].shape == (6, 4, 5)
    flat = TensorDict(
        {"obs": torch.ones(2, 4, 3), "extra": torch.ones(2, 4, 5), "bad": torch.ones(2, 5)}, [2]
    )
    with pytest.raises(StructureError, match="rows of shape"):
        storage.set(torch.arange(4, 6), flat)
    assert "bad" not in storage.data.keys()
    assert len(storage) == 4


def test_new_columns_of_a_memmap_storage_are_files_too(tmp_path):
    storage = LazyMemmapStorage(8, scratch_dir=tmp_path / "rows")
    storage.set(torch.arange(3), batch(0, 3))
    storage.set(torch.arange(3, 5), policy_batch(3, 2))
    assert storage.data.is_memmap()
    reopened = TensorDict.load_memmap(tmp_path / "rows")  # meta.json lists the new keys
    assert reopened["loc"][:5].tolist() == [[0.0, 0.0]] * 3 + [[1.0, 1.0]] * 2
    assert reopened["id"][:5].tolist() == [0, 1, 2, 3, 4]
    storage.set(torch.tensor([0]), policy_batch(9, 1))  # the old files are still the rows
    assert reopened["id"][0].item() == 9


def test_new_columns_survive_dumps_and_loads(tmp_path):
    storage = LazyTensorStorage(8)
    storage.set(torch.arange(3), batch(0, 3))
    storage.set(torch.arange(3, 5), policy_batch(3, 2))
    storage.dumps(tmp_path / "d")
    fresh = LazyTensorStorage(8)
    fresh.loads(tmp_path / "d")
    assert_close(fresh.get(torch.arange(5)), storage.get(torch.arange(5)))


# --------------------------------------------------------------------------- #
# indices: ints, slices, lists, ranges, tuples, tensors (issue 21)
# --------------------------------------------------------------------------- #
ALL_STORAGES = {**TENSOR_STORAGES, "list": lambda n, tmp: ListStorage(n)}


def ids_of(got) -> list[int]:
    if isinstance(got, list):
        return [int(row["id"]) for row in got]
    return got["id"].tolist() if got.batch_dims else [int(got["id"])]


@pytest.mark.parametrize("kind", list(ALL_STORAGES))
@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (2, [2]),
        (-1, [4]),  # the last valid row, not the last allocated one
        (np.int64(3), [3]),
        (torch.tensor(1), [1]),
        ([4, 0, 0], [4, 0, 0]),
        ((1, 3), [1, 3]),
        ([-1, -5], [4, 0]),
        (range(1, 4), [1, 2, 3]),
        (slice(None), [0, 1, 2, 3, 4]),  # the valid rows
        (slice(1, None, 2), [1, 3]),
        (slice(None, None, -2), [4, 2, 0]),
        (slice(3, 100), [3, 4]),
        (torch.tensor([3, 1]), [3, 1]),
        (torch.tensor([True, False, False, True, True]), [0, 3, 4]),
        ([], []),
    ],
)
def test_get_accepts_every_kind_of_index(kind, index, expected, tmp_path):
    storage = ALL_STORAGES[kind](8, tmp_path)
    storage.set(torch.arange(5), batch(0, 5))
    assert ids_of(storage.get(index)) == expected
    assert ids_of(storage[index]) == expected


@pytest.mark.parametrize("kind", list(ALL_STORAGES))
@pytest.mark.parametrize(
    "index", [[0, 1, 2], (0, 1, 2), range(3), slice(0, 3), torch.arange(3)], ids=repr
)
def test_set_accepts_every_kind_of_index(kind, index, tmp_path):
    storage = ALL_STORAGES[kind](8, tmp_path)
    storage.set(index, batch(10, 3))
    assert len(storage) == 3
    assert ids_of(storage.get([0, 1, 2])) == [10, 11, 12]


@pytest.mark.parametrize("kind", list(ALL_STORAGES))
def test_set_with_no_rows_writes_nothing(kind, tmp_path):
    storage = ALL_STORAGES[kind](8, tmp_path)
    storage.set(range(2), batch(0, 2))
    storage.set([], batch(0, 0))
    storage.set(slice(5, 5), batch(0, 0))
    assert len(storage) == 2


@pytest.mark.parametrize("kind", list(ALL_STORAGES))
def test_bad_indices_are_named(kind, tmp_path):
    storage = ALL_STORAGES[kind](8, tmp_path)
    storage.set(range(5), batch(0, 5))
    for index, row in [(5, "5"), (-6, "-6"), ([0, 7], "7"), (range(3, 6), "5")]:
        with pytest.raises(ReplayIndexError, match=rf"row {row} is out of range.*0 \.\. 4"):
            storage.get(index)
    with pytest.raises(ReplayIndexError, match="bool mask"):
        storage.get(torch.tensor([True, False]))
    for index in ([0.5], ["a"], "0", 1.0, True, torch.tensor([0.0])):
        with pytest.raises(ReplayTypeError):
            storage.get(index)
    for index, row in [(8, "8"), (-1, "-1"), ([2, 9], "9")]:
        with pytest.raises(ReplayIndexError, match=rf"row {row} is out of range.*max_size 8"):
            storage.set(index, batch(0, 1)[0] if isinstance(index, int) else batch(0, 2))
    assert len(storage) == 5


# --------------------------------------------------------------------------- #
# device (issue 21)
# --------------------------------------------------------------------------- #
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


@pytest.mark.parametrize("data", ["tensordict", "dict", "tensor"])
def test_rows_live_on_the_given_device(data):
    """The meta device stands for a GPU: it allocates and moves like one, without data."""
    storage = LazyTensorStorage(10, device="meta")
    assert storage.device == torch.device("meta")
    rows = {"tensordict": batch(0, 3), "dict": batch(0, 3).to_dict(), "tensor": torch.ones(3, 2)}
    storage.set(torch.arange(3), rows[data])
    stored = storage.data
    leaves = [stored] if data == "tensor" else list(stored.values(True, True))
    assert all(leaf.device.type == "meta" for leaf in leaves)
    storage.set(torch.arange(3, 5), rows[data][:2] if data != "dict" else batch(3, 2))
    assert len(storage) == 5
    got = storage.get(torch.tensor([0, 4]))
    assert (got if data == "tensor" else got["obs"]).device.type == "meta"


def test_leaves_on_another_device_are_moved_when_the_write_needs_it(monkeypatch):
    """A TensorDict without a device is written as it is; when its leaves are elsewhere
    than the rows and the write fails (as CUDA indexing does), they are moved and the
    write is retried. The check below stands in for CUDA's device check."""
    attempts = []
    original = TensorDict.__setitem__

    def strict(self, index, value):
        rows = next(iter(self.values(True, True))).device
        attempts.append(all(leaf.device == rows for leaf in value.values(True, True)))
        if not attempts[-1]:
            raise RuntimeError("Expected all tensors to be on the same device")
        original(self, index, value)

    storage = LazyTensorStorage(10, device="meta")
    storage.set(torch.arange(2), batch(0, 2))  # allocation: the rows are on meta
    monkeypatch.setattr(TensorDict, "__setitem__", strict)
    storage.set(torch.arange(2, 4), batch(2, 2))  # CPU leaves, no device on the TensorDict
    assert attempts == [False, True]
    assert len(storage) == 4
    attempts.clear()
    storage.set(torch.arange(4, 6), batch(4, 2).to("meta"))  # already in place: one write
    assert attempts == [True]


@pytest.mark.parametrize("device", [None, "auto"])
def test_auto_device_is_the_first_datas(device):
    storage = LazyTensorStorage(10, device=device)
    assert storage.device is None  # not known before the first write
    storage.set(torch.arange(2), batch(0, 2))
    assert storage.device == torch.device("cpu")
    assert "device=cpu" in repr(storage)


def test_tensor_storage_moves_the_given_rows_to_its_device():
    storage = TensorStorage(batch(0, 4).apply(torch.zeros_like), device="meta")
    assert storage.data["obs"].device.type == "meta"
    assert TensorStorage(batch(0, 4)).device == torch.device("cpu")


@pytest.mark.parametrize("device", ["gpu0", 3.5, "cuda:x"])
def test_unknown_device_is_named(device):
    with pytest.raises(ReplayArgumentError, match=r"device=.*'auto'"):
        LazyTensorStorage(10, device=device)


@without_cuda
def test_cuda_device_without_a_gpu_is_refused_at_once():
    with pytest.raises(ReplayArgumentError, match=r"device='cuda'.*torch.cuda.is_available"):
        LazyTensorStorage(10, device="cuda")


@pytest.mark.parametrize("device", ["meta", "cuda"])
def test_memmap_rows_stay_on_the_cpu(device):
    with pytest.raises(ReplayArgumentError, match=r"append_transform|cannot be used"):
        LazyMemmapStorage(10, device=device)
    for device in ("cpu", "auto", None):
        assert LazyMemmapStorage(10, device=device).device == torch.device("cpu")


@needs_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_rows_on_a_gpu(device):
    storage = LazyTensorStorage(10, device=device)
    assert storage.device == torch.device("cuda", 0)
    storage.set(torch.arange(3), batch(0, 3))  # written from the CPU
    assert storage.data["obs"].device.type == "cuda"
    storage.set(torch.arange(3, 5), batch(3, 2).to("cuda"))
    assert storage.get(torch.arange(5))["id"].tolist() == [0, 1, 2, 3, 4]


@needs_cuda
def test_auto_device_follows_gpu_data_and_keeps_it():
    storage = LazyTensorStorage(10, device="auto")
    storage.set(torch.arange(2), batch(0, 2).to("cuda"))
    assert storage.device.type == "cuda"
    storage.set(torch.arange(2, 4), batch(2, 2))  # CPU data goes to the rows' device
    assert storage.get(torch.arange(4))["obs"].device.type == "cuda"
