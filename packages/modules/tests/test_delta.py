"""Tests of the point masses ``Delta`` and ``TanhDelta``."""

from __future__ import annotations

import math

import pytest
import torch

from rlbricks.modules import Delta
from rlbricks.modules import ModuleError
from rlbricks.modules import TanhDelta


def test_delta_samples_are_the_parameter():
    param = torch.randn(4, 3)
    dist = Delta(param)
    assert dist.batch_shape == (4,)
    assert dist.event_shape == (3,)
    torch.testing.assert_close(dist.sample(), param)
    torch.testing.assert_close(dist.sample((2,)), param.expand(2, 4, 3))
    for value in (dist.mode, dist.mean, dist.deterministic_sample):
        torch.testing.assert_close(value, param)
    torch.testing.assert_close(dist.entropy(), torch.zeros(4))


def test_delta_rsample_keeps_the_gradient_and_sample_drops_it():
    param = torch.randn(2, 2, requires_grad=True)
    dist = Delta(param)
    (3 * dist.rsample()).sum().backward()
    torch.testing.assert_close(param.grad, torch.full((2, 2), 3.0))
    assert not dist.sample().requires_grad


def test_delta_log_prob_is_zero_on_the_point_and_minus_inf_elsewhere():
    param = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    dist = Delta(param, atol=1e-3, rtol=0.0)
    values = torch.tensor([[1.0005, 2.0], [3.0, 4.1]])  # within atol / one entry off
    torch.testing.assert_close(dist.log_prob(values), torch.tensor([0.0, -math.inf]))
    # the whole event must match: one wrong entry is enough for -inf
    assert dist.log_prob(param + torch.tensor([0.0, 1.0])).tolist() == [-math.inf, -math.inf]


def test_delta_event_dims():
    param = torch.zeros(2, 3)
    assert Delta(param, event_dims=0).log_prob(param).shape == (2, 3)
    assert Delta(param, event_dims=2).log_prob(param).shape == ()
    with pytest.raises(ModuleError, match="event_dims=3"):
        Delta(param, event_dims=3)


def test_tanh_delta_squashes_into_the_box():
    param = torch.tensor([[-50.0, 0.0, 0.5]])
    low, high = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 4.0, 3.0])
    dist = TanhDelta(param, low=low, high=high)
    expected = (high + low) / 2 + (high - low) / 2 * torch.tanh(param)
    torch.testing.assert_close(dist.sample(), expected)
    torch.testing.assert_close(dist.mode, expected)
    assert dist.log_prob(expected).item() == 0.0
    assert dist.support.check(expected).all()


def test_tanh_delta_gradient_flows_through_tanh():
    param = torch.zeros(1, 2, requires_grad=True)
    TanhDelta(param, low=-2.0, high=2.0).rsample().sum().backward()
    torch.testing.assert_close(param.grad, torch.full((1, 2), 2.0))  # half * (1 - tanh(0)^2)


def test_tanh_delta_rejects_an_empty_box():
    with pytest.raises(ModuleError, match="low must be < high"):
        TanhDelta(torch.zeros(1), low=1.0, high=-1.0)
