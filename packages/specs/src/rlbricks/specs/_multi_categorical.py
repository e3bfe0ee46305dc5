"""``MultiCategorical``: several independent choices, stored as integer indices."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import torch

from rlbricks.specs._categorical import int_range_problem
from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._mask import CategoricalForm
from rlbricks.specs._mask import allowed
from rlbricks.specs._mask import mask_problem
from rlbricks.specs._mask import nearest_allowed
from rlbricks.specs._segments import Segments
from rlbricks.specs._segments import as_nvec
from rlbricks.specs._segments import prepare_segment_mask
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import as_size
from rlbricks.specs._utils import fmt_shape
from rlbricks.specs._utils import is_int

if TYPE_CHECKING:
    from rlbricks.specs._multi_one_hot import MultiOneHot

__all__ = ["MultiCategorical"]


class MultiCategorical(CategoricalForm):
    """Several independent choices, stored as integer indices: entry ``i`` is in ``[0, nvec[i])``.

    The last dim of ``shape`` has one entry per choice (``len(nvec)``); leading
    dims repeat the same choices.  The optional ``mask`` uses the one-hot
    layout of :class:`~rlbricks.specs.MultiOneHot`: ``[*shape[:-1], sum(nvec)]``,
    the allowed actions of every choice concatenated.

    Args:
        nvec: number of actions of each choice.
        shape: trailing shape of the values, ending with ``len(nvec)``;
            ``(len(nvec),)`` when ``None``.
        device: device of the values (default: CPU).
        dtype: integer dtype of the values.
        mask: allowed actions, broadcastable to ``[*shape[:-1], sum(nvec)]``; copied.

    Example:
        >>> import torch
        >>> from rlbricks.specs import MultiCategorical
        >>> spec = MultiCategorical([3, 2])
        >>> spec
        MultiCategorical(shape=[2], dtype=torch.int64, device=cpu, nvec=[3, 2])
        >>> spec.is_in(torch.tensor([2, 1])), spec.is_in(torch.tensor([1, 2]))
        (True, False)
        >>> spec.project(torch.tensor([5.0, -1.0]))
        tensor([2, 0])
        >>> spec.to_one_hot(torch.tensor([2, 1]))
        tensor([False, False,  True, False,  True])
    """

    def __init__(
        self,
        nvec: Any,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int64,
        mask: torch.Tensor | None = None,
    ) -> None:
        nv = as_nvec(nvec, "MultiCategorical")
        size = torch.Size((len(nv),)) if shape is None else as_size(shape)
        if len(size) == 0 or size[-1] != len(nv):
            raise SpecValueError(
                f"MultiCategorical: the last dim of shape must be len(nvec)={len(nv)}, "
                f"got shape {fmt_shape(size)}"
            )
        if not isinstance(dtype, torch.dtype) or not is_int(dtype):
            raise SpecValueError(f"MultiCategorical: dtype must be an integer dtype, got {dtype}")
        if int(nv.max()) - 1 > torch.iinfo(dtype).max:
            raise SpecValueError(
                f"MultiCategorical: nvec={nv.tolist()} does not fit the dtype {dtype}: use a wider "
                "integer dtype, e.g. torch.int64"
            )
        super().__init__(size, as_device(device), dtype)
        self._seg = Segments(nv, self._device)
        self._high = (self._seg.nvec - 1).to(dtype)
        self._zero = torch.zeros((), dtype=dtype, device=self._device)
        self.update_mask(mask)

    @property
    def nvec(self) -> torch.Tensor:
        """Number of actions of each choice (int64, on the spec's device)."""
        return self._seg.nvec

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or, with ``None``, clear) the mask of allowed actions, in place.

        Raises:
            SpecValueError: the mask is not bool, does not broadcast to
                ``[*shape[:-1], sum(nvec)]``, or allows nothing for some choice.

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiCategorical
            >>> spec = MultiCategorical([3, 2])
            >>> spec.update_mask(torch.tensor([True, False, False, False, True]))
            >>> spec.rand()
            tensor([0, 1])
        """
        if mask is None:
            self._not_mask_c = self._not_mask = self._not_padded = None
            return
        layout = torch.Size((*self._shape[:-1], self._seg.total))
        self._not_mask_c, self._not_mask, self._not_padded = prepare_segment_mask(
            mask, layout, self._seg, self._device, "MultiCategorical"
        )

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """Indices shaped ``[*shape, *spec.shape]``, uniform over each choice's allowed actions.

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiCategorical
            >>> x = MultiCategorical([2, 5, 3]).rand((4,))
            >>> x.shape, bool((x < torch.tensor([2, 5, 3])).all())
            (torch.Size([4, 3]), True)
        """
        full = self._full(shape)
        return self._seg.sample(tuple(full[:-1]), self._not_padded).to(self._dtype)

    def _values_in(self, value: torch.Tensor) -> bool:
        if value.numel() == 0:
            return True
        n = self._seg.uniform_n
        if n is not None:
            ok = torch.equal(value.clamp(0, n - 1), value)
        else:
            ok = torch.equal(torch.clamp(value, self._zero, self._high), value)
        if ok and self._not_padded is not None:
            return allowed(self._not_padded, value)
        return ok

    def _value_problem(self, value: torch.Tensor) -> str | None:
        if value.numel() == 0:
            return None
        expected = f"entry i in [0, nvec[i]) with nvec={self._seg.nvec_list}"
        problem = int_range_problem(value, self._seg.nvec, expected)
        if problem is None and self._not_padded is not None:
            return mask_problem(self._not_padded, value)
        return problem

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """Round and clamp entry ``i`` to ``[0, nvec[i])``; with a mask, the nearest allowed action.

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiCategorical
            >>> MultiCategorical([4, 4]).project(torch.tensor([[1.2, 9.0], [-3.0, 2.6]]))
            tensor([[1, 3],
                    [0, 3]])
        """
        value = self._project_input(value)
        if value.is_floating_point():
            value = value.double().round().clamp(0, self._seg.max_n - 1)
        index = torch.minimum(value.long().clamp_min(0), self._high)
        if self._not_padded is not None:
            index = nearest_allowed(self._not_padded, index)
        return index.to(self._dtype)

    # ------------------------------------------------------------------ #
    # conversions
    # ------------------------------------------------------------------ #
    def to_one_hot(self, value: torch.Tensor) -> torch.Tensor:
        """Indices ``[..., len(nvec)]`` to the concatenated one-hot ``[..., sum(nvec)]`` (bool).

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiCategorical
            >>> MultiCategorical([2, 2]).to_one_hot(torch.tensor([1, 0])).int()
            tensor([0, 1, 1, 0], dtype=torch.int32)
        """
        index = torch.as_tensor(value, device=self._device).long()
        return self._seg.one_hot(index, torch.bool)

    def to_categorical(self, value: torch.Tensor) -> torch.Tensor:
        """Concatenated one-hot ``[..., sum(nvec)]`` to indices ``[..., len(nvec)]``.

        Example:
            >>> import torch
            >>> from rlbricks.specs import MultiCategorical
            >>> MultiCategorical([2, 3]).to_categorical(torch.tensor([0, 1, 0, 0, 1]))
            tensor([1, 2])
        """
        value = torch.as_tensor(value, device=self._device)
        return self._seg.argmax(value).to(self._dtype)

    def to_one_hot_spec(self) -> MultiOneHot:
        """The equivalent :class:`~rlbricks.specs.MultiOneHot` spec (same nvec, device, mask).

        Example:
            >>> from rlbricks.specs import MultiCategorical
            >>> MultiCategorical([2, 3]).to_one_hot_spec()
            MultiOneHot(shape=[5], dtype=torch.bool, device=cpu, nvec=[2, 3])
        """
        from rlbricks.specs._multi_one_hot import MultiOneHot

        nvec, shape = self._seg.nvec_list, (*self._shape[:-1], self._seg.total)
        return MultiOneHot(nvec, shape=shape, device=self._device, mask=self._given_mask())

    # ------------------------------------------------------------------ #
    # new specs, comparison
    # ------------------------------------------------------------------ #
    def _rebuild(self, shape: torch.Size, device: torch.device, fn: TensorFn) -> MultiCategorical:
        nvec, mask = self._seg.nvec_list, self._given_mask(fn)
        return MultiCategorical(nvec, shape=shape, device=device, dtype=self._dtype, mask=mask)

    def _param(self) -> tuple[str, object]:
        return "nvec", self._seg.nvec_list
