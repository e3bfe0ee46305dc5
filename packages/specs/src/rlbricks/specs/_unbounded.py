"""``Unbounded``: any value of a dtype and shape."""

from __future__ import annotations

import torch

from rlbricks.specs._leaf import LeafSpec
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import is_int

__all__ = ["Unbounded"]


class Unbounded(LeafSpec):
    """Every value of a dtype and shape, e.g. a real-valued observation.

    ``rand`` draws from a standard normal for floating dtypes, uniformly over
    the whole dtype range for integer dtypes, and fair coin flips for
    ``torch.bool``.

    Args:
        shape: trailing shape of the values (an int ``n`` means ``(n,)``).
        device: device of the values (default: CPU).
        dtype: dtype of the values.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Unbounded
        >>> spec = Unbounded(shape=(3,))
        >>> spec
        Unbounded(shape=[3], dtype=torch.float32, device=cpu)
        >>> spec.rand((2,)).shape
        torch.Size([2, 3])
        >>> spec.is_in(torch.tensor([1e9, -1e9, 0.0]))
        True
    """

    def __init__(
        self,
        shape: ShapeLike = (),
        device: DeviceLike = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(shape, device, dtype)
        # NaN is a value of a floating dtype: project keeps it (is_in accepts it too)
        self._admits_nan = dtype.is_floating_point or dtype.is_complex
        if is_int(dtype):
            info = torch.iinfo(dtype)
            self._int_range: tuple[int, int] = (info.min, info.max)

    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """A random tensor shaped ``[*shape, *spec.shape]``.

        Floating dtypes: standard normal; integer dtypes: uniform over the
        dtype's range; bool: fair coin.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Unbounded
            >>> Unbounded(shape=(2,), dtype=torch.int64).rand((5,)).dtype
            torch.int64
        """
        full = self._full(shape)
        dtype = self._dtype
        if dtype is torch.bool:
            return torch.randint(0, 2, full, dtype=dtype, device=self._device)
        if is_int(dtype):
            low, high = self._int_range
            return torch.randint(low, high, full, dtype=dtype, device=self._device)
        return torch.randn(full, dtype=dtype, device=self._device)

    def _values_in(self, value: torch.Tensor) -> bool:
        return True

    def _value_problem(self, value: torch.Tensor) -> str | None:
        return None

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` cast to the spec's dtype and device (floats are rounded for integer specs).

        NaN is kept for a floating spec (it is one of its values); an integer
        or bool spec refuses it.

        Raises:
            SpecValueError: ``value`` holds NaN and the spec's dtype is not floating.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Unbounded
            >>> Unbounded(dtype=torch.int64).project(torch.tensor(2.7))
            tensor(3)
        """
        value = self._project_input(value)
        if value.is_floating_point() and is_int(self._dtype):
            value = value.round()
        return value.to(self._dtype)

    def _rebuild(self, shape: torch.Size, device: torch.device, fn: TensorFn) -> Unbounded:
        return Unbounded(shape=shape, device=device, dtype=self._dtype)
