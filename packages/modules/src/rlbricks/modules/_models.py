"""Standard networks as plain ``nn.Module``: ``MLP``, ``ConvNet`` and the dueling Q-networks.

They take and return tensors (no TensorDict); wrap them in a
``TensorDictModule`` or an actor to read and write keys.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch import nn

from rlbricks.modules._checks import check_int
from rlbricks.modules._checks import check_number
from rlbricks.modules._checks import is_int
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._noisy import LazyNoisyLinear
from rlbricks.modules._noisy import NoisyLinear

__all__ = [
    "MLP",
    "ConvNet",
    "DuelingCnnDQNet",
    "DuelingMlpDQNet",
    "concat_inputs",
    "dueling_combine",
]

Device = torch.device | str | None
IntOrPair = int | tuple[int, int]


def _out_shape(out_features: Any, who: str) -> tuple[int, ...]:
    """``out_features`` (an int or a sequence of ints) as a tuple of positive ints."""
    items: list[Any] | None
    items = [out_features] if isinstance(out_features, numbers.Number) else _int_list(out_features)
    if not items or not all(is_int(n) for n in items):
        raise ModuleValueError(
            f"{who}: out_features must be a positive int or ints, got {out_features!r}"
        )
    return tuple(int(n) for n in items)


def _in_features(in_features: Any, who: str) -> int | None:
    """``in_features``, checked to be a positive int or ``None`` (lazy)."""
    if in_features is not None and not is_int(in_features):
        raise ModuleValueError(
            f"{who}: in_features must be a positive int or None (lazy), got {in_features!r}"
        )
    return None if in_features is None else int(in_features)


def _hidden_sizes(num_cells: int | Sequence[int], depth: int | None) -> list[int]:
    if depth is not None:
        depth = check_int("MLP", "depth", depth, minimum=0)
    if is_int(num_cells):
        return [int(num_cells)] * (2 if depth is None else depth)  # type: ignore[arg-type]
    cells = _int_list(num_cells)
    if cells is None or not all(is_int(n) for n in cells):
        raise ModuleValueError(
            "MLP: num_cells must be a positive int or a sequence of them (the sizes of the "
            f"hidden layers; () for none), got {num_cells!r}"
        )
    if depth is not None and depth != len(cells):
        raise ModuleValueError(
            f"MLP: depth={depth} but num_cells lists {len(cells)} layers {cells}; pass one of them"
        )
    return [int(n) for n in cells]


def _int_list(value: Any) -> list[Any] | None:
    """``value`` as a list when it is an iterable other than a string or a number, else None."""
    if isinstance(value, (str, bytes, numbers.Number)):
        return None
    try:
        return list(value)
    except TypeError:
        return None


def _linear(
    layer_class: type[nn.Module],
    in_features: int | None,
    out_features: int,
    bias: bool,
    device: Device,
    layer_kwargs: Mapping[str, Any],
) -> nn.Module:
    if in_features is not None:
        return layer_class(in_features, out_features, bias=bias, device=device, **layer_kwargs)
    if layer_class is nn.Linear:
        return nn.LazyLinear(out_features, bias=bias, device=device, **layer_kwargs)
    if layer_class is NoisyLinear:
        return LazyNoisyLinear(out_features, bias=bias, device=device, **layer_kwargs)
    raise ModuleValueError(
        f"MLP: in_features=None needs a lazy version of layer_class, which only nn.Linear and "
        f"NoisyLinear have; pass in_features to use {layer_class.__name__}"
    )


def concat_inputs(inputs: Sequence[Tensor], owner: str = "MLP") -> Tensor:
    """Concatenate tensors along their last dim, broadcasting the leading (batch) dims.

    ``[*b1, d1]``, ``[*b2, d2]``, ... give ``[*b, d1 + d2 + ...]`` where
    ``b`` is the broadcast of ``b1, b2, ...``: an observation ``[B, d]`` and
    ``N`` sampled actions ``[N, B, a]`` give ``[N, B, d + a]``. Inputs whose
    leading dims already agree are concatenated as they are (TorchRL's
    ``MLP`` does only that: it calls ``torch.cat(inputs, -1)``).

    Args:
        inputs: one or more tensors of at least one dim.
        owner: the module named in error messages.

    Raises:
        ModuleValueError: no input, a 0-d input, or leading dims that do not
            broadcast (the message gives every shape).

    Example:
        >>> import torch
        >>> from rlbricks.modules._models import concat_inputs
        >>> concat_inputs([torch.zeros(4, 3), torch.ones(4, 2)]).shape
        torch.Size([4, 5])
        >>> concat_inputs([torch.zeros(4, 3), torch.ones(10, 4, 2)]).shape
        torch.Size([10, 4, 5])
    """
    if not inputs:
        raise ModuleValueError(f"{owner}: got no input; call it with one tensor or more")
    shapes = [tuple(t.shape) for t in inputs]
    if any(not shape for shape in shapes):
        raise ModuleValueError(
            f"{owner}: every input needs a feature dim to concatenate along, got shapes "
            f"{shapes}; unsqueeze(-1) the scalars"
        )
    leads = [t.shape[:-1] for t in inputs]
    if any(lead != leads[0] for lead in leads[1:]):
        try:
            lead = torch.broadcast_shapes(*leads)
        except RuntimeError as err:
            raise ModuleValueError(
                f"{owner}: the inputs' leading (batch) dims do not broadcast, got shapes "
                f"{shapes}; give the inputs the same batch dims (all but the last dim are "
                "broadcast, the last ones are concatenated)"
            ) from err
        inputs = [t.expand(*lead, t.shape[-1]) for t in inputs]
    return torch.cat(list(inputs), dim=-1)


class MLP(nn.Sequential):
    """A multi-layer perceptron: linear layers with activations, over the last dim of the input.

    Each hidden layer is ``layer -> [norm] -> activation -> [dropout]``; the
    last layer is the bare ``layer`` unless ``activate_last_layer``.  The
    input may have any number of leading batch dims.

    Called with several inputs, the MLP concatenates them along the last dim,
    as TorchRL's ``MLP`` does, so that
    ``ValueOperator(MLP(out_features=1, num_cells=[64, 64]),
    in_keys=["observation", "action"])`` is a Q-value critic. Without
    ``in_features`` the first layer is lazy and takes the size of the
    concatenation from the first call. The inputs' leading dims broadcast
    (an observation ``[B, d]`` with actions ``[N, B, a]`` gives
    ``[N, B, d + a]``), where TorchRL's ``torch.cat`` needs them equal.

    Args:
        in_features: size of the last dim of the input (of the inputs
            concatenated); ``None`` makes the first layer lazy (its size is
            read from the first input).
        out_features: size of the output, or a shape: the output is then
            reshaped to ``[*batch, *out_features]``.
        num_cells: sizes of the hidden layers, or one size repeated ``depth`` times.
        depth: number of hidden layers when ``num_cells`` is an int (default 2).
        activation_class: activation after each hidden layer.
        activation_kwargs: keyword arguments of ``activation_class``.
        norm_class: optional normalisation after each hidden layer, built as
            ``norm_class(size, **norm_kwargs)`` (e.g. ``nn.LayerNorm``).
        norm_kwargs: keyword arguments of ``norm_class``.
        dropout: dropout probability after each activation (``None``: no dropout).
        bias_last_layer: give the last layer a bias.
        activate_last_layer: put norm, activation and dropout after the last layer too.
        layer_class: the linear layer, built as ``layer_class(in, out, bias=,
            device=, **layer_kwargs)``, e.g. :class:`NoisyLinear`.
        layer_kwargs: more keyword arguments of ``layer_class`` (e.g. ``std_init``).
        device: device of the parameters.

    Raises:
        ModuleValueError: missing or invalid ``out_features``, ``in_features``
            that is neither a positive int nor ``None``, ``num_cells`` that
            are not positive ints, a negative ``depth`` or one that disagrees
            with ``num_cells``, ``dropout`` outside ``[0, 1)``, or
            ``in_features=None`` with a layer class that has no lazy version.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import MLP
        >>> net = MLP(in_features=4, out_features=2, num_cells=(16, 16), activation_class=nn.ReLU)
        >>> net(torch.zeros(5, 3, 4)).shape
        torch.Size([5, 3, 2])
        >>> MLP(out_features=(2, 3), num_cells=8, depth=1)(torch.zeros(7, 10)).shape
        torch.Size([7, 2, 3])
        >>> critic = MLP(out_features=1, num_cells=[64, 64])  # lazy: in_features = 4 + 2
        >>> critic(torch.zeros(5, 4), torch.zeros(5, 2)).shape
        torch.Size([5, 1])
        >>> critic[0].in_features
        6
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | Sequence[int] | None = None,
        num_cells: int | Sequence[int] = (32, 32),
        depth: int | None = None,
        activation_class: type[nn.Module] = nn.Tanh,
        activation_kwargs: Mapping[str, Any] | None = None,
        norm_class: type[nn.Module] | None = None,
        norm_kwargs: Mapping[str, Any] | None = None,
        dropout: float | None = None,
        bias_last_layer: bool = True,
        activate_last_layer: bool = False,
        layer_class: type[nn.Module] = nn.Linear,
        layer_kwargs: Mapping[str, Any] | None = None,
        device: Device = None,
    ) -> None:
        if out_features is None:
            raise ModuleValueError("MLP: out_features is required (the size of the output)")
        self.out_shape = _out_shape(out_features, "MLP")
        self.in_features = in_features = _in_features(in_features, "MLP")
        self.out_features = math.prod(self.out_shape)
        sizes = [*_hidden_sizes(num_cells, depth), self.out_features]
        if dropout is not None:
            check_number("MLP", "dropout", dropout, "in [0, 1)",
                         "the probability of zeroing a unit; None for no dropout")  # fmt: skip
        layers: list[nn.Module] = []
        size_in = in_features
        for i, size in enumerate(sizes):
            last = i == len(sizes) - 1
            bias = bias_last_layer if last else True
            layers.append(_linear(layer_class, size_in, size, bias, device, layer_kwargs or {}))
            if not last or activate_last_layer:
                if norm_class is not None:
                    layers.append(norm_class(size, **(norm_kwargs or {})).to(device))
                layers.append(activation_class(**(activation_kwargs or {})))
                if dropout:
                    layers.append(nn.Dropout(dropout))
            size_in = size
        super().__init__(*layers)

    def forward(self, *inputs: Tensor) -> Tensor:
        """The output ``[*batch, *out_features]`` for an input ``[*batch, in_features]``.

        Several inputs are concatenated along their last dim first, their
        leading dims broadcast: ``[*batch, d1]`` and ``[*batch, d2]`` make
        ``[*batch, d1 + d2]``, so ``in_features`` is the sum of their sizes.

        Raises:
            ModuleValueError: several inputs, one of them 0-d or with leading
                dims that do not broadcast with the others'.

        Example:
            >>> import torch
            >>> from rlbricks.modules import MLP
            >>> MLP(in_features=3, out_features=1)(torch.zeros(3)).shape
            torch.Size([1])
            >>> MLP(in_features=3 + 2, out_features=1)(torch.zeros(8, 3), torch.zeros(8, 2)).shape
            torch.Size([8, 1])
        """
        x = inputs[0] if len(inputs) == 1 else concat_inputs(inputs, "MLP")
        out = super().forward(x)
        if len(self.out_shape) > 1:
            out = out.unflatten(-1, self.out_shape)
        return out


def _per_layer(value: Any, n: int, name: str, minimum: int = 1) -> list[Any]:
    """A per-layer list from an int (repeated) or a sequence of ``n`` entries (ints or pairs),
    each checked to be an int ``>= minimum`` or a pair of them."""
    if isinstance(value, numbers.Number):
        values = [value] * n
    else:
        listed = _int_list(value)
        values = [value] if listed is None else listed
        if listed is not None and len(values) != n:
            raise ModuleValueError(
                f"ConvNet: {name} has {len(values)} entries but num_cells has {n} layers; "
                "give one entry per layer or a single int"
            )
    if not all(_size_or_pair(v, minimum) for v in values):
        what = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ModuleValueError(
            f"ConvNet: {name} must be {what} or one entry per layer ({what} or a "
            f"(height, width) pair of them), got {value!r}"
        )
    return values


def _size_or_pair(value: Any, minimum: int) -> bool:
    if is_int(value, minimum):
        return True
    pair = None if isinstance(value, numbers.Number) else _int_list(value)
    return pair is not None and len(pair) == 2 and all(is_int(v, minimum) for v in pair)


def _flatten_chw(x: Tensor) -> Tensor:
    return x.flatten(-3)


class ConvNet(nn.Module):
    """A stack of 2D convolutions followed by an aggregation (flatten by default).

    Each layer is ``conv -> [norm] -> activation`` (no activation after the
    last conv when ``squash_last_layer`` is False).  The input is
    ``[*batch, C, H, W]`` with any number of batch dims (none included); the
    output is ``[*batch, features]`` where the aggregator flattens the last
    three dims.  Convert pixels to float first (e.g. ``uint8 / 255``).

    The defaults are the convolutions of the Atari DQN (Mnih et al. 2015):
    for ``84 x 84`` frames the output has ``64 * 7 * 7 = 3136`` features.

    Args:
        in_features: input channels ``C``; ``None`` makes the first conv lazy.
        num_cells: output channels of each conv.
        kernel_sizes: kernel sizes: one int for every layer, or one entry
            (int or ``(height, width)`` pair) per layer.
        strides: strides, in the same form.
        paddings: paddings, in the same form.
        activation_class: activation after each conv.
        activation_kwargs: keyword arguments of ``activation_class``.
        norm_class: optional normalisation after each conv, built as
            ``norm_class(channels, **norm_kwargs)`` (e.g. ``nn.BatchNorm2d``).
        norm_kwargs: keyword arguments of ``norm_class``.
        squash_last_layer: put norm and activation after the last conv too.
        aggregator: maps the ``[N, C', H', W']`` output of the convs to
            ``[N, ...]``; ``None`` flattens ``C', H', W'``.
        device: device of the parameters.

    Raises:
        ModuleValueError: ``num_cells`` that are not positive ints, ``in_features``
            that is neither a positive int nor ``None``, kernel sizes or
            strides that are not positive (paddings: negative), or a
            per-layer argument whose length differs from ``num_cells``.

    Example:
        >>> import torch
        >>> from rlbricks.modules import ConvNet
        >>> net = ConvNet()
        >>> net(torch.zeros(2, 5, 4, 84, 84)).shape
        torch.Size([2, 5, 3136])
    """

    def __init__(
        self,
        in_features: int | None = None,
        num_cells: Sequence[int] = (32, 64, 64),
        kernel_sizes: IntOrPair | Sequence[IntOrPair] = (8, 4, 3),
        strides: IntOrPair | Sequence[IntOrPair] = (4, 2, 1),
        paddings: IntOrPair | Sequence[IntOrPair] = 0,
        activation_class: type[nn.Module] = nn.ReLU,
        activation_kwargs: Mapping[str, Any] | None = None,
        norm_class: type[nn.Module] | None = None,
        norm_kwargs: Mapping[str, Any] | None = None,
        squash_last_layer: bool = True,
        aggregator: Callable[[Tensor], Tensor] | None = None,
        device: Device = None,
    ) -> None:
        super().__init__()
        cells = _int_list(num_cells)
        if cells is not None and not cells:
            raise ModuleValueError("ConvNet: num_cells must list at least one conv layer")
        if cells is None or not all(is_int(c) for c in cells):
            raise ModuleValueError(
                f"ConvNet: num_cells must be positive ints, got {num_cells!r} (the output "
                "channels of each conv, e.g. (32, 64, 64))"
            )
        cells = [int(c) for c in cells]
        kernels = _per_layer(kernel_sizes, len(cells), "kernel_sizes")
        strides_ = _per_layer(strides, len(cells), "strides")
        pads = _per_layer(paddings, len(cells), "paddings", minimum=0)
        layers: list[nn.Module] = []
        channels_in = _in_features(in_features, "ConvNet")
        for i, channels in enumerate(cells):
            conv: nn.Module
            if channels_in is None:
                conv = nn.LazyConv2d(channels, kernels[i], strides_[i], pads[i], device=device)
            else:
                conv = nn.Conv2d(
                    channels_in, channels, kernels[i], strides_[i], pads[i], device=device
                )
            layers.append(conv)
            if i < len(cells) - 1 or squash_last_layer:
                if norm_class is not None:
                    layers.append(norm_class(channels, **(norm_kwargs or {})).to(device))
                layers.append(activation_class(**(activation_kwargs or {})))
            channels_in = channels
        self.layers = nn.Sequential(*layers)
        self.aggregator = aggregator if aggregator is not None else _flatten_chw

    def forward(self, x: Tensor) -> Tensor:
        """Features ``[*batch, features]`` of images ``[*batch, C, H, W]``.

        Raises:
            ModuleValueError: the input has fewer than 3 dims.

        Example:
            >>> import torch
            >>> from rlbricks.modules import ConvNet
            >>> net = ConvNet(in_features=3, num_cells=(4,), kernel_sizes=3, strides=1)
            >>> net(torch.zeros(3, 5, 5)).shape  # no batch dim: 4 channels of 3 x 3
            torch.Size([36])
        """
        if x.ndim < 3:
            raise ModuleValueError(
                f"ConvNet: expected images [*batch, C, H, W], got shape {list(x.shape)}"
            )
        batch = x.shape[:-3]
        out = self.aggregator(self.layers(x.reshape(math.prod(batch), *x.shape[-3:])))
        return out.reshape(*batch, *out.shape[1:])


def dueling_combine(value: Tensor, advantage: Tensor, action_dim: int = -1) -> Tensor:
    """Q-values of a dueling network: ``value + advantage - advantage.mean(action_dim)``.

    Centring the advantage makes the split into value and advantage
    identifiable (Wang et al. 2016).

    Args:
        value: state values, broadcastable to ``advantage`` (size 1 on ``action_dim``).
        advantage: one advantage per action along ``action_dim``.
        action_dim: the dim of the actions.

    Returns:
        The Q-values, shaped like ``advantage``.

    Example:
        >>> import torch
        >>> from rlbricks.modules._models import dueling_combine
        >>> dueling_combine(torch.tensor([10.0]), torch.tensor([1.0, 3.0]))
        tensor([ 9., 11.])
    """
    return value + advantage - advantage.mean(action_dim, keepdim=True)


def _heads(
    out_features: int | Sequence[int], out_features_value: int, who: str
) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Shapes of the advantage and value heads and the action dim of the output."""
    adv_shape = _out_shape(out_features, who)
    value_shape = (_out_shape(out_features_value, who)[0], *adv_shape[1:])
    return adv_shape, value_shape, -len(adv_shape)


class DuelingMlpDQNet(nn.Module):
    """A dueling Q-network of MLPs: a shared trunk, then a value head and an advantage head.

    ``Q = V + A - mean_a(A)``.  With ``out_features=n`` the output is
    ``[*batch, n]``.  With a shape ``(n_actions, *rest)`` (e.g. ``(n_actions,
    n_atoms)`` for distributional DQN) the advantage is ``[*batch, n_actions,
    *rest]``, the value ``[*batch, out_features_value, *rest]`` and the mean
    runs over the actions.

    Args:
        out_features: the number of actions, or ``(n_actions, *rest)``.
        out_features_value: size of the value head on the action dim (1: broadcast).
        in_features: size of the input's last dim (``None``: lazy).
        mlp_kwargs_feature: :class:`MLP` arguments of the trunk; default
            ``{"num_cells": (64,), "out_features": 64, "activate_last_layer": True}``
            (entries given here replace these).
        mlp_kwargs_output: :class:`MLP` arguments of both heads; default
            ``{"num_cells": (64,)}``.  Put ``layer_class=NoisyLinear`` here
            (and in the trunk) for a noisy network.
        device: device of the parameters.

    Example:
        >>> import torch
        >>> from rlbricks.modules import DuelingMlpDQNet
        >>> net = DuelingMlpDQNet(3, in_features=4)
        >>> net(torch.zeros(5, 4)).shape
        torch.Size([5, 3])
        >>> DuelingMlpDQNet((3, 11), in_features=4)(torch.zeros(5, 4)).shape
        torch.Size([5, 3, 11])
    """

    def __init__(
        self,
        out_features: int | Sequence[int],
        out_features_value: int = 1,
        in_features: int | None = None,
        mlp_kwargs_feature: Mapping[str, Any] | None = None,
        mlp_kwargs_output: Mapping[str, Any] | None = None,
        device: Device = None,
    ) -> None:
        super().__init__()
        adv_shape, value_shape, self.action_dim = _heads(
            out_features, out_features_value, "DuelingMlpDQNet"
        )
        feature_kwargs: dict[str, Any] = {
            "num_cells": (64,),
            "out_features": 64,
            "activate_last_layer": True,
            **(mlp_kwargs_feature or {}),
        }
        output_kwargs: dict[str, Any] = {"num_cells": (64,), **(mlp_kwargs_output or {})}
        self.features = MLP(in_features=in_features, device=device, **feature_kwargs)
        trunk_out = self.features.out_features
        self.advantage = MLP(trunk_out, out_features=adv_shape, device=device, **output_kwargs)
        self.value = MLP(trunk_out, out_features=value_shape, device=device, **output_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Q-values (or per-action logits) of the input ``[*batch, in_features]``.

        Example:
            >>> import torch
            >>> from rlbricks.modules import DuelingMlpDQNet
            >>> DuelingMlpDQNet(2, in_features=3)(torch.zeros(3)).shape
            torch.Size([2])
        """
        h = self.features(x)
        return dueling_combine(self.value(h), self.advantage(h), self.action_dim)


class DuelingCnnDQNet(nn.Module):
    """A dueling Q-network on images: a :class:`ConvNet` trunk, then MLP value and advantage heads.

    ``Q = V + A - mean_a(A)``; ``out_features`` and ``out_features_value``
    work as in :class:`DuelingMlpDQNet`.  The heads are lazy (their input
    size is read from the first batch of images).

    Args:
        out_features: the number of actions, or ``(n_actions, *rest)``.
        out_features_value: size of the value head on the action dim (1: broadcast).
        cnn_kwargs: :class:`ConvNet` arguments of the trunk (default: the Atari DQN convs).
        mlp_kwargs: :class:`MLP` arguments of both heads; default
            ``{"num_cells": (512,), "activation_class": nn.ReLU}``.
        device: device of the parameters.

    Example:
        >>> import torch
        >>> from rlbricks.modules import DuelingCnnDQNet
        >>> net = DuelingCnnDQNet(6, mlp_kwargs={"num_cells": (32,)})
        >>> net(torch.zeros(2, 4, 84, 84)).shape
        torch.Size([2, 6])
    """

    def __init__(
        self,
        out_features: int | Sequence[int],
        out_features_value: int = 1,
        cnn_kwargs: Mapping[str, Any] | None = None,
        mlp_kwargs: Mapping[str, Any] | None = None,
        device: Device = None,
    ) -> None:
        super().__init__()
        adv_shape, value_shape, self.action_dim = _heads(
            out_features, out_features_value, "DuelingCnnDQNet"
        )
        head_kwargs: dict[str, Any] = {
            "num_cells": (512,),
            "activation_class": nn.ReLU,
            **(mlp_kwargs or {}),
        }
        self.features = ConvNet(device=device, **(cnn_kwargs or {}))
        self.advantage = MLP(out_features=adv_shape, device=device, **head_kwargs)
        self.value = MLP(out_features=value_shape, device=device, **head_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Q-values (or per-action logits) of images ``[*batch, C, H, W]``.

        Example:
            >>> import torch
            >>> from rlbricks.modules import DuelingCnnDQNet
            >>> net = DuelingCnnDQNet(2, cnn_kwargs={"num_cells": (4,), "kernel_sizes": 3, "strides": 1})
            >>> net(torch.zeros(3, 5, 5)).shape
            torch.Size([2])
        """
        h = self.features(x)
        return dueling_combine(self.value(h), self.advantage(h), self.action_dim)
