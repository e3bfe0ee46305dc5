"""MultiOneHot: several independent choices, as concatenated one-hot vectors."""

from __future__ import annotations

import pytest
import torch

from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import SpecError


def test_defaults():
    spec = MultiOneHot([3, 2])
    assert spec.shape == (5,)
    assert spec.dtype is torch.bool
    assert spec.nvec.tolist() == [3, 2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"nvec": [3, 2], "shape": (4,)},
            r"last dim of shape must be sum\(nvec\)=5, got shape \[4\]",
        ),
        ({"nvec": [3, 2], "dtype": torch.complex64}, "dtype"),
        ({"nvec": [1, 1], "mask": torch.tensor([True, False])}, "segment"),
        ({"nvec": [0]}, "positive"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(SpecError, match=match):
        MultiOneHot(**kwargs)


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.float32])
def test_rand_has_one_hot_per_segment(dtype):
    spec = MultiOneHot([3, 1, 2], shape=(4, 6), dtype=dtype)
    x = spec.rand((5,))
    assert x.shape == (5, 4, 6)
    assert x.dtype is dtype
    assert spec.is_in(x)
    assert torch.equal(x[..., :3].sum(-1).long(), torch.ones(5, 4, dtype=torch.long))
    assert bool((x[..., 3] == 1).all())
    assert torch.equal(x[..., 4:].sum(-1).long(), torch.ones(5, 4, dtype=torch.long))


def test_rand_uniform_per_segment():
    torch.manual_seed(0)
    x = MultiOneHot([2, 4]).rand((8000,)).float().mean(0)
    assert torch.allclose(x, torch.tensor([0.5, 0.5, 0.25, 0.25, 0.25, 0.25]), atol=0.02)


def test_rand_respects_the_mask():
    spec = MultiOneHot([3, 2], mask=torch.tensor([False, False, True, True, True]))
    x = spec.rand((300,))
    assert bool(x[:, 2].all())
    assert not x[:, :2].any()


def test_is_in_golden():
    spec = MultiOneHot([3, 2])
    assert spec.is_in(torch.tensor([True, False, False, False, True]))
    assert not spec.is_in(torch.tensor([True, True, False, False, True]))
    assert not spec.is_in(torch.tensor([False, False, False, False, True]))
    assert not spec.is_in(torch.tensor([True, False, False, True, True]))
    ints = MultiOneHot([2, 2], dtype=torch.int64)
    assert ints.is_in(torch.tensor([0, 1, 1, 0]))
    assert not ints.is_in(torch.tensor([2, -1, 1, 0]))
    masked = MultiOneHot([2, 2], mask=torch.tensor([True, False, True, True]))
    assert masked.is_in(torch.tensor([True, False, False, True]))
    assert not masked.is_in(torch.tensor([False, True, False, True]))


def test_assert_is_in_messages():
    spec = MultiOneHot([3, 2])
    with pytest.raises(SpecError, match=r"exactly one hot entry per segment, got 1 of 2 segments"):
        spec.assert_is_in(torch.tensor([True, False, False, True, True]))
    with pytest.raises(SpecError, match=r"first at index \(1,\): 2 hot entries"):
        spec.assert_is_in(torch.tensor([True, False, False, True, True]))
    masked = MultiOneHot([2, 2], mask=torch.tensor([True, False, True, True]))
    with pytest.raises(SpecError, match=r"mask forbids; first at index \(0,\): action 1"):
        masked.assert_is_in(torch.tensor([False, True, False, True]))


def test_project_golden():
    spec = MultiOneHot([2, 3], dtype=torch.int64)
    out = spec.project(torch.tensor([[0.3, 0.1, -1.0, 2.0, 0.5], [0.0, 0.0, 1.0, 1.0, 1.0]]))
    assert out.tolist() == [[1, 0, 0, 1, 0], [1, 0, 1, 0, 0]]
    masked = MultiOneHot([2, 3], mask=torch.tensor([False, True, True, True, False]))
    out = masked.project(torch.tensor([5.0, 0.0, 0.0, 0.0, 9.0]))
    assert out.int().tolist() == [0, 1, 1, 0, 0]


def test_project_refuses_nan():
    spec = MultiOneHot([2, 3])
    with pytest.raises(SpecError, match=r"MultiOneHot\.project: the value holds NaN \(1 of 5"):
        spec.project(torch.tensor([0.3, 0.1, float("nan"), 2.0, 0.5]))


def test_conversions():
    spec = MultiOneHot([2, 3])
    one_hot = torch.tensor([[False, True, False, False, True], [True, False, True, False, False]])
    index = spec.to_categorical(one_hot)
    assert index.tolist() == [[1, 2], [0, 0]]
    assert torch.equal(spec.to_one_hot(index), one_hot)
    assert spec.to_categorical_spec() == MultiCategorical([2, 3])
    assert spec.to_one_hot_spec() is spec


def test_encode():
    spec = MultiOneHot([1, 2])
    assert spec.encode([1, 0, 1]).tolist() == [True, False, True]
    with pytest.raises(SpecError, match=r"MultiOneHot.to_one_hot\(index\)"):
        spec.encode([0, 1])


def test_expand_clone_eq_update_mask():
    spec = MultiOneHot([2, 2])
    big = spec.expand(3, 4)
    assert big == MultiOneHot([2, 2], shape=(3, 4))
    spec.update_mask(torch.tensor([True, False, False, True]))
    assert spec.rand().int().tolist() == [1, 0, 0, 1]
    assert spec.clone() == spec
    assert spec != MultiOneHot([2, 2])
    assert MultiOneHot([1, 3]) != MultiOneHot([3, 1])


def test_repr():
    assert repr(MultiOneHot([3, 2])) == (
        "MultiOneHot(shape=[5], dtype=torch.bool, device=cpu, nvec=[3, 2])"
    )
