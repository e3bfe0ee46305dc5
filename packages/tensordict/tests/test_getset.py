"""Keys of a TensorDict: get/set/del/pop, nested keys, in-place writes, update,
select/exclude/rename, flatten_keys/unflatten_keys and the key views."""

from __future__ import annotations

import pytest
import torch

from rlbricks.tensordict import BatchSizeError
from rlbricks.tensordict import KeysView
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import TensorDictKeyError


def make_td() -> TensorDict:
    return TensorDict(
        {
            "obs": torch.arange(6.0).reshape(3, 2),
            "action": torch.tensor([0, 1, 2]),
            "next": {
                "reward": torch.ones(3, 1),
                "done": torch.zeros(3, 1, dtype=torch.bool),
                "agent": {"pos": torch.zeros(3, 2)},
            },
        },
        batch_size=[3],
    )


ALL_KEYS = [
    "obs",
    "action",
    "next",
    ("next", "reward"),
    ("next", "done"),
    ("next", "agent"),
    ("next", "agent", "pos"),
]
LEAVES = ["obs", "action", ("next", "reward"), ("next", "done"), ("next", "agent", "pos")]


# --------------------------------------------------------------------------- #
# get
# --------------------------------------------------------------------------- #
def test_get_str_and_nested():
    td = make_td()
    assert torch.equal(td.get("obs"), td["obs"])
    assert torch.equal(td.get(("next", "reward")), torch.ones(3, 1))
    assert td["next", "agent", "pos"] is td["next"]["agent"]["pos"]
    assert td.get(("next", ("agent", "pos"))) is td["next", "agent", "pos"]
    assert td.get(("obs",)) is td["obs"]


@pytest.mark.parametrize(
    "key", ["missing", ("next", "missing"), ("nope", "x"), ("obs", "x"), ("next", "agent", "q")]
)
def test_get_missing_lists_available_keys(key):
    td = make_td()
    with pytest.raises(TensorDictKeyError) as info:
        td[key]
    msg = str(info.value)
    assert repr(key) in msg
    for k in ALL_KEYS:
        assert repr(k) in msg
    with pytest.raises(KeyError):
        td.get(key)


def test_get_default():
    td = make_td()
    assert td.get("missing", None) is None
    assert td.get(("next", "missing"), 7) == 7
    assert td.get("obs", None) is td["obs"]


# --------------------------------------------------------------------------- #
# set / setitem
# --------------------------------------------------------------------------- #
def test_set_returns_self_and_creates_intermediates():
    td = TensorDict(batch_size=[2])
    assert td.set(("a", "b", "c"), torch.zeros(2, 3)) is td
    assert isinstance(td["a"], TensorDict)
    assert isinstance(td["a", "b"], TensorDict)
    assert td["a", "b"].batch_size == torch.Size([2])
    td["x", "y"] = torch.ones(2)
    assert torch.equal(td["x"]["y"], torch.ones(2))


def test_set_overwrites_and_replaces_dtype_shape():
    td = make_td()
    td["obs"] = torch.zeros(3, 5, dtype=torch.int32)
    assert td["obs"].shape == (3, 5)
    assert td["obs"].dtype == torch.int32


def test_set_dict_value_becomes_tensordict():
    td = TensorDict(batch_size=[2])
    td["n"] = {"a": torch.zeros(2), "m": {"b": torch.zeros(2, 4)}}
    assert isinstance(td["n", "m"], TensorDict)
    assert td["n", "m"].batch_size == torch.Size([2])


def test_set_through_leaf_raises():
    td = make_td()
    with pytest.raises(TypeError, match="'obs'"):
        td.set(("obs", "x"), torch.zeros(3))


def test_set_inplace_keeps_storage():
    td = make_td()
    before = td["obs"]
    td.set("obs", torch.full((3, 2), 5.0), inplace=True)
    assert td["obs"] is before
    assert torch.equal(before, torch.full((3, 2), 5.0))
    pos = td["next", "agent", "pos"]
    td.set(("next", "agent", "pos"), 1.0, inplace=True)
    assert td["next", "agent", "pos"] is pos
    assert torch.equal(pos, torch.ones(3, 2))
    td.set("new", torch.zeros(3), inplace=True)  # missing key: plain set
    assert "new" in td.keys()


def test_set_underscore():
    td = make_td()
    reward = td["next", "reward"]
    assert td.set_(("next", "reward"), torch.full((3, 1), 2.0)) is td
    assert td["next", "reward"] is reward
    assert torch.equal(reward, torch.full((3, 1), 2.0))
    td.set_("action", 9)
    assert torch.equal(td["action"], torch.full((3,), 9))
    with pytest.raises(TensorDictKeyError, match="available keys"):
        td.set_("missing", torch.zeros(3))


def test_set_underscore_nested_tensordict():
    td = make_td()
    pos = td["next", "agent", "pos"]
    td.set_(("next", "agent"), {"pos": torch.ones(3, 2)})
    assert torch.equal(pos, torch.ones(3, 2))


# --------------------------------------------------------------------------- #
# delete / pop
# --------------------------------------------------------------------------- #
def test_del_and_del_():
    td = make_td()
    del td["obs"]
    assert "obs" not in td.keys()
    assert td.del_(("next", "agent", "pos")) is td
    assert ("next", "agent", "pos") not in td
    assert ("next", "agent") in td


@pytest.mark.parametrize("key", ["missing", ("next", "missing"), ("nope", "deeper")])
def test_del_missing_names_the_full_key(key):
    td = make_td()
    with pytest.raises(TensorDictKeyError) as info:
        del td[key]
    msg = str(info.value)
    assert f"key {key!r} not found" in msg
    assert "available keys" in msg


def test_pop():
    td = make_td()
    reward = td["next", "reward"]
    assert td.pop(("next", "reward")) is reward
    assert ("next", "reward") not in td
    with pytest.raises(TensorDictKeyError, match="available keys"):
        td.pop("missing")


def test_pop_default_for_missing_key():
    td = make_td()
    assert td.pop("missing", None) is None
    assert td.pop(("next", "missing"), 3) == 3
    assert set(td.keys(True)) == set(ALL_KEYS)


# --------------------------------------------------------------------------- #
# keys / values / items / contains / is_empty
# --------------------------------------------------------------------------- #
def test_keys_views():
    td = make_td()
    assert list(td.keys()) == ["obs", "action", "next"]
    assert list(td.keys(include_nested=True)) == ALL_KEYS
    assert list(td.keys(include_nested=True, leaves_only=True)) == LEAVES
    assert list(td.keys(leaves_only=True)) == ["obs", "action"]
    assert len(td.keys()) == 3
    assert len(td.keys(True)) == len(ALL_KEYS)
    assert len(td.keys(True, True)) == len(LEAVES)
    assert isinstance(td.keys(), KeysView)
    assert td.keys() == {"obs", "action", "next"}
    assert "KeysView" in repr(td.keys())


def test_keys_view_is_live():
    td = make_td()
    view = td.keys(True, True)
    td["extra"] = torch.zeros(3)
    assert "extra" in view
    assert len(view) == len(LEAVES) + 1


def test_keys_view_contains():
    td = make_td()
    assert ("next", "reward") in td.keys(include_nested=True)
    assert ("next", "reward") not in td.keys()
    assert "next" in td.keys(include_nested=True)
    assert "next" not in td.keys(include_nested=True, leaves_only=True)
    assert ("next", "agent") not in td.keys(True, leaves_only=True)
    assert ("next",) in td.keys()
    assert 3 not in td.keys(True)


def test_contains():
    td = make_td()
    for key in ALL_KEYS:
        assert key in td
    assert ("next", ("agent", "pos")) in td
    assert "reward" not in td
    assert ("obs", "x") not in td
    assert ("next", "nope") not in td
    assert 1 not in td


def test_values_and_items_follow_keys_order():
    td = make_td()
    for inc, leaves in [(False, False), (True, False), (True, True), (False, True)]:
        keys = list(td.keys(inc, leaves))
        values = list(td.values(inc, leaves))
        items = list(td.items(inc, leaves))
        assert [k for k, _ in items] == keys
        assert len(values) == len(keys)
        for key, value, (_, item_value) in zip(keys, values, items):
            assert value is td[key] is item_value


def test_is_empty():
    assert TensorDict().is_empty()
    assert TensorDict({"n": {"m": {}}}).is_empty()
    assert not make_td().is_empty()
    assert not TensorDict({"n": {"x": torch.zeros(())}}).is_empty()


# --------------------------------------------------------------------------- #
# update / update_
# --------------------------------------------------------------------------- #
def test_update_merges_nested_dicts():
    td = make_td()
    agent = td["next", "agent"]
    out = td.update({"next": {"agent": {"vel": torch.ones(3, 2)}}, "new": torch.zeros(3)})
    assert out is td
    assert td["next", "agent"] is agent  # merged, not replaced
    assert set(td.keys(True, True)) == set(LEAVES) | {("next", "agent", "vel"), "new"}


def test_update_with_tensordict_and_tuple_keys():
    td = make_td()
    td.update(TensorDict({"next": {"reward": torch.full((3, 1), 4.0)}}, [3]))
    assert torch.equal(td["next", "reward"], torch.full((3, 1), 4.0))
    assert ("next", "done") in td
    td.update({("next", "extra"): torch.zeros(3)})
    assert ("next", "extra") in td


def test_update_checks_batch_size():
    td = make_td()
    with pytest.raises(BatchSizeError):
        td.update({"next": {"reward": torch.zeros(2, 1)}})


def test_update_inplace_keeps_storage():
    td = make_td()
    obs = td["obs"]
    td.update({"obs": torch.ones(3, 2)}, inplace=True)
    assert td["obs"] is obs
    assert torch.equal(obs, torch.ones(3, 2))


def test_update_keys_to_update():
    td = make_td()
    other = {"obs": torch.ones(3, 2), "action": torch.ones(3, dtype=torch.int64)}
    other["next"] = {"reward": torch.zeros(3, 1), "done": torch.ones(3, 1, dtype=torch.bool)}
    td.update(other, keys_to_update=["obs", ("next", "reward")])
    assert torch.equal(td["obs"], torch.ones(3, 2))
    assert torch.equal(td["action"], torch.tensor([0, 1, 2]))
    assert torch.equal(td["next", "reward"], torch.zeros(3, 1))
    assert not td["next", "done"].any()


def test_update_():
    td = make_td()
    reward, pos = td["next", "reward"], td["next", "agent", "pos"]
    td.update_({"next": {"reward": torch.zeros(3, 1), "agent": {"pos": torch.ones(3, 2)}}})
    assert td["next", "reward"] is reward
    assert torch.equal(reward, torch.zeros(3, 1))
    assert td["next", "agent", "pos"] is pos
    assert torch.equal(pos, torch.ones(3, 2))
    with pytest.raises(TensorDictKeyError, match="available keys"):
        td.update_({"missing": torch.zeros(3)})


# --------------------------------------------------------------------------- #
# select / exclude / rename
# --------------------------------------------------------------------------- #
def test_select_keeps_nested_paths():
    td = make_td()
    out = td.select("obs", ("next", "agent", "pos"))
    assert list(out.keys(True, True)) == ["obs", ("next", "agent", "pos")]
    assert out["next", "agent", "pos"] is td["next", "agent", "pos"]
    assert out["next"].batch_size == td.batch_size
    assert set(td.keys(True)) == set(ALL_KEYS)  # source untouched


def test_select_whole_subtree_and_strict():
    td = make_td()
    out = td.select("next")
    assert set(out.keys(True, True)) == {k for k in LEAVES if isinstance(k, tuple)}
    with pytest.raises(TensorDictKeyError, match="available keys"):
        td.select("obs", "missing")
    assert list(td.select("obs", "missing", strict=False).keys()) == ["obs"]


def test_select_inplace():
    td = make_td()
    assert td.select(("next", "done"), inplace=True) is td
    assert list(td.keys(True, True)) == [("next", "done")]


def test_exclude():
    td = make_td()
    out = td.exclude("obs", ("next", "agent", "pos"), "missing", ("next", "nope"), ("obs", "x"))
    assert set(out.keys(True, True)) == {"action", ("next", "reward"), ("next", "done")}
    assert ("next", "agent") in out
    assert set(td.keys(True)) == set(ALL_KEYS)


def test_exclude_inplace():
    td = make_td()
    assert td.exclude("next", "missing", ("a", "b"), inplace=True) is td
    assert list(td.keys(True)) == ["obs", "action"]


def test_rename_key_():
    td = make_td()
    obs = td["obs"]
    assert td.rename_key_("obs", ("next", "observation")) is td
    assert "obs" not in td
    assert td["next", "observation"] is obs
    td.rename_key_(("next", "reward"), "reward")
    assert "reward" in td.keys()
    assert ("next", "reward") not in td
    with pytest.raises(KeyError, match="already exists"):
        td.rename_key_("action", "reward", safe=True)
    assert "action" in td  # nothing moved on failure
    with pytest.raises(TensorDictKeyError, match="available keys"):
        td.rename_key_("missing", "x")


# --------------------------------------------------------------------------- #
# flatten_keys / unflatten_keys
# --------------------------------------------------------------------------- #
def test_flatten_keys():
    td = make_td()
    flat = td.flatten_keys()
    assert list(flat.keys()) == ["obs", "action", "next.reward", "next.done", "next.agent.pos"]
    assert flat["next.agent.pos"] is td["next", "agent", "pos"]
    assert list(td.flatten_keys("/").keys())[-1] == "next/agent/pos"


def test_flatten_keys_collision():
    td = TensorDict({"a.b": torch.zeros(()), "a": {"b": torch.zeros(())}})
    with pytest.raises(KeyError, match=r"a\.b"):
        td.flatten_keys()


def test_unflatten_keys_round_trip():
    td = make_td()
    back = td.flatten_keys("|").unflatten_keys("|")
    assert list(back.keys(True)) == ALL_KEYS
    assert back["next", "agent"].batch_size == td.batch_size
    for key in LEAVES:
        assert back[key] is td[key]


def test_flatten_unflatten_inplace():
    td = make_td()
    assert td.flatten_keys(inplace=True) is td
    assert "next.reward" in td.keys()
    assert td.unflatten_keys(inplace=True) is td
    assert list(td.keys(True)) == ALL_KEYS


def test_select_and_exclude_build_a_fresh_structure():
    td = TensorDict({"x": torch.zeros(2), "n": {"w": torch.zeros(2)}}, [2])
    out = td.exclude("x")
    out["n", "new"] = torch.ones(2)
    sel = td.select("n")
    sel["n", "other"] = torch.ones(2)
    assert ("n", "new") not in td.keys(include_nested=True)
    assert ("n", "other") not in td.keys(include_nested=True)
    assert out["n", "w"] is td["n", "w"]  # leaves are shared, not copied
