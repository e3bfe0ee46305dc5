"""MultiCategorical: several independent choices, as integer indices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import SpecError


def test_defaults():
    spec = MultiCategorical([3, 2, 4])
    assert spec.shape == (3,)
    assert spec.dtype is torch.int64
    assert spec.nvec.tolist() == [3, 2, 4]
    assert spec.mask is None


def test_nvec_forms():
    assert MultiCategorical(torch.tensor([2, 2])).nvec.tolist() == [2, 2]
    assert MultiCategorical(np.array([2, 3])).nvec.tolist() == [2, 3]
    assert MultiCategorical(4).shape == (1,)
    assert MultiCategorical([2.0, 3.0]).nvec.tolist() == [2, 3]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"nvec": []}, "non-empty sequence of positive ints"),
        ({"nvec": [2, 0]}, "non-empty sequence of positive ints"),
        ({"nvec": [2.5]}, "must hold integers"),
        ({"nvec": [[2, 3]]}, "nvec must be 1-D"),
        (
            {"nvec": [2, 3], "shape": (3,)},
            r"last dim of shape must be len\(nvec\)=2, got shape \[3\]",
        ),
        ({"nvec": [2, 3], "dtype": torch.float32}, "integer dtype"),
        ({"nvec": [300], "dtype": torch.int8}, "does not fit the dtype"),
        ({"nvec": [2, 2], "mask": torch.tensor([True, True, False])}, r"layout \[4\]"),
        ({"nvec": [2, 2], "mask": torch.tensor([True, True, False, False])}, "1 segment"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(SpecError, match=match):
        MultiCategorical(**kwargs)


def test_rand_in_range_and_uniform_per_choice():
    torch.manual_seed(0)
    spec = MultiCategorical([2, 5])
    x = spec.rand((10000,))
    assert x.shape == (10000, 2)
    assert spec.is_in(x)
    assert torch.allclose(torch.bincount(x[:, 0]).float() / 10000, torch.full((2,), 0.5), atol=0.02)
    assert torch.allclose(torch.bincount(x[:, 1]).float() / 10000, torch.full((5,), 0.2), atol=0.02)


def test_rand_uniform_nvec_and_leading_dims():
    spec = MultiCategorical([3, 3], shape=(4, 2), dtype=torch.int32)
    x = spec.rand((5,))
    assert x.shape == (5, 4, 2)
    assert x.dtype is torch.int32
    assert spec.is_in(x)


def test_rand_with_mask():
    mask = torch.tensor([False, True, True, True, False])
    spec = MultiCategorical([3, 2], mask=mask)
    x = spec.rand((500,))
    assert set(x[:, 0].unique().tolist()) == {1, 2}
    assert set(x[:, 1].unique().tolist()) == {0}


def test_is_in_golden():
    spec = MultiCategorical([3, 2])
    assert spec.is_in(torch.tensor([2, 1]))
    assert spec.is_in(torch.tensor([[0, 0], [2, 1]]))
    assert not spec.is_in(torch.tensor([1, 2]))
    assert not spec.is_in(torch.tensor([-1, 0]))
    assert not spec.is_in(torch.tensor([0, 0, 0]))
    masked = MultiCategorical([3, 2], mask=torch.tensor([True, False, True, True, True]))
    assert masked.is_in(torch.tensor([2, 1]))
    assert not masked.is_in(torch.tensor([1, 1]))
    uniform = MultiCategorical([4, 4])
    assert uniform.is_in(torch.tensor([3, 0]))
    assert not uniform.is_in(torch.tensor([4, 0]))


def test_assert_is_in_message():
    spec = MultiCategorical([3, 2])
    with pytest.raises(SpecError) as info:
        spec.assert_is_in(torch.tensor([[2, 2], [0, 1]]))
    message = str(info.value)
    assert "entry i in [0, nvec[i]) with nvec=[3, 2]" in message
    assert "first at index (0, 1): 2" in message
    masked = MultiCategorical([2, 2], mask=torch.tensor([True, True, False, True]))
    with pytest.raises(SpecError, match=r"mask forbids; first at index \(1,\): action 0"):
        masked.assert_is_in(torch.tensor([1, 0]))


def test_project_golden():
    spec = MultiCategorical([3, 2])
    out = spec.project(torch.tensor([[5.0, -1.0], [1.4, 0.6], [-2.0, 9.0]]))
    assert torch.equal(out, torch.tensor([[2, 0], [1, 1], [0, 1]]))
    assert torch.equal(spec.project(torch.tensor([9, 9])), torch.tensor([2, 1]))


def test_project_with_mask():
    spec = MultiCategorical([4, 2], mask=torch.tensor([True, False, False, True, True, False]))
    out = spec.project(torch.tensor([[1, 1], [2, 0], [3, 1]]))
    assert torch.equal(out, torch.tensor([[0, 0], [3, 0], [3, 0]]))


def test_project_refuses_nan():
    spec = MultiCategorical([3, 2])
    with pytest.raises(SpecError, match=r"MultiCategorical\.project: the value holds NaN"):
        spec.project(torch.tensor([[1.0, 0.0], [float("nan"), 1.0]]))


def test_one_hot_conversions():
    spec = MultiCategorical([3, 2])
    index = torch.tensor([[2, 0], [0, 1]])
    one_hot = spec.to_one_hot(index)
    assert one_hot.int().tolist() == [[0, 0, 1, 1, 0], [1, 0, 0, 0, 1]]
    assert torch.equal(spec.to_categorical(one_hot), index)
    other = spec.to_one_hot_spec()
    assert other == MultiOneHot([3, 2])
    assert other.to_categorical_spec() == spec
    assert spec.to_categorical_spec() is spec


def test_conversions_keep_the_mask():
    mask = torch.tensor([True, False, True, False, True])
    spec = MultiCategorical([3, 2], shape=(4, 2), mask=mask)
    other = spec.to_one_hot_spec()
    assert other.shape == (4, 5)
    assert torch.equal(other.mask[0], mask)
    assert other.to_categorical_spec() == spec


def test_encode():
    spec = MultiCategorical([3, 2])
    assert torch.equal(spec.encode([2, 1]), torch.tensor([2, 1]))
    assert spec.encode(np.zeros((5, 2), dtype=np.int32)).dtype is torch.int64


def test_update_mask_expand_clone_eq():
    spec = MultiCategorical([2, 3])
    spec.update_mask(torch.tensor([True, False, False, True, False]))
    assert spec.rand().tolist() == [0, 1]
    big = spec.expand(3, 2)
    assert big.shape == (3, 2)
    assert big.mask.shape == (3, 5)
    assert big.rand().tolist() == [[0, 1]] * 3
    assert spec.clone() == spec
    spec.update_mask(None)
    assert spec == MultiCategorical([2, 3])
    assert spec != MultiCategorical([3, 2])


def test_repr():
    assert repr(MultiCategorical([3, 2])) == (
        "MultiCategorical(shape=[2], dtype=torch.int64, device=cpu, nvec=[3, 2])"
    )
