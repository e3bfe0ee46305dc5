"""Gymnasium space ↔ spec conversion (``rlbricks.envs._gym_spaces``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rlbricks.envs._gym_spaces import space_to_spec
from rlbricks.envs._gym_spaces import space_value_to_tensor
from rlbricks.envs._gym_spaces import tensor_to_space_value
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded

gym: Any = pytest.importorskip("gymnasium")
spaces = gym.spaces


def test_box_bounded_keeps_dtype_and_bounds() -> None:
    space = spaces.Box(
        low=np.array([-1.0, 0.0], np.float32),
        high=np.array([1.0, 2.0], np.float32),
        dtype=np.float32,
    )
    spec = space_to_spec(space)
    assert isinstance(spec, Bounded)
    assert spec.shape == (2,)
    assert spec.dtype == torch.float32
    assert spec.is_in(torch.tensor([0.5, 1.5]))
    assert not spec.is_in(torch.tensor([0.5, 2.5]))


def test_box_float64_stays_float64() -> None:
    spec = space_to_spec(spaces.Box(-1.0, 1.0, (3,), dtype=np.float64))
    assert spec.dtype == torch.float64


def test_box_uint8_image() -> None:
    spec = space_to_spec(spaces.Box(0, 255, (8, 6, 3), dtype=np.uint8), batch_size=[2])
    assert isinstance(spec, Bounded)
    assert spec.shape == (2, 8, 6, 3)
    assert spec.dtype == torch.uint8


def test_box_infinite_is_unbounded() -> None:
    space = spaces.Box(
        low=np.array([-1.0, -np.inf], np.float32), high=np.array([1.0, np.inf], np.float32)
    )
    spec = space_to_spec(space, batch_size=(4,))
    assert isinstance(spec, Unbounded)
    assert spec.shape == (4, 2)


def test_discrete_one_hot_and_categorical() -> None:
    one_hot = space_to_spec(spaces.Discrete(4), batch_size=[3])
    assert isinstance(one_hot, OneHot)
    assert one_hot.shape == (3, 4)
    cat = space_to_spec(spaces.Discrete(4), batch_size=[3], categorical_action_encoding=True)
    assert isinstance(cat, Categorical)
    assert cat.shape == (3,)
    assert cat.n == 4


def test_discrete_start_offset_round_trip() -> None:
    space = spaces.Discrete(3, start=-1)
    cat = space_to_spec(space, categorical_action_encoding=True)
    one_hot = space_to_spec(space)
    assert isinstance(one_hot, OneHot)
    for index, expected in [(0, -1), (1, 0), (2, 1)]:
        assert tensor_to_space_value(torch.tensor(index), space, cat) == expected
        assert tensor_to_space_value(one_hot.to_one_hot(index), space, one_hot) == expected
        assert space.contains(expected)
        assert space_value_to_tensor(expected, space).item() == index


def test_discrete_batched_action_is_array() -> None:
    space = spaces.Discrete(5, start=2)
    spec = space_to_spec(space, batch_size=[3])
    assert isinstance(spec, OneHot)
    value = spec.to_one_hot(torch.tensor([0, 4, 1]))
    np.testing.assert_array_equal(tensor_to_space_value(value, space, spec), [2, 6, 3])


def test_multi_discrete() -> None:
    space = spaces.MultiDiscrete([2, 3], start=[1, -1])
    mcat = space_to_spec(space, categorical_action_encoding=True)
    mhot = space_to_spec(space)
    assert isinstance(mcat, MultiCategorical)
    assert mcat.shape == (2,)
    assert isinstance(mhot, MultiOneHot)
    assert mhot.shape == (5,)
    index = torch.tensor([1, 2])
    action = tensor_to_space_value(index, space, mcat)
    np.testing.assert_array_equal(action, [2, 1])
    assert space.contains(action)
    np.testing.assert_array_equal(
        tensor_to_space_value(mcat.to_one_hot(index), space, mhot), action
    )
    assert torch.equal(space_value_to_tensor(action, space), index)


def test_multi_discrete_2d_nvec_rejected() -> None:
    with pytest.raises(TypeError, match="2-D nvec"):
        space_to_spec(spaces.MultiDiscrete([[2, 3], [4, 5]]))


def test_multi_binary() -> None:
    space = spaces.MultiBinary(4)
    spec = space_to_spec(space, batch_size=[2])
    assert isinstance(spec, Binary)
    assert spec.shape == (2, 4)
    assert spec.dtype == torch.int8
    value = spec.rand()
    action = tensor_to_space_value(value[0], space, spec)
    assert action.dtype == np.int8
    assert space.contains(action)


def test_nested_dict_and_tuple() -> None:
    space = spaces.Dict(
        {
            "pos": spaces.Box(-1.0, 1.0, (2,)),
            "inner": spaces.Dict({"k": spaces.Discrete(3), "flags": spaces.MultiBinary(2)}),
            "pair": spaces.Tuple((spaces.Discrete(2), spaces.Box(0.0, 1.0, (1,)))),
        }
    )
    spec = space_to_spec(space, batch_size=[5], categorical_action_encoding=True)
    assert isinstance(spec, Composite)
    assert spec.shape == (5,)
    keys = set(spec.keys(include_nested=True, leaves_only=True))
    assert keys == {"pos", ("inner", "k"), ("inner", "flags"), ("pair", "0"), ("pair", "1")}
    assert isinstance(spec["inner", "k"], Categorical)
    assert spec["inner", "k"].shape == (5,)
    assert spec["pair", "1"].shape == (5, 1)


def test_dict_value_round_trip() -> None:
    space = spaces.Dict(
        {
            "a": spaces.Box(-1.0, 1.0, (2,)),
            "t": spaces.Tuple((spaces.Discrete(3, start=1), spaces.MultiBinary(2))),
        }
    )
    space.seed(0)
    spec = space_to_spec(space)
    assert isinstance(spec, Composite)
    sample = spec.rand()
    action = tensor_to_space_value(sample, space, spec)
    assert isinstance(action, dict)
    assert isinstance(action["t"], tuple)
    assert space.contains(action)
    back = space_value_to_tensor(space.sample(), space)
    assert set(back) == {"a", "t"}
    assert set(back["t"]) == {"0", "1"}


def test_observation_value_dtype_follows_space() -> None:
    space = spaces.Box(-1.0, 1.0, (3,), dtype=np.float64)
    tensor = space_value_to_tensor(np.zeros(3, dtype=np.float32), space)
    assert tensor.dtype == torch.float64


def test_unsupported_space_is_named() -> None:
    with pytest.raises(TypeError, match="Text"):
        space_to_spec(spaces.Text(5))
