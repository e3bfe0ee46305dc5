"""Categorical: one choice among n actions, as an integer index."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.specs import Categorical
from rlbricks.specs import OneHot
from rlbricks.specs import SpecError


def test_defaults():
    spec = Categorical(4)
    assert spec.n == 4
    assert spec.shape == ()
    assert spec.dtype is torch.int64
    assert spec.mask is None


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0,), {}, "n must be a positive int"),
        ((2.5,), {}, "n must be a positive int"),
        ((True,), {}, "n must be a positive int"),
        ((3,), {"dtype": torch.float32}, "integer dtype"),
        ((3,), {"dtype": torch.bool}, "n <= 2"),
        ((300,), {"dtype": torch.int8}, "do not fit the dtype"),
        ((3,), {"mask": torch.tensor([1, 0, 1])}, "must be a bool tensor"),
        (
            (3,),
            {"mask": torch.tensor([True, False])},
            r"does not broadcast to the mask layout \[3\]",
        ),
        ((3,), {"mask": torch.zeros(3, dtype=torch.bool)}, "at least one allowed action"),
    ],
)
def test_constructor_errors(args, kwargs, match):
    with pytest.raises(SpecError, match=match):
        Categorical(*args, **kwargs)


def test_n_from_a_one_element_tensor():
    assert Categorical(torch.tensor(3)).n == 3


def test_rand_is_uniform():
    torch.manual_seed(0)
    x = Categorical(4, shape=(10000,)).rand()
    counts = torch.bincount(x, minlength=4).float() / 10000
    assert torch.allclose(counts, torch.full((4,), 0.25), atol=0.02)


def test_rand_shapes_and_dtypes():
    spec = Categorical(3, shape=(2,), dtype=torch.int32)
    x = spec.rand((5, 4))
    assert x.shape == (5, 4, 2)
    assert x.dtype is torch.int32
    assert spec.is_in(x)
    flag = Categorical(2, shape=(1,), dtype=torch.bool)
    assert flag.rand((3,)).dtype is torch.bool
    assert flag.is_in(flag.rand((3,)))


def test_rand_respects_the_mask():
    torch.manual_seed(0)
    spec = Categorical(5, mask=torch.tensor([False, True, False, True, True]))
    x = spec.rand((6000,))
    counts = torch.bincount(x, minlength=5).float() / 6000
    assert counts[0] == 0
    assert counts[2] == 0
    assert torch.allclose(counts[[1, 3, 4]], torch.full((3,), 1 / 3), atol=0.03)


def test_per_element_masks():
    mask = torch.tensor([[True, False, False], [False, False, True]])
    spec = Categorical(3, shape=(2,), mask=mask)
    x = spec.rand((50,))
    assert bool((x[:, 0] == 0).all())
    assert bool((x[:, 1] == 2).all())
    assert spec.is_in(torch.tensor([0, 2]))
    assert not spec.is_in(torch.tensor([2, 0]))


def test_is_in_golden():
    spec = Categorical(3)
    assert spec.is_in(torch.tensor(0))
    assert spec.is_in(torch.tensor([2, 1, 0]))
    assert not spec.is_in(torch.tensor(3))
    assert not spec.is_in(torch.tensor(-1))
    assert not spec.is_in(torch.tensor(1.0))
    assert spec.is_in(torch.zeros(0, dtype=torch.int64))
    single = Categorical(1, dtype=torch.bool)
    assert single.is_in(torch.tensor(False))
    assert not single.is_in(torch.tensor(True))


def test_is_in_with_mask_is_checked_after_the_range():
    spec = Categorical(3, mask=torch.tensor([True, False, True]))
    assert spec.is_in(torch.tensor([0, 2]))
    assert not spec.is_in(torch.tensor([0, 1]))
    assert not spec.is_in(torch.tensor([0, 7]))  # out of range: no index error inside


def test_assert_is_in_messages():
    spec = Categorical(4)
    with pytest.raises(SpecError) as info:
        spec.assert_is_in(torch.tensor([0, 5, -1]))
    message = str(info.value)
    assert "expected integers in [0, 4)" in message
    assert "got 2 of 3 outside (min -1, max 5)" in message
    assert "first at index (1,): 5" in message
    masked = Categorical(4, mask=torch.tensor([True, True, False, True]))
    with pytest.raises(SpecError, match=r"1 of 2 entries select an action the mask forbids; "):
        masked.assert_is_in(torch.tensor([0, 2]))
    with pytest.raises(SpecError, match=r"first at index \(1,\): action 2"):
        masked.assert_is_in(torch.tensor([0, 2]))


def test_project_golden():
    spec = Categorical(4)
    assert torch.equal(
        spec.project(torch.tensor([-3.0, 0.4, 2.5, 3.6, 99.0])), torch.tensor([0, 0, 2, 3, 3])
    )
    assert torch.equal(spec.project(torch.tensor([-1, 2, 8])), torch.tensor([0, 2, 3]))
    assert spec.project(torch.tensor(1, dtype=torch.int8)).dtype is torch.int64


def test_project_with_mask_goes_to_the_nearest_allowed():
    spec = Categorical(5, mask=torch.tensor([False, True, False, False, True]))
    out = spec.project(torch.tensor([0, 1, 2, 3, 4, 9]))
    # 2 is as far from 1 as from 3 -> ties go to the lower index; 3 -> 4
    assert torch.equal(out, torch.tensor([1, 1, 1, 4, 4, 4]))


@pytest.mark.parametrize("mask", [None, torch.tensor([True, False, True, True])])
def test_project_refuses_nan(mask):
    spec = Categorical(4, shape=(2,), mask=mask)
    with pytest.raises(SpecError, match=r"Categorical\.project: the value holds NaN \(1 of 2"):
        spec.project(torch.tensor([float("nan"), 1.0]))


def test_update_mask_in_place_and_clear():
    spec = Categorical(3)
    spec.update_mask(torch.tensor([False, False, True]))
    assert torch.equal(spec.rand((4,)), torch.full((4,), 2))
    spec.update_mask(None)
    assert spec.mask is None
    assert spec.is_in(torch.tensor(0))


def test_mask_is_copied():
    mask = torch.tensor([True, False, True])
    spec = Categorical(3, mask=mask)
    mask.fill_(False)  # the caller reusing its tensor does not change the spec
    assert spec.mask.tolist() == [True, False, True]
    assert spec.is_in(torch.tensor(2))
    returned = spec.mask
    returned.fill_(False)
    assert spec.mask.tolist() == [True, False, True]


def test_to_one_hot_and_back():
    spec = Categorical(3, shape=(2,))
    index = torch.tensor([[2, 0], [1, 1]])
    one_hot = spec.to_one_hot(index)
    assert one_hot.dtype is torch.bool
    assert one_hot.shape == (2, 2, 3)
    assert one_hot[0, 0].tolist() == [False, False, True]
    assert torch.equal(spec.to_categorical(one_hot), index)
    assert torch.equal(spec.to_categorical(one_hot.float()), index)
    assert spec.to_one_hot(1).tolist() == [False, True, False]


def test_spec_conversions():
    mask = torch.tensor([True, False, True])
    spec = Categorical(3, shape=(2,), mask=mask)
    one_hot = spec.to_one_hot_spec()
    assert isinstance(one_hot, OneHot)
    assert one_hot.shape == (2, 3)
    assert one_hot.n == 3
    assert torch.equal(one_hot.mask, mask.expand(2, 3))
    assert one_hot.to_categorical_spec() == spec
    assert spec.to_categorical_spec() is spec


def test_encode():
    spec = Categorical(5, shape=(1,))
    assert torch.equal(spec.encode(3), torch.tensor([3]))
    assert torch.equal(spec.encode(np.int64(4)), torch.tensor([4]))
    assert spec.encode(np.array([1, 2, 3])).shape == (3, 1)


def test_expand_clone_eq_with_mask():
    mask = torch.tensor([True, False, True])
    spec = Categorical(3, mask=mask)
    big = spec.expand(4)
    assert big.shape == (4,)
    assert big.mask.shape == (4, 3)
    assert big == Categorical(3, shape=(4,), mask=mask)
    clone = spec.clone()
    assert clone == spec
    clone.update_mask(torch.tensor([True, True, True]))
    assert clone != spec
    assert spec.mask.tolist() == [True, False, True]
    assert spec != Categorical(3)
    assert spec != Categorical(4, mask=torch.tensor([True, False, True, True]))


def test_repr():
    assert repr(Categorical(4)) == "Categorical(shape=[], dtype=torch.int64, device=cpu, n=4)"
    text = repr(Categorical(3, mask=torch.tensor([True, False, True])))
    assert text.endswith("n=3, mask=[True, False, True])")
