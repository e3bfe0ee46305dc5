"""Construction of TensorDicts: batch sizes, value checks and their messages, devices,
``from_dict`` / ``auto_batch_size_`` and ``to_dict``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.tensordict import BatchSizeError
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import TensorDictKeyError

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _leaves(td: TensorDict) -> dict:
    return dict(td.items(include_nested=True, leaves_only=True))


# --------------------------------------------------------------------------- #
# batch size
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("batch_size", "expected"),
    [
        (None, ()),
        ([], ()),
        (4, (4,)),
        ([4], (4,)),
        ((4, 2), (4, 2)),
        (torch.Size([4, 2]), (4, 2)),
        ([0, 3], (0, 3)),
    ],
)
def test_batch_size_forms(batch_size, expected):
    td = TensorDict({"x": torch.zeros(*expected, 7)}, batch_size=batch_size)
    assert td.batch_size == torch.Size(expected)
    assert isinstance(td.batch_size, torch.Size)
    assert td.shape == td.batch_size
    assert td.batch_dims == td.ndim == td.dim() == len(expected)
    assert td.numel() == torch.Size(expected).numel()
    assert len(td) == (expected[0] if expected else 0)


def test_size_method():
    td = TensorDict(batch_size=[3, 4])
    assert td.size() == torch.Size([3, 4])
    assert td.size(1) == 4
    assert td.size(-2) == 3


def test_empty_construction():
    td = TensorDict()
    assert td.batch_size == torch.Size([])
    assert td.device is None
    assert list(td.keys()) == []
    assert td.is_empty()


@pytest.mark.parametrize("bad", ["ab", 2.5, object()])
def test_bad_batch_size_type(bad):
    with pytest.raises(TypeError, match="batch_size"):
        TensorDict(batch_size=bad)


def test_negative_batch_size_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        TensorDict(batch_size=[-1])


def test_leaf_batch_mismatch_names_key_and_both_shapes():
    with pytest.raises(BatchSizeError) as info:
        TensorDict({"ok": torch.zeros(4, 1), "reward": torch.zeros(3, 1)}, batch_size=[4])
    msg = str(info.value)
    assert "'reward'" in msg
    assert "(3, 1)" in msg
    assert "(4,)" in msg
    assert isinstance(info.value, ValueError)


def test_leaf_with_fewer_dims_than_batch():
    with pytest.raises(BatchSizeError, match=r"'a'.*\(3,\).*\(3, 4\)"):
        TensorDict({"a": torch.zeros(3)}, batch_size=[3, 4])


def test_setitem_batch_mismatch_message():
    td = TensorDict(batch_size=[4])
    with pytest.raises(BatchSizeError) as info:
        td["obs"] = torch.zeros(2, 3)
    msg = str(info.value)
    assert "'obs'" in msg
    assert "(2, 3)" in msg
    assert "(4,)" in msg
    assert "obs" not in td.keys()


def test_nested_leaf_batch_mismatch_names_full_key():
    with pytest.raises(BatchSizeError) as info:
        TensorDict({"next": {"reward": torch.zeros(3, 1)}}, batch_size=[4])
    msg = str(info.value)
    assert "('next', 'reward')" in msg
    assert "(3, 1)" in msg
    assert "(4,)" in msg


def test_nested_set_batch_mismatch_names_full_key():
    td = TensorDict({"next": {"reward": torch.zeros(4, 1)}}, batch_size=[4])
    with pytest.raises(BatchSizeError) as info:
        td["next", "done"] = torch.zeros(2, 1)
    msg = str(info.value)
    assert "('next', 'done')" in msg
    assert "(2, 1)" in msg
    assert "(4,)" in msg


def test_nested_tensordict_batch_mismatch():
    inner = TensorDict({"x": torch.zeros(2)}, batch_size=[2])
    with pytest.raises(BatchSizeError) as info:
        TensorDict({"inner": inner}, batch_size=[3])
    msg = str(info.value)
    assert "'inner'" in msg
    assert "(2,)" in msg
    assert "(3,)" in msg


def test_nested_tensordict_with_fewer_batch_dims_rejected():
    with pytest.raises(BatchSizeError):
        TensorDict({"inner": TensorDict()}, batch_size=[3])


def test_nested_dict_becomes_tensordict_with_parent_batch():
    td = TensorDict({"next": {"obs": torch.zeros(4, 2), "deep": {"r": torch.zeros(4)}}}, [4])
    assert isinstance(td["next"], TensorDict)
    assert td["next"].batch_size == torch.Size([4])
    assert td["next", "deep"].batch_size == torch.Size([4])


def test_nested_tensordict_with_extra_batch_dims_kept():
    inner = TensorDict({"x": torch.zeros(4, 5, 2)}, batch_size=[4, 5])
    td = TensorDict({"inner": inner}, batch_size=[4])
    assert td["inner"].batch_size == torch.Size([4, 5])
    assert td["inner"] is inner


def test_tuple_keys_in_source_create_nested_entries():
    td = TensorDict({("next", "reward"): torch.ones(2, 1), "obs": torch.zeros(2)}, [2])
    assert isinstance(td["next"], TensorDict)
    assert torch.equal(td["next", "reward"], torch.ones(2, 1))


def test_construction_from_tensordict():
    src = TensorDict({"a": torch.zeros(3), "n": {"b": torch.ones(3)}}, [3])
    td = TensorDict(src, batch_size=[3])
    assert set(td.keys(True, True)) == {"a", ("n", "b")}
    assert td["a"] is src["a"]


@pytest.mark.parametrize(
    ("value", "dtype", "shape"),
    [
        (1.5, torch.float32, ()),
        (3, torch.int64, ()),
        (True, torch.bool, ()),
        ([[1, 2], [3, 4]], torch.int64, (2, 2)),
        (np.zeros((2, 3), dtype=np.float64), torch.float64, (2, 3)),
        (np.arange(2, dtype=np.int32), torch.int32, (2,)),
    ],
)
def test_values_converted_to_tensors(value, dtype, shape):
    bs = shape[:1]
    td = TensorDict({"v": value}, batch_size=bs)
    assert isinstance(td["v"], torch.Tensor)
    assert td["v"].dtype == dtype
    assert td["v"].shape == torch.Size(shape)
    assert torch.equal(td["v"], torch.as_tensor(value))


@pytest.mark.parametrize("bad", ["text", object(), None])
def test_unconvertible_value_names_key(bad):
    with pytest.raises(TypeError, match="'weird'"):
        TensorDict({"weird": bad})


def test_values_are_not_copied():
    x = torch.zeros(3, 2)
    td = TensorDict({"x": x}, [3])
    assert td["x"] is x


# --------------------------------------------------------------------------- #
# batch_size setter
# --------------------------------------------------------------------------- #
def test_batch_size_setter_shrink_and_grow():
    td = TensorDict({"a": torch.zeros(3, 4, 2), "n": {"b": torch.zeros(3, 4)}}, [3])
    td.batch_size = [3, 4]
    assert td.batch_size == torch.Size([3, 4])
    assert td["n"].batch_size == torch.Size([3, 4])
    td.batch_size = []
    assert td.batch_size == torch.Size([])
    assert td["n"].batch_size == torch.Size([])


def test_batch_size_setter_error_names_key_and_shapes():
    td = TensorDict({"a": torch.zeros(3, 4), "n": {"b": torch.zeros(3, 5)}}, [3])
    with pytest.raises(BatchSizeError) as info:
        td.batch_size = [3, 4]
    msg = str(info.value)
    assert "('n', 'b')" in msg
    assert "(3, 5)" in msg
    assert "(3, 4)" in msg
    assert td.batch_size == torch.Size([3])  # unchanged after the failure
    assert td["n"].batch_size == torch.Size([3])


def test_batch_size_setter_keeps_nested_extra_dims():
    inner = TensorDict({"x": torch.zeros(3, 4, 5)}, [3, 4, 5])
    td = TensorDict({"inner": inner, "a": torch.zeros(3, 4)}, [3])
    td.batch_size = [3, 4]
    assert td["inner"].batch_size == torch.Size([3, 4, 5])
    with pytest.raises(BatchSizeError):
        td.batch_size = [3, 4, 6]


# --------------------------------------------------------------------------- #
# device
# --------------------------------------------------------------------------- #
def test_device_default_none():
    td = TensorDict({"a": torch.zeros(2)}, [2])
    assert td.device is None
    assert td["a"].device == torch.device("cpu")


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_device_cpu(device):
    td = TensorDict({"a": torch.zeros(2), "n": {"b": torch.ones(2)}}, [2], device=device)
    assert td.device == torch.device("cpu")
    assert td["n"].device == torch.device("cpu")
    td["c"] = torch.zeros(2)
    td["n", "d"] = torch.zeros(2)
    assert all(v.device.type == "cpu" for v in _leaves(td).values())


def test_device_nested_tensordict_takes_parent_device():
    inner = TensorDict({"b": torch.zeros(2)}, [2])
    td = TensorDict({"inner": inner}, [2], device="cpu")
    assert td["inner"].device == torch.device("cpu")


def test_to_cpu_sets_device():
    td = TensorDict({"a": torch.zeros(2), "n": {"b": torch.ones(2)}}, [2])
    moved = td.to("cpu")
    assert moved.device == torch.device("cpu")
    assert moved["n"].device == torch.device("cpu")
    assert moved.cpu().device == torch.device("cpu")
    assert moved.to("cpu") is moved


def test_to_tensordict_device():
    td = TensorDict({"a": torch.zeros(2)}, [2])
    assert td.to(TensorDict(device="cpu")).device == torch.device("cpu")
    assert td.to(TensorDict()) is td


DEVICE_OPS = {
    "index": lambda t: t[1:3],
    "mask": lambda t: t[torch.tensor([True, False, True, False])],
    "reshape": lambda t: t.reshape(2, 2),
    "unbind": lambda t: t.unbind(0)[0],
    "stack": lambda t: torch.stack([t, t]),
    "cat": lambda t: torch.cat([t, t]),
    "apply": lambda t: t.apply(lambda x: x + 1),
    "clone": lambda t: t.clone(),
    "float": lambda t: t.float(),
    "eq": lambda t: t == t,
    "exclude": lambda t: t.exclude("a"),
    "zeros_like": lambda t: torch.zeros_like(t),
}


@pytest.mark.parametrize("op", list(DEVICE_OPS.values()), ids=list(DEVICE_OPS))
def test_device_is_preserved(op):
    td = TensorDict({"a": torch.zeros(4, 3), "n": {"b": torch.zeros(4, 2)}}, [4], device="cpu")
    out = op(td)
    assert out.device == torch.device("cpu")
    assert out["n"].device == torch.device("cpu")


@cuda
def test_device_cuda_construction_moves_values():
    td = TensorDict({"a": torch.zeros(2), "n": {"b": torch.ones(2)}}, [2], device="cuda")
    assert td.device.type == "cuda"
    assert all(v.is_cuda for v in _leaves(td).values())
    td["c"] = torch.zeros(2)
    assert td["c"].is_cuda


@cuda
def test_device_cuda_round_trip():
    td = TensorDict({"a": torch.arange(4.0), "n": {"b": torch.ones(4, 2)}}, [4])
    gpu = td.cuda()
    assert gpu.device.type == "cuda"
    assert gpu["n", "b"].is_cuda
    back = gpu.to("cpu")
    assert back.device == torch.device("cpu")
    assert torch.equal(back["a"], td["a"])
    assert torch.equal(back["n", "b"], td["n", "b"])


# --------------------------------------------------------------------------- #
# from_dict / auto_batch_size_ / to_dict
# --------------------------------------------------------------------------- #
def test_from_dict_infers_longest_common_leading_shape():
    td = TensorDict.from_dict({"a": torch.zeros(3, 4, 2), "b": {"c": torch.zeros(3, 4)}})
    assert td.batch_size == torch.Size([3, 4])
    assert td["b"].batch_size == torch.Size([3, 4])


@pytest.mark.parametrize(
    ("shapes", "expected"),
    [
        ([(3, 4), (3, 5)], (3,)),
        ([(3, 4), (2, 4)], ()),
        ([(3, 4), ()], ()),
        ([(5,)], (5,)),
        ([(2, 3, 4), (2, 3, 4)], (2, 3, 4)),
        ([(2, 0), (2, 0, 1)], (2, 0)),
    ],
)
def test_from_dict_batch_size_golden(shapes, expected):
    source = {f"k{i}": torch.zeros(s) for i, s in enumerate(shapes)}
    assert TensorDict.from_dict(source).batch_size == torch.Size(expected)


def test_from_dict_empty_and_empty_nested():
    assert TensorDict.from_dict({}).batch_size == torch.Size([])
    td = TensorDict.from_dict({"a": torch.zeros(3, 4), "n": {}})
    assert td.batch_size == torch.Size([3, 4])
    assert td["n"].batch_size == torch.Size([3, 4])


def test_from_dict_explicit_batch_size_and_device():
    td = TensorDict.from_dict({"a": torch.zeros(3, 4)}, batch_size=[3], device="cpu")
    assert td.batch_size == torch.Size([3])
    assert td.device == torch.device("cpu")
    with pytest.raises(BatchSizeError):
        TensorDict.from_dict({"a": torch.zeros(3, 4)}, batch_size=[4])


def test_auto_batch_size_in_place():
    td = TensorDict({"a": torch.zeros(3, 4, 2), "n": {"b": torch.zeros(3, 4, 5)}})
    assert td.auto_batch_size_() is td
    assert td.batch_size == torch.Size([3, 4])
    assert td["n"].batch_size == torch.Size([3, 4])


def test_to_dict_nested_and_same_tensors():
    a, b = torch.zeros(3), torch.ones(3, 2)
    td = TensorDict({"a": a, "n": {"b": b}}, [3])
    d = td.to_dict()
    assert type(d) is dict
    assert type(d["n"]) is dict
    assert d["a"] is a
    assert d["n"]["b"] is b
    back = TensorDict.from_dict(d)
    assert back.batch_size == torch.Size([3])
    assert set(back.keys(True, True)) == {"a", ("n", "b")}


def test_missing_key_lists_available_keys():
    td = TensorDict({"obs": torch.zeros(2), "next": {"reward": torch.zeros(2)}}, [2])
    with pytest.raises(TensorDictKeyError) as info:
        td["observation"]
    msg = str(info.value)
    assert "'observation'" in msg
    assert "'obs'" in msg
    assert "('next', 'reward')" in msg
    assert isinstance(info.value, KeyError)


# --------------------------------------------------------------------------- #
# from_trusted / entries: the unchecked fast API of the other bricks
# --------------------------------------------------------------------------- #
def test_from_trusted_adopts_the_dict_without_copy():
    x = torch.zeros(3, 2)
    nxt = TensorDict.from_trusted({"r": torch.ones(3, 1)}, torch.Size([3]))
    source = {"x": x, "next": nxt}
    td = TensorDict.from_trusted(source, torch.Size([3]))
    assert type(td) is TensorDict
    assert td.entries is source
    assert td["x"] is x
    assert td["next", "r"].shape == (3, 1)
    assert td.batch_size == torch.Size([3])
    assert td.device is None
    source["y"] = torch.ones(3)  # handed over: later changes show in the TensorDict
    assert set(td.keys()) == {"x", "next", "y"}


def test_from_trusted_keeps_the_device():
    cpu = torch.device("cpu")
    td = TensorDict.from_trusted({"x": torch.zeros(2)}, torch.Size([2]), cpu)
    assert td.device == cpu
    assert td.clone().device == cpu


def test_from_trusted_checks_nothing():
    # a broken guarantee is not detected at construction (the checked constructor raises)
    bad = {"x": torch.zeros(5)}
    td = TensorDict.from_trusted(bad, torch.Size([2]))
    assert td.entries["x"].shape == (5,)
    with pytest.raises(BatchSizeError):
        TensorDict(bad, batch_size=[2])


def test_from_trusted_equals_the_checked_constructor():
    source = {"a": torch.arange(6).view(2, 3), "n": TensorDict({"b": torch.ones(2)}, [2])}
    checked = TensorDict(dict(source), batch_size=[2])
    trusted = TensorDict.from_trusted(dict(source), torch.Size([2]))
    assert (trusted == checked).all()
    assert trusted.batch_size == checked.batch_size


def test_new_unsafe_is_kept_as_the_package_private_alias():
    td = TensorDict._new_unsafe({"x": torch.zeros(1)}, torch.Size([1]))
    assert type(td) is TensorDict
    assert td.batch_size == torch.Size([1])


def test_entries_is_the_live_one_level_dict():
    td = TensorDict({"a": torch.zeros(2), "next": {"b": torch.ones(2)}}, [2])
    entries = td.entries
    assert entries is td.entries  # no copy
    assert list(entries) == ["a", "next"]  # one level: nested levels are TensorDicts
    assert isinstance(entries["next"], TensorDict)
    assert entries["next"].entries["b"] is td["next", "b"]
    assert entries is td._tensordict


def test_entries_writes_show_and_skip_validation():
    td = TensorDict({"a": torch.zeros(2)}, [2])
    c = torch.arange(2)
    td.entries["c"] = c
    assert td["c"] is c
    del td.entries["a"]
    assert set(td.keys()) == {"c"}
    td.entries["wrong"] = torch.zeros(7)  # not checked: the caller's responsibility
    assert td["wrong"].shape == (7,)
    with pytest.raises(BatchSizeError):
        td["checked"] = torch.zeros(7)


def test_public_batch_size_and_device_are_the_stored_objects():
    # the other bricks read these in hot loops instead of the private slots: no copy
    td = TensorDict({"x": torch.zeros(4)}, [4], device="cpu")
    assert td.batch_size is td._batch_size
    assert td.device is td._device
