"""Discrete action distributions with action masks: ``Categorical`` and ``OneHotCategorical``."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch import distributions as D

from rlbricks.modules._distributions import SampleShape
from rlbricks.modules._distributions import validating
from rlbricks.modules._errors import ModuleValueError

__all__ = ["Categorical", "OneHotCategorical"]

_NO_SHAPE = torch.Size()


def _masked(
    logits: Tensor | None,
    probs: Tensor | None,
    mask: Tensor | None,
    validate: bool,
    name: str,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """``(logits, probs, mask)`` with the masked actions given probability zero."""
    if (logits is None) == (probs is None):
        raise ModuleValueError(f"{name}: pass exactly one of logits or probs")
    if mask is None:
        return logits, probs, None
    ref = logits if logits is not None else probs
    mask = torch.as_tensor(mask, device=ref.device if ref is not None else None)
    if mask.dtype is not torch.bool:
        raise ModuleValueError(
            f"{name}: mask must be a bool tensor (True = allowed), got {mask.dtype}"
        )
    if validate and not bool(mask.any(-1).all()):
        raise ModuleValueError(
            f"{name}: the mask allows no action in some rows; every row of the mask (last dim) "
            "needs at least one True"
        )
    if logits is not None:
        return torch.where(mask, logits, -math.inf), None, mask
    return None, torch.where(mask, probs, 0.0) if probs is not None else None, mask


class Categorical(D.Categorical):
    """A categorical distribution over action indices, with an optional action mask.

    Masked actions (``mask`` False) get probability zero: they are never
    sampled, their ``log_prob`` is ``-inf`` and :attr:`mode` (the argmax of the
    probabilities) never picks them.  Samples are ``int64`` indices shaped like
    the batch, the layout of a ``Categorical`` action spec.

    Args:
        logits: unnormalised log-probabilities ``[*batch, n]``.
        probs: probabilities (or non-negative weights) ``[*batch, n]``; give
            exactly one of ``logits`` and ``probs``.
        mask: bool tensor broadcastable to ``[*batch, n]``, ``True`` = allowed.
            Every row needs an allowed action (checked when argument
            validation is on, torch's default).
        validate_args: check arguments and samples (default: torch's global setting).

    Raises:
        ModuleValueError: both or neither of ``logits``/``probs``, a non-bool mask,
            or a row of the mask with no allowed action.

    Example:
        >>> import torch
        >>> from rlbricks.modules import Categorical
        >>> mask = torch.tensor([True, False, True])
        >>> dist = Categorical(logits=torch.tensor([0.0, 5.0, 1.0]), mask=mask)
        >>> dist.mode
        tensor(2)
        >>> dist.log_prob(torch.tensor(1))
        tensor(-inf)
        >>> bool((dist.sample((100,)) != 1).all())
        True
    """

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        mask: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        logits, probs, self.mask = _masked(
            logits, probs, mask, validating(validate_args), "Categorical"
        )
        super().__init__(probs=probs, logits=logits, validate_args=validate_args)

    @property
    def deterministic_sample(self) -> Tensor:
        """The most likely allowed action (same as :attr:`mode`).

        Example:
            >>> import torch
            >>> from rlbricks.modules import Categorical
            >>> Categorical(probs=torch.tensor([[0.2, 0.8], [0.9, 0.1]])).deterministic_sample
            tensor([1, 0])
        """
        return self.mode


class OneHotCategorical(D.OneHotCategorical):
    """A categorical distribution over one-hot actions, with an optional action mask.

    Masked actions get probability zero, as for :class:`Categorical`.
    Samples are one-hot vectors ``[*batch, n]`` of the dtype of the
    probabilities (float); ``log_prob`` also accepts bool or integer one-hot
    values, such as actions stored from a ``OneHot`` spec.

    ``rsample`` is a *straight-through* estimator: its value is an exact
    one-hot sample, and its gradient is the gradient of the probabilities
    (``sample + (probs - probs.detach())``).  It is biased; use it only where a
    differentiable discrete action is wanted.

    Args:
        logits: unnormalised log-probabilities ``[*batch, n]``.
        probs: probabilities (or non-negative weights) ``[*batch, n]``; give
            exactly one of ``logits`` and ``probs``.
        mask: bool tensor broadcastable to ``[*batch, n]``, ``True`` = allowed.
        validate_args: check arguments and samples (default: torch's global setting).

    Raises:
        ModuleValueError: both or neither of ``logits``/``probs``, a non-bool mask,
            or a row of the mask with no allowed action.

    Example:
        >>> import torch
        >>> from rlbricks.modules import OneHotCategorical
        >>> mask = torch.tensor([False, True, True])
        >>> dist = OneHotCategorical(logits=torch.tensor([9.0, 0.0, 1.0]), mask=mask)
        >>> dist.mode
        tensor([0., 0., 1.])
        >>> dist.log_prob(torch.tensor([True, False, False]))
        tensor(-inf)
    """

    has_rsample = True

    def __init__(
        self,
        logits: Tensor | None = None,
        probs: Tensor | None = None,
        mask: Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
        logits, probs, self.mask = _masked(
            logits, probs, mask, validating(validate_args), "OneHotCategorical"
        )
        super().__init__(probs=probs, logits=logits, validate_args=validate_args)

    def rsample(self, sample_shape: SampleShape = _NO_SHAPE) -> Tensor:
        """A one-hot sample with straight-through gradients to the probabilities.

        Example:
            >>> import torch
            >>> from rlbricks.modules import OneHotCategorical
            >>> logits = torch.zeros(3, requires_grad=True)
            >>> x = OneHotCategorical(logits=logits).rsample()
            >>> float(x.detach().sum()), x.requires_grad
            (1.0, True)
        """
        probs = self.probs.expand(self._extended_shape(sample_shape))
        # the parentheses matter: (sample + p) - p is not exactly sample in floating point
        return self.sample(sample_shape) + (probs - probs.detach())

    @property
    def deterministic_sample(self) -> Tensor:
        """The most likely allowed action, one-hot (same as :attr:`mode`).

        Example:
            >>> import torch
            >>> from rlbricks.modules import OneHotCategorical
            >>> OneHotCategorical(probs=torch.tensor([0.2, 0.8])).deterministic_sample
            tensor([0., 1.])
        """
        return self.mode
