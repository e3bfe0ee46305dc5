"""``Categorical``: one choice among ``n`` actions, stored as an integer index."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import torch

from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._leaf import TensorFn
from rlbricks.specs._mask import CategoricalForm
from rlbricks.specs._mask import allowed
from rlbricks.specs._mask import mask_problem
from rlbricks.specs._mask import masked_sample
from rlbricks.specs._mask import nearest_allowed
from rlbricks.specs._mask import prepare_mask
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike
from rlbricks.specs._utils import as_device
from rlbricks.specs._utils import fmt_num
from rlbricks.specs._utils import is_int

if TYPE_CHECKING:
    from rlbricks.specs._one_hot import OneHot

__all__ = ["Categorical", "check_n", "int_range_problem"]


def check_n(n: Any, what: str) -> int:
    """``n`` as a positive int."""
    if isinstance(n, torch.Tensor) and n.numel() == 1:
        n = n.item()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SpecValueError(f"{what}: n must be a positive int (the number of actions), got {n!r}")
    return n


def int_range_problem(value: torch.Tensor, n: Any, expected: str) -> str | None:
    """Message when ``value`` holds entries outside ``[0, n)`` (``n`` int or tensor)."""
    bad = (value < 0) | (value >= n)
    if not bool(bad.any()):
        return None
    idx = tuple(bad.nonzero()[0].tolist())
    return (
        f"values out of range: expected {expected}, got {int(bad.sum())} of {value.numel()} "
        f"outside (min {fmt_num(value.min())}, max {fmt_num(value.max())}); "
        f"first at index {idx}: {fmt_num(value[idx])}"
    )


class Categorical(CategoricalForm):
    """One choice among ``n`` actions, stored as an integer index in ``[0, n)``.

    The optional ``mask`` (bool, ``True`` = allowed) restricts the legal
    actions: ``rand`` draws only allowed ones, ``is_in`` rejects the others and
    ``project`` moves to the nearest allowed index.  Its layout is the one-hot
    layout ``[*shape, n]``; any tensor broadcastable to it works.

    Args:
        n: number of actions.
        shape: trailing shape of the index tensor (``()`` for one choice).
        device: device of the values (default: CPU).
        dtype: integer (or bool, for ``n <= 2``) dtype of the values.
        mask: allowed actions, broadcastable to ``[*shape, n]``; copied.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Categorical
        >>> spec = Categorical(4)
        >>> spec
        Categorical(shape=[], dtype=torch.int64, device=cpu, n=4)
        >>> spec.is_in(torch.tensor(3)), spec.is_in(torch.tensor(4))
        (True, False)
        >>> spec.to_one_hot(torch.tensor(1))
        tensor([False,  True, False, False])
        >>> masked = Categorical(4, mask=torch.tensor([False, True, False, True]))
        >>> bool(masked.rand((100,)).remainder(2).eq(1).all())  # only actions 1 and 3
        True
    """

    def __init__(
        self,
        n: int,
        shape: ShapeLike = (),
        device: DeviceLike = None,
        dtype: torch.dtype = torch.int64,
        mask: torch.Tensor | None = None,
    ) -> None:
        self._n = check_n(n, "Categorical")
        if not isinstance(dtype, torch.dtype) or not (is_int(dtype) or dtype is torch.bool):
            raise SpecValueError(f"Categorical: dtype must be an integer dtype, got {dtype}")
        if dtype is torch.bool and self._n > 2:
            raise SpecValueError(
                f"Categorical: dtype torch.bool holds only n <= 2 actions, got n={n}"
            )
        if is_int(dtype) and self._n - 1 > torch.iinfo(dtype).max:
            raise SpecValueError(
                f"Categorical: n={n} actions do not fit the dtype {dtype}: use a wider integer "
                "dtype, e.g. torch.int64"
            )
        super().__init__(shape, as_device(device), dtype)
        self.update_mask(mask)

    @property
    def n(self) -> int:
        """Number of actions."""
        return self._n

    def update_mask(self, mask: torch.Tensor | None) -> None:
        """Set (or, with ``None``, clear) the mask of allowed actions, in place.

        Raises:
            SpecValueError: the mask is not bool, does not broadcast to
                ``[*shape, n]``, or allows no action for some choice.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> spec = Categorical(3)
            >>> spec.update_mask(torch.tensor([True, False, True]))
            >>> spec.is_in(torch.tensor(1))
            False
            >>> spec.project(torch.tensor(1))  # nearest allowed action; ties go low
            tensor(0)
        """
        if mask is None:
            self._not_mask_c = self._not_mask = None
            return
        layout = torch.Size((*self._shape, self._n))
        self._not_mask_c, self._not_mask = prepare_mask(mask, layout, self._device, "Categorical")

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    def rand(self, shape: ShapeLike = ()) -> torch.Tensor:
        """Indices shaped ``[*shape, *spec.shape]``, uniform over the allowed actions.

        Example:
            >>> from rlbricks.specs import Categorical
            >>> x = Categorical(5, shape=(2,)).rand((3,))
            >>> x.shape, x.dtype, bool(((x >= 0) & (x < 5)).all())
            (torch.Size([3, 2]), torch.int64, True)
        """
        full = self._full(shape)
        if self._not_mask is not None:
            lead = tuple(full[: len(full) - self._ndim])
            return masked_sample(self._not_mask, lead).to(self._dtype)
        return torch.randint(0, self._n, full, dtype=self._dtype, device=self._device)

    def _values_in(self, value: torch.Tensor) -> bool:
        if value.numel() == 0:
            return True
        if self._dtype is torch.bool:
            ok = self._n == 2 or not bool(value.any())
        else:
            ok = torch.equal(value.clamp(0, self._n - 1), value)
        if ok and self._not_mask is not None:
            return allowed(self._not_mask, value)
        return ok

    def _value_problem(self, value: torch.Tensor) -> str | None:
        if value.numel() == 0:
            return None
        problem = int_range_problem(value, self._n, f"integers in [0, {self._n})")
        if problem is None and self._not_mask is not None:
            return mask_problem(self._not_mask, value)
        return problem

    def project(self, value: torch.Tensor) -> torch.Tensor:
        """Round and clamp to ``[0, n)``; with a mask, move to the nearest allowed action.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> Categorical(4).project(torch.tensor([-1.0, 1.4, 7.0]))
            tensor([0, 1, 3])
        """
        value = self._project_input(value)
        if value.is_floating_point():
            index = value.double().round().clamp(0, self._n - 1).long()
        else:
            index = value.long().clamp(0, self._n - 1)
        if self._not_mask is not None:
            index = nearest_allowed(self._not_mask, index)
        return index.to(self._dtype)

    # ------------------------------------------------------------------ #
    # conversions
    # ------------------------------------------------------------------ #
    def to_one_hot(self, value: torch.Tensor | int) -> torch.Tensor:
        """Indices ``[*batch, *shape]`` to one-hot ``[*batch, *shape, n]`` (dtype ``torch.bool``).

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> Categorical(3).to_one_hot(torch.tensor([2, 0]))
            tensor([[False, False,  True],
                    [ True, False, False]])
        """
        index = torch.as_tensor(value, device=self._device).long()
        out = torch.zeros((*index.shape, self._n), dtype=torch.bool, device=self._device)
        return out.scatter_(-1, index.unsqueeze(-1), True)

    def to_categorical(self, value: torch.Tensor) -> torch.Tensor:
        """One-hot ``[*batch, *shape, n]`` to indices ``[*batch, *shape]`` of the spec's dtype.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> Categorical(3).to_categorical(torch.tensor([False, False, True]))
            tensor(2)
        """
        value = torch.as_tensor(value, device=self._device)
        if not value.is_floating_point():
            value = value.to(torch.uint8 if value.dtype is torch.bool else value.dtype)
        return value.argmax(-1).to(self._dtype)

    def to_one_hot_spec(self) -> OneHot:
        """The equivalent :class:`~rlbricks.specs.OneHot` spec (same n, device and mask).

        Example:
            >>> from rlbricks.specs import Categorical
            >>> Categorical(3, shape=(2,)).to_one_hot_spec()
            OneHot(shape=[2, 3], dtype=torch.bool, device=cpu, n=3)
        """
        from rlbricks.specs._one_hot import OneHot

        shape = (*self._shape, self._n)
        return OneHot(self._n, shape=shape, device=self._device, mask=self._given_mask())

    # ------------------------------------------------------------------ #
    # new specs, comparison
    # ------------------------------------------------------------------ #
    def _rebuild(self, shape: torch.Size, device: torch.device, fn: TensorFn) -> Categorical:
        mask = self._given_mask(fn)
        return Categorical(self._n, shape=shape, device=device, dtype=self._dtype, mask=mask)

    def _param(self) -> tuple[str, object]:
        return "n", self._n
