"""``OneHot``: one choice among ``n`` actions, stored as a one-hot vector."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import torch

from rlbricks.specs._categorical import check_n
from rlbricks.specs._errors import SpecError
from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._mask import OneHotForm
from rlbricks.specs._mask import mask_problem
from rlbricks.specs._mask import masked_sample
from rlbricks.specs._mask import prepare_mask
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import as_size
from rlbricks.specs._utils import fmt_shape
from rlbricks.specs._utils import is_binary

if TYPE_CHECKING:
    from rlbricks.specs._categorical import Categorical

__all__ = ["OneHot", "one_hot_problem", "scores_of"]

_EYE_MAX_N = 256  # rand indexes a cached ``eye(n)`` up to this n (at most 64 KiB of bool)


def scores_of(value: torch.Tensor) -> torch.Tensor:
    """``value`` in a dtype ``argmax`` accepts (bool becomes uint8)."""
    return value.to(torch.uint8) if value.dtype is torch.bool else value


def one_hot_problem(value: torch.Tensor, counts: torch.Tensor, what: str) -> str | None:
    """Message when ``value`` is not binary or a group's ``counts`` of hot entries is not 1."""
    if value.dtype is not torch.bool:
        bad = (value != 0) & (value != 1)
        if bool(bad.any()):
            idx = tuple(bad.nonzero()[0].tolist())
            return (
                f"expected 0/1 entries, got {int(bad.sum())} other values; first at index "
                f"{idx}: {value[idx].item()}"
            )
    bad = counts != 1
    if bool(bad.any()):
        idx = tuple(bad.nonzero()[0].tolist())
        return (
            f"expected exactly one hot entry per {what}, got {int(bad.sum())} of "
            f"{counts.numel()} {what}s with another count; first at index {idx}: "
            f"{int(counts[idx])} hot entries"
        )
    return None


class OneHot(OneHotForm):
    """One choice among ``n`` actions, stored as a one-hot vector (last dim ``n``).

    The optional ``mask`` (bool, ``True`` = allowed, shaped like the spec or
    broadcastable to it) restricts the legal actions.

    ``encode`` expects the one-hot layout (a value ending with ``n``); convert
    integer indices with :meth:`to_one_hot`.

    Args:
        n: number of actions.
        shape: trailing shape of the values, ending with ``n``; ``(n,)`` when ``None``.
        device: device of the values (default: CPU).
        dtype: dtype of the values (bool, integer or floating).
        mask: allowed actions, broadcastable to ``shape``; copied.

    Example:
        >>> import torch
        >>> from rlbricks.specs import OneHot
        >>> spec = OneHot(3)
        >>> spec.is_in(torch.tensor([False, True, False]))
        True
        >>> spec.is_in(torch.tensor([True, True, False]))
        False
        >>> spec.project(torch.tensor([0.1, -2.0, 0.7]))
        tensor([False, False,  True])
        >>> spec.to_categorical(torch.tensor([False, True, False]))
        tensor(1)
    """

    def __init__(
        self,
        n: int,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.bool,
        mask: torch.Tensor | None = None,
    ) -> None:
        self._n = check_n(n, "OneHot")
        self._eye: torch.Tensor | None = None  # identity rows for rand, built on first use
        size = torch.Size((self._n,)) if shape is None else as_size(shape)
        if len(size) == 0 or size[-1] != self._n:
            raise SpecValueError(
                f"OneHot: the last dim of shape must be n={self._n}, got shape {fmt_shape(size)}"
            )
        if not isinstance(dtype, torch.dtype) or dtype.is_complex:
            raise SpecValueError(f"OneHot: dtype must be bool, integer or floating, got {dtype}")
        super().__init__(size, as_device(device), dtype)
        self.update_mask(mask)

    @property
    def n(self) -> int:
        """Number of actions."""
        return self._n

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or, with ``None``, clear) the mask of allowed actions, in place.

        Raises:
            SpecValueError: the mask is not bool, does not broadcast to ``shape``,
                or allows no action for some choice.

        Example:
            >>> import torch
            >>> from rlbricks.specs import OneHot
            >>> spec = OneHot(3)
            >>> spec.update_mask(torch.tensor([False, False, True]))
            >>> spec.rand()
            tensor([False, False,  True])
        """
        if mask is None:
            self._not_mask_c = self._not_mask = None
            return
        self._not_mask_c, self._not_mask = prepare_mask(mask, self._shape, self._device, "OneHot")

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """One-hot tensors shaped ``[*shape, *spec.shape]``, uniform over the allowed actions.

        Example:
            >>> from rlbricks.specs import OneHot
            >>> x = OneHot(4).rand((5,))
            >>> x.shape, x.sum(-1).tolist()
            (torch.Size([5, 4]), [1, 1, 1, 1, 1])
        """
        full = self._full(shape)
        if self._not_mask is not None:
            index = masked_sample(self._not_mask, tuple(full[: len(full) - self._ndim]))
        else:
            index = torch.randint(0, self._n, full[:-1], device=self._device)
        if self._n <= _EYE_MAX_N:  # one indexing op instead of zeros + scatter
            eye = self._eye
            if eye is None:
                eye = self._eye = torch.eye(self._n, dtype=self._dtype, device=self._device)
            return eye[index]  # advanced indexing: a fresh tensor
        return self._one_hot(index)

    def _one_hot(self, index: torch.Tensor) -> torch.Tensor:
        out = torch.zeros((*index.shape, self._n), dtype=self._dtype, device=self._device)
        return out.scatter_(-1, index.unsqueeze(-1), 1)

    def _values_in(self, value: torch.Tensor) -> bool:
        if value.numel() == 0:
            return True
        if not is_binary(value) or not bool((value.sum(-1) == 1).all()):
            return False
        return self._not_mask is None or not bool((value.bool() & self._not_mask).any())

    def _value_problem(self, value: torch.Tensor) -> str | None:
        if value.numel() == 0:
            return None
        problem = one_hot_problem(value, value.sum(-1), "row")
        if problem is None and self._not_mask is not None:
            return mask_problem(self._not_mask, scores_of(value).argmax(-1))
        return problem

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """The one-hot of the largest entry of the last dim (among allowed actions).

        Ties go to the lowest index.

        Example:
            >>> import torch
            >>> from rlbricks.specs import OneHot
            >>> spec = OneHot(3, mask=torch.tensor([True, True, False]))
            >>> spec.project(torch.tensor([0.2, 0.1, 5.0]))
            tensor([ True, False, False])
        """
        value = self._project_input(value)
        if self._not_mask is not None:
            scores = value.double().masked_fill(self._not_mask, float("-inf"))
        else:
            scores = scores_of(value)
        return self._one_hot(scores.argmax(-1))

    # ------------------------------------------------------------------ #
    # conversions
    # ------------------------------------------------------------------ #
    def encode(self, value: Any) -> torch.Tensor:
        """Convert a one-hot ``value`` to the spec's dtype and device.

        The value must be in the one-hot layout (ending with ``n``); integer
        indices are not guessed: convert them with :meth:`to_one_hot`.

        Raises:
            SpecValueError: the value does not end with the spec shape.

        Example:
            >>> import numpy as np
            >>> from rlbricks.specs import OneHot
            >>> OneHot(3).encode(np.array([0, 0, 1]))
            tensor([False, False,  True])
        """
        try:
            return super().encode(value)
        except SpecError as err:
            raise SpecValueError(
                f"{err}; for integer indices use OneHot.to_one_hot(index)"
            ) from None

    def to_categorical(self, value: torch.Tensor) -> torch.Tensor:
        """One-hot ``[*batch, *shape]`` to int64 indices ``[*batch, *shape[:-1]]``.

        Example:
            >>> import torch
            >>> from rlbricks.specs import OneHot
            >>> OneHot(3).to_categorical(torch.tensor([[0, 0, 1], [1, 0, 0]]))
            tensor([2, 0])
        """
        value = torch.as_tensor(value, device=self._device)
        return scores_of(value).argmax(-1)

    def to_one_hot(self, value: torch.Tensor | int) -> torch.Tensor:
        """Indices ``[*batch, *shape[:-1]]`` to one-hot ``[*batch, *shape]`` of the spec's dtype.

        Example:
            >>> from rlbricks.specs import OneHot
            >>> OneHot(3).to_one_hot(1)
            tensor([False,  True, False])
        """
        return self._one_hot(torch.as_tensor(value, device=self._device).long())

    def to_categorical_spec(self) -> Categorical:
        """The equivalent :class:`~rlbricks.specs.Categorical` spec (same n, device, mask).

        Example:
            >>> from rlbricks.specs import OneHot
            >>> OneHot(4).to_categorical_spec()
            Categorical(shape=[], dtype=torch.int64, device=cpu, n=4)
        """
        from rlbricks.specs._categorical import Categorical

        shape = self._shape[:-1]
        return Categorical(self._n, shape=shape, device=self._device, mask=self._given_mask())

    # ------------------------------------------------------------------ #
    # new specs, comparison
    # ------------------------------------------------------------------ #
    def _rebuild(self, shape: torch.Size, device: torch.device, fn: TensorFn) -> OneHot:
        mask = self._given_mask(fn)
        return OneHot(self._n, shape=shape, device=device, dtype=self._dtype, mask=mask)

    def _param(self) -> tuple[str, object]:
        return "n", self._n
