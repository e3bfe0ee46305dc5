"""``NormalParamExtractor``: split a network output into a location and a positive scale."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F

from rlbricks.modules._errors import ModuleValueError

__all__ = ["NormalParamExtractor"]

_VALID = "'biased_softplus_<bias>' (e.g. 'biased_softplus_1.0'), 'softplus', 'exp', 'relu', 'none'"


def _parse(mapping: str, scale_lb: float) -> tuple[str, float]:
    """``(kind, shift)``: the mapping's name and the input shift of the biased softplus."""
    if mapping in ("softplus", "exp", "relu", "none"):
        return mapping, 0.0
    prefix = "biased_softplus"
    if mapping == prefix or mapping.startswith(prefix + "_"):
        text = mapping[len(prefix) + 1 :] or "1.0"
        try:
            bias = float(text)
        except ValueError:
            raise ModuleValueError(
                f"NormalParamExtractor: cannot read the bias {text!r} of scale_mapping "
                f"{mapping!r}; valid mappings: {_VALID}"
            ) from None
        if not bias > scale_lb:
            raise ModuleValueError(
                f"NormalParamExtractor: the bias of {mapping!r} must exceed scale_lb={scale_lb}"
            )
        # softplus(0 + shift) + scale_lb == bias
        return "biased_softplus", math.log(math.expm1(bias - scale_lb))
    raise ModuleValueError(
        f"NormalParamExtractor: unknown scale_mapping {mapping!r}; valid mappings: {_VALID}"
    )


class NormalParamExtractor(nn.Module):
    """Split the last dim of a tensor in two halves: ``loc`` and a positive ``scale``.

    The second half goes through ``scale_mapping``, with ``lb = scale_lb``:

    | mapping | scale |
    |---|---|
    | ``"biased_softplus_<b>"`` | ``softplus(x + c) + lb``, ``c`` chosen so that ``x = 0`` gives ``b`` |
    | ``"softplus"`` | ``softplus(x) + lb`` |
    | ``"exp"`` | ``exp(x) + lb`` |
    | ``"relu"`` | ``relu(x) + lb`` |
    | ``"none"`` | ``x`` clamped to at least ``lb`` |
    | a callable | ``scale_mapping(x)`` |

    The biased softplus starts training at a chosen scale: a freshly
    initialised network outputs values near 0, hence scales near ``b``.

    Args:
        scale_mapping: the name of the mapping (above) or a callable.
        scale_lb: the smallest scale (keeps log-probabilities finite).

    Raises:
        ModuleValueError: an unknown mapping name (the message lists the valid
            ones), or a bias not above ``scale_lb``.

    Example:
        >>> import torch
        >>> from rlbricks.modules import NormalParamExtractor
        >>> loc, scale = NormalParamExtractor("biased_softplus_0.5")(torch.zeros(8, 6))
        >>> loc.shape, scale.shape
        (torch.Size([8, 3]), torch.Size([8, 3]))
        >>> scale[0]
        tensor([0.5000, 0.5000, 0.5000])
    """

    def __init__(
        self,
        scale_mapping: str | Callable[[Tensor], Tensor] = "biased_softplus_1.0",
        scale_lb: float = 1e-4,
    ) -> None:
        super().__init__()
        self.scale_mapping = scale_mapping
        self.scale_lb = float(scale_lb)
        if callable(scale_mapping):
            self._kind, self._shift = "callable", 0.0
        elif isinstance(scale_mapping, str):
            self._kind, self._shift = _parse(scale_mapping, self.scale_lb)
        else:
            raise ModuleValueError(
                f"NormalParamExtractor: scale_mapping must be a name or a callable, got "
                f"{type(scale_mapping).__name__}; valid mappings: {_VALID}"
            )

    def map_scale(self, x: Tensor) -> Tensor:
        """Apply the scale mapping to ``x``.

        Example:
            >>> import torch
            >>> from rlbricks.modules import NormalParamExtractor
            >>> NormalParamExtractor("exp", scale_lb=0.0).map_scale(torch.zeros(2))
            tensor([1., 1.])
        """
        kind, lb = self._kind, self.scale_lb
        if kind == "biased_softplus":
            return F.softplus(x + self._shift) + lb
        if kind == "softplus":
            return F.softplus(x) + lb
        if kind == "exp":
            return torch.exp(x) + lb
        if kind == "relu":
            return torch.relu(x) + lb
        if kind == "none":
            return x.clamp_min(lb)
        mapping = self.scale_mapping
        if not callable(mapping):  # unreachable: checked in __init__
            raise ModuleValueError(
                f"NormalParamExtractor: bad scale_mapping {mapping!r}; valid mappings: {_VALID}"
            )
        return mapping(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(loc, scale)``: the first and the mapped second half of the last dim of ``x``.

        Raises:
            ModuleValueError: the last dim of ``x`` is odd.

        Example:
            >>> import torch
            >>> from rlbricks.modules import NormalParamExtractor
            >>> loc, scale = NormalParamExtractor()(torch.tensor([1.0, 0.0]))
            >>> loc, scale
            (tensor([1.]), tensor([1.]))
        """
        if x.ndim == 0 or x.shape[-1] % 2:
            raise ModuleValueError(
                f"NormalParamExtractor: the last dim of the input must be even (loc and scale "
                f"halves), got shape {list(x.shape)}; make the network output 2 * action_dim"
            )
        loc, raw = x.chunk(2, -1)
        return loc, self.map_scale(raw)

    def extra_repr(self) -> str:
        """The mapping and the lower bound, shown by ``repr``."""
        return f"scale_mapping={self.scale_mapping!r}, scale_lb={self.scale_lb}"
