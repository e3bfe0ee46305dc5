"""Unbounded: any value of a dtype and shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlbricks.specs import SpecError
from rlbricks.specs import Unbounded


def test_defaults():
    spec = Unbounded()
    assert spec.shape == torch.Size([])
    assert spec.dtype is torch.float32
    assert spec.device == torch.device("cpu")
    assert spec.ndim == 0


def test_int_shape_means_vector():
    assert Unbounded(shape=3).shape == torch.Size([3])


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool]
)
def test_rand_shape_dtype_and_is_in(dtype):
    spec = Unbounded(shape=(2, 3), dtype=dtype)
    x = spec.rand((4,))
    assert x.shape == (4, 2, 3)
    assert x.dtype is dtype
    assert spec.is_in(x)


def test_rand_float_is_standard_normal():
    torch.manual_seed(0)
    x = Unbounded(shape=(20000,)).rand()
    assert abs(x.mean().item()) < 0.05
    assert abs(x.std().item() - 1) < 0.05


def test_rand_int_spans_the_dtype():
    torch.manual_seed(0)
    x = Unbounded(shape=(1000,), dtype=torch.int8).rand()
    assert x.min() < -100
    assert x.max() > 100


def test_zero():
    spec = Unbounded(shape=(2,), dtype=torch.int32)
    z = spec.zero((3,))
    assert z.shape == (3, 2)
    assert z.dtype is torch.int32
    assert not z.any()
    assert spec.zero().shape == (2,)


def test_is_in_checks_shape_dtype_device_type():
    spec = Unbounded(shape=(3,))
    assert spec.is_in(torch.zeros(3))
    assert spec.is_in(torch.zeros(5, 2, 3))
    assert spec.is_in(torch.tensor([float("inf"), float("nan"), -1e30]))
    assert not spec.is_in(torch.zeros(4))
    assert not spec.is_in(torch.zeros(3, 1))
    assert not spec.is_in(torch.zeros(()))
    assert not spec.is_in(torch.zeros(3, dtype=torch.float64))
    assert not spec.is_in(np.zeros(3, dtype=np.float32))
    assert not spec.is_in([0.0, 0.0, 0.0])
    assert not spec.is_in(torch.zeros(3, device="meta"))


def test_scalar_spec_accepts_any_batch():
    spec = Unbounded()
    assert spec.is_in(torch.zeros(()))
    assert spec.is_in(torch.zeros(7, 2))


def test_assert_is_in_messages():
    spec = Unbounded(shape=(3,))
    spec.assert_is_in(torch.zeros(2, 3))
    with pytest.raises(SpecError, match=r"expected dtype torch.float32, got torch.float64"):
        spec.assert_is_in(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(SpecError, match=r"ending with \[3\]\), got \[4\]"):
        spec.assert_is_in(torch.zeros(4))
    with pytest.raises(SpecError, match=r"expected a torch\.Tensor, got list"):
        spec.assert_is_in([1.0, 2.0, 3.0])


def test_project_casts_and_rounds():
    assert torch.equal(
        Unbounded(shape=(2,), dtype=torch.int64).project(torch.tensor([1.6, -2.4])),
        torch.tensor([2, -2]),
    )
    out = Unbounded(shape=(2,)).project(torch.tensor([1, 2]))
    assert out.dtype is torch.float32
    assert torch.equal(out, torch.tensor([1.0, 2.0]))


def test_project_nan_is_kept_for_floats_refused_for_integers():
    value = torch.tensor([float("nan"), 1.0])
    # NaN is a float32 value (is_in accepts it): nothing to project
    assert Unbounded(shape=(2,)).project(value).isnan().tolist() == [True, False]
    with pytest.raises(SpecError, match=r"Unbounded\.project: the value holds NaN \(1 of 2"):
        Unbounded(shape=(2,), dtype=torch.int64).project(value)


def test_project_rejects_wrong_shape_and_non_tensors():
    spec = Unbounded(shape=(2,))
    with pytest.raises(SpecError, match=r"ending with \[2\], got \[3\]"):
        spec.project(torch.zeros(3))
    with pytest.raises(TypeError, match="use encode"):
        spec.project([0.0, 1.0])  # type: ignore[arg-type]


def test_encode_cases():
    spec = Unbounded(shape=(1,))
    # python scalar -> reshaped to the spec shape
    assert torch.equal(spec.encode(0.5), torch.tensor([0.5]))
    # numpy float64 -> float32
    out = spec.encode(np.array([2.0]))
    assert out.dtype is torch.float32
    assert out.shape == (1,)
    # a batch missing the trailing singleton
    assert spec.encode(np.arange(4.0)).shape == (4, 1)
    # already right with a batch dim
    assert spec.encode(torch.zeros(4, 1, dtype=torch.float64)).shape == (4, 1)
    flat = Unbounded(shape=(2, 3)).encode(list(range(6)))
    assert flat.shape == (2, 3)
    assert flat[1, 2] == 5


def test_encode_shares_memory_when_possible():
    arr = np.zeros(3, dtype=np.float32)
    out = Unbounded(shape=(3,)).encode(arr)
    arr[0] = 7.0
    assert out[0] == 7.0


def test_encode_error():
    with pytest.raises(
        SpecError, match=r"cannot fit a value of shape \[4\] to the spec shape \[3\]"
    ):
        Unbounded(shape=(3,)).encode(np.zeros(4))


def test_expand():
    spec = Unbounded(shape=(3,))
    assert spec.expand(4, 3) == Unbounded(shape=(4, 3))
    assert spec.expand((2, 4, 3)).shape == (2, 4, 3)
    assert spec.expand(torch.Size([4, 3])).shape == (4, 3)
    assert spec.expand(4, -1).shape == (4, 3)
    assert spec.expand(3) == spec
    with pytest.raises(SpecError, match=r"did you mean expand\(4, 3\)"):
        spec.expand(4)
    with pytest.raises(SpecError, match="must end with the spec shape"):
        spec.expand(4, 2)


def test_to_clone_eq():
    spec = Unbounded(shape=(3,), dtype=torch.float64)
    assert spec.to("cpu") is spec
    assert spec.to(torch.device("cpu")) is spec
    clone = spec.clone()
    assert clone == spec
    assert clone is not spec
    meta = spec.to("meta")
    assert meta.device == torch.device("meta")
    assert meta != spec
    assert spec != Unbounded(shape=(3,))
    assert spec != Unbounded(shape=(4,), dtype=torch.float64)
    assert spec != "Unbounded"


def test_specs_are_unhashable():
    with pytest.raises(TypeError):
        hash(Unbounded())


def test_repr():
    assert repr(Unbounded(shape=(2,), dtype=torch.int64)) == (
        "Unbounded(shape=[2], dtype=torch.int64, device=cpu)"
    )


def test_constructor_errors():
    with pytest.raises(SpecError, match=r"dtype must be a torch\.dtype"):
        Unbounded(dtype="float32")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="non-negative"):
        Unbounded(shape=(-1,))
    with pytest.raises(SpecError, match="sequence of ints"):
        Unbounded(shape="abc")  # type: ignore[arg-type]


def test_zero_size_dims():
    spec = Unbounded(shape=(0, 2))
    x = spec.rand((3,))
    assert x.shape == (3, 0, 2)
    assert spec.is_in(x)
