"""Composite: specs of TensorDicts, nested by key."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import OneHot
from rlbricks.specs import SpecError
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


def env_spec(batch=()):
    """An env-like spec: observation, action, and a nested next."""
    b = tuple(batch)
    return Composite(
        observation=Unbounded(shape=(*b, 3)),
        action=Categorical(4, shape=b),
        next={
            "reward": Bounded(low=-1.0, high=1.0, shape=(*b, 1)),
            "done": Binary(shape=(*b, 1), dtype=torch.bool),
        },
        shape=b,
    )


# --------------------------------------------------------------------------- #
# construction and validation
# --------------------------------------------------------------------------- #
def test_construction_forms_are_equal():
    a = Composite({"obs": Unbounded(), "next": {"r": Unbounded()}})
    b = Composite(obs=Unbounded(), next=Composite(r=Unbounded()))
    c = Composite({"obs": Unbounded(), ("next", "r"): Unbounded()})
    assert a == b == c
    assert isinstance(a["next"], Composite)


def test_duplicate_key_between_dict_and_keywords():
    with pytest.raises(SpecError, match="'obs' given both in specs and as a keyword"):
        Composite({"obs": Unbounded()}, obs=Unbounded())


def test_non_spec_value_is_a_type_error():
    with pytest.raises(TypeError, match="key 'obs' must map to a spec"):
        Composite(obs=torch.zeros(3))


def test_shape_mismatch_names_key_and_both_shapes():
    with pytest.raises(SpecError) as info:
        Composite(obs=Unbounded(shape=(3,)), shape=(4,))
    message = str(info.value)
    assert "key 'obs'" in message
    assert "[3]" in message
    assert "Composite shape [4]" in message


def test_nested_shape_mismatch_names_the_full_key():
    with pytest.raises(SpecError, match=r"key \('next', 'reward'\) has shape \[1\], .*\[4\]"):
        Composite(next={"reward": Unbounded(shape=(1,))}, shape=(4,))
    spec = Composite(shape=(4,))
    with pytest.raises(SpecError, match=r"key \('a', 'b', 'c'\) has shape \[2\]"):
        spec["a", "b", "c"] = Unbounded(shape=(2,))
    assert spec.keys() == []  # a failed set leaves the spec unchanged


def test_device_moves_sub_specs():
    spec = Composite(obs=Unbounded(), device="cpu")
    assert spec.device == torch.device("cpu")
    assert Composite(obs=Unbounded()).device is None
    meta = Composite(obs=Unbounded(), next={"x": Unbounded()}, device="meta")
    assert meta["obs"].device.type == "meta"
    assert meta["next", "x"].device.type == "meta"
    meta["y"] = Unbounded()
    assert meta["y"].device.type == "meta"


def test_shape_setter():
    spec = Composite(obs=Unbounded(shape=(4, 3)), next={"r": Unbounded(shape=(4, 1))})
    spec.shape = (4,)
    assert spec.shape == (4,)
    assert spec["next"].shape == (4,)
    with pytest.raises(
        SpecError, match=r"cannot set the Composite shape to \[5\]: key 'obs' has shape \[4, 3\]"
    ):
        spec.shape = (5,)
    assert spec.shape == (4,)
    with pytest.raises(SpecError, match=r"key \('next', 'r'\) has shape \[4, 1\]"):
        spec.shape = (4, 3)
    assert spec.ndim == 1


def test_dtype_property():
    assert Composite(a=Unbounded(), next={"b": Unbounded()}).dtype is torch.float32
    assert env_spec().dtype is None
    assert Composite().dtype is None


# --------------------------------------------------------------------------- #
# mapping interface
# --------------------------------------------------------------------------- #
def test_getitem_nested_and_missing():
    spec = env_spec()
    assert spec["next", "reward"] == Bounded(low=-1.0, high=1.0, shape=(1,))
    assert spec[("next", ("done",))] == spec["next"]["done"]
    with pytest.raises(KeyError) as info:
        spec["obs"]
    message = str(info.value)
    assert "key 'obs' not found in Composite" in message
    assert "'observation'" in message
    assert "('next', 'reward')" in message
    assert isinstance(info.value, SpecError)
    with pytest.raises(KeyError, match="not found"):
        spec["observation", "x"]  # through a leaf
    with pytest.raises(TypeError, match="a Composite key is a str"):
        spec[0]  # type: ignore[index]
    with pytest.raises(TypeError):
        spec[()]  # type: ignore[index]


def test_setitem_creates_parents_and_validates():
    spec = Composite(shape=(2,))
    spec["next", "obs"] = Unbounded(shape=(2, 3))
    assert spec["next"].shape == (2,)
    spec["info"] = {"x": Binary(shape=(2, 1))}
    assert isinstance(spec["info"], Composite)
    with pytest.raises(SpecError, match=r"'next', 'obs'\) holds a Unbounded, not a Composite"):
        spec["next", "obs", "z"] = Unbounded(shape=(2,))


def test_delitem_contains_len_iter():
    spec = env_spec()
    assert "observation" in spec
    assert ("next", "done") in spec
    assert ("next", "nope") not in spec
    assert 3 not in spec
    assert ("observation", "x") not in spec
    assert len(spec) == 3
    assert list(spec) == ["observation", "action", "next"]
    del spec["next", "done"]
    assert ("next", "done") not in spec
    del spec["action"]
    assert spec.keys() == ["observation", "next"]
    with pytest.raises(KeyError, match="available keys"):
        del spec["action"]
    with pytest.raises(KeyError):
        del spec["observation", "x"]
    with pytest.raises(KeyError, match=r"key \('nope', 'x'\) not found"):
        del spec["nope", "x"]


def test_keys_items_values():
    spec = env_spec()
    assert spec.keys() == ["observation", "action", "next"]
    assert spec.keys(include_nested=True) == [
        "observation",
        "action",
        "next",
        ("next", "reward"),
        ("next", "done"),
    ]
    assert spec.keys(include_nested=True, leaves_only=True) == [
        "observation",
        "action",
        ("next", "reward"),
        ("next", "done"),
    ]
    assert spec.keys(leaves_only=True) == ["observation", "action"]
    items = dict(spec.items(include_nested=True, leaves_only=True))
    assert items["next", "reward"] is spec["next", "reward"]
    assert len(spec.values(include_nested=True)) == 5


# --------------------------------------------------------------------------- #
# values
# --------------------------------------------------------------------------- #
def test_rand_and_zero_build_tensordicts():
    spec = env_spec(batch=(4,))
    td = spec.rand((2,))
    assert isinstance(td, TensorDict)
    assert td.batch_size == (2, 4)
    assert td["next"].batch_size == (2, 4)
    assert td["observation"].shape == (2, 4, 3)
    assert td["next", "done"].dtype is torch.bool
    assert spec.is_in(td)
    zero = spec.zero()
    assert zero.batch_size == (4,)
    assert not zero["observation"].any()


def test_rand_nested_composite_with_longer_shape():
    spec = Composite(agents=Composite(pos=Unbounded(shape=(3, 2)), shape=(3,)))
    td = spec.rand((5,))
    assert td.batch_size == (5,)
    assert td["agents"].batch_size == (5, 3)
    assert spec.is_in(td)


def test_is_in():
    spec = env_spec()
    td = spec.rand()
    td["extra"] = torch.zeros(())
    assert spec.is_in(td)  # extra keys are fine
    assert spec.is_in(td.to_dict())  # plain dicts too
    td["action"] = torch.tensor(9)
    assert not spec.is_in(td)
    del td["action"]
    assert not spec.is_in(td)  # missing key
    assert not spec.is_in(torch.zeros(3))
    assert not spec.is_in(None)
    td = spec.rand()
    td["next"] = {"reward": torch.zeros(1)}  # nested key missing
    assert not spec.is_in(td)
    assert Composite().is_in(TensorDict({}))


def test_assert_is_in_reports_every_offending_key():
    spec = env_spec()
    td = spec.rand()
    td["action"] = torch.tensor(1.0)  # wrong dtype
    td["observation"] = torch.zeros(4)  # wrong shape
    td["next", "reward"] = torch.tensor([3.0])  # out of range
    del td["next", "done"]  # missing
    with pytest.raises(SpecError) as info:
        spec.assert_is_in(td)
    message = str(info.value)
    assert message.startswith("4 entries do not match the Composite spec:")
    assert "'observation': expected shape [*batch, 3] (ending with [3]), got [4]" in message
    assert "'action': expected dtype torch.int64, got torch.float32" in message
    assert "('next', 'reward'): values out of range: expected every value in [-1.0, 1.0]" in message
    assert "(min 3.0, max 3.0)" in message
    assert "('next', 'done'): missing; the value holds the keys ['reward']" in message


def test_assert_is_in_wrong_types():
    spec = env_spec()
    with pytest.raises(SpecError, match="expected a TensorDict, got Tensor"):
        spec.assert_is_in(torch.zeros(3))
    td = spec.rand()
    del td["next"]
    td["next"] = torch.zeros(())
    with pytest.raises(SpecError, match="'next': expected a TensorDict, got Tensor"):
        spec.assert_is_in(td)
    spec.assert_is_in(spec.rand((3,)))


def test_project():
    spec = env_spec()
    td = TensorDict(
        {
            "observation": torch.zeros(3, dtype=torch.float64),
            "action": torch.tensor(7.6),
            "next": {"reward": torch.tensor([-4.0]), "done": torch.tensor([0.9])},
            "extra": torch.arange(3),
        }
    )
    out = spec.project(td)
    assert spec.is_in(out)
    assert out["action"].item() == 3
    assert out["next", "reward"].item() == -1.0
    assert out["next", "done"].item() is True
    assert out["observation"].dtype is torch.float32
    assert torch.equal(out["extra"], torch.arange(3))  # untouched
    assert td["action"].item() == pytest.approx(7.6)  # input untouched
    with pytest.raises(KeyError, match=r"lacks the keys \['observation'\]"):
        spec.project(td.exclude("observation"))
    with pytest.raises(TypeError, match="expects a TensorDict"):
        spec.project({"a": 1})  # type: ignore[arg-type]


def test_encode():
    spec = env_spec()
    td = spec.encode(
        {
            "observation": np.zeros((8, 3)),
            "action": np.arange(8) % 4,
            "next": {"reward": np.linspace(-1, 1, 8), "done": np.zeros(8, dtype=bool)},
        }
    )
    assert td.batch_size == (8,)
    assert td["next", "reward"].shape == (8, 1)
    assert td["observation"].dtype is torch.float32
    assert spec.is_in(td)
    single = spec.encode(
        {"observation": [1, 2, 3], "action": 2, "next": {"reward": 0.5, "done": True}}
    )
    assert single.batch_size == ()
    assert spec.is_in(single)
    with pytest.raises(KeyError, match=r"missing \['action', 'next'\], unknown \['obs'\]"):
        spec.encode({"observation": np.zeros(3), "obs": 1})
    with pytest.raises(TypeError, match="expects a dict"):
        spec.encode([1, 2])
    assert Composite(shape=(2,)).encode({}).batch_size == (2,)


def _to_numpy(tree):
    return {k: _to_numpy(v) if isinstance(v, dict) else v.numpy() for k, v in tree.items()}


def test_encode_round_trips_rand():
    spec = env_spec(batch=(2,))
    td = spec.rand((3,))
    back = spec.encode(_to_numpy(td.to_dict()))
    assert back.batch_size == td.batch_size
    for key in spec.keys(include_nested=True, leaves_only=True):
        assert torch.equal(back[key], td[key])


# --------------------------------------------------------------------------- #
# new specs
# --------------------------------------------------------------------------- #
def test_expand():
    spec = env_spec()
    big = spec.expand(4)
    assert big == env_spec(batch=(4,))
    assert big.expand(2, 4)["next", "done"].shape == (2, 4, 1)
    with pytest.raises(SpecError, match="must end with the spec shape"):
        big.expand(3)


def test_to_and_clone():
    spec = env_spec()
    assert spec.to("cpu").device == torch.device("cpu")
    cpu = spec.to("cpu")
    assert cpu.to("cpu") is cpu
    clone = spec.clone()
    assert clone == spec
    assert clone["next", "reward"] is not spec["next", "reward"]
    clone["new"] = Unbounded()
    assert "new" not in spec


def test_eq():
    assert env_spec() == env_spec()
    assert env_spec() != env_spec(batch=(1,))
    other = env_spec()
    other["next", "done"] = Binary(1)
    assert other != env_spec()
    assert Composite(a=Unbounded()) != Composite(a=Unbounded(), device="cpu")
    assert Composite(a=Unbounded()) != Unbounded()
    assert Composite(a=Unbounded(), b=Unbounded()) == Composite(b=Unbounded(), a=Unbounded())


def test_select_exclude_share_leaves_not_structure():
    spec = env_spec()
    sel = spec.select("action", ("next", "done"))
    assert sel.keys(include_nested=True) == ["action", "next", ("next", "done")]
    assert sel["action"] is spec["action"]
    sel["next", "other"] = Unbounded()
    assert ("next", "other") not in spec
    whole = spec.select("next")
    assert whole["next"] == spec["next"]
    assert whole["next"] is not spec["next"]
    with pytest.raises(KeyError, match="available keys"):
        spec.select("nope")
    exc = spec.exclude("observation", ("next", "reward"), "missing")
    assert exc.keys(include_nested=True, leaves_only=True) == ["action", ("next", "done")]
    assert ("next", "reward") in spec


def test_update_merges_nested():
    spec = Composite(next={"obs": Unbounded()})
    out = spec.update({"action": OneHot(2), "next": {"reward": Unbounded(shape=(1,))}})
    assert out is spec
    assert spec.keys(include_nested=True, leaves_only=True) == [
        ("next", "obs"),
        ("next", "reward"),
        "action",
    ]
    spec.update(Composite(action=Categorical(2)))
    assert spec["action"] == Categorical(2)
    spec.update({("next", "obs"): Unbounded(shape=(2,))})
    assert spec["next", "obs"].shape == (2,)


def test_empty_and_is_empty():
    spec = env_spec(batch=(2,))
    empty = spec.empty()
    assert empty.shape == (2,)
    assert empty.keys() == []
    assert empty.is_empty()
    assert not spec.is_empty()
    assert Composite(a={"b": {}}).is_empty()


def test_repr_is_nested_and_readable():
    text = repr(Composite(obs=Unbounded(shape=(2,)), next={"r": Unbounded()}))
    assert text == (
        "Composite(\n"
        "    obs: Unbounded(shape=[2], dtype=torch.float32, device=cpu),\n"
        "    next: Composite(\n"
        "        r: Unbounded(shape=[], dtype=torch.float32, device=cpu),\n"
        "        shape=[], device=None),\n"
        "    shape=[], device=None)"
    )
