"""Action masks: validation, sampling among allowed actions, projection onto them.

A mask is a bool tensor in the *one-hot layout*: its last dim enumerates the
actions of one choice (``True`` = allowed) and its leading dims follow the
spec.  Every helper here is vectorised: no Python loop over elements.
:class:`MaskableSpec` and its two forms hold the mask plumbing the four
discrete specs share.
"""

from __future__ import annotations

import abc
from typing import Any
from typing import TypeVar

import torch

from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._leaf import LeafSpec
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._leaf import tensors_equal
from rlbricks.specs._utils import fmt_num
from rlbricks.specs._utils import fmt_shape
from rlbricks.specs._utils import fmt_tensor

__all__ = [
    "CategoricalForm",
    "MaskableSpec",
    "OneHotForm",
    "allowed",
    "check_mask",
    "disallowed_positions",
    "mask_problem",
    "masked_sample",
    "nearest_allowed",
    "prepare_mask",
]

C = TypeVar("C", bound="CategoricalForm")
H = TypeVar("H", bound="OneHotForm")


def check_mask(mask: Any, layout: torch.Size, device: torch.device, what: str) -> torch.Tensor:
    """``mask`` as a bool tensor on ``device``, checked to broadcast to ``layout``.

    Returns the mask in its given (compact) shape.

    Raises:
        SpecValueError: not bool, not broadcastable to ``layout``, or a choice with
            no allowed action.
    """
    m = torch.as_tensor(mask, device=device)
    if m.dtype is not torch.bool:
        raise SpecValueError(
            f"{what}: a mask must be a bool tensor (True = allowed), got {m.dtype}"
        )
    try:
        m.broadcast_to(layout)
    except RuntimeError:
        raise SpecValueError(
            f"{what}: a mask of shape {fmt_shape(m.shape)} does not broadcast to the mask "
            f"layout {fmt_shape(layout)}: give a mask of that shape (or one that broadcasts to it)"
        ) from None
    return m


def prepare_mask(
    mask: Any, layout: torch.Size, device: torch.device, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``mask``; return its negation, compact (a private copy) and broadcast to ``layout``.

    Specs keep the negated mask: it is what sampling and projection use, and
    as a copy it cannot change behind the spec's back.

    Raises:
        SpecValueError: not bool, not broadcastable to ``layout``, or a choice with
            no allowed action.
    """
    not_compact = ~check_mask(mask, layout, device, what)
    not_mask = not_compact.broadcast_to(layout)
    if not_mask.numel() and bool(not_mask.all(-1).any()):
        empty = int(not_mask.all(-1).sum())
        raise SpecValueError(
            f"{what}: every choice needs at least one allowed action, but {empty} row(s) of "
            f"the mask are all False"
        )
    return not_compact, not_mask


def masked_sample(not_mask: torch.Tensor, lead: tuple[int, ...]) -> torch.Tensor:
    """Indices drawn uniformly among the allowed actions, shaped ``[*lead, *mask.shape[:-1]]``.

    ``not_mask`` is the negated mask; an argmax over uniform scores with the
    disallowed actions pushed below zero picks each allowed action with equal
    probability.
    """
    scores = torch.rand((*lead, *not_mask.shape), device=not_mask.device)
    scores.masked_fill_(not_mask, -1.0)
    return scores.argmax(-1)


def _expanded(not_mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``not_mask`` expanded (a view) to the leading batch dims of ``index``."""
    extra = index.ndim - (not_mask.ndim - 1)
    if extra <= 0:
        return not_mask
    return not_mask.expand(*index.shape[:extra], *not_mask.shape)


def allowed(not_mask: torch.Tensor, index: torch.Tensor) -> bool:
    """Whether no action in ``index`` (values in range, shaped ``[*batch, *mask.shape[:-1]]``)
    is forbidden by the negated mask ``not_mask``."""
    if index.numel() == 0:
        return True
    return not bool(disallowed_positions(not_mask, index).any())


def disallowed_positions(not_mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Bool tensor shaped like ``index``: True where the chosen action is masked out."""
    m = _expanded(not_mask, index)
    return m.gather(-1, index.long().unsqueeze(-1)).squeeze(-1)


def nearest_allowed(not_mask: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """For each entry of ``index`` (int64, in range), the closest allowed action (ties: lower)."""
    n = not_mask.shape[-1]
    arange = torch.arange(n, device=index.device)
    dist = (arange - index.unsqueeze(-1)).abs()
    dist.masked_fill_(not_mask, n + 1)
    return dist.argmin(-1)


def mask_problem(not_mask: torch.Tensor, index: torch.Tensor) -> str | None:
    """Message when ``index`` (in range) selects actions the (negated) mask forbids."""
    bad = disallowed_positions(not_mask, index)
    if not bool(bad.any()):
        return None
    idx = tuple(bad.nonzero()[0].tolist())
    return (
        f"{int(bad.sum())} of {index.numel()} entries select an action the mask forbids; "
        f"first at index {idx}: action {fmt_num(index[idx])}"
    )


class MaskableSpec(LeafSpec):
    """Base of the discrete specs that take a mask: comparison, repr and mask copies.

    A subclass's ``update_mask`` stores the *negated* mask twice, or ``None``
    for no mask: compact as given in ``_not_mask_c`` (what new specs are built
    from) and broadcast to the mask layout in ``_not_mask``.  The subclass
    names its own parameter with ``_param``; equality and the repr compare and
    show it, then the mask.
    """

    _not_mask_c: torch.Tensor | None
    _not_mask: torch.Tensor | None

    @property
    def mask(self) -> torch.Tensor | None:
        """A copy of the mask of allowed actions, in the spec's mask layout, or ``None``.

        The layout is the one-hot one: ``[*shape, n]`` for Categorical,
        ``[*shape[:-1], sum(nvec)]`` for MultiCategorical, the spec's shape for
        OneHot and MultiOneHot.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> Categorical(3, shape=(2,), mask=torch.tensor([True, False, True])).mask
            tensor([[ True, False,  True],
                    [ True, False,  True]])
        """
        return None if self._not_mask is None else ~self._not_mask

    @abc.abstractmethod
    def _param(self) -> tuple[str, object]:
        """The spec's own parameter as ``(name, value)``, e.g. ``("n", 4)``."""

    def _given_mask(self, fn: TensorFn | None = None) -> torch.Tensor | None:
        """The mask in its compact shape (``True`` = allowed) mapped through ``fn``, or ``None``.

        It is what ``_rebuild`` (with its ``fn``) and the ``to_*_spec``
        conversions pass to the new spec's constructor.
        """
        if self._not_mask_c is None:
            return None
        return ~(self._not_mask_c if fn is None else fn(self._not_mask_c))

    def _params_equal(self, other: Any) -> bool:
        return other._param() == self._param() and tensors_equal(self._not_mask, other._not_mask)

    def _repr_extra(self) -> list[str]:
        name, value = self._param()
        extra = [f"{name}={value}"]
        if self._not_mask is not None:
            extra.append(f"mask={fmt_tensor(~self._not_mask)}")
        return extra


class CategoricalForm(MaskableSpec):
    """Base of the discrete specs stored as indices (Categorical, MultiCategorical)."""

    def to_categorical_spec(self: C) -> C:
        """``self``: the spec is already categorical (for symmetry with the one-hot specs)."""
        return self


class OneHotForm(MaskableSpec):
    """Base of the discrete specs stored as one-hot vectors (OneHot, MultiOneHot)."""

    def to_one_hot_spec(self: H) -> H:
        """``self``: the spec is already one-hot (for symmetry with the categorical specs)."""
        return self
