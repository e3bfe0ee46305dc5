"""Point-mass distributions: ``Delta`` and its squashed variant ``TanhDelta``."""

from __future__ import annotations

import math
from typing import Any
from typing import ClassVar

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions import constraints

from rlbricks.modules._distributions import SampleShape
from rlbricks.modules._distributions import bounds
from rlbricks.modules._distributions import check_order
from rlbricks.modules._distributions import event_shapes
from rlbricks.modules._distributions import validating

__all__ = ["Delta", "TanhDelta"]

_NO_SHAPE = torch.Size()


class Delta(Distribution):
    """A point mass at ``param``: the distribution of a deterministic policy.

    ``sample`` and ``rsample`` return ``param`` (``rsample`` keeps its
    gradient); ``log_prob(x)`` is ``0`` where ``x`` equals ``param`` within
    ``atol``/``rtol`` on the whole event and ``-inf`` elsewhere.

    Args:
        param: the point, ``[*batch, *event]``.
        atol: absolute tolerance of the equality test in ``log_prob``.
        rtol: relative tolerance of the equality test.
        event_dims: how many trailing dims form one event.
        validate_args: check arguments and samples (default: torch's global setting).

    Example:
        >>> import torch
        >>> from rlbricks.modules import Delta
        >>> dist = Delta(torch.tensor([[1.0, 2.0]]))
        >>> dist.sample()
        tensor([[1., 2.]])
        >>> dist.log_prob(torch.tensor([[1.0, 2.0], [1.0, 3.0]]))
        tensor([0., -inf])
    """

    arg_constraints: ClassVar[dict[str, Any]] = {}
    has_rsample = True

    def __init__(
        self,
        param: Tensor,
        atol: float = 1e-6,
        rtol: float = 1e-6,
        event_dims: int = 1,
        validate_args: bool | None = None,
    ) -> None:
        self.param = param
        self.atol, self.rtol = atol, rtol
        self.event_dims = event_dims
        batch_shape, event_shape = event_shapes(param, event_dims, type(self).__name__)
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def support(self) -> Any:
        """Real values over the event dims."""
        return constraints.independent(constraints.real, self.event_dims)

    def rsample(self, sample_shape: SampleShape = _NO_SHAPE) -> Tensor:
        """``param`` expanded to ``[*sample_shape, *batch, *event]``, with its gradient.

        Example:
            >>> import torch
            >>> from rlbricks.modules import Delta
            >>> Delta(torch.tensor([0.5])).rsample((2,))
            tensor([[0.5000],
                    [0.5000]])
        """
        return self.param.expand(self._extended_shape(sample_shape))

    def sample(self, sample_shape: SampleShape = _NO_SHAPE) -> Tensor:
        """``param`` expanded to ``[*sample_shape, *batch, *event]``, detached.

        Example:
            >>> import torch
            >>> from rlbricks.modules import Delta
            >>> Delta(torch.tensor([0.5])).sample()
            tensor([0.5000])
        """
        return self.rsample(sample_shape).detach()

    def log_prob(self, value: Tensor) -> Tensor:
        """``0`` where ``value`` matches ``param`` on the whole event, else ``-inf``.

        Example:
            >>> import torch
            >>> from rlbricks.modules import Delta
            >>> Delta(torch.zeros(2, 1)).log_prob(torch.tensor([[0.0], [1.0]]))
            tensor([0., -inf])
        """
        if self._validate_args:
            self._validate_sample(value)
        close = torch.isclose(value, self.param, rtol=self.rtol, atol=self.atol)
        if self.event_dims:
            close = close.flatten(-self.event_dims).all(-1)
        zero = torch.zeros((), dtype=self.param.dtype, device=self.param.device)
        return torch.where(close, zero, -math.inf)

    @property
    def mode(self) -> Tensor:
        """``param``.

        Example:
            >>> import torch
            >>> from rlbricks.modules import Delta
            >>> Delta(torch.tensor([3.0])).mode
            tensor([3.])
        """
        return self.param

    @property
    def mean(self) -> Tensor:
        """``param``.

        Example:
            >>> import torch
            >>> from rlbricks.modules import Delta
            >>> Delta(torch.tensor([3.0])).mean
            tensor([3.])
        """
        return self.param

    @property
    def deterministic_sample(self) -> Tensor:
        """``param``.

        Example:
            >>> import torch
            >>> from rlbricks.modules import Delta
            >>> Delta(torch.tensor([3.0])).deterministic_sample
            tensor([3.])
        """
        return self.param

    def entropy(self) -> Tensor:
        """Zero (a point mass), shaped like the batch.

        Example:
            >>> import torch
            >>> from rlbricks.modules import Delta
            >>> Delta(torch.zeros(2, 3)).entropy()
            tensor([0., 0.])
        """
        return torch.zeros(self.batch_shape, dtype=self.param.dtype, device=self.param.device)


class TanhDelta(Delta):
    """A point mass at ``low + (high - low) * (tanh(param) + 1) / 2``: a bounded deterministic policy.

    Args:
        param: the point before squashing, ``[*batch, *event]``.
        low: lower bound(s) of the actions.
        high: upper bound(s), ``> low``.
        atol: absolute tolerance of the equality test in ``log_prob``.
        rtol: relative tolerance of the equality test.
        event_dims: how many trailing dims form one event.
        validate_args: check arguments and samples (default: torch's global setting).

    Raises:
        ModuleValueError: ``low >= high``.

    Example:
        >>> import torch
        >>> from rlbricks.modules import TanhDelta
        >>> TanhDelta(torch.tensor([0.0, 100.0]), low=-2.0, high=2.0).sample()
        tensor([0., 2.])
    """

    def __init__(
        self,
        param: Tensor,
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        atol: float = 1e-6,
        rtol: float = 1e-6,
        event_dims: int = 1,
        validate_args: bool | None = None,
    ) -> None:
        low_t, high_t = bounds(low, high, param, "TanhDelta")
        if validating(validate_args):
            check_order(low_t, high_t, "TanhDelta")
        self.low, self.high = low_t, high_t
        point = (high_t + low_t) / 2 + (high_t - low_t) / 2 * torch.tanh(param)
        super().__init__(
            point, atol=atol, rtol=rtol, event_dims=event_dims, validate_args=validate_args
        )

    @property
    def support(self) -> Any:
        """The closed box ``[low, high]`` over the event dims."""
        return constraints.independent(constraints.interval(self.low, self.high), self.event_dims)
