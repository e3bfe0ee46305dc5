"""OneHot: one choice among n actions, as a one-hot vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.specs import Categorical
from rlbricks.specs import OneHot
from rlbricks.specs import SpecError


def test_defaults():
    spec = OneHot(4)
    assert spec.shape == (4,)
    assert spec.n == 4
    assert spec.dtype is torch.bool


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 3, "shape": (2, 4)}, r"last dim of shape must be n=3, got shape \[2, 4\]"),
        ({"n": 3, "shape": ()}, "last dim of shape must be n=3"),
        ({"n": 0}, "positive int"),
        ({"n": 2, "dtype": torch.complex64}, "dtype"),
        ({"n": 2, "mask": torch.tensor([False, False])}, "at least one allowed action"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(SpecError, match=match):
        OneHot(**kwargs)


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.uint8, torch.float32])
def test_rand_is_one_hot(dtype):
    spec = OneHot(5, shape=(3, 5), dtype=dtype)
    x = spec.rand((7,))
    assert x.shape == (7, 3, 5)
    assert x.dtype is dtype
    assert torch.equal(x.sum(-1).long(), torch.ones(7, 3, dtype=torch.long))
    assert spec.is_in(x)


def test_rand_is_uniform_and_respects_the_mask():
    torch.manual_seed(0)
    spec = OneHot(4, mask=torch.tensor([True, False, True, True]))
    x = spec.rand((6000,))
    freq = x.float().mean(0)
    assert freq[1] == 0
    assert torch.allclose(freq[[0, 2, 3]], torch.full((3,), 1 / 3), atol=0.03)


def test_is_in_golden():
    spec = OneHot(3)
    assert spec.is_in(torch.tensor([False, False, True]))
    assert not spec.is_in(torch.tensor([False, False, False]))
    assert not spec.is_in(torch.tensor([True, False, True]))
    assert not spec.is_in(torch.tensor([0, 0, 1]))  # wrong dtype
    ints = OneHot(3, dtype=torch.int64)
    assert ints.is_in(torch.tensor([[0, 1, 0], [1, 0, 0]]))
    assert not ints.is_in(torch.tensor([2, -1, 0]))  # sums to one but not 0/1
    floats = OneHot(2, dtype=torch.float32)
    assert floats.is_in(torch.tensor([1.0, 0.0]))
    assert not floats.is_in(torch.tensor([0.5, 0.5]))


def test_is_in_with_mask():
    spec = OneHot(3, mask=torch.tensor([True, False, True]))
    assert spec.is_in(torch.tensor([True, False, False]))
    assert not spec.is_in(torch.tensor([False, True, False]))


def test_assert_is_in_messages():
    spec = OneHot(3)
    with pytest.raises(SpecError, match=r"exactly one hot entry per row, got 1 of 2 rows"):
        spec.assert_is_in(torch.tensor([[True, False, False], [True, True, False]]))
    with pytest.raises(SpecError, match=r"first at index \(1,\): 2 hot entries"):
        spec.assert_is_in(torch.tensor([[True, False, False], [True, True, False]]))
    ints = OneHot(3, dtype=torch.int64)
    with pytest.raises(
        SpecError, match=r"expected 0/1 entries, got 1 other values; first at index \(2,\): 5"
    ):
        ints.assert_is_in(torch.tensor([1, 0, 5]))
    masked = OneHot(3, mask=torch.tensor([True, True, False]))
    with pytest.raises(SpecError, match="action the mask forbids; first at index \\(\\): action 2"):
        masked.assert_is_in(torch.tensor([False, False, True]))


def test_project_is_argmax():
    spec = OneHot(3, dtype=torch.int64)
    out = spec.project(torch.tensor([[0.1, 0.9, 0.3], [5.0, 5.0, -1.0], [-1.0, -2.0, -0.5]]))
    assert torch.equal(out, torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 1]]))
    assert spec.project(torch.tensor([True, False, True])).tolist() == [1, 0, 0]
    assert spec.project(torch.tensor([1, 7, 3])).tolist() == [0, 1, 0]


def test_project_with_mask():
    spec = OneHot(3, mask=torch.tensor([True, False, True]))
    out = spec.project(torch.tensor([0.0, 10.0, 1.0]))
    assert out.tolist() == [False, False, True]


@pytest.mark.parametrize("mask", [None, torch.tensor([True, False, True])])
def test_project_refuses_nan(mask):
    spec = OneHot(3, mask=mask)
    with pytest.raises(SpecError, match=r"OneHot\.project: the value holds NaN \(1 of 3"):
        spec.project(torch.tensor([0.1, float("nan"), 0.2]))


def test_conversions():
    spec = OneHot(3, shape=(2, 3))
    index = torch.tensor([2, 0])
    one_hot = spec.to_one_hot(index)
    assert one_hot.tolist() == [[False, False, True], [True, False, False]]
    assert torch.equal(spec.to_categorical(one_hot), index)
    assert spec.to_one_hot(1).tolist() == [False, True, False]
    cat = spec.to_categorical_spec()
    assert cat == Categorical(3, shape=(2,))
    assert cat.to_one_hot_spec() == spec
    assert spec.to_one_hot_spec() is spec


def test_conversions_keep_the_mask():
    mask = torch.tensor([[True, False, True], [False, True, True]])
    spec = OneHot(3, shape=(2, 3), mask=mask)
    cat = spec.to_categorical_spec()
    assert torch.equal(cat.mask, mask)
    assert not cat.is_in(torch.tensor([1, 1]))


def test_encode_is_explicit_about_the_layout():
    spec = OneHot(3)
    assert spec.encode(np.array([0, 0, 1])).tolist() == [False, False, True]
    assert spec.encode(np.eye(3)[[0, 2]]).shape == (2, 3)
    with pytest.raises(SpecError, match=r"for integer indices use OneHot.to_one_hot\(index\)"):
        spec.encode(2)


def test_update_mask():
    spec = OneHot(3)
    spec.update_mask(torch.tensor([False, True, False]))
    assert spec.rand().tolist() == [False, True, False]
    spec.update_mask(None)
    assert spec.mask is None


def test_expand_clone_eq():
    spec = OneHot(3, mask=torch.tensor([True, True, False]))
    big = spec.expand(2, 3)
    assert big.shape == (2, 3)
    assert big.mask.shape == (2, 3)
    assert big.is_in(torch.tensor([[True, False, False], [False, True, False]]))
    assert spec.clone() == spec
    assert spec != OneHot(3)
    assert OneHot(3) != OneHot(3, dtype=torch.int64)
    assert OneHot(3) != Categorical(3)


def test_zero_is_a_placeholder():
    spec = OneHot(3)
    assert not spec.zero().any()
    assert not spec.is_in(spec.zero())


def test_repr():
    assert repr(OneHot(2)) == "OneHot(shape=[2], dtype=torch.bool, device=cpu, n=2)"
