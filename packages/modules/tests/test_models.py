"""Tests of ``MLP``, ``ConvNet`` and the dueling Q-networks against hand computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rlbricks.modules import MLP
from rlbricks.modules import ConvNet
from rlbricks.modules import DuelingCnnDQNet
from rlbricks.modules import DuelingMlpDQNet
from rlbricks.modules import ModuleError
from rlbricks.modules import NoisyLinear
from rlbricks.modules._models import dueling_combine


def linears(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Linear, NoisyLinear))]


# --------------------------------------------------------------------------- #
# MLP
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("batch", [(), (5,), (2, 3), (2, 1, 4)])
def test_mlp_accepts_any_batch_dims(batch):
    net = MLP(in_features=4, out_features=3, num_cells=(8, 8))
    assert net(torch.randn(*batch, 4)).shape == (*batch, 3)


def test_mlp_matches_a_hand_computation():
    torch.manual_seed(0)
    net = MLP(in_features=3, out_features=2, num_cells=(5, 4), activation_class=nn.Tanh)
    l1, l2, l3 = linears(net)
    x = torch.randn(6, 3)
    expected = F.linear(
        torch.tanh(F.linear(torch.tanh(F.linear(x, l1.weight, l1.bias)), l2.weight, l2.bias)),
        l3.weight,
        l3.bias,
    )
    torch.testing.assert_close(net(x), expected)


def test_mlp_layer_structure():
    net = MLP(
        in_features=3,
        out_features=2,
        num_cells=4,
        depth=3,
        activation_class=nn.ReLU,
        norm_class=nn.LayerNorm,
        dropout=0.1,
    )
    kinds = [type(m) for m in net]
    hidden = [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Dropout]
    assert kinds == hidden * 3 + [nn.Linear]
    assert [m.out_features for m in linears(net)] == [4, 4, 4, 2]


def test_mlp_int_num_cells_defaults_to_two_layers_and_depth_zero_is_linear():
    assert [m.out_features for m in linears(MLP(3, 2, num_cells=7))] == [7, 7, 2]
    single = MLP(3, 2, num_cells=7, depth=0)
    assert len(single) == 1
    assert isinstance(single[0], nn.Linear)


def test_mlp_last_layer_options():
    net = MLP(
        3,
        2,
        num_cells=(4,),
        bias_last_layer=False,
        activate_last_layer=True,
        activation_class=nn.Sigmoid,
    )
    assert net[-2].bias is None
    assert isinstance(net[-1], nn.Sigmoid)
    out = net(torch.randn(10, 3))
    assert bool(((out > 0) & (out < 1)).all())


def test_mlp_activation_and_norm_kwargs():
    net = MLP(
        3,
        2,
        num_cells=(4,),
        activation_class=nn.LeakyReLU,
        activation_kwargs={"negative_slope": 0.3},
        norm_class=nn.LayerNorm,
        norm_kwargs={"elementwise_affine": False},
    )
    assert net[2].negative_slope == 0.3
    assert net[1].weight is None


def test_mlp_lazy_input():
    net = MLP(out_features=2, num_cells=(4,))
    assert isinstance(net[0], nn.LazyLinear)
    assert net(torch.randn(3, 2, 9)).shape == (3, 2, 2)
    assert type(net[0]) is nn.Linear
    assert net[0].in_features == 9


def test_mlp_tuple_out_features_reshapes_the_output():
    net = MLP(in_features=4, out_features=(3, 5), num_cells=(8,))
    x = torch.randn(2, 7, 4)
    out = net(x)
    assert out.shape == (2, 7, 3, 5)
    flat = super(MLP, net).forward(x)  # the plain Sequential output, before reshaping
    torch.testing.assert_close(out, flat.reshape(2, 7, 3, 5))


def test_mlp_with_noisy_layers_lazy_and_not():
    net = MLP(
        in_features=3,
        out_features=2,
        num_cells=(4,),
        layer_class=NoisyLinear,
        layer_kwargs={"std_init": 0.5},
    )
    assert all(isinstance(m, NoisyLinear) for m in linears(net))
    assert net[0].std_init == 0.5
    lazy = MLP(out_features=2, num_cells=(4,), layer_class=NoisyLinear)
    assert lazy(torch.randn(5, 6)).shape == (5, 2)
    assert type(lazy[0]) is NoisyLinear
    assert lazy[0].in_features == 6


def test_mlp_device_and_dtype():
    net = MLP(3, 2, num_cells=(4,), device="cpu", norm_class=nn.LayerNorm)
    assert all(p.device.type == "cpu" for p in net.parameters())


def test_mlp_errors():
    with pytest.raises(ModuleError, match="out_features is required"):
        MLP(3)
    with pytest.raises(ModuleError, match="positive int"):
        MLP(3, 0)
    with pytest.raises(ModuleError, match="depth=3 but num_cells lists 2"):
        MLP(3, 2, num_cells=(4, 4), depth=3)
    with pytest.raises(ModuleError, match="pass in_features"):
        MLP(out_features=2, layer_class=nn.Bilinear)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"num_cells": [-4]},
            r"num_cells must be a positive int or a sequence of them .*got \[-4\]",
        ),
        ({"num_cells": [8, 0]}, r"num_cells must be .*, got \[8, 0\]"),
        ({"num_cells": 0}, r"num_cells must be .*, got 0"),
        ({"num_cells": [8.5]}, r"num_cells must be .*, got \[8\.5\]"),
        ({"num_cells": [True]}, r"num_cells must be .*, got \[True\]"),
        ({"num_cells": 8, "depth": -1}, r"depth must be an int >= 0, got -1"),
        ({"num_cells": 8, "depth": 1.5}, r"depth must be an int >= 0, got 1\.5"),
        ({"in_features": -3}, r"in_features must be a positive int or None .*got -3"),
        ({"in_features": 4.5}, r"in_features must be a positive int or None .*got 4\.5"),
        ({"dropout": 1.5}, r"dropout must be a number in \[0, 1\) .*got 1\.5"),
    ],
)
def test_mlp_refuses_invalid_sizes(kwargs, match):
    with pytest.raises(ModuleError, match=rf"^MLP: {match}"):
        MLP(**{"in_features": 4, "out_features": 2, **kwargs})


# --------------------------------------------------------------------------- #
# MLP with several inputs (TorchRL's critic: MLP(observation, action))
# --------------------------------------------------------------------------- #
def test_mlp_concatenates_several_inputs_along_the_last_dim():
    torch.manual_seed(0)
    net = MLP(in_features=3 + 2 + 1, out_features=2, num_cells=(8,))
    obs, action, extra = torch.randn(5, 3), torch.randn(5, 2), torch.randn(5, 1)
    torch.testing.assert_close(net(obs, action, extra), net(torch.cat([obs, action, extra], -1)))


def test_mlp_lazy_in_features_is_the_size_of_the_concatenation():
    net = MLP(out_features=1, num_cells=[64, 64])
    assert isinstance(net[0], nn.LazyLinear)
    assert net(torch.randn(7, 4), torch.randn(7, 2)).shape == (7, 1)
    assert type(net[0]) is nn.Linear
    assert net[0].in_features == 6


@pytest.mark.parametrize(
    ("obs", "action", "out"),
    [
        ((4, 3), (4, 2), (4, 1)),  # equal batch dims: a plain torch.cat
        ((3,), (2,), (1,)),  # no batch dim
        ((4, 3), (10, 4, 2), (10, 4, 1)),  # N sampled actions per observation
        ((1, 3), (4, 2), (4, 1)),  # size-1 dims broadcast
        ((3,), (6, 2), (6, 1)),  # an unbatched observation against a batch of actions
    ],
)
def test_mlp_broadcasts_the_leading_dims(obs, action, out):
    torch.manual_seed(0)
    net = MLP(in_features=5, out_features=1, num_cells=(8,))
    o, a = torch.randn(*obs), torch.randn(*action)
    got = net(o, a)
    assert got.shape == out
    lead = out[:-1]
    expected = net(torch.cat([o.expand(*lead, 3), a.expand(*lead, 2)], -1))
    torch.testing.assert_close(got, expected)


def test_mlp_gradients_reach_every_input_and_the_weights():
    net = MLP(out_features=1, num_cells=(8,))
    obs = torch.randn(4, 3, requires_grad=True)
    action = torch.randn(10, 4, 2, requires_grad=True)  # broadcast over obs
    net(obs, action).sum().backward()
    assert obs.grad is not None
    assert obs.grad.abs().sum() > 0
    assert action.grad is not None
    assert action.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_mlp_single_input_is_unchanged():
    torch.manual_seed(0)
    net = MLP(in_features=4, out_features=(2, 3), num_cells=(8,))
    x = torch.randn(5, 4)
    torch.testing.assert_close(net(x), nn.Sequential.forward(net, x).unflatten(-1, (2, 3)))


def test_mlp_input_errors():
    net = MLP(in_features=5, out_features=1)
    with pytest.raises(ModuleError, match="got no input"):
        net()
    with pytest.raises(ModuleError, match=r"feature dim.*\[\(4, 3\), \(\)\]; unsqueeze\(-1\)"):
        net(torch.randn(4, 3), torch.tensor(1.0))
    with pytest.raises(ModuleError, match=r"do not broadcast, got shapes \[\(4, 3\), \(5, 2\)\]"):
        net(torch.randn(4, 3), torch.randn(5, 2))
    with pytest.raises(ValueError):  # ModuleValueError is also a ValueError
        net(torch.randn(4, 3), torch.randn(5, 2))


# --------------------------------------------------------------------------- #
# ConvNet
# --------------------------------------------------------------------------- #
def test_convnet_atari_defaults():
    net = ConvNet()
    x = torch.zeros(2, 4, 84, 84)
    assert net(x).shape == (2, 64 * 7 * 7)
    assert isinstance(net.layers[0], nn.Conv2d)
    assert net.layers[0].in_channels == 4


@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (1, 2, 2)])
def test_convnet_accepts_any_batch_dims(batch):
    net = ConvNet(in_features=3, num_cells=(4, 8), kernel_sizes=3, strides=(2, 1))
    out = net(torch.randn(*batch, 3, 11, 11))
    assert out.shape == (*batch, 8 * 3 * 3)  # 11 -> 5 -> 3


def test_convnet_matches_a_hand_computation_and_flattens_chw():
    torch.manual_seed(0)
    net = ConvNet(
        in_features=2,
        num_cells=(3, 4),
        kernel_sizes=(3, 2),
        strides=(1, 2),
        paddings=(1, 0),
        activation_class=nn.ELU,
        squash_last_layer=False,
    )
    c1, _, c2 = net.layers
    x = torch.randn(2, 5, 2, 6, 6)
    flat = x.reshape(10, 2, 6, 6)
    h = F.elu(F.conv2d(flat, c1.weight, c1.bias, stride=1, padding=1))
    h = F.conv2d(h, c2.weight, c2.bias, stride=2)
    torch.testing.assert_close(net(x), h.reshape(2, 5, -1))
    assert h.shape[1:] == (4, 3, 3)


def test_convnet_per_layer_pairs_norm_and_aggregator():
    net = ConvNet(
        in_features=1,
        num_cells=(2, 2),
        kernel_sizes=[(3, 1), 1],
        strides=[1, (1, 2)],
        norm_class=nn.BatchNorm2d,
        aggregator=lambda h: h.mean((-2, -1)),
    )
    assert net.layers[0].kernel_size == (3, 1)
    assert net.layers[3].stride == (1, 2)
    assert isinstance(net.layers[1], nn.BatchNorm2d)
    assert net(torch.randn(4, 1, 5, 6)).shape == (4, 2)


def test_convnet_errors():
    with pytest.raises(ModuleError, match="kernel_sizes has 2 entries but num_cells has 3"):
        ConvNet(kernel_sizes=(3, 3))
    with pytest.raises(ModuleError, match="at least one conv"):
        ConvNet(num_cells=())
    with pytest.raises(ModuleError, match=r"\[\*batch, C, H, W\]"):
        ConvNet(in_features=1)(torch.zeros(5, 5))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_cells": [-4]}, r"num_cells must be positive ints, got \[-4\]"),
        ({"num_cells": [4, 2.0]}, r"num_cells must be positive ints, got \[4, 2\.0\]"),
        ({"in_features": 0}, r"in_features must be a positive int or None .*got 0"),
        ({"kernel_sizes": 0}, r"kernel_sizes must be .* positive .*, got 0"),
        ({"kernel_sizes": [(3, -1)]}, r"kernel_sizes must be .* positive .*, got \[\(3, -1\)\]"),
        ({"strides": 0}, r"strides must be .* positive .*, got 0"),
        ({"strides": [(1, 2, 3)]}, r"strides must be .*, got \[\(1, 2, 3\)\]"),
        ({"paddings": -1}, r"paddings must be .* >= 0.*, got -1"),
    ],
)
def test_convnet_refuses_invalid_sizes(kwargs, match):
    with pytest.raises(ModuleError, match=rf"^ConvNet: {match}"):
        ConvNet(**{"in_features": 3, "num_cells": [4], "kernel_sizes": 3, "strides": 1, **kwargs})


# --------------------------------------------------------------------------- #
# dueling
# --------------------------------------------------------------------------- #
def test_dueling_combine_by_hand():
    value = torch.tensor([[1.0], [-2.0]])
    advantage = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])
    expected = torch.tensor([[1 + 1 - 3, 1 + 2 - 3, 1 + 6 - 3], [-2 - 1, -2 - 1, -2 + 2]])
    torch.testing.assert_close(dueling_combine(value, advantage), expected.float())


def test_dueling_mlp_combines_value_and_advantage():
    torch.manual_seed(0)
    net = DuelingMlpDQNet(4, in_features=3)
    x = torch.randn(6, 3)
    h = net.features(x)
    v, a = net.value(h), net.advantage(h)
    assert v.shape == (6, 1)
    assert a.shape == (6, 4)
    q = net(x)
    expected = torch.stack([v[i] + a[i] - a[i].mean() for i in range(6)])
    torch.testing.assert_close(q, expected)
    torch.testing.assert_close((q - v).mean(-1), torch.zeros(6), atol=1e-6, rtol=0)


def test_dueling_mlp_distributional_shape_centres_over_actions():
    net = DuelingMlpDQNet((3, 5), in_features=2, mlp_kwargs_feature={"num_cells": (8,)})
    x = torch.randn(4, 2, 2)
    h = net.features(x)
    v, a = net.value(h), net.advantage(h)
    assert v.shape == (4, 2, 1, 5)
    assert a.shape == (4, 2, 3, 5)
    torch.testing.assert_close(net(x), v + a - a.mean(-2, keepdim=True))


def test_dueling_mlp_kwargs_and_noisy_layers():
    net = DuelingMlpDQNet(
        2,
        out_features_value=2,
        mlp_kwargs_feature={"out_features": 16, "layer_class": NoisyLinear},
        mlp_kwargs_output={"num_cells": (), "layer_class": NoisyLinear},
    )
    assert net(torch.randn(3, 7)).shape == (3, 2)  # lazy noisy trunk
    assert all(isinstance(m, NoisyLinear) for m in linears(net))
    assert net.value[0].out_features == 2
    assert net.advantage[0].in_features == 16


def test_dueling_cnn_combines_value_and_advantage():
    torch.manual_seed(0)
    net = DuelingCnnDQNet(
        3,
        cnn_kwargs={"num_cells": (4,), "kernel_sizes": 3, "strides": 2},
        mlp_kwargs={"num_cells": (8,)},
    )
    x = torch.randn(2, 5, 2, 9, 9)
    q = net(x)
    assert q.shape == (2, 5, 3)
    h = net.features(x)
    v, a = net.value(h), net.advantage(h)
    torch.testing.assert_close(q, v + a - a.mean(-1, keepdim=True))


def test_dueling_errors():
    with pytest.raises(ModuleError, match="out_features"):
        DuelingMlpDQNet(0)
    with pytest.raises(ModuleError, match="out_features"):
        DuelingCnnDQNet((2, -1))
