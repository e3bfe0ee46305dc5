"""state_dict / load_state_dict: exact round trips through torch.save and
``torch.load(weights_only=True)``, and strict key checks."""

from __future__ import annotations

import pytest
import torch

from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import TensorDictKeyError
from rlbricks.tensordict import assert_close

DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int8,
    torch.uint8,
    torch.bool,
    torch.complex64,
]


def make_td() -> TensorDict:
    g = torch.Generator().manual_seed(0)
    source = {
        f"x_{str(dt).split('.')[-1]}": (torch.randn(3, 2, 2, generator=g) * 10).to(dt)
        for dt in DTYPES
    }
    source["next"] = {"reward": torch.randn(3, 2, 1, generator=g), "empty": {}}
    source["traj"] = TensorDict(
        {"t": torch.arange(3 * 2 * 4).reshape(3, 2, 4)}, batch_size=[3, 2, 4]
    )
    return TensorDict(source, batch_size=[3, 2])


def assert_identical(a: TensorDict, b: TensorDict) -> None:
    assert a.batch_size == b.batch_size
    assert a.device == b.device
    assert list(a.keys(True)) == list(b.keys(True))
    for key in a.keys(True):
        va, vb = a[key], b[key]
        if isinstance(va, TensorDict):
            assert isinstance(vb, TensorDict), key
            assert va.batch_size == vb.batch_size, key
        else:
            assert va.dtype == vb.dtype, key
            assert va.shape == vb.shape, key
            assert torch.equal(va, vb), key


def save_load(obj, tmp_path):
    path = tmp_path / "state.pt"
    torch.save(obj, path)
    return torch.load(path, weights_only=True)


def test_state_dict_holds_only_plain_values():
    sd = make_td().state_dict()

    def walk(d):
        assert type(d) is dict
        for v in d.values():
            if isinstance(v, dict):
                walk(v)
            else:
                assert isinstance(v, (torch.Tensor, list, str, type(None))), type(v)

    walk(sd)


def test_round_trip_through_file(tmp_path):
    td = make_td()
    loaded = save_load(td.state_dict(), tmp_path)
    out = TensorDict().load_state_dict(loaded)
    assert_identical(out, td)
    assert out["next", "empty"].batch_size == td.batch_size
    assert out["traj"].batch_size == torch.Size([3, 2, 4])
    assert_close(out, td)


def test_round_trip_into_existing_td(tmp_path):
    td = make_td()
    target = td.apply(torch.zeros_like)
    res = target.load_state_dict(save_load(td.state_dict(), tmp_path))
    assert res is target
    assert_identical(target, td)


def test_round_trip_keeps_device_and_zero_dim(tmp_path):
    td = TensorDict({"a": torch.tensor(3.0), "n": {"b": torch.zeros(5)}}, device="cpu")
    out = TensorDict().load_state_dict(save_load(td.state_dict(), tmp_path))
    assert out.device == torch.device("cpu")
    assert_identical(out, td)


def test_round_trip_empty_batch_zero(tmp_path):
    td = TensorDict({"a": torch.zeros(0, 3)}, batch_size=[0])
    out = TensorDict().load_state_dict(save_load(td.state_dict(), tmp_path))
    assert_identical(out, td)


def test_round_trip_non_contiguous_and_expanded(tmp_path):
    base = TensorDict({"a": torch.arange(6.0).reshape(2, 3)}, batch_size=[2, 3])
    td = base.permute(1, 0).expand(4, 3, 2)
    out = TensorDict().load_state_dict(save_load(td.state_dict(), tmp_path))
    assert_identical(out, td)


def test_loaded_values_are_independent_copies(tmp_path):
    td = make_td()
    out = TensorDict().load_state_dict(save_load(td.state_dict(), tmp_path))
    out["next", "reward"].add_(1)
    assert not torch.equal(out["next", "reward"], td["next", "reward"])


def test_strict_mismatch_names_keys():
    td = make_td()
    other = TensorDict({"x": torch.zeros(3), "next": {"reward": torch.zeros(3, 1)}}, [3])
    with pytest.raises(TensorDictKeyError) as info:
        td.load_state_dict(other.state_dict())
    msg = str(info.value)
    assert "missing" in msg
    assert "unexpected" in msg
    assert "'x'" in msg
    assert "x_float32" in msg
    assert td.batch_size == torch.Size([3, 2])  # unchanged after the failure
    assert "x_float32" in td.keys()


def test_strict_false_accepts_mismatch():
    td = make_td()
    other = TensorDict({"x": torch.zeros(3)}, [3])
    td.load_state_dict(other.state_dict(), strict=False)
    assert list(td.keys()) == ["x"]
    assert td.batch_size == torch.Size([3])


def test_not_a_state_dict():
    with pytest.raises(KeyError, match="__batch_size"):
        TensorDict().load_state_dict({"a": torch.zeros(2)})
