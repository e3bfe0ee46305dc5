"""Bounded: the box [low, high], continuous or integer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlbricks.specs import Bounded
from rlbricks.specs import SpecError

INF = float("inf")


# --------------------------------------------------------------------------- #
# construction
# --------------------------------------------------------------------------- #
def test_scalar_bounds_broadcast_to_shape():
    spec = Bounded(low=-1.0, high=2.0, shape=(2, 3))
    assert spec.shape == (2, 3)
    assert spec.low.shape == (2, 3)
    assert bool((spec.low == -1).all())
    assert bool((spec.high == 2).all())


def test_shape_inferred_from_bounds():
    assert Bounded(torch.zeros(3), 1.0).shape == (3,)
    assert Bounded(torch.zeros(1, 3), torch.ones(4, 1)).shape == (4, 3)
    assert Bounded(0.0, 1.0).shape == ()
    assert Bounded(np.zeros(2), np.ones(2)).shape == (2,)


def test_bounds_take_the_dtype():
    spec = Bounded(low=0, high=1, shape=(2,), dtype=torch.float64)
    assert spec.low.dtype is torch.float64
    spec = Bounded(low=np.float64(0), high=np.float64(3), dtype=torch.int32)
    assert spec.high.dtype is torch.int32
    assert spec.high.item() == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"low": 1.0, "high": 0.0}, r"low must be <= high everywhere.*low=1.0, high=0.0"),
        ({"low": torch.tensor([0.0, 2.0]), "high": 1.0}, r"first at index \(1,\): low=2.0"),
        ({"low": float("nan"), "high": 1.0}, "NaN"),
        ({"low": 0.5, "high": 3, "dtype": torch.int64}, "must hold integers"),
        ({"low": 0, "high": 300, "dtype": torch.uint8}, r"does not fit the dtype torch.uint8"),
        ({"low": torch.zeros(3), "high": torch.ones(2)}, "do not broadcast together"),
        ({"low": torch.zeros(3), "high": 1.0, "shape": (4,)}, r"low of shape \[3\] does not"),
        ({"low": 0, "high": 1, "dtype": torch.bool}, "real floating or integer dtype"),
        ({"low": 0, "high": 1, "dtype": torch.complex64}, "real floating or integer dtype"),
        ({"low": -INF, "high": 1, "dtype": torch.int64}, "low=-inf does not fit the dtype"),
        ({"low": True, "high": 1}, "must be real numbers"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(SpecError, match=match):
        Bounded(**kwargs)


def test_equal_bounds_are_allowed():
    spec = Bounded(low=1.0, high=1.0, shape=(3,))
    assert torch.equal(spec.rand(), torch.ones(3))


# --------------------------------------------------------------------------- #
# rand
# --------------------------------------------------------------------------- #
def test_rand_float_is_uniform_in_the_box():
    torch.manual_seed(0)
    spec = Bounded(low=torch.tensor([-1.0, 10.0]), high=torch.tensor([1.0, 20.0]))
    x = spec.rand((20000,))
    assert x.shape == (20000, 2)
    assert spec.is_in(x)
    mean = x.mean(0)
    assert abs(mean[0].item()) < 0.03
    assert abs(mean[1].item() - 15) < 0.1
    # uniform variance (b - a)^2 / 12
    assert abs(x[:, 1].var().item() - 100 / 12) < 0.3


def test_rand_scalar_bounds_fast_path():
    torch.manual_seed(0)
    spec = Bounded(low=2.0, high=3.0, shape=(5000,))
    x = spec.rand()
    assert spec.is_in(x)
    assert x.min() < 2.01
    assert x.max() > 2.99


def test_rand_integer_covers_both_ends():
    torch.manual_seed(0)
    spec = Bounded(low=-2, high=2, shape=(5000,), dtype=torch.int64)
    x = spec.rand()
    assert x.dtype is torch.int64
    assert set(x.unique().tolist()) == {-2, -1, 0, 1, 2}


def test_rand_integer_per_element_bounds():
    torch.manual_seed(0)
    spec = Bounded(low=torch.tensor([0, 10]), high=torch.tensor([1, 12]), dtype=torch.int16)
    x = spec.rand((4000,))
    assert x.dtype is torch.int16
    assert spec.is_in(x)
    assert set(x[:, 0].unique().tolist()) == {0, 1}
    assert set(x[:, 1].unique().tolist()) == {10, 11, 12}


def test_rand_integer_full_dtype_range():
    for dtype in (torch.uint8, torch.int8, torch.int64):
        info = torch.iinfo(dtype)
        spec = Bounded(low=info.min, high=info.max, shape=(100,), dtype=dtype)
        assert spec.is_in(spec.rand((3,)))


def test_rand_infinite_bounds():
    torch.manual_seed(0)
    spec = Bounded(
        low=torch.tensor([-INF, 0.0, -INF, -1.0]),
        high=torch.tensor([1.0, INF, INF, 1.0]),
    )
    x = spec.rand((5000,))
    assert spec.is_in(x)
    assert bool(x.isfinite().all())
    assert x[:, 0].max() <= 1
    assert x[:, 0].min() < -2
    assert x[:, 1].min() >= 0
    assert x[:, 1].max() > 2
    assert abs(x[:, 2].mean().item()) < 0.1  # standard normal
    assert x[:, 3].abs().max() <= 1


def test_rand_range_overflowing_the_dtype():
    big = torch.finfo(torch.float32).max
    spec = Bounded(low=-big, high=big, shape=(1000,))
    x = spec.rand()
    assert spec.is_in(x)
    assert bool(x.isfinite().all())
    assert x.abs().max() > big / 10


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_rand_low_precision_dtypes(dtype):
    spec = Bounded(low=0.1, high=0.2, shape=(1000,), dtype=dtype)
    x = spec.rand()
    assert x.dtype is dtype
    assert spec.is_in(x)


def test_zero_need_not_be_in_the_box():
    spec = Bounded(low=1.0, high=2.0, shape=(2,))
    assert torch.equal(spec.zero(), torch.zeros(2))
    assert not spec.is_in(spec.zero())


# --------------------------------------------------------------------------- #
# is_in / assert_is_in
# --------------------------------------------------------------------------- #
def test_is_in_golden_values():
    spec = Bounded(low=torch.tensor([0.0, -1.0]), high=torch.tensor([1.0, 1.0]))
    assert spec.is_in(torch.tensor([0.0, 1.0]))  # both ends included
    assert spec.is_in(torch.tensor([[1.0, -1.0], [0.5, 0.0]]))
    assert not spec.is_in(torch.tensor([-0.1, 0.0]))
    assert not spec.is_in(torch.tensor([0.0, 1.1]))
    assert not spec.is_in(torch.tensor([float("nan"), 0.0]))
    assert not spec.is_in(torch.tensor([0.0, 0.0], dtype=torch.float64))
    assert spec.is_in(torch.zeros(0, 2))


def test_is_in_scalar_bounds_and_nan():
    spec = Bounded(low=-1.0, high=1.0, shape=(3,))
    assert spec.is_in(torch.tensor([-1.0, 0.0, 1.0]))
    assert not spec.is_in(torch.tensor([-1.0, float("nan"), 1.0]))
    assert not spec.is_in(torch.tensor([-1.0, 0.0, 1.0001]))


def test_is_in_integer():
    spec = Bounded(low=0, high=9, shape=(2,), dtype=torch.int64)
    assert spec.is_in(torch.tensor([0, 9]))
    assert not spec.is_in(torch.tensor([0, 10]))
    assert not spec.is_in(torch.tensor([0.0, 1.0]))


def test_assert_is_in_reports_range_and_values():
    spec = Bounded(low=-1.0, high=1.0, shape=(3,))
    with pytest.raises(SpecError) as info:
        spec.assert_is_in(torch.tensor([[0.0, 2.5, 0.0], [-3.0, 0.0, 0.0]]))
    message = str(info.value)
    assert "expected every value in [-1.0, 1.0]" in message
    assert "2 of 6 outside (min -3.0, max 2.5)" in message
    assert "first at index (0, 1): 2.5" in message
    assert message.startswith("value does not match Bounded(shape=[3]")


def test_assert_is_in_per_element_bounds_names_the_local_range():
    spec = Bounded(low=torch.tensor([0.0, 5.0]), high=torch.tensor([1.0, 6.0]))
    with pytest.raises(SpecError, match=r"first at index \(1, 1\): 7.0 not in \[5.0, 6.0\]"):
        spec.assert_is_in(torch.tensor([[0.5, 5.5], [0.5, 7.0]]))


def test_assert_is_in_passes_silently():
    Bounded(low=0.0, high=1.0).assert_is_in(torch.tensor(0.5))


# --------------------------------------------------------------------------- #
# project
# --------------------------------------------------------------------------- #
def test_project_clamps_golden():
    spec = Bounded(low=torch.tensor([0.0, -1.0]), high=torch.tensor([1.0, 1.0]))
    out = spec.project(torch.tensor([[2.0, -5.0], [0.5, 0.25]]))
    assert torch.equal(out, torch.tensor([[1.0, -1.0], [0.5, 0.25]]))


def test_project_casts_dtype():
    spec = Bounded(low=0.0, high=1.0, shape=(2,))
    out = spec.project(torch.tensor([3, -1]))
    assert out.dtype is torch.float32
    assert torch.equal(out, torch.tensor([1.0, 0.0]))
    out = spec.project(torch.tensor([1e300, -1e300], dtype=torch.float64))
    assert torch.equal(out, torch.tensor([1.0, 0.0]))


def test_project_integer_rounds_then_clamps():
    spec = Bounded(low=torch.tensor([0, 0]), high=torch.tensor([3, 10]), dtype=torch.int8)
    out = spec.project(torch.tensor([[2.6, 11.0], [-7.0, 4.4]]))
    assert out.dtype is torch.int8
    assert torch.equal(out, torch.tensor([[3, 10], [0, 4]], dtype=torch.int8))
    out = spec.project(torch.tensor([1000, -1000]))
    assert torch.equal(out, torch.tensor([3, 0], dtype=torch.int8))


def test_project_keeps_valid_values():
    spec = Bounded(low=-1.0, high=1.0, shape=(4,))
    x = spec.rand((5,))
    assert torch.equal(spec.project(x), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.uint8])
def test_project_refuses_nan(dtype):
    spec = Bounded(low=0, high=4, shape=(3,), dtype=dtype)
    value = torch.tensor([[1.0, 2.0, 3.0], [0.5, float("nan"), float("nan")]])
    expected = r"Bounded\.project: the value holds NaN \(2 of 6 entries, first at index \(1, 1\)\)"
    with pytest.raises(SpecError, match=expected) as err:
        spec.project(value)
    assert "the policy produced NaN actions" in str(err.value)
    assert "low=0" in str(err.value)  # the spec is named


def test_project_clamps_infinities():
    spec = Bounded(low=-1.0, high=1.0, shape=(2,))
    assert torch.equal(spec.project(torch.tensor([INF, -INF])), torch.tensor([1.0, -1.0]))


# --------------------------------------------------------------------------- #
# encode, expand, to, clone, eq, repr
# --------------------------------------------------------------------------- #
def test_encode():
    spec = Bounded(low=-1.0, high=1.0, shape=(2,))
    out = spec.encode(np.array([0.5, -0.5]))
    assert out.dtype is torch.float32
    assert torch.equal(out, torch.tensor([0.5, -0.5]))
    # encode converts, it does not validate
    assert torch.equal(spec.encode([3.0, 0.0]), torch.tensor([3.0, 0.0]))


def test_expand_keeps_bounds_without_copy():
    low = torch.tensor([0.0, 1.0, 2.0])
    spec = Bounded(low=low, high=5.0)
    big = spec.expand(1000, 3)
    assert big.shape == (1000, 3)
    assert big.low.stride()[0] == 0  # a broadcast view, no materialised copy
    assert torch.equal(big.low[7], low)
    assert big == Bounded(low=low.expand(1000, 3), high=5.0)
    assert big.is_in(torch.full((1000, 3), 4.0))


def test_bounds_are_copied():
    low = torch.zeros(2)
    spec = Bounded(low=low, high=1.0)
    low.fill_(0.5)  # the caller reusing its tensor does not change the spec
    assert spec.low.tolist() == [0.0, 0.0]
    assert spec.is_in(torch.zeros(2))
    clone = spec.clone()
    assert clone == spec
    assert clone.low.data_ptr() != spec.low.data_ptr()


def test_eq_compares_bounds():
    a = Bounded(low=0.0, high=1.0, shape=(2,))
    assert a == Bounded(low=torch.zeros(2), high=torch.ones(2))
    assert a != Bounded(low=0.0, high=2.0, shape=(2,))
    assert a != Bounded(low=0.0, high=1.0, shape=(2,), dtype=torch.float64)
    assert a != Bounded(low=0, high=1, shape=(2,), dtype=torch.int64)


def test_to_same_device_is_identity():
    spec = Bounded(low=0.0, high=1.0, shape=(2,))
    assert spec.to("cpu") is spec
    assert spec.to(None) is spec


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_cuda():
    spec = Bounded(low=0.0, high=1.0, shape=(2,))
    gpu = spec.to("cuda")
    assert gpu.device.type == "cuda"
    assert gpu.low.device.type == "cuda"
    assert gpu.is_in(gpu.rand((3,)))
    assert not gpu.is_in(spec.rand())
    assert gpu.to("cpu") == spec


def test_repr_scalar_and_tensor_bounds():
    assert repr(Bounded(low=-1.0, high=1.0, shape=(2,))) == (
        "Bounded(shape=[2], dtype=torch.float32, device=cpu, low=-1.0, high=1.0)"
    )
    assert "low=[0, 1], high=[5, 6]" in repr(
        Bounded(low=torch.tensor([0, 1]), high=torch.tensor([5, 6]), dtype=torch.int64)
    )
    text = repr(Bounded(low=torch.arange(20.0), high=100.0))
    assert "low=<tensor [20], min 0.0, max 19.0>" in text


def test_uniform_rand_statistics_against_naive_reference():
    # naive reference: a loop over elements with Python's random would be uniform too;
    # here the golden reference is the analytic CDF at a few points
    torch.manual_seed(1)
    x = Bounded(low=3.0, high=7.0, shape=(40000,)).rand()
    for q in (0.1, 0.5, 0.9):
        assert math.isclose((x < 3 + 4 * q).float().mean().item(), q, abs_tol=0.01)
