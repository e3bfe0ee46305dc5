"""Tests of ``NoisyLinear``, its lazy variant and ``reset_noise``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rlbricks.modules import MLP
from rlbricks.modules import NoisyLinear
from rlbricks.modules import reset_noise
from rlbricks.modules._noisy import LazyNoisyLinear


def test_initialisation_follows_fortunato():
    torch.manual_seed(0)
    layer = NoisyLinear(16, 8, std_init=0.5)
    bound = 1 / math.sqrt(16)
    assert bool((layer.weight_mu.abs() <= bound).all() and (layer.bias_mu.abs() <= bound).all())
    torch.testing.assert_close(layer.weight_sigma, torch.full((8, 16), 0.5 / 4))
    torch.testing.assert_close(layer.bias_sigma, torch.full((8,), 0.5 / 4))


def test_noise_is_factorised():
    layer = NoisyLinear(5, 3)
    eps_w, eps_b = layer.weight_epsilon, layer.bias_epsilon
    # eps_w = f(e_out) f(e_in)^T with eps_b = f(e_out): rank one, rows proportional to eps_b
    assert torch.linalg.matrix_rank(eps_w).item() == 1
    eps_in = eps_w[0] / eps_b[0]
    torch.testing.assert_close(eps_w, torch.outer(eps_b, eps_in))


def test_training_forward_uses_mu_plus_sigma_eps():
    layer = NoisyLinear(4, 3)
    x = torch.randn(7, 4)
    w = layer.weight_mu + layer.weight_sigma * layer.weight_epsilon
    b = layer.bias_mu + layer.bias_sigma * layer.bias_epsilon
    torch.testing.assert_close(layer(x), x @ w.T + b)


def test_eval_uses_the_mean_weights():
    layer = NoisyLinear(4, 3, std_init=2.0).eval()
    x = torch.randn(7, 4)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu))
    layer.reset_noise()
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight_mu, layer.bias_mu))
    assert not torch.equal(layer.train()(x), layer.eval()(x))


def test_noise_changes_only_on_reset_noise():
    torch.manual_seed(1)
    layer = NoisyLinear(4, 3)
    optimiser = torch.optim.SGD(layer.parameters(), lr=0.1)
    x = torch.randn(6, 4)
    eps = layer.weight_epsilon.clone(), layer.bias_epsilon.clone()
    first = layer(x)
    for _ in range(3):  # forward, backward and optimiser steps leave the noise alone
        optimiser.zero_grad()
        layer(x).pow(2).sum().backward()
        optimiser.step()
        layer.eval()
        layer.train()
    assert torch.equal(layer.weight_epsilon, eps[0])
    assert torch.equal(layer.bias_epsilon, eps[1])
    assert not torch.equal(layer(x), first)  # the weights learned, the noise did not move
    before = layer(x).detach()
    assert torch.equal(layer(x), before)
    layer.reset_noise()
    assert not torch.equal(layer.weight_epsilon, eps[0])
    assert not torch.equal(layer(x), before)


def test_gradients_reach_mu_and_sigma():
    layer = NoisyLinear(3, 2)
    layer(torch.randn(5, 3)).sum().backward()
    for p in (layer.weight_mu, layer.weight_sigma, layer.bias_mu, layer.bias_sigma):
        assert p.grad is not None
        assert bool(p.grad.abs().sum() > 0)


def test_without_bias():
    layer = NoisyLinear(3, 2, bias=False)
    assert layer.bias is None
    assert layer.bias_mu is None
    assert layer.bias_epsilon is None
    x = torch.randn(4, 3)
    torch.testing.assert_close(layer(x), x @ layer.weight.T)
    layer.reset_noise()


def test_state_dict_holds_the_noise_and_round_trips():
    layer = NoisyLinear(3, 2)
    state = layer.state_dict()
    assert set(state) == {
        "weight_mu",
        "weight_sigma",
        "weight_epsilon",
        "bias_mu",
        "bias_sigma",
        "bias_epsilon",
    }
    other = NoisyLinear(3, 2)
    other.load_state_dict(state)
    x = torch.randn(2, 3)
    torch.testing.assert_close(other(x), layer(x))


def test_device_and_dtype_arguments():
    layer = NoisyLinear(3, 2, device="cpu", dtype=torch.float64)
    assert layer.weight_mu.dtype == torch.float64
    assert layer.weight_epsilon.dtype == torch.float64
    assert layer(torch.zeros(1, 3, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda():
    layer = NoisyLinear(3, 2, device="cuda")
    layer.reset_noise()
    assert layer(torch.zeros(1, 3, device="cuda")).device.type == "cuda"


def test_lazy_noisy_linear_materialises_on_first_input():
    layer = LazyNoisyLinear(4, std_init=0.3)
    assert reset_noise(layer) == 1  # a no-op before the first input
    out = layer(torch.randn(2, 5, 6))
    assert out.shape == (2, 5, 4)
    assert type(layer) is NoisyLinear
    assert layer.in_features == 6
    torch.testing.assert_close(layer.weight_sigma, torch.full((4, 6), 0.3 / math.sqrt(6)))
    assert torch.linalg.matrix_rank(layer.weight_epsilon).item() == 1


def test_reset_noise_walks_the_module_tree():
    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def reset_noise(self) -> None:
            self.calls += 1

    custom = Custom()
    net = nn.Sequential(
        MLP(in_features=3, out_features=2, num_cells=(4,), layer_class=NoisyLinear),
        nn.ReLU(),
        nn.Sequential(NoisyLinear(2, 2), custom),
    )
    noisy = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    before = [m.weight_epsilon.clone() for m in noisy]
    assert reset_noise(net) == 4
    assert custom.calls == 1
    for m, eps in zip(noisy, before):
        assert not torch.equal(m.weight_epsilon, eps)


def test_reset_noise_on_a_model_without_noise_does_nothing():
    net = nn.Linear(2, 2)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    assert reset_noise(net) == 0
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k])
