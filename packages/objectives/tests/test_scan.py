"""The parallel reverse scan against a plain backward loop."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.objectives.value._scan import reverse_scan


def loop_scan(x: torch.Tensor, c: torch.Tensor, dim: int) -> torch.Tensor:
    """``a_t = x_t + c_t * a_{t+1}``, ``a_T = 0``, one step at a time."""
    xs, cs = x.movedim(dim, 0), c.movedim(dim, 0)
    out = torch.empty_like(xs)
    acc = torch.zeros_like(xs[0]) if len(xs) else None
    for t in reversed(range(len(xs))):
        acc = xs[t] + cs[t] * acc
        out[t] = acc
    return out.movedim(0, dim)


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 8, 9, 31, 64, 100, 257])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_loop(steps, dtype):
    g = torch.Generator().manual_seed(steps)
    x = torch.randn(3, steps, 2, generator=g, dtype=dtype)
    c = torch.rand(3, steps, 2, generator=g, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(reverse_scan(x, c, 1), loop_scan(x, c, 1), atol=tol, rtol=tol)


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_any_time_dim(dim):
    g = torch.Generator().manual_seed(dim)
    x = torch.randn(5, 6, 7, generator=g, dtype=torch.float64)
    c = torch.rand(5, 6, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(reverse_scan(x, c, dim), loop_scan(x, c, dim))


def test_inputs_untouched_and_output_plain():
    x = torch.randn(4, 10, 1)
    c = torch.rand(4, 10, 1)
    x0, c0 = x.clone(), c.clone()
    out = reverse_scan(x, c, 1)
    assert torch.equal(x, x0)
    assert torch.equal(c, c0)
    assert out.is_contiguous()
    assert out.shape == x.shape


def test_single_step_returns_a_copy():
    x = torch.randn(3, 1, 1)
    out = reverse_scan(x, torch.rand(3, 1, 1), 1)
    assert torch.equal(out, x)
    assert out.data_ptr() != x.data_ptr()


def test_non_contiguous_inputs():
    x = torch.randn(6, 20, dtype=torch.float64).t()  # [20, 6], time dim 0, strided
    c = torch.rand(6, 20, dtype=torch.float64).t()
    torch.testing.assert_close(reverse_scan(x, c, 0), loop_scan(x, c, 0))


def test_zero_and_unit_discounts():
    x = torch.ones(1, 6)
    assert torch.equal(reverse_scan(x, torch.zeros(1, 6), 1), x)
    assert torch.equal(reverse_scan(x, torch.ones(1, 6), 1), torch.arange(6.0, 0.0, -1).view(1, 6))


def test_long_products_underflow_to_zero():
    # 0.5 ** 2000 is 0 in float32: far contributions vanish, nothing becomes nan or inf
    x = torch.ones(1, 2000)
    out = reverse_scan(x, torch.full((1, 2000), 0.5), 1)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, :1000], torch.full((1000,), 2.0))


def test_mixed_dtypes_promote():
    x = torch.randn(2, 9)
    c = torch.rand(2, 9, dtype=torch.float64)
    out = reverse_scan(x, c, 1)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, loop_scan(x.double(), c, 1))


def test_gradients_match_the_loop():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 13, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.rand(3, 13, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(3, 13, generator=g, dtype=torch.float64)
    (reverse_scan(x, c, 1) * weights).sum().backward()
    grads = x.grad.clone(), c.grad.clone()
    x.grad, c.grad = None, None
    (loop_scan(x, c, 1) * weights).sum().backward()
    torch.testing.assert_close(grads[0], x.grad)
    torch.testing.assert_close(grads[1], c.grad)


def test_no_grad_mode_takes_the_buffered_path():
    x = torch.randn(2, 7, requires_grad=True)
    c = torch.rand(2, 7)
    with torch.no_grad():
        out = reverse_scan(x, c, 1)
    assert not out.requires_grad
    torch.testing.assert_close(out, loop_scan(x.detach(), c, 1))


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(1, 70),
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    seed=st.integers(0, 2**16),
    zero_rate=st.floats(0.0, 1.0),
)
def test_property_matches_loop(steps, batch, seed, zero_rate):
    g = torch.Generator().manual_seed(seed)
    shape = (*batch, steps)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    c = torch.rand(shape, generator=g, dtype=torch.float64)
    c = c.masked_fill(torch.rand(shape, generator=g) < zero_rate, 0.0)
    dim = len(batch)
    torch.testing.assert_close(reverse_scan(x, c, dim), loop_scan(x, c, dim))
