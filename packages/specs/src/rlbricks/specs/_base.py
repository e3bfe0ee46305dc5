"""The abstract :class:`TensorSpec`: what every spec can do."""

from __future__ import annotations

import abc
from typing import Any
from typing import Generic
from typing import TypeVar

import torch

from rlbricks.specs._errors import SpecValueError
from rlbricks.specs._utils import DeviceLike
from rlbricks.specs._utils import ShapeLike

__all__ = ["Mismatch", "TensorSpec", "format_key"]

V = TypeVar("V")
S = TypeVar("S", bound="TensorSpec[Any]")

# (relative nested key, message) pairs describing why a value is not in a spec.
Mismatch = tuple[tuple[str, ...], str]


def format_key(path: tuple[str, ...]) -> str:
    """``'obs'`` for a one-part key path, ``('next', 'obs')`` for a nested one."""
    return repr(path[0]) if len(path) == 1 else repr(path)


class TensorSpec(abc.ABC, Generic[V]):
    """The abstract base of every spec: the set of values an entry may hold.

    A spec describes a tensor (or, for :class:`~rlbricks.specs.Composite`, a
    TensorDict) by its trailing ``shape``, its ``dtype``, its ``device`` and
    the domain of its values.  Values may carry extra *leading* batch dims:
    a spec of shape ``[3]`` accepts tensors shaped ``[3]``, ``[8, 3]``,
    ``[2, 8, 3]``...

    Subclass it to write a new kind of spec; leaf specs (tensors) are
    ``TensorSpec[torch.Tensor]``, ``Composite`` is ``TensorSpec[TensorDict]``.

    Example:
        >>> import torch
        >>> from rlbricks.specs import Bounded, TensorSpec
        >>> spec: TensorSpec = Bounded(low=0.0, high=1.0, shape=(3,))
        >>> spec.rand((2,)).shape
        torch.Size([2, 3])
        >>> spec.is_in(torch.full((3,), 0.5))
        True
    """

    # ------------------------------------------------------------------ #
    # description
    # ------------------------------------------------------------------ #
    @property
    @abc.abstractmethod
    def shape(self) -> torch.Size:
        """The trailing shape every value ends with."""

    @property
    def ndim(self) -> int:
        """Number of dims of ``shape``.

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> Unbounded(shape=(4, 3)).ndim
            2
        """
        return len(self.shape)

    @property
    @abc.abstractmethod
    def dtype(self) -> torch.dtype | None:
        """The dtype of the values (``None`` for a Composite whose leaves disagree)."""

    @property
    @abc.abstractmethod
    def device(self) -> torch.device | None:
        """The device of the values (``None`` for a Composite without a device)."""

    # ------------------------------------------------------------------ #
    # values
    # ------------------------------------------------------------------ #
    @abc.abstractmethod
    def rand(self, shape: ShapeLike = ()) -> V:
        """A random value shaped ``[*shape, *spec.shape]``, drawn uniformly from the space.

        Example:
            >>> from rlbricks.specs import Categorical
            >>> Categorical(3, shape=(2,)).rand((4,)).shape
            torch.Size([4, 2])
        """

    @abc.abstractmethod
    def zero(self, shape: ShapeLike = ()) -> V:
        """An all-zeros value shaped ``[*shape, *spec.shape]`` (a placeholder for buffers).

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> Unbounded(shape=(2,)).zero()
            tensor([0., 0.])
        """

    @abc.abstractmethod
    def is_in(self, value: Any) -> bool:
        """Whether ``value`` lies in the spec: shape, dtype, device and domain; never raises.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Binary
            >>> Binary(2).is_in(torch.tensor([1, 0], dtype=torch.int8)), Binary(2).is_in("no")
            (True, False)
        """

    def assert_is_in(self, value: Any) -> None:
        """Raise :class:`SpecValueError` describing every way ``value`` is not in the spec.

        Raises:
            SpecValueError: naming the key (for Composite), what the spec expects
                and what ``value`` holds.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Categorical
            >>> Categorical(3).assert_is_in(torch.tensor(1))  # in the spec: no error
        """
        problems = self._mismatches(value)
        if problems:
            raise SpecValueError(self._mismatch_message(problems))

    def _mismatches(self, value: Any) -> list[Mismatch]:
        """Why ``value`` is not in the spec, as ``(key path, message)`` pairs (empty if it is)."""
        if self.is_in(value):
            return []
        return [((), f"value does not match {self!r}")]

    def _mismatch_message(self, problems: list[Mismatch]) -> str:
        if len(problems) == 1 and not problems[0][0]:
            return problems[0][1]
        lines = [
            f"{len(problems)} entr{'y does' if len(problems) == 1 else 'ies do'} not match "
            f"the {type(self).__name__} spec:"
        ]
        for path, message in problems:
            lines.append(f"  {format_key(path) if path else '<root>'}: {message}")
        return "\n".join(lines)

    @abc.abstractmethod
    def project(self, value: V) -> V:
        """Map a value of the right shape into the space (clamp, round, argmax...).

        NaN has no nearest point in a space, so it is refused (except by a
        floating :class:`~rlbricks.specs.Unbounded`, whose space holds NaN):
        a NaN action is a bug upstream (a diverged policy), not noise to clamp.

        Raises:
            SpecValueError: the shape does not end with ``spec.shape``, or a
                floating ``value`` holds NaN the space cannot hold.

        Example:
            >>> import torch
            >>> from rlbricks.specs import OneHot
            >>> OneHot(3).project(torch.tensor([0.2, 1.5, -1.0]))
            tensor([False,  True, False])
        """

    @abc.abstractmethod
    def encode(self, value: Any) -> V:
        """Convert numpy arrays, Python numbers/lists or tensors to the spec's dtype and device.

        Example:
            >>> import numpy as np
            >>> from rlbricks.specs import Categorical
            >>> Categorical(4).encode(np.int32(3))
            tensor(3)
        """

    # ------------------------------------------------------------------ #
    # new specs
    # ------------------------------------------------------------------ #
    @abc.abstractmethod
    def expand(self: S, *shape: Any) -> S:
        """A spec with new leading dims; the given full shape must end with ``spec.shape``.

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> Unbounded(shape=(3,)).expand(8, 3).shape
            torch.Size([8, 3])
        """

    @abc.abstractmethod
    def to(self: S, device: DeviceLike) -> S:
        """The spec on ``device`` (``self`` if it is already there).

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> spec = Unbounded()
            >>> spec.to("cpu") is spec
            True
        """

    @abc.abstractmethod
    def clone(self: S) -> S:
        """A deep copy: no tensor (bounds, mask) is shared with ``self``.

        Example:
            >>> from rlbricks.specs import Bounded
            >>> spec = Bounded(low=0.0, high=1.0)
            >>> spec.clone() == spec
            True
        """

    @abc.abstractmethod
    def __eq__(self, other: object) -> bool: ...

    __hash__ = None  # type: ignore[assignment]  # specs are mutable (masks, Composite keys)
