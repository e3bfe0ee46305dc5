"""``Bounded``: values in a box ``[low, high]``, continuous or integer."""

from __future__ import annotations

import math
from typing import Any

import torch

from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._leaf import LeafSpec
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._leaf import tensors_equal
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import fmt_num
from rlbricks.specs._utils import fmt_shape
from rlbricks.specs._utils import fmt_tensor
from rlbricks.specs._utils import is_int

__all__ = ["Bounded"]

# the float64 range that converts to int64 without overflow
_INT64_LOW_D = -(2.0**63)
_INT64_HIGH_D = math.nextafter(2.0**63, 0.0)


def _as_bound(value: Any, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``low``/``high`` as a tensor of ``dtype`` on ``device``, checked for integer dtypes."""
    t = torch.as_tensor(value, device=device)
    if t.dtype is torch.bool or t.is_complex():
        raise SpecValueError(f"Bounded: {name} must be real numbers, got dtype {t.dtype}")
    if is_int(dtype):
        if t.is_floating_point() and not bool((t == t.round()).all()):
            raise SpecValueError(
                f"Bounded: {name}={fmt_tensor(t)} must hold integers for the integer dtype {dtype}"
            )
        info = torch.iinfo(dtype)
        if t.numel() and (t.min() < info.min or t.max() > info.max):
            raise SpecValueError(
                f"Bounded: {name}={fmt_tensor(t)} does not fit the dtype {dtype} "
                f"(range [{info.min}, {info.max}]): use a wider integer dtype or bounds inside that range"
            )
    return t.to(dtype, copy=True)  # a private copy: the caller may reuse its tensor


def _uniform_value(t: torch.Tensor) -> Any:
    """The common value of every entry of ``t``, or ``None`` if they differ."""
    if t.numel() == 0:
        return None
    flat = t.reshape(-1)
    first = flat[0]
    if bool((flat == first).all()):
        return first.item()
    return None


class Bounded(LeafSpec):
    """Values in the box ``[low, high]`` (bounds included), e.g. a continuous action.

    ``low`` and ``high`` are numbers or tensors broadcast to ``shape``.  A
    floating ``dtype`` gives a continuous box; an integer ``dtype`` gives the
    integers of the box (a discrete domain).  Infinite bounds are allowed for
    floating dtypes: ``rand`` then draws ``low + Exp(1)``, ``high - Exp(1)``
    or a standard normal where the box is open.

    Args:
        low: lower bound(s), ``<= high`` everywhere (copied).
        high: upper bound(s).
        shape: trailing shape of the values; inferred by broadcasting the
            shapes of ``low`` and ``high`` when ``None``.
        device: device of the values and bounds (default: CPU).
        dtype: dtype of the values and bounds (floating or integer).

    Raises:
        SpecValueError: ``low > high`` somewhere, NaN bounds, non-integer bounds
            for an integer dtype, or bounds that do not broadcast to ``shape``.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Bounded
        >>> spec = Bounded(low=-1.0, high=1.0, shape=(2,))
        >>> spec
        Bounded(shape=[2], dtype=torch.float32, device=cpu, low=-1.0, high=1.0)
        >>> spec.project(torch.tensor([-3.0, 0.5]))
        tensor([-1.0000,  0.5000])
        >>> Bounded(low=torch.zeros(3), high=torch.tensor([1.0, 2.0, 3.0])).shape
        torch.Size([3])
        >>> dice = Bounded(low=1, high=6, dtype=torch.int64)
        >>> dice.is_in(torch.tensor([1, 6])), dice.is_in(torch.tensor(7))
        (True, False)
    """

    def __init__(
        self,
        low: Any,
        high: Any,
        shape: ShapeLike | None = None,
        device: DeviceLike = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(dtype, torch.dtype) or dtype is torch.bool or dtype.is_complex:
            raise SpecValueError(
                f"Bounded: dtype must be a real floating or integer dtype, got {dtype}"
            )
        dev = as_device(device)
        low_c = _as_bound(low, "low", dtype, dev)
        high_c = _as_bound(high, "high", dtype, dev)
        if shape is None:
            try:
                shape = torch.broadcast_shapes(low_c.shape, high_c.shape)
            except RuntimeError:
                raise SpecValueError(
                    f"Bounded: low of shape {fmt_shape(low_c.shape)} and high of shape "
                    f"{fmt_shape(high_c.shape)} do not broadcast together: give them the same shape, or "
                    "give one of them as a number"
                ) from None
        super().__init__(shape, dev, dtype)
        self._low_c, self._high_c = low_c, high_c
        self._low = self._broadcast(low_c, "low")
        self._high = self._broadcast(high_c, "high")
        self._check_order()
        self._prepare_sampling()

    def _broadcast(self, bound: torch.Tensor, name: str) -> torch.Tensor:
        try:
            return bound.broadcast_to(self._shape)
        except RuntimeError:
            raise SpecValueError(
                f"Bounded: {name} of shape {fmt_shape(bound.shape)} does not broadcast to "
                f"shape {fmt_shape(self._shape)}: give a bound of that shape, a number, or a shape= "
                "that the bound broadcasts to"
            ) from None

    def _check_order(self) -> None:
        low, high = self._low, self._high
        if low.is_floating_point() and bool(low.isnan().any() | high.isnan().any()):
            raise SpecValueError(
                "Bounded: low and high must not hold NaN; use -inf/inf (or Unbounded) for an "
                "unbounded side"
            )
        bad = low > high
        if bool(bad.any()):
            idx = tuple(bad.nonzero()[0].tolist())
            raise SpecValueError(
                f"Bounded: low must be <= high everywhere, but {int(bad.sum())} entr"
                f"{'y has' if int(bad.sum()) == 1 else 'ies have'} low > high; first at index "
                f"{idx}: low={fmt_num(low[idx])}, high={fmt_num(high[idx])}"
            )

    def _prepare_sampling(self) -> None:
        """Precompute what ``rand``/``is_in``/``project`` need, once."""
        # python numbers when every bound is equal (fast paths), else None
        self._lo_s = _uniform_value(self._low_c)
        self._hi_s = _uniform_value(self._high_c)
        self._scalar = self._lo_s is not None and self._hi_s is not None
        if is_int(self._dtype):
            self._fast = self._scalar and self._hi_s < torch.iinfo(self._dtype).max
            self._low64 = self._low.to(torch.int64)
            self._high64 = self._high.to(torch.int64)
            self._low_d = self._low.double()
            self._high_d = self._high.double()
            self._span_d = self._high_d - self._low_d + 1
            return
        self._range = self._high_c - self._low_c
        self._fast = bool(self._range.isfinite().all())
        if not self._fast:
            low, high = self._low, self._high
            self._low_finite = low.isfinite()
            self._high_finite = high.isfinite()
            self._low0 = torch.where(self._low_finite, low, 0)
            self._high0 = torch.where(self._high_finite, high, 0)

    # ------------------------------------------------------------------ #
    # description
    # ------------------------------------------------------------------ #
    @property
    def low(self) -> torch.Tensor:
        """The lower bounds, shaped like the spec (a broadcast view: do not modify)."""
        return self._low

    @property
    def high(self) -> torch.Tensor:
        """The upper bounds, shaped like the spec (a broadcast view: do not modify)."""
        return self._high

    def _expected(self) -> str:
        if self._scalar:
            return f"[{fmt_num(self._lo_s)}, {fmt_num(self._hi_s)}]"
        return f"[low, high] with low={fmt_tensor(self._low)}, high={fmt_tensor(self._high)}"

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """A tensor shaped ``[*shape, *spec.shape]`` drawn uniformly from the box.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Bounded
            >>> _ = torch.manual_seed(0)
            >>> spec = Bounded(low=2.0, high=3.0, shape=(4,))
            >>> x = spec.rand((10,))
            >>> x.shape, bool((x >= 2).all() and (x <= 3).all())
            (torch.Size([10, 4]), True)
        """
        full = self._full(shape)
        if is_int(self._dtype):
            return self._rand_int(full)
        if self._fast and self._scalar:
            u = torch.empty(full, dtype=self._dtype, device=self._device)
            # clamp: rounding in ``low + u * (high - low)`` may overshoot ``high`` by an ulp
            return u.uniform_(self._lo_s, self._hi_s).clamp_(max=self._hi_s)
        u = torch.rand(full, dtype=self._dtype, device=self._device)
        if not self._fast:
            return self._rand_open(u)
        u.mul_(self._range).add_(self._low_c)
        return torch.minimum(u, self._high, out=u)

    def _rand_int(self, full: torch.Size) -> torch.Tensor:
        if self._fast:
            return torch.randint(
                self._lo_s, self._hi_s + 1, full, dtype=self._dtype, device=self._device
            )
        u = torch.rand(full, dtype=torch.float64, device=self._device)
        v = u.mul_(self._span_d).floor_().add_(self._low_d)
        v = torch.minimum(v, self._high_d, out=v).to(self._dtype)
        return torch.clamp(v, self._low, self._high)

    def _rand_open(self, u: torch.Tensor) -> torch.Tensor:
        """Sampling when a bound is infinite or the range overflows the dtype."""
        boxed = self._low0 * (1 - u) + self._high0 * u
        expo = torch.empty_like(u).exponential_()
        normal = torch.randn_like(u)
        half_low = torch.where(self._low_finite, self._low0 + expo, normal)
        half_high = torch.where(self._high_finite, self._high0 - expo, half_low)
        out = torch.where(self._low_finite & self._high_finite, boxed, half_high)
        return torch.clamp(out, self._low, self._high)

    def _values_in(self, value: torch.Tensor) -> bool:
        # clamping changes nothing iff every value is in range (NaN never equals itself)
        if self._scalar:
            return torch.equal(value.clamp(self._lo_s, self._hi_s), value)
        return torch.equal(torch.clamp(value, self._low, self._high), value)

    def _value_problem(self, value: torch.Tensor) -> str | None:
        if value.numel() == 0:
            return None
        inside = (value >= self._low) & (value <= self._high)
        if bool(inside.all()):
            return None
        bad = ~inside
        idx = tuple(bad.nonzero()[0].tolist())
        message = (
            f"values out of range: expected every value in {self._expected()}, got "
            f"{int(bad.sum())} of {value.numel()} outside (min {fmt_num(value.min())}, "
            f"max {fmt_num(value.max())}); first at index {idx}: {fmt_num(value[idx])}"
        )
        if not self._scalar:
            at = idx[len(idx) - self._ndim :]
            message += f" not in [{fmt_num(self._low[at])}, {fmt_num(self._high[at])}]"
        return message

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` clamped to ``[low, high]`` (and rounded first for an integer dtype).

        Infinities are clamped to the bounds; NaN is refused (it has no
        nearest point in the box).

        Raises:
            SpecValueError: ``value`` holds NaN (e.g. the policy produced NaN actions).

        Example:
            >>> import torch
            >>> from rlbricks.specs import Bounded
            >>> Bounded(low=0, high=4, dtype=torch.int64).project(torch.tensor([-2.0, 1.6, 9.0]))
            tensor([0, 2, 4])
        """
        value = self._project_input(value)
        if is_int(self._dtype):
            if value.is_floating_point():
                # into the int64 range first, so that the cast cannot overflow
                value = value.double().round().clamp(_INT64_LOW_D, _INT64_HIGH_D)
            wide = value.to(torch.int64)
            if self._scalar:
                return wide.clamp(self._lo_s, self._hi_s).to(self._dtype)
            return torch.clamp(wide, self._low64, self._high64).to(self._dtype)
        value = value.to(self._dtype)
        if self._scalar:
            return value.clamp(self._lo_s, self._hi_s)
        return torch.clamp(value, self._low, self._high)

    # ------------------------------------------------------------------ #
    # new specs, comparison
    # ------------------------------------------------------------------ #
    def _rebuild(self, shape: torch.Size, device: torch.device, fn: TensorFn) -> Bounded:
        return Bounded(
            fn(self._low_c), fn(self._high_c), shape=shape, device=device, dtype=self._dtype
        )

    def _params_equal(self, other: Any) -> bool:
        return tensors_equal(self._low, other._low) and tensors_equal(self._high, other._high)

    def _repr_extra(self) -> list[str]:
        return [f"low={fmt_tensor(self._low)}", f"high={fmt_tensor(self._high)}"]
