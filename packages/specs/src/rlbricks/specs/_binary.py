"""``Binary``: a vector of independent 0/1 flags."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._leaf import LeafSpec
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import as_size
from rlbricks.specs._utils import fmt_num
from rlbricks.specs._utils import fmt_shape
from rlbricks.specs._utils import is_binary

__all__ = ["Binary"]


class Binary(LeafSpec):
    """Independent 0/1 flags, e.g. which buttons of a controller are pressed.

    Give ``n`` (the number of flags, shape ``(n,)``) or a ``shape`` (whose
    last dim is ``n``), or both if they agree.

    Args:
        n: number of flags (the last dim).
        shape: trailing shape of the values; ``(n,)`` when ``None``.
        device: device of the values (default: CPU).
        dtype: dtype of the values (bool, integer or floating).

    Raises:
        SpecValueError: neither ``n`` nor ``shape`` given, or they disagree.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Binary
        >>> spec = Binary(3)
        >>> spec
        Binary(shape=[3], dtype=torch.int8, device=cpu, n=3)
        >>> spec.is_in(torch.tensor([1, 0, 1], dtype=torch.int8))
        True
        >>> spec.project(torch.tensor([0.9, 0.2, 3.0]))
        tensor([1, 0, 1], dtype=torch.int8)
    """

    def __init__(
        self,
        n: int | None = None,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int8,
    ) -> None:
        if shape is None:
            if n is None:
                raise SpecValueError(
                    "Binary: give the number of flags n or a shape, e.g. Binary(4)"
                )
            size = torch.Size((n,))
        else:
            size = as_size(shape)
        if len(size) == 0 or (n is not None and size[-1] != n):
            raise SpecValueError(
                f"Binary: shape must be at least 1-D and end with n={n}, got {fmt_shape(size)}"
            )
        if not isinstance(dtype, torch.dtype) or dtype.is_complex:
            raise SpecValueError(f"Binary: dtype must be bool, integer or floating, got {dtype}")
        super().__init__(size, as_device(device), dtype)

    @property
    def n(self) -> int:
        """Number of flags (the last dim of ``shape``)."""
        return self._shape[-1]

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """Fair coin flips shaped ``[*shape, *spec.shape]``.

        Example:
            >>> from rlbricks.specs import Binary
            >>> x = Binary(4).rand((2,))
            >>> x.shape, set(x.unique().tolist()) <= {0, 1}
            (torch.Size([2, 4]), True)
        """
        return torch.randint(0, 2, self._full(shape), dtype=self._dtype, device=self._device)

    def _values_in(self, value: torch.Tensor) -> bool:
        return is_binary(value)

    def _value_problem(self, value: torch.Tensor) -> str | None:
        if self._values_in(value):
            return None
        bad = (value != 0) & (value != 1)
        idx = tuple(bad.nonzero()[0].tolist())
        return (
            f"values out of range: expected 0 or 1, got {int(bad.sum())} of {value.numel()} "
            f"other values (min {fmt_num(value.min())}, max {fmt_num(value.max())}); "
            f"first at index {idx}: {fmt_num(value[idx])}"
        )

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """``1`` where ``value > 0.5``, else ``0``.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Binary
            >>> Binary(3, dtype=torch.bool).project(torch.tensor([0.5, 0.51, -1.0]))
            tensor([False,  True, False])
        """
        value = self._project_input(value)
        if value.dtype is torch.bool:
            return value.to(self._dtype)
        return (value > 0.5).to(self._dtype)

    def _rebuild(self, shape: torch.Size, device: torch.device, fn: TensorFn) -> Binary:
        return Binary(shape=shape, device=device, dtype=self._dtype)

    def _params_equal(self, other: Any) -> bool:
        return True

    def _repr_extra(self) -> list[str]:
        return [f"n={self.n}"]
