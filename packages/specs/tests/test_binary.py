"""Binary: independent 0/1 flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.specs import Binary
from rlbricks.specs import SpecError


def test_constructor_forms():
    assert Binary(3).shape == (3,)
    assert Binary(shape=(2, 3)).n == 3
    assert Binary(3, shape=(2, 3)).shape == (2, 3)
    assert Binary(3).dtype is torch.int8


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "give the number of flags n or a shape"),
        ({"n": 3, "shape": (2, 4)}, "end with n=3"),
        ({"shape": ()}, "at least 1-D"),
        ({"n": 2, "dtype": torch.complex64}, "dtype"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(SpecError, match=match):
        Binary(**kwargs)


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.float32, torch.uint8])
def test_rand(dtype):
    torch.manual_seed(0)
    spec = Binary(4, dtype=dtype)
    x = spec.rand((2000,))
    assert x.shape == (2000, 4)
    assert x.dtype is dtype
    assert spec.is_in(x)
    assert abs(x.float().mean().item() - 0.5) < 0.02


def test_is_in_golden():
    spec = Binary(3)
    assert spec.is_in(torch.tensor([1, 0, 1], dtype=torch.int8))
    assert not spec.is_in(torch.tensor([1, 2, 1], dtype=torch.int8))
    assert not spec.is_in(torch.tensor([1, -1, 1], dtype=torch.int8))
    assert not spec.is_in(torch.tensor([1, 0, 1]))  # int64, not int8
    floats = Binary(2, dtype=torch.float32)
    assert floats.is_in(torch.tensor([1.0, 0.0]))
    assert not floats.is_in(torch.tensor([0.5, 0.0]))
    assert Binary(2, dtype=torch.bool).is_in(torch.tensor([True, True]))


def test_assert_is_in_message():
    with pytest.raises(SpecError) as info:
        Binary(3).assert_is_in(torch.tensor([[1, 0, 3], [0, 0, 0]], dtype=torch.int8))
    message = str(info.value)
    assert "expected 0 or 1, got 1 of 6 other values (min 0, max 3)" in message
    assert "first at index (0, 2): 3" in message


def test_project_thresholds_at_half():
    spec = Binary(4)
    out = spec.project(torch.tensor([0.5, 0.51, -3.0, 7.0]))
    assert out.dtype is torch.int8
    assert out.tolist() == [0, 1, 0, 1]
    assert spec.project(torch.tensor([True, False, True, False])).tolist() == [1, 0, 1, 0]
    assert spec.project(torch.tensor([2, 0, -1, 1])).tolist() == [1, 0, 0, 1]


def test_project_refuses_nan():
    with pytest.raises(SpecError, match=r"Binary\.project: the value holds NaN \(1 of 4"):
        Binary(4).project(torch.tensor([0.5, float("nan"), -3.0, 7.0]))


def test_encode():
    spec = Binary(2, dtype=torch.bool)
    assert spec.encode(np.array([1, 0])).tolist() == [True, False]
    assert spec.encode([[0, 1], [1, 1]]).shape == (2, 2)


def test_expand_clone_eq_repr():
    spec = Binary(3)
    assert spec.expand(2, 3) == Binary(shape=(2, 3))
    assert spec.clone() == spec
    assert spec != Binary(3, dtype=torch.bool)
    assert repr(spec) == "Binary(shape=[3], dtype=torch.int8, device=cpu, n=3)"
