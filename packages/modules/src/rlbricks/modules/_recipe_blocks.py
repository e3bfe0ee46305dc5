"""The building blocks of the recipes: spec parsing, observation encoders, actor and critic heads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NamedTuple

import torch
from torch import Tensor
from torch import nn

from rlbricks.modules._actors import ProbabilisticActor
from rlbricks.modules._actors import ValueOperator
from rlbricks.modules._categorical import Categorical as CategoricalDist
from rlbricks.modules._categorical import OneHotCategorical
from rlbricks.modules._common import TensorDictModule
from rlbricks.modules._distributions import TanhNormal
from rlbricks.modules._distributions import TruncatedNormal
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._models import MLP
from rlbricks.modules._models import ConvNet
from rlbricks.modules._param_extractor import NormalParamExtractor
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import NestedKey

__all__ = [
    "BoxTanh",
    "CriticNet",
    "Device",
    "Encoder",
    "Input",
    "Preprocess",
    "categorical_actor",
    "continuous_shape",
    "qvalue_operator",
    "discrete_n",
    "encoder",
    "gaussian_actor",
    "hidden_cells",
    "observation_input",
    "parse_specs",
]

Device = torch.device | str | None
_ATARI_MIN_SIZE = 36  # the smallest image the Atari convs (8/4, 4/2, 3/1) accept


# --------------------------------------------------------------------------- #
# specs
# --------------------------------------------------------------------------- #
class Input(NamedTuple):
    """The observation a recipe reads: its key, unbatched shape and dtype."""

    key: NestedKey
    shape: tuple[int, ...]
    dtype: torch.dtype


def one_env(spec: TensorSpec[Any], batch_dims: int) -> TensorSpec[Any]:
    """The action spec of one environment: ``spec`` without its ``batch_dims`` leading dims."""
    if not batch_dims:
        return spec
    shape = spec.shape[batch_dims:]
    kw: dict[str, Any] = {"shape": shape, "device": spec.device, "dtype": spec.dtype}
    if isinstance(spec, OneHot):
        return OneHot(spec.n, **kw)
    if isinstance(spec, Categorical):
        return Categorical(spec.n, **kw)
    if isinstance(spec, Bounded):
        first = (0,) * batch_dims
        return Bounded(spec.low[first], spec.high[first], **kw)
    if isinstance(spec, Unbounded):
        return Unbounded(**kw)
    raise ModuleValueError(
        f"recipes: cannot drop the batch dims of a {type(spec).__name__} action spec; pass the "
        "specs of a single environment"
    )


def parse_specs(
    observation_spec: Any, action_spec: Any, who: str
) -> tuple[Composite, TensorSpec[Any]]:
    """``(observation Composite, action spec of one env)`` from specs or an environment."""
    if action_spec is None:
        if not (
            hasattr(observation_spec, "observation_spec")
            and hasattr(observation_spec, "action_spec")
        ):
            raise ModuleValueError(
                f"{who}: pass the action spec (action_spec=...) or an environment as the first "
                "argument"
            )
        observation_spec, action_spec = (
            observation_spec.observation_spec,
            observation_spec.action_spec,
        )
    if isinstance(observation_spec, TensorSpec) and not isinstance(observation_spec, Composite):
        observation_spec = Composite(observation=observation_spec)
    if not isinstance(observation_spec, Composite):
        raise ModuleValueError(
            f"{who}: the observation spec must be a Composite (or an environment), got "
            f"{type(observation_spec).__name__}"
        )
    if isinstance(action_spec, Composite):
        if "action" not in action_spec:
            raise ModuleValueError(
                f"{who}: the action Composite has no 'action' entry; pass the spec of the action "
                "itself (action_spec=env.action_spec['action'])"
            )
        action_spec = action_spec["action"]
    if not isinstance(action_spec, TensorSpec):
        raise ModuleValueError(
            f"{who}: the action spec must be a TensorSpec, got {type(action_spec).__name__}"
        )
    return observation_spec, one_env(action_spec, observation_spec.ndim)


def observation_input(spec: Composite, key: NestedKey | None, who: str) -> Input:
    """The observation entry to read: ``key``, else ``"observation"``, ``"pixels"`` or the only one."""
    leaves = spec.keys(include_nested=True, leaves_only=True)
    if key is None:
        defaults = [k for k in ("observation", "pixels") if k in leaves]
        if not defaults and len(leaves) != 1:
            raise ModuleValueError(
                f"{who}: cannot tell which observation to read among {leaves}; pass "
                "observation_key="
            )
        key = defaults[0] if defaults else leaves[0]
    if key not in leaves:
        raise ModuleValueError(f"{who}: observation_key {key!r} is not in the spec; keys: {leaves}")
    leaf = spec[key]
    dtype = leaf.dtype if leaf.dtype is not None else torch.get_default_dtype()
    return Input(key, tuple(leaf.shape[spec.ndim :]), dtype)


def discrete_n(spec: TensorSpec[Any], who: str) -> int:
    """The number of actions of a ``OneHot`` or ``Categorical`` spec."""
    if isinstance(spec, (OneHot, Categorical)):
        return spec.n
    raise ModuleValueError(
        f"{who} needs a discrete action spec (OneHot or Categorical), got {spec!r}"
    )


def continuous_shape(spec: TensorSpec[Any], who: str) -> tuple[int, ...]:
    """The action shape of a floating ``Bounded`` or ``Unbounded`` spec."""
    if not isinstance(spec, (Bounded, Unbounded)) or not spec.dtype.is_floating_point:
        raise ModuleValueError(
            f"{who} needs a continuous action spec (Bounded or Unbounded with a floating "
            f"dtype), got {spec!r}"
        )
    if spec.ndim == 0:
        raise ModuleValueError(f"{who}: the action spec needs at least one dim, got shape []")
    return tuple(spec.shape)


# --------------------------------------------------------------------------- #
# networks
# --------------------------------------------------------------------------- #
class Preprocess(nn.Module):
    """Observations as the networks want them: default float dtype, channels first, flat vectors."""

    def __init__(self, dtype: torch.dtype, channels_last: bool, flatten: int) -> None:
        super().__init__()
        self.scale = 1.0 / 255.0 if dtype == torch.uint8 else None
        self.cast = dtype != torch.get_default_dtype()
        self.channels_last = channels_last
        self.flatten = flatten

    def forward(self, x: Tensor) -> Tensor:
        if self.cast:
            x = x.to(torch.get_default_dtype())
        if self.scale is not None:
            x = x * self.scale
        if self.channels_last:
            x = x.movedim(-1, -3)
        if self.flatten > 1:
            x = x.flatten(-self.flatten)
        return x


class Encoder(NamedTuple):
    """An observation encoder, the size of its output and whether it reads images."""

    module: nn.Module
    features: int
    pixels: bool


def encoder(
    inputs: Input, cnn: bool | None, cnn_kwargs: Mapping[str, Any] | None, device: Device, who: str
) -> Encoder:
    """The observation encoder: preprocessing, then a ConvNet for images."""
    shape = inputs.shape
    image = len(shape) == 3
    if cnn and not image:
        raise ModuleValueError(
            f"{who}: cnn=True needs an image observation [C, H, W] or [H, W, C], got "
            f"{list(shape)} for {inputs.key!r}"
        )
    if image and cnn is not False:
        channels_last = shape[-1] < shape[0]
        c, h, w = (shape[2], shape[0], shape[1]) if channels_last else shape
        kwargs: dict[str, Any] = {}
        if min(h, w) < _ATARI_MIN_SIZE:  # small images: 3 x 3 convs with stride 1
            kwargs = {"num_cells": (32, 32), "kernel_sizes": 3, "strides": 1}
        kwargs.update(cnn_kwargs or {})
        conv = ConvNet(in_features=c, device=device, **kwargs)
        with torch.no_grad():
            features = conv(torch.zeros(c, h, w, device=device)).shape[-1]
        return Encoder(
            nn.Sequential(Preprocess(inputs.dtype, channels_last, 0), conv), features, True
        )
    if len(shape) not in (1, 3):
        raise ModuleValueError(
            f"{who}: the observation {inputs.key!r} has shape {list(shape)}; the recipes read "
            "vectors [n] or images [C, H, W] (flatten it first, or pass observation_key=)"
        )
    return Encoder(Preprocess(inputs.dtype, False, len(shape)), math.prod(shape), False)


def hidden_cells(
    num_cells: Sequence[int] | None, pixels: bool, default: Sequence[int]
) -> tuple[int, ...]:
    """The hidden layers of the MLP heads: given, else 512 after a ConvNet, else ``default``."""
    if num_cells is not None:
        return tuple(num_cells)
    return (512,) if pixels else tuple(default)


class CriticNet(nn.Module):
    """``Q(s, a)``: an MLP on the observation's features concatenated with the flat action."""

    def __init__(self, encoder: nn.Module, head: nn.Module, action_dims: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.action_dims = action_dims

    def forward(self, observation: Tensor, action: Tensor) -> Tensor:
        features = self.encoder(observation)
        action = action.flatten(-self.action_dims).to(features.dtype)
        return self.head(torch.cat([features, action], -1))


class BoxTanh(nn.Module):
    """``low + (high - low) * (tanh(x) + 1) / 2``: squash into the box of a ``Bounded`` spec."""

    center: Tensor
    radius: Tensor

    def __init__(self, spec: Bounded, device: Device) -> None:
        super().__init__()
        low = spec.low.to(device=device, dtype=torch.get_default_dtype())
        high = spec.high.to(device=device, dtype=torch.get_default_dtype())
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("radius", (high - low) / 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.center + self.radius * torch.tanh(x)


def qvalue_operator(
    inputs: Input,
    action_shape: tuple[int, ...],
    cells: Sequence[int] | None,
    default: Sequence[int],
    cnn: bool | None,
    cnn_kwargs: Mapping[str, Any] | None,
    device: Device,
    who: str,
) -> ValueOperator:
    """A state-action value network reading the observation and ``"action"``."""
    enc = encoder(inputs, cnn, cnn_kwargs, device, who)
    in_features = enc.features + math.prod(action_shape)
    head = MLP(
        in_features,
        1,
        num_cells=hidden_cells(cells, enc.pixels, default),
        activation_class=nn.ReLU,
        device=device,
    )
    return ValueOperator(CriticNet(enc.module, head, len(action_shape)), [inputs.key, "action"])


def bound_value(value: Tensor) -> float | Tensor:
    """A Python float when every entry is equal (nothing to move across devices), else a copy."""
    flat = value.reshape(-1)
    return float(flat[0]) if bool((flat == flat[0]).all()) else value.clone()


def gaussian_actor(
    inputs: Input,
    action_spec: TensorSpec[Any],
    cells: Sequence[int] | None,
    default: Sequence[int],
    cnn: bool | None,
    cnn_kwargs: Mapping[str, Any] | None,
    scale_mapping: str,
    return_log_prob: bool,
    activation: type[nn.Module],
    device: Device,
    who: str,
    trunk: tuple[NestedKey, int] | None = None,
) -> ProbabilisticActor:
    """A TanhNormal (Bounded) or Normal (Unbounded) policy; the network outputs loc and scale.

    With ``trunk=(key, features)`` the policy is a linear head on the entry
    ``key`` written by a shared trunk, instead of its own encoder and MLP.
    """
    shape = continuous_shape(action_spec, who)
    out = (*shape[:-1], 2 * shape[-1])
    if trunk is None:
        enc = encoder(inputs, cnn, cnn_kwargs, device, who)
        cells_ = hidden_cells(cells, enc.pixels, default)
        mlp = MLP(enc.features, out, num_cells=cells_, activation_class=activation, device=device)
        net = nn.Sequential(enc.module, mlp, NormalParamExtractor(scale_mapping))
        in_key: NestedKey = inputs.key
    else:
        in_key, features = trunk
        net = nn.Sequential(
            MLP(features, out, num_cells=(), device=device), NormalParamExtractor(scale_mapping)
        )
    params = TensorDictModule(net, [in_key], ["loc", "scale"])
    # samples lie in the spec's box by construction: no per-call validation or projection
    kwargs: dict[str, Any] = {"event_dims": len(shape), "validate_args": False}
    if isinstance(action_spec, Bounded):
        kwargs.update(low=bound_value(action_spec.low), high=bound_value(action_spec.high))
        dist: Any = TanhNormal
    else:  # a Normal: a TruncatedNormal with infinite bounds, with log_prob summed over the event
        kwargs.update(low=-math.inf, high=math.inf)
        dist = TruncatedNormal
    return ProbabilisticActor(
        params,
        ["loc", "scale"],
        spec=action_spec,
        distribution_class=dist,
        distribution_kwargs=kwargs,
        return_log_prob=return_log_prob,
    )


def categorical_actor(
    inputs: Input,
    action_spec: TensorSpec[Any],
    cells: Sequence[int] | None,
    default: Sequence[int],
    cnn: bool | None,
    cnn_kwargs: Mapping[str, Any] | None,
    device: Device,
    who: str,
    trunk: tuple[NestedKey, int] | None = None,
) -> ProbabilisticActor:
    """A policy over ``n`` actions: logits, then a (one-hot) categorical distribution.

    ``trunk`` works as in :func:`gaussian_actor`.
    """
    n = discrete_n(action_spec, who)
    if action_spec.shape != ((n,) if isinstance(action_spec, OneHot) else ()):
        raise ModuleValueError(
            f"{who}: the discrete policy draws one action per step: the action spec must be "
            f"OneHot(n) or Categorical(n) with shape [], got {action_spec!r}"
        )
    if trunk is None:
        enc = encoder(inputs, cnn, cnn_kwargs, device, who)
        net: nn.Module = nn.Sequential(
            enc.module,
            MLP(enc.features, n, num_cells=hidden_cells(cells, enc.pixels, default), device=device),
        )
        in_key: NestedKey = inputs.key
    else:
        in_key, features = trunk
        net = nn.Linear(features, n, device=device)
    one_hot = isinstance(action_spec, OneHot)
    # a sample of n classes is always one of the n actions: no per-call validation; only
    # one-hot samples (floats) are projected, which casts them to the spec's bool
    return ProbabilisticActor(
        TensorDictModule(net, [in_key], ["logits"]),
        ["logits"],
        spec=action_spec,
        distribution_class=OneHotCategorical if one_hot else CategoricalDist,
        distribution_kwargs={"validate_args": False},
        return_log_prob=True,
        safe=one_hot,
    )
