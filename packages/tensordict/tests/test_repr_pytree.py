"""repr, pytree registration, is_tensordict, assert_close and unravel_key."""

from __future__ import annotations

import pytest
import torch
import torch.utils._pytree as pytree

from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close
from rlbricks.tensordict import is_tensordict
from rlbricks.tensordict import unravel_key


def make_td() -> TensorDict:
    return TensorDict(
        {
            "obs": torch.zeros(4, 3),
            "next": {"reward": torch.ones(4, 1, dtype=torch.float64)},
            "traj": TensorDict({"t": torch.zeros(4, 2, dtype=torch.int64)}, batch_size=[4, 2]),
        },
        batch_size=[4],
    )


def leaves(td: TensorDict) -> dict:
    return dict(td.items(include_nested=True, leaves_only=True))


# --------------------------------------------------------------------------- #
# repr
# --------------------------------------------------------------------------- #
def test_repr_content():
    text = repr(make_td())
    assert text.startswith("TensorDict(")
    assert "obs: Tensor(shape=(4, 3), dtype=torch.float32, device=cpu)" in text
    assert "reward: Tensor(shape=(4, 1), dtype=torch.float64, device=cpu)" in text
    assert "t: Tensor(shape=(4, 2), dtype=torch.int64, device=cpu)" in text
    assert "batch_size=(4,)" in text
    assert "batch_size=(4, 2)" in text
    assert "device=None" in text
    assert str(make_td()) == text


def test_repr_nesting_is_indented():
    lines = repr(make_td()).splitlines()
    top = next(line for line in lines if "obs:" in line)
    nested = next(line for line in lines if "reward:" in line)
    indent = lambda s: len(s) - len(s.lstrip())  # noqa: E731
    assert indent(nested) > indent(top)
    assert lines[-1].strip() == "device=None)"


def test_repr_empty_and_device():
    assert repr(TensorDict()) == "TensorDict(\n    batch_size=(),\n    device=None)"
    text = repr(TensorDict({"a": torch.zeros(2)}, [2], device="cpu"))
    assert "device=cpu)" in text


def test_repr_does_not_print_values():
    td = TensorDict({"big": torch.full((1000,), 123456.0)}, [1000])
    text = repr(td)
    assert "123456" not in text
    assert len(text) < 200


# --------------------------------------------------------------------------- #
# pytree
# --------------------------------------------------------------------------- #
def test_tree_map():
    td = make_td()
    out = pytree.tree_map(lambda x: x + 1, td)
    assert isinstance(out, TensorDict)
    assert out.batch_size == td.batch_size
    assert isinstance(out["traj"], TensorDict)
    assert out["traj"].batch_size == torch.Size([4, 2])
    for key, leaf in leaves(td).items():
        assert torch.equal(out[key], leaf + 1), key


def test_tree_flatten_round_trip():
    td = make_td()
    flat, spec = pytree.tree_flatten(td)
    assert len(flat) == 3
    assert all(isinstance(x, torch.Tensor) for x in flat)
    assert {id(x) for x in flat} == {id(v) for v in leaves(td).values()}
    back = pytree.tree_unflatten(flat, spec)
    assert isinstance(back, TensorDict)
    assert list(back.keys(True)) == list(td.keys(True))
    assert back.batch_size == td.batch_size
    assert back.device == td.device
    for key, leaf in leaves(td).items():
        assert back[key] is leaf, key


def test_tree_flatten_inside_containers():
    td = make_td()
    tree = {"td": td, "list": [td["obs"], 3]}
    flat, spec = pytree.tree_flatten(tree)
    assert len(flat) == 5
    back = pytree.tree_unflatten(flat, spec)
    assert isinstance(back["td"], TensorDict)
    assert back["list"][1] == 3


def test_tree_flatten_with_path_names_keys():
    td = make_td()
    pairs, _ = pytree.tree_flatten_with_path(td)
    paths = ["".join(str(k) for k in path) for path, _ in pairs]
    assert any("obs" in p for p in paths)
    assert any("next" in p and "reward" in p for p in paths)


def test_tree_leaves_of_empty_tensordict():
    assert pytree.tree_leaves(TensorDict(batch_size=[3])) == []
    out = pytree.tree_map(lambda x: x, TensorDict(batch_size=[3]))
    assert isinstance(out, TensorDict)
    assert out.batch_size == torch.Size([3])


# --------------------------------------------------------------------------- #
# is_tensordict / assert_close
# --------------------------------------------------------------------------- #
def test_is_tensordict():
    assert is_tensordict(TensorDict())
    assert is_tensordict(make_td()["next"])
    assert not is_tensordict({"a": torch.zeros(1)})
    assert not is_tensordict(torch.zeros(1))
    assert not is_tensordict(None)


def test_assert_close_passes():
    td = make_td()
    assert_close(td, td.clone())
    assert_close(td, td.apply(lambda x: x + 1e-9 if x.is_floating_point() else x))
    assert_close(td, td.apply(lambda x: x + 0.01 if x.is_floating_point() else x), atol=0.1, rtol=0)


def test_assert_close_names_the_key():
    td = make_td()
    other = td.clone()
    other["next", "reward"][0] += 1
    with pytest.raises(AssertionError) as info:
        assert_close(td, other)
    assert "('next', 'reward')" in str(info.value).splitlines()[0]
    other = td.clone()
    other["obs"][1, 2] = 5
    with pytest.raises(AssertionError, match="values differ at key 'obs'"):
        assert_close(td, other)


def test_assert_close_dtype_and_nan():
    td = make_td()
    with pytest.raises(AssertionError, match=r"values differ at key \('next', 'reward'\)"):
        assert_close(td, td.float())
    assert_close(td, td.float(), check_dtype=False)
    nan = TensorDict({"a": torch.tensor([float("nan"), 1.0])}, [2])
    assert_close(nan, nan.clone())
    with pytest.raises(AssertionError):
        assert_close(nan, nan.clone(), equal_nan=False)


def test_assert_close_structure_errors():
    td = make_td()
    with pytest.raises(AssertionError, match="batch sizes differ"):
        assert_close(td, td[:2])
    with pytest.raises(AssertionError, match=r"keys differ.*obs"):
        assert_close(td, td.exclude("obs"))
    with pytest.raises(TypeError, match="TensorDicts"):
        assert_close(td, td.to_dict())


# --------------------------------------------------------------------------- #
# unravel_key
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a", "a"),
        (("a",), "a"),
        ((("a",),), "a"),
        (("a", "b"), ("a", "b")),
        (("a", ("b", "c")), ("a", "b", "c")),
        ((("a", "b"), ("c",), "d"), ("a", "b", "c", "d")),
        (("next", ("agent", ("reward",))), ("next", "agent", "reward")),
    ],
)
def test_unravel_key(key, expected):
    assert unravel_key(key) == expected


@pytest.mark.parametrize("key", [1, None, ("a", 1), (), ("a", ()), ["a", "b"]])
def test_unravel_key_errors(key):
    with pytest.raises(TypeError):
        unravel_key(key)


def test_nested_tuple_keys_in_get_and_set():
    td = TensorDict(batch_size=[2])
    td[("a", ("b", "c"))] = torch.zeros(2)
    assert ("a", "b", "c") in td
    assert td.get(("a", ("b",), "c")) is td["a", "b", "c"]
