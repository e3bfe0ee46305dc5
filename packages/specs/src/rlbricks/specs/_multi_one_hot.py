"""``MultiOneHot``: several independent choices, stored as concatenated one-hot vectors."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import torch

from rlbricks.specs._errors import SpecError
from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._mask import OneHotForm
from rlbricks.specs._mask import mask_problem
from rlbricks.specs._one_hot import one_hot_problem
from rlbricks.specs._segments import Segments
from rlbricks.specs._segments import as_nvec
from rlbricks.specs._segments import prepare_segment_mask
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import as_size
from rlbricks.specs._utils import fmt_shape
from rlbricks.specs._utils import is_binary

if TYPE_CHECKING:
    from rlbricks.specs._multi_categorical import MultiCategorical

__all__ = ["MultiOneHot"]


class MultiOneHot(OneHotForm):
    """Several independent choices, stored as one-hot vectors concatenated on the last dim.

    With ``nvec = [3, 2]`` the last dim has ``3 + 2 = 5`` entries: exactly one
    hot entry among the first three and one among the last two.  The optional
    ``mask`` (bool, ``True`` = allowed) has the same layout as the values.

    Args:
        nvec: number of actions of each choice.
        shape: trailing shape of the values, ending with ``sum(nvec)``;
            ``(sum(nvec),)`` when ``None``.
        device: device of the values (default: CPU).
        dtype: dtype of the values (bool, integer or floating).
        mask: allowed actions, broadcastable to ``shape``; copied.

    Example:
        >>> import torch
        >>> from rlbricks.specs import MultiOneHot
        >>> spec = MultiOneHot([3, 2])
        >>> spec.shape
        torch.Size([5])
        >>> spec.is_in(torch.tensor([False, True, False, True, False]))
        True
        >>> spec.is_in(torch.tensor([True, True, False, True, False]))
        False
        >>> spec.to_categorical(torch.tensor([False, True, False, True, False]))
        tensor([1, 0])
    """

    def __init__(
        self,
        nvec: Any,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.bool,
        mask: torch.Tensor | None = None,
    ) -> None:
        nv = as_nvec(nvec, "MultiOneHot")
        total = int(nv.sum())
        size = torch.Size((total,)) if shape is None else as_size(shape)
        if len(size) == 0 or size[-1] != total:
            raise SpecValueError(
                f"MultiOneHot: the last dim of shape must be sum(nvec)={total}, "
                f"got shape {fmt_shape(size)}"
            )
        if not isinstance(dtype, torch.dtype) or dtype.is_complex:
            raise SpecValueError(
                f"MultiOneHot: dtype must be bool, integer or floating, got {dtype}"
            )
        super().__init__(size, as_device(device), dtype)
        self._seg = Segments(nv, self._device)
        self.update_mask(mask)

    @property
    def nvec(self) -> torch.Tensor:
        """Number of actions of each choice (int64, on the spec's device)."""
        return self._seg.nvec

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or, with ``None``, clear) the mask of allowed actions, in place.

        Raises:
            SpecValueError: the mask is not bool, does not broadcast to ``shape``,
                or allows nothing for some choice.

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiOneHot
            >>> spec = MultiOneHot([2, 2])
            >>> spec.update_mask(torch.tensor([False, True, True, False]))
            >>> spec.rand().int()
            tensor([0, 1, 1, 0], dtype=torch.int32)
        """
        if mask is None:
            self._not_mask_c = self._not_mask = self._not_padded = None
            return
        self._not_mask_c, self._not_mask, self._not_padded = prepare_segment_mask(
            mask, self._shape, self._seg, self._device, "MultiOneHot"
        )

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """Values shaped ``[*shape, *spec.shape]``, uniform over each choice's allowed actions.

        Example:
            >>> from rlbricks.specs import MultiOneHot
            >>> x = MultiOneHot([3, 2]).rand((4,))
            >>> x.shape, x.sum(-1).tolist()
            (torch.Size([4, 5]), [2, 2, 2, 2])
        """
        full = self._full(shape)
        index = self._seg.sample(tuple(full[:-1]), self._not_padded)
        return self._seg.one_hot(index, self._dtype)

    def _values_in(self, value: torch.Tensor) -> bool:
        if value.numel() == 0:
            return True
        if not is_binary(value) or not bool((self._seg.counts(value) == 1).all()):
            return False
        return self._not_mask is None or not bool((value.bool() & self._not_mask).any())

    def _value_problem(self, value: torch.Tensor) -> str | None:
        if value.numel() == 0:
            return None
        problem = one_hot_problem(value, self._seg.counts(value), "segment")
        if problem is None and self._not_padded is not None:
            return mask_problem(self._not_padded, self._seg.argmax(value))
        return problem

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """Per choice, the one-hot of the largest entry (among allowed actions; ties go low).

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiOneHot
            >>> MultiOneHot([2, 3]).project(torch.tensor([0.3, 0.1, -1.0, 2.0, 0.5])).int()
            tensor([1, 0, 0, 1, 0], dtype=torch.int32)
        """
        value = self._project_input(value)
        return self._seg.one_hot(self._seg.argmax(value, self._not_padded), self._dtype)

    # ------------------------------------------------------------------ #
    # conversions
    # ------------------------------------------------------------------ #
    def encode(self, value: Any) -> torch.Tensor:
        """Convert a concatenated one-hot ``value`` to the spec's dtype and device.

        Indices are not guessed: convert them with :meth:`to_one_hot`.

        Example:
            >>> from rlbricks.specs import MultiOneHot
            >>> MultiOneHot([1, 2]).encode([1, 0, 1])
            tensor([ True, False,  True])
        """
        try:
            return super().encode(value)
        except SpecError as err:
            raise SpecValueError(
                f"{err}; for integer indices use MultiOneHot.to_one_hot(index)"
            ) from None

    def to_categorical(self, value: torch.Tensor) -> torch.Tensor:
        """Concatenated one-hot ``[..., sum(nvec)]`` to int64 indices ``[..., len(nvec)]``.

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiOneHot
            >>> MultiOneHot([2, 2]).to_categorical(torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0]]))
            tensor([[0, 1],
                    [1, 0]])
        """
        return self._seg.argmax(torch.as_tensor(value, device=self._device))

    def to_one_hot(self, value: torch.Tensor) -> torch.Tensor:
        """Indices ``[..., len(nvec)]`` to the concatenated one-hot of the spec's dtype.

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiOneHot
            >>> MultiOneHot([2, 2], dtype=torch.int64).to_one_hot(torch.tensor([1, 1]))
            tensor([0, 1, 0, 1])
        """
        index = torch.as_tensor(value, device=self._device).long()
        return self._seg.one_hot(index, self._dtype)

    def to_categorical_spec(self) -> MultiCategorical:
        """The equivalent :class:`~rlbricks.specs.MultiCategorical` spec (same nvec, device, mask).

        Example:
            >>> from rlbricks.specs import MultiOneHot
            >>> MultiOneHot([2, 3]).to_categorical_spec()
            MultiCategorical(shape=[2], dtype=torch.int64, device=cpu, nvec=[2, 3])
        """
        from rlbricks.specs._multi_categorical import MultiCategorical

        nvec, shape = self._seg.nvec_list, (*self._shape[:-1], self._seg.k)
        return MultiCategorical(nvec, shape=shape, device=self._device, mask=self._given_mask())

    # ------------------------------------------------------------------ #
    # new specs, comparison
    # ------------------------------------------------------------------ #
    def _rebuild(self, shape: torch.Size, device: torch.device, fn: TensorFn) -> MultiOneHot:
        nvec, mask = self._seg.nvec_list, self._given_mask(fn)
        return MultiOneHot(nvec, shape=shape, device=device, dtype=self._dtype, mask=mask)

    def _param(self) -> tuple[str, object]:
        return "nvec", self._seg.nvec_list
