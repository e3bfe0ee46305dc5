"""Tests of ``TanhNormal`` and ``TruncatedNormal`` against float64 reference computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from rlbricks.modules import ModuleError
from rlbricks.modules import TanhNormal
from rlbricks.modules import TruncatedNormal

F64 = torch.float64


def _trapezoid(y: torch.Tensor, x: torch.Tensor) -> float:
    return float(torch.trapezoid(y, x))


# --------------------------------------------------------------------------- #
# TanhNormal
# --------------------------------------------------------------------------- #
def tanh_normal_reference(x, loc, scale, low, high):
    """log p(x) by the change of variables, in float64, with the Jacobian from autograd.

    z = atanh(y), y = (x - mid) / half; log p(x) = log N(z) - log |d x / d z|.
    """
    x, loc, scale = x.to(F64), loc.to(F64), scale.to(F64)
    low = torch.as_tensor(low, dtype=F64)
    high = torch.as_tensor(high, dtype=F64)
    mid, half = (high + low) / 2, (high - low) / 2
    z = torch.atanh((x - mid) / half).detach().requires_grad_(True)
    forward = mid + half * torch.tanh(z)
    (jac,) = torch.autograd.grad(forward.sum(), z)  # diagonal Jacobian
    lp = Normal(loc, scale).log_prob(z.detach()) - torch.log(jac.abs())
    return lp.sum(-1)


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (-2.0, 2.0), (0.0, 5.0)])
def test_tanh_normal_log_prob_matches_change_of_variables(low, high):
    torch.manual_seed(0)
    loc = torch.randn(64, 3, dtype=F64)
    scale = torch.rand(64, 3, dtype=F64) + 0.2
    dist = TanhNormal(loc, scale, low=low, high=high)
    x = dist.sample()
    torch.testing.assert_close(
        dist.log_prob(x), tanh_normal_reference(x, loc, scale, low, high), rtol=1e-9, atol=1e-9
    )


def test_tanh_normal_log_prob_near_bounds_matches_reference():
    loc = torch.tensor([[0.3, -0.2]], dtype=F64)
    scale = torch.tensor([[0.8, 1.5]], dtype=F64)
    low, high = -2.0, 3.0
    width = high - low
    dist = TanhNormal(loc, scale, low=low, high=high)
    for gap in (1e-3, 1e-6, 1e-9):  # relative distance to the bounds
        x = torch.tensor([[high - gap * width, low + gap * width]], dtype=F64)
        expected = tanh_normal_reference(x, loc, scale, low, high)
        torch.testing.assert_close(dist.log_prob(x), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_normal_log_prob_at_the_bounds_is_finite(dtype):
    loc = torch.tensor([[0.0, 2.0, -2.0]], dtype=dtype)
    scale = torch.tensor([[1.0, 0.3, 0.3]], dtype=dtype)
    dist = TanhNormal(loc, scale, low=-1.0, high=1.0)
    eps = torch.finfo(dtype).eps
    values = torch.tensor(
        [[1.0, -1.0, 1.0], [1 - eps, -1 + eps, 0.0], [math.nextafter(1.0, 0.0), -1.0, -1.0]],
        dtype=dtype,
    )
    lp = dist.log_prob(values)
    assert lp.isfinite().all()
    # at the bound the distance is clamped to eps of the dtype: same as eps * width away
    at_bound = dist.log_prob(torch.tensor([[1.0, 1.0, 1.0]], dtype=dtype))
    near = dist.log_prob(torch.tensor([[1.0, 1.0, 1.0]], dtype=dtype) - 2 * eps)
    torch.testing.assert_close(at_bound, near)


def test_tanh_normal_log_prob_of_saturated_samples_is_finite_and_has_finite_grads():
    loc = torch.full((256, 2), 12.0, requires_grad=True)  # tanh saturates in float32
    scale = torch.full((256, 2), 0.5, requires_grad=True)
    dist = TanhNormal(loc, scale, low=-2.0, high=2.0)
    x = dist.rsample()
    assert bool((x == 2.0).any())  # samples hit the bound exactly
    lp = dist.log_prob(x)
    assert lp.isfinite().all()
    lp.sum().backward()
    assert loc.grad is not None
    assert loc.grad.isfinite().all()
    assert scale.grad is not None
    assert scale.grad.isfinite().all()


def test_tanh_normal_density_integrates_to_one():
    loc, scale = torch.tensor([[0.7]], dtype=F64), torch.tensor([[0.9]], dtype=F64)
    dist = TanhNormal(loc, scale, low=-3.0, high=1.0)
    x = torch.linspace(-3.0, 1.0, 200_001, dtype=F64)[1:-1]
    density = dist.log_prob(x.unsqueeze(-1)).exp()
    assert _trapezoid(density, x) == pytest.approx(1.0, abs=1e-4)


def test_tanh_normal_samples_follow_the_squashed_normal():
    torch.manual_seed(1)
    loc, scale = torch.tensor([0.4, -1.0]), torch.tensor([0.5, 2.0])
    dist = TanhNormal(loc, scale, low=torch.tensor([-1.0, 0.0]), high=torch.tensor([1.0, 4.0]))
    x = dist.sample((50_000,))
    assert x.shape == (50_000, 2)
    assert bool((x[:, 0].abs() <= 1).all() and (x[:, 1] >= 0).all() and (x[:, 1] <= 4).all())
    # the same transformation applied to Normal samples by hand
    z = Normal(loc, scale).sample((50_000,))
    by_hand = torch.stack([torch.tanh(z[:, 0]), 2 + 2 * torch.tanh(z[:, 1])], -1)
    torch.testing.assert_close(x.mean(0), by_hand.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(x.mean(0), dist.mean, atol=0.02, rtol=0)


@pytest.mark.parametrize("scale", [0.05, 0.5, 1.0, 1.5, 4.0, 30.0])
@pytest.mark.parametrize("loc", [-3.0, 0.0, 0.7])
def test_tanh_normal_mean_matches_numerical_integration(loc, scale):
    z = torch.linspace(loc - 12 * scale, loc + 12 * scale, 400_001, dtype=F64)
    density = Normal(torch.tensor(loc, dtype=F64), torch.tensor(scale, dtype=F64)).log_prob(z).exp()
    expected = 0.5 + 1.5 * _trapezoid(torch.tanh(z) * density, z)  # box [-1, 2]
    dist = TanhNormal(
        torch.tensor([loc], dtype=F64), torch.tensor([scale], dtype=F64), low=-1.0, high=2.0
    )
    assert dist.mean.item() == pytest.approx(expected, abs=1e-7)


def test_tanh_normal_mode_and_deterministic_sample_are_the_squashed_loc():
    loc = torch.tensor([[-0.5, 0.0, 3.0]])
    dist = TanhNormal(loc, torch.ones(1, 3), low=-2.0, high=4.0)
    expected = 1.0 + 3.0 * torch.tanh(loc)
    torch.testing.assert_close(dist.mode, expected)
    torch.testing.assert_close(dist.deterministic_sample, expected)


def test_tanh_normal_rsample_is_differentiable():
    loc = torch.zeros(4, 2, requires_grad=True)
    scale = torch.ones(4, 2, requires_grad=True)
    x = TanhNormal(loc, scale).rsample()
    x.sum().backward()
    assert loc.grad is not None
    assert bool((loc.grad > 0).all())
    assert scale.grad is not None
    assert TanhNormal(loc, scale).sample().requires_grad is False


def test_tanh_normal_tanh_loc_limits_the_location():
    loc = torch.tensor([[100.0, 1.0]])
    dist = TanhNormal(loc, torch.ones(1, 2), upscale=5.0, tanh_loc=True)
    torch.testing.assert_close(dist.loc, 5.0 * torch.tanh(loc / 5.0))


@pytest.mark.parametrize(
    ("event_dims", "batch", "event"), [(0, (4, 3), ()), (1, (4,), (3,)), (2, (), (4, 3))]
)
def test_tanh_normal_event_dims(event_dims, batch, event):
    dist = TanhNormal(torch.zeros(4, 3), torch.ones(4, 3), event_dims=event_dims)
    assert dist.batch_shape == batch
    assert dist.event_shape == event
    x = dist.sample((5,))
    assert x.shape == (5, 4, 3)
    lp = dist.log_prob(x)
    assert lp.shape == (5, *batch)
    per_entry = TanhNormal(torch.zeros(4, 3), torch.ones(4, 3), event_dims=0).log_prob(x)
    torch.testing.assert_close(lp, per_entry.reshape(5, *batch, -1).sum(-1))


def test_tanh_normal_bounds_broadcast_to_the_parameters():
    dist = TanhNormal(torch.zeros(2, 1), torch.ones(2, 1), low=torch.zeros(3), high=torch.ones(3))
    assert dist.sample().shape == (2, 3)
    assert dist.batch_shape == (2,)
    assert dist.event_shape == (3,)


def test_tanh_normal_bad_arguments():
    with pytest.raises(ModuleError, match="low must be < high"):
        TanhNormal(torch.zeros(2), torch.ones(2), low=1.0, high=1.0)
    with pytest.raises(ModuleError, match="low must be < high"):
        TanhNormal(torch.zeros(2), torch.ones(2), low=torch.zeros(2), high=torch.tensor([1.0, 0]))
    with pytest.raises(ModuleError, match="event_dims=2"):
        TanhNormal(torch.zeros(2), torch.ones(2), event_dims=2)
    with pytest.raises(ValueError):  # torch's argument validation: the scale must be positive
        TanhNormal(torch.zeros(2), -torch.ones(2))


# --------------------------------------------------------------------------- #
# TruncatedNormal
# --------------------------------------------------------------------------- #
def truncated_reference(x, loc, scale, low, high):
    """Naive float64 log-density: log N(x) - log(Phi(beta) - Phi(alpha))."""
    x, loc, scale = x.to(F64), torch.as_tensor(loc, dtype=F64), torch.as_tensor(scale, dtype=F64)
    alpha = (torch.as_tensor(low, dtype=F64) - loc) / scale
    beta = (torch.as_tensor(high, dtype=F64) - loc) / scale
    mass = torch.special.ndtr(beta) - torch.special.ndtr(alpha)
    return Normal(loc, scale).log_prob(x) - torch.log(mass)


@pytest.mark.parametrize(
    ("loc", "scale", "low", "high"),
    [
        (0.0, 1.0, -1.0, 1.0),
        (2.0, 0.5, -1.0, 1.0),
        (-0.3, 3.0, -2.0, 0.5),
        (0.0, 1.0, 0.0, math.inf),
    ],
)
def test_truncated_normal_log_prob_matches_reference(loc, scale, low, high):
    torch.manual_seed(0)
    dist = TruncatedNormal(
        torch.tensor([loc], dtype=F64), torch.tensor([scale], dtype=F64), low=low, high=high
    )
    x = dist.sample((500,))
    expected = truncated_reference(x, loc, scale, low, high).squeeze(-1)
    torch.testing.assert_close(dist.log_prob(x), expected, rtol=1e-10, atol=1e-10)
    if math.isfinite(high):
        outside = torch.tensor([[low - 0.1], [high + 0.1]], dtype=F64)
        with pytest.raises(ValueError, match="support"):  # torch's validation
            dist.log_prob(outside)
        lax = TruncatedNormal(dist.loc, dist.scale, low, high, validate_args=False)
        assert bool((lax.log_prob(outside) == -math.inf).all())


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (8.0, 9.0), (-12.0, -11.5), (3.0, 3.01)])
def test_truncated_normal_density_integrates_to_one_even_in_the_tails(low, high):
    dist = TruncatedNormal(torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64), low=low, high=high)
    x = torch.linspace(low, high, 100_001, dtype=F64)
    density = dist.log_prob(x.unsqueeze(-1)).exp()
    assert _trapezoid(density, x) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("low", "high"), [(-1.0, 1.0), (8.0, 9.0), (-12.0, -11.5), (0.5, math.inf)]
)
def test_truncated_normal_mean_and_variance_match_integration(low, high):
    dist = TruncatedNormal(torch.zeros(1, dtype=F64), torch.ones(1, dtype=F64), low=low, high=high)
    top = high if math.isfinite(high) else low + 20.0
    x = torch.linspace(low, top, 200_001, dtype=F64)
    density = dist.log_prob(x.unsqueeze(-1)).exp()
    mean = _trapezoid(x * density, x)
    var = _trapezoid((x - mean) ** 2 * density, x)
    assert dist.mean.item() == pytest.approx(mean, abs=1e-7)
    assert dist.variance.item() == pytest.approx(var, rel=1e-5)


@pytest.mark.parametrize(("low", "high"), [(-1.0, 1.0), (8.0, 9.0), (-12.0, -11.5)])
def test_truncated_normal_samples_stay_inside_and_match_the_mean(low, high):
    torch.manual_seed(2)
    dist = TruncatedNormal(torch.zeros(1), torch.ones(1), low=low, high=high)
    x = dist.sample((40_000,))
    assert bool(((x >= low) & (x <= high)).all())
    std = dist.variance.sqrt().item()
    assert x.mean().item() == pytest.approx(dist.mean.item(), abs=5 * std / 200)


def test_truncated_normal_empirical_cdf_matches_the_analytic_one():
    torch.manual_seed(3)
    loc, scale, low, high = 0.5, 1.2, -1.0, 2.0
    x = TruncatedNormal(torch.tensor([loc]), torch.tensor([scale]), low, high).sample((40_000,))
    for point in (-0.5, 0.5, 1.5):
        cdf = torch.special.ndtr(torch.tensor([(point - loc) / scale, (low - loc) / scale]))
        mass = torch.special.ndtr(torch.tensor((high - loc) / scale)) - cdf[1]
        expected = ((cdf[0] - cdf[1]) / mass).item()
        assert (x <= point).float().mean().item() == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("loc0", [0.2, 1.0, -4.0])  # mirrored interval, plain, lower tail
def test_truncated_normal_rsample_pathwise_gradient_matches_finite_differences(loc0):
    def draw(loc: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(4)  # the same uniforms for every call
        return TruncatedNormal(loc, torch.tensor([0.7], dtype=F64), -1.0, 1.5).rsample((64,))

    loc = torch.tensor([loc0], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(draw(loc).sum(), loc)
    h = 1e-6
    with torch.no_grad():
        fd = (draw(loc + h).sum() - draw(loc - h).sum()) / (2 * h)
    assert grad.item() == pytest.approx(fd.item(), rel=1e-5)


def test_truncated_normal_mode_and_deterministic_sample():
    dist = TruncatedNormal(torch.tensor([[-3.0, 0.2, 5.0]]), torch.ones(1, 3), -1.0, 2.0)
    expected = torch.tensor([[-1.0, 0.2, 2.0]])
    torch.testing.assert_close(dist.mode, expected)
    torch.testing.assert_close(dist.deterministic_sample, expected)


def test_truncated_normal_far_outside_box_samples_the_near_bound():
    dist = TruncatedNormal(torch.tensor([0.0]), torch.tensor([1.0]), low=40.0, high=41.0)
    x = dist.sample((10,))
    assert bool(((x >= 40.0) & (x <= 41.0)).all())
    assert x.isfinite().all()


def test_truncated_normal_bad_arguments():
    with pytest.raises(ModuleError, match="low must be < high"):
        TruncatedNormal(torch.zeros(1), torch.ones(1), low=2.0, high=1.0)
    with pytest.raises(ModuleError, match="event_dims"):
        TruncatedNormal(torch.zeros(1), torch.ones(1), event_dims=-1)
