"""``LeafSpec``: the shared plumbing of every spec describing a single tensor."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import torch

from rlbricks.specs._base import Mismatch
from rlbricks.specs._base import TensorSpec
from rlbricks.specs._errors import SpecTypeError
from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import as_size
from rlbricks.specs._utils import ends_with
from rlbricks.specs._utils import expand_shape
from rlbricks.specs._utils import fmt_shape

__all__ = ["LeafSpec", "TensorFn", "tensors_equal"]

L = TypeVar("L", bound="LeafSpec")
TensorFn = Callable[[torch.Tensor], torch.Tensor]


class LeafSpec(TensorSpec[torch.Tensor]):
    """Base of the tensor specs: shape/dtype/device storage and the generic checks.

    Subclasses implement ``rand``, ``project``, ``_values_in`` (domain check of
    a tensor already known to have the right shape, dtype and device),
    ``_value_problem`` (the same check, as a message) and ``_rebuild``.
    ``project`` starts with ``_project_input``, which refuses NaN unless the
    spec's domain holds it (``_admits_nan``, only floating ``Unbounded``).
    """

    _admits_nan = False

    def __init__(self, shape: ShapeLike, device: DeviceLike, dtype: torch.dtype) -> None:
        if not isinstance(dtype, torch.dtype):
            raise SpecValueError(f"dtype must be a torch.dtype, e.g. torch.float32; got {dtype!r}")
        self._shape = as_size(shape)
        if any(d < 0 for d in self._shape):
            raise SpecValueError(
                f"shape must hold non-negative sizes, got {fmt_shape(self._shape)}"
            )
        self._ndim = len(self._shape)
        self._numel = self._shape.numel()
        self._device = as_device(device)
        self._dtype = dtype

    # ------------------------------------------------------------------ #
    # description
    # ------------------------------------------------------------------ #
    @property
    def shape(self) -> torch.Size:
        """The trailing shape every value ends with."""
        return self._shape

    @property
    def ndim(self) -> int:
        """Number of dims of ``shape``."""
        return self._ndim

    @property
    def dtype(self) -> torch.dtype:
        """The dtype every value has."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """The device every value lives on."""
        return self._device

    def _full(self, shape: ShapeLike) -> torch.Size:
        """``[*shape, *self.shape]``."""
        if isinstance(shape, int):
            return torch.Size((shape, *self._shape))
        if len(shape) == 0:
            return self._shape
        return torch.Size((*as_size(shape), *self._shape))

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    def zero(self, shape: ShapeLike = ()) -> torch.Tensor:
        """An all-zeros tensor shaped ``[*shape, *spec.shape]``.

        It is a placeholder for preallocating buffers and need not lie in the
        space (a OneHot zero has no hot entry, a Bounded zero may be below
        ``low``); use :meth:`rand` or :meth:`project` for a valid value.

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> Unbounded(shape=(2,)).zero((3,))
            tensor([[0., 0.],
                    [0., 0.],
                    [0., 0.]])
        """
        return torch.zeros(self._full(shape), dtype=self._dtype, device=self._device)

    def is_in(self, value: Any) -> bool:
        """Whether ``value`` is a tensor of the spec's dtype and device, shaped
        ``[*batch, *spec.shape]``, with every entry in the domain.

        Never raises: any other object gives ``False``.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> spec = Categorical(3)
            >>> spec.is_in(torch.tensor([0, 2, 1])), spec.is_in(torch.tensor(3))
            (True, False)
            >>> spec.is_in(torch.tensor(1, dtype=torch.int32))  # wrong dtype
            False
        """
        if (
            not isinstance(value, torch.Tensor)
            or value.dtype is not self._dtype
            or value.device != self._device
        ):
            return False
        nd = self._ndim
        if nd and (value.ndim < nd or value.shape[-nd:] != self._shape):
            return False
        return self._values_in(value)

    @abc.abstractmethod
    def _values_in(self, value: torch.Tensor) -> bool:
        """Domain check of a tensor whose shape, dtype and device already match."""

    @abc.abstractmethod
    def _value_problem(self, value: torch.Tensor) -> str | None:
        """Like ``_values_in``, but a message saying what is wrong (``None`` if nothing)."""

    def _problem(self, value: Any) -> str | None:
        if not isinstance(value, torch.Tensor):
            return f"expected a torch.Tensor, got {type(value).__name__}"
        if value.dtype is not self._dtype:
            return f"expected dtype {self._dtype}, got {value.dtype}"
        if value.device != self._device:
            return f"expected device {self._device}, got {value.device}"
        if not ends_with(value.shape, self._shape):
            return (
                f"expected shape [*batch, {fmt_shape(self._shape)[1:]} (ending with "
                f"{fmt_shape(self._shape)}), got {fmt_shape(value.shape)}"
                if self._ndim
                else f"expected shape ending with [], got {fmt_shape(value.shape)}"
            )
        return self._value_problem(value)

    def _mismatches(self, value: Any) -> list[Mismatch]:
        problem = self._problem(value)
        if problem is None:
            return []
        return [((), problem)]

    def _mismatch_message(self, problems: list[Mismatch]) -> str:
        if len(problems) == 1 and not problems[0][0]:
            return f"value does not match {self!r}: {problems[0][1]}"
        return super()._mismatch_message(problems)

    def assert_is_in(self, value: Any) -> None:
        """Raise :class:`~rlbricks.specs.SpecValueError` if ``value`` is not in the spec.

        The message gives the spec, what it expects (shape, dtype, device,
        range) and what ``value`` holds (e.g. the min and max seen).

        Raises:
            SpecValueError: ``value`` is not in the spec.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Bounded
            >>> spec = Bounded(low=0, high=10, shape=(2,), dtype=torch.int64)
            >>> spec.assert_is_in(torch.tensor([3, 12]))
            Traceback (most recent call last):
                ...
            rlbricks.specs._errors.SpecValueError: value does not match Bounded(shape=[2], dtype=torch.int64, device=cpu, low=0, high=10): values out of range: expected every value in [0, 10], got 1 of 2 outside (min 3, max 12); first at index (1,): 12
        """
        super().assert_is_in(value)

    def encode(self, value: Any) -> torch.Tensor:
        """Convert ``value`` (tensor, numpy array, Python number or list) to a tensor
        of the spec's dtype and device.

        No copy is made when ``value`` already has the spec's dtype and device
        (numpy arrays then share memory with the result).  The shape is fixed
        up in three explicit cases, checked in this order:

        1. it already ends with ``spec.shape`` (leading batch dims are kept);
        2. it holds exactly ``spec.shape.numel()`` entries: reshaped to ``spec.shape``;
        3. it lacks only the spec's trailing singleton dims: they are appended
           (a vector of 8 rewards for a ``[1]`` spec becomes ``[8, 1]``).

        Values are converted, not checked: call :meth:`assert_is_in` to validate.

        Raises:
            SpecValueError: the shape fits none of the cases above.

        Example:
            >>> import numpy as np
            >>> from rlbricks.specs import Unbounded
            >>> spec = Unbounded(shape=(1,))
            >>> spec.encode(0.5)
            tensor([0.5000])
            >>> spec.encode(np.zeros(4)).shape  # four rewards of a batched env
            torch.Size([4, 1])
        """
        t = torch.as_tensor(value, dtype=self._dtype, device=self._device)
        shape = t.shape
        nd = self._ndim
        if nd == 0 or (len(shape) >= nd and shape[-nd:] == self._shape):
            return t
        if t.numel() == self._numel:
            return t.reshape(self._shape)
        core = nd
        while core and self._shape[core - 1] == 1:
            core -= 1
        if core < nd and ends_with(shape, self._shape[:core]):
            return t.reshape(*shape, *self._shape[core:])
        raise SpecValueError(
            f"{type(self).__name__}.encode: cannot fit a value of shape {fmt_shape(shape)} to the "
            f"spec shape {fmt_shape(self._shape)}: the value must end with "
            f"{fmt_shape(self._shape)} or hold exactly {self._numel} entries"
        )

    def _project_input(self, value: Any) -> torch.Tensor:
        """Check ``project``'s argument is a tensor ending with ``spec.shape``, NaN-free
        unless the spec holds NaN; move it to the spec's device."""
        if not isinstance(value, torch.Tensor):
            raise SpecTypeError(
                f"{type(self).__name__}.project expects a torch.Tensor, got "
                f"{type(value).__name__}; use encode() to convert numpy arrays and numbers"
            )
        if not ends_with(value.shape, self._shape):
            raise SpecValueError(
                f"{type(self).__name__}.project: expected a shape ending with "
                f"{fmt_shape(self._shape)}, got {fmt_shape(value.shape)}"
            )
        if value.is_floating_point() and not self._admits_nan and bool(value.isnan().any()):
            raise self._nan_error(value)
        if value.device != self._device:
            value = value.to(self._device)
        return value

    def _nan_error(self, value: torch.Tensor) -> SpecValueError:
        """The error of ``project`` given a ``value`` that holds NaN."""
        nan = value.isnan()
        idx = tuple(nan.nonzero()[0].tolist())
        return SpecValueError(
            f"{type(self).__name__}.project: the value holds NaN ({int(nan.sum())} of "
            f"{value.numel()} entries, first at index {idx}) and NaN has no nearest point in "
            f"{self!r}, so it cannot be projected; if the value is an action, the policy "
            "produced NaN actions: look for NaN in its inputs and in its parameters (a "
            "diverged loss, too high a learning rate)"
        )

    # ------------------------------------------------------------------ #
    # new specs
    # ------------------------------------------------------------------ #
    @abc.abstractmethod
    def _rebuild(self: L, shape: torch.Size, device: torch.device, fn: TensorFn) -> L:
        """A new spec of this class with ``shape`` and ``device``.

        ``fn`` maps the stored *compact* tensors (bounds, masks as given, before
        broadcasting; a device move or a copy); the constructor broadcasts them
        to ``shape``, which ``expand`` uses to add leading dims.
        """

    def expand(self: L, *shape: Any) -> L:
        """The spec with new leading dims; ``shape`` is the full new shape.

        Like ``torch.Tensor.expand``, the new shape must end with the spec's
        shape (``-1`` keeps a trailing size); bounds and masks are expanded
        views, not copies.

        Raises:
            SpecValueError: the new shape does not end with ``spec.shape``.

        Example:
            >>> from rlbricks.specs import Bounded
            >>> spec = Bounded(low=-1.0, high=1.0, shape=(3,))
            >>> spec.expand(4, 3).shape
            torch.Size([4, 3])
            >>> spec.expand(4, 3) == Bounded(low=-1.0, high=1.0, shape=(4, 3))
            True
        """
        new = expand_shape(shape, self._shape, type(self).__name__)
        return self._rebuild(new, self._device, _identity)

    def to(self: L, device: DeviceLike) -> L:
        """The spec on ``device``; ``self`` when it already lives there.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> Categorical(4).to("cpu").device
            device(type='cpu')
        """
        dev = as_device(device)
        if dev == self._device:
            return self
        return self._rebuild(self._shape, dev, lambda t: t.to(dev))

    def clone(self: L) -> L:
        """A copy of the spec sharing no tensor (bounds, mask) with it.

        Example:
            >>> from rlbricks.specs import OneHot
            >>> spec = OneHot(4)
            >>> copy = spec.clone()
            >>> copy == spec, copy is spec
            (True, False)
        """
        return self._rebuild(self._shape, self._device, torch.clone)

    # ------------------------------------------------------------------ #
    # comparison and display
    # ------------------------------------------------------------------ #
    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, LeafSpec)
            and other._shape == self._shape
            and other._dtype is self._dtype
            and other._device == self._device
            and self._params_equal(other)
        )

    def _params_equal(self, other: Any) -> bool:
        """Equality of the class-specific parameters (bounds, n, mask)."""
        return True

    def _repr_extra(self) -> list[str]:
        """Class-specific ``name=value`` fields of the repr."""
        return []

    def __repr__(self) -> str:
        fields = [
            f"shape={fmt_shape(self._shape)}",
            f"dtype={self._dtype}",
            f"device={self._device}",
            *self._repr_extra(),
        ]
        return f"{type(self).__name__}({', '.join(fields)})"


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def tensors_equal(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    """Both ``None``, or same shape and values."""
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(torch.equal(a, b))
