"""``NoisyLinear``: a linear layer with learned factorised Gaussian noise, and ``reset_noise``."""

from __future__ import annotations

import math
from typing import Any
from typing import cast

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedBuffer
from torch.nn.parameter import UninitializedParameter

from rlbricks.modules._errors import ModuleValueError

__all__ = ["LazyNoisyLinear", "NoisyLinear", "reset_noise"]


def _factorised(n: int, like: Tensor) -> Tensor:
    """``sign(e) * sqrt(|e|)`` for ``e ~ N(0, 1)``: the noise of one side of the weight matrix."""
    e = torch.randn(n, dtype=like.dtype, device=like.device)
    return e.sign() * e.abs().sqrt()


class NoisyLinear(nn.Module):
    """A linear layer whose weights carry learned Gaussian noise (NoisyNets, Fortunato et al. 2017).

    ``y = (mu_w + sigma_w * eps_w) x + (mu_b + sigma_b * eps_b)`` with
    *factorised* noise: ``eps_w = f(e_out) f(e_in)^T`` and ``eps_b = f(e_out)``,
    ``f(e) = sign(e) sqrt(|e|)``, ``e ~ N(0, 1)``.  The means start uniform in
    ``+-1/sqrt(in_features)`` and the noise scales at ``std_init / sqrt(in_features)``.

    The noise is drawn at construction and only changes when
    :meth:`reset_noise` is called (e.g. once per optimisation step or per
    collected batch, with the free function :func:`reset_noise`), so a
    forward pass is repeatable.  In eval mode (``module.eval()``) the layer
    uses the mean weights only.

    Args:
        in_features: size of the last dim of the input.
        out_features: size of the last dim of the output.
        bias: learn a (noisy) bias.
        device: device of the parameters.
        dtype: dtype of the parameters.
        std_init: initial noise scale ``sigma_0`` (the paper uses 0.5 for factorised noise).

    Attributes:
        weight_mu: mean weights ``[out, in]``.
        weight_sigma: noise scales of the weights.
        weight_epsilon: the current weight noise (a buffer).

    Example:
        >>> import torch
        >>> from rlbricks.modules import NoisyLinear
        >>> layer = NoisyLinear(4, 2)
        >>> x = torch.randn(3, 4)
        >>> torch.equal(layer(x), layer(x))  # the noise is fixed between resets
        True
        >>> layer.eval()(x).shape  # eval: mean weights only
        torch.Size([3, 2])
    """

    weight_epsilon: Tensor
    bias_epsilon: Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        std_init: float = 0.1,
    ) -> None:
        super().__init__()
        like: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.std_init = float(std_init)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features, **like))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features, **like))
        self.register_buffer("weight_epsilon", torch.empty(out_features, in_features, **like))
        if bias:
            self.bias_mu: nn.Parameter | None = nn.Parameter(torch.empty(out_features, **like))
            self.bias_sigma: nn.Parameter | None = nn.Parameter(torch.empty(out_features, **like))
            self.register_buffer("bias_epsilon", torch.empty(out_features, **like))
        else:
            self.bias_mu = self.bias_sigma = None
            self.register_buffer("bias_epsilon", None)
        self.reset_parameters()
        self.reset_noise()

    def _ready(self) -> bool:
        """False while a lazy layer has not seen its first input."""
        return self.in_features > 0 and not isinstance(self.weight_mu, UninitializedParameter)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise the means (uniform in ``+-1/sqrt(in)``) and the noise scales.

        Example:
            >>> import torch
            >>> from rlbricks.modules import NoisyLinear
            >>> layer = NoisyLinear(4, 2, std_init=0.5)
            >>> layer.reset_parameters()
            >>> torch.equal(layer.weight_sigma, torch.full((2, 4), 0.25))  # 0.5 / sqrt(4)
            True
        """
        if not self._ready():
            return
        bound = 1.0 / math.sqrt(self.in_features)
        sigma = self.std_init / math.sqrt(self.in_features)
        self.weight_mu.uniform_(-bound, bound)
        self.weight_sigma.fill_(sigma)
        if self.bias_mu is not None and self.bias_sigma is not None:
            self.bias_mu.uniform_(-bound, bound)
            self.bias_sigma.fill_(sigma)

    @torch.no_grad()
    def reset_noise(self) -> None:
        """Draw new factorised noise; the only call that changes it.

        Example:
            >>> import torch
            >>> from rlbricks.modules import NoisyLinear
            >>> layer = NoisyLinear(4, 2)
            >>> before = layer.weight_epsilon.clone()
            >>> layer.reset_noise()
            >>> torch.equal(before, layer.weight_epsilon)
            False
        """
        if not self._ready():
            return
        eps_in = _factorised(self.in_features, self.weight_epsilon)
        eps_out = _factorised(self.out_features, self.weight_epsilon)
        self.weight_epsilon.copy_(torch.outer(eps_out, eps_in))
        if self.bias_epsilon is not None:
            self.bias_epsilon.copy_(eps_out)

    @property
    def weight(self) -> Tensor:
        """The weights in use: ``mu + sigma * eps`` in training mode, ``mu`` in eval mode.

        Example:
            >>> import torch
            >>> from rlbricks.modules import NoisyLinear
            >>> layer = NoisyLinear(3, 2).eval()
            >>> torch.equal(layer.weight, layer.weight_mu)
            True
        """
        if self.training:
            return self.weight_mu + self.weight_sigma * self.weight_epsilon
        return self.weight_mu

    @property
    def bias(self) -> Tensor | None:
        """The bias in use (``None`` without bias), noisy in training mode only.

        Example:
            >>> from rlbricks.modules import NoisyLinear
            >>> NoisyLinear(3, 2).bias.shape
            torch.Size([2])
        """
        if self.bias_mu is None or self.bias_sigma is None or self.bias_epsilon is None:
            return None
        if self.training:
            return self.bias_mu + self.bias_sigma * self.bias_epsilon
        return self.bias_mu

    def forward(self, x: Tensor) -> Tensor:
        """``x @ weight.T + bias`` over the last dim of ``x`` (any leading dims).

        Example:
            >>> import torch
            >>> from rlbricks.modules import NoisyLinear
            >>> NoisyLinear(3, 2)(torch.zeros(5, 4, 3)).shape
            torch.Size([5, 4, 2])
        """
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        """Sizes, bias and ``std_init``, shown by ``repr``."""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias_mu is not None}, std_init={self.std_init}"
        )


class LazyNoisyLinear(LazyModuleMixin, NoisyLinear):
    """A :class:`NoisyLinear` whose ``in_features`` is read from the first input.

    Used by ``MLP(in_features=None, layer_class=NoisyLinear)``.  After the
    first forward pass it becomes a plain :class:`NoisyLinear`; until then
    ``reset_noise`` and ``reset_parameters`` do nothing.

    Args:
        out_features: size of the last dim of the output.
        bias: learn a (noisy) bias.
        device: device of the parameters.
        dtype: dtype of the parameters.
        std_init: initial noise scale ``sigma_0``.

    Example:
        >>> import torch
        >>> from rlbricks.modules import NoisyLinear
        >>> from rlbricks.modules._noisy import LazyNoisyLinear
        >>> layer = LazyNoisyLinear(2)
        >>> layer(torch.zeros(3, 5)).shape, type(layer) is NoisyLinear
        (torch.Size([3, 2]), True)
    """

    cls_to_become = NoisyLinear

    def __init__(
        self,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        std_init: float = 0.1,
    ) -> None:
        super().__init__(0, out_features, bias=bias, device=device, dtype=dtype, std_init=std_init)
        like: dict[str, Any] = {"device": device, "dtype": dtype}
        names = ("weight", "bias") if bias else ("weight",)
        for name in names:
            self.register_parameter(
                f"{name}_mu", cast(nn.Parameter, UninitializedParameter(**like))
            )
            self.register_parameter(
                f"{name}_sigma", cast(nn.Parameter, UninitializedParameter(**like))
            )
            self.register_buffer(f"{name}_epsilon", UninitializedBuffer(**like))

    @torch.no_grad()
    def initialize_parameters(self, x: Tensor) -> None:
        """Materialise the parameters for inputs whose last dim is ``x.shape[-1]``."""
        if not self.has_uninitialized_params():
            return
        if x.ndim == 0:
            raise ModuleValueError(
                "LazyNoisyLinear: the input needs at least one dim (the features)"
            )
        self.in_features = int(x.shape[-1])
        shapes = {"weight": (self.out_features, self.in_features), "bias": (self.out_features,)}
        for name, shape in shapes.items():
            for part in ("mu", "sigma", "epsilon"):
                tensor = getattr(self, f"{name}_{part}")
                if isinstance(tensor, (UninitializedParameter, UninitializedBuffer)):
                    tensor.materialize(shape)
        self.reset_parameters()
        self.reset_noise()


def reset_noise(module: nn.Module) -> int:
    """Draw new noise in every noisy layer of a module tree.

    Walks ``module.modules()`` (``module`` included) and calls the
    ``reset_noise()`` method of each module that has one: every
    :class:`NoisyLinear`, and any custom module exposing such a method.

    Args:
        module: the root of the tree, e.g. a policy or a Q-network.

    Returns:
        How many modules were reset.

    Example:
        >>> import torch
        >>> from rlbricks.modules import MLP, NoisyLinear, reset_noise
        >>> net = MLP(in_features=4, out_features=2, num_cells=(8,), layer_class=NoisyLinear)
        >>> reset_noise(net)
        2
    """
    count = 0
    for sub in module.modules():
        method = getattr(sub, "reset_noise", None)
        if callable(method):
            method()
            count += 1
    return count
