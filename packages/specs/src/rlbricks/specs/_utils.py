"""Small helpers shared by the spec classes: shapes, devices, dtypes, formatting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rlbricks.specs._errors import SpecValueError

__all__ = [
    "DeviceLike",
    "ShapeLike",
    "as_device",
    "as_size",
    "ends_with",
    "expand_shape",
    "fmt_num",
    "fmt_shape",
    "fmt_tensor",
    "is_binary",
    "is_float",
    "is_int",
]

ShapeLike = int | Sequence[int] | torch.Size
DeviceLike = torch.device | str | int | None

_CPU = torch.device("cpu")


def as_size(shape: ShapeLike, name: str = "shape") -> torch.Size:
    """Turn an int, a sequence of ints or a ``torch.Size`` into a ``torch.Size``."""
    if shape.__class__ is torch.Size:
        return shape
    if isinstance(shape, int):
        return torch.Size((shape,))
    try:
        return torch.Size(shape)
    except TypeError:
        raise SpecValueError(
            f"{name} must be an int or a sequence of ints, e.g. (4, 3); got {shape!r}"
        ) from None


def as_device(device: DeviceLike) -> torch.device:
    """A canonical ``torch.device``; ``None`` means the CPU, ``"cuda"`` the current GPU."""
    if device is None:
        return _CPU
    dev = device if isinstance(device, torch.device) else torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return dev


def ends_with(shape: torch.Size, suffix: torch.Size) -> bool:
    """Whether ``shape`` ends with ``suffix``."""
    n = len(suffix)
    if n == 0:
        return True
    return len(shape) >= n and shape[-n:] == suffix


def expand_shape(args: tuple[Any, ...], old: torch.Size, what: str) -> torch.Size:
    """Parse the arguments of ``expand(*shape)`` and check the result ends with ``old``.

    Accepts ``expand(4, 3)``, ``expand((4, 3))`` and ``expand(torch.Size([4, 3]))``;
    ``-1`` in the trailing (old) part keeps the old size.
    """
    if len(args) == 1 and not isinstance(args[0], int):
        args = tuple(args[0])
    new = list(as_size(args))
    n_old = len(old)
    n_lead = len(new) - n_old
    if n_lead < 0:
        raise SpecValueError(
            f"{what}.expand: the new shape {fmt_shape(new)} has fewer dims than the spec "
            f"shape {fmt_shape(old)}; give the full new shape, e.g. "
            f"expand({', '.join(map(str, [4, *old]))})"
        )
    for i in range(n_old):
        if new[n_lead + i] == -1:
            new[n_lead + i] = old[i]
    if tuple(new[n_lead:]) != tuple(old) or any(d < 0 for d in new):
        hint = ", ".join(map(str, [*new, *old]))
        raise SpecValueError(
            f"{what}.expand: the new shape {fmt_shape(new)} must end with the spec shape "
            f"{fmt_shape(old)} (expand only adds leading dims); did you mean expand({hint})?"
        )
    return torch.Size(new)


def is_float(dtype: torch.dtype) -> bool:
    """Floating point (or complex) dtype."""
    return dtype.is_floating_point or dtype.is_complex


def is_int(dtype: torch.dtype) -> bool:
    """Integer dtype (``torch.bool`` excluded)."""
    return not dtype.is_floating_point and not dtype.is_complex and dtype is not torch.bool


def is_binary(value: torch.Tensor) -> bool:
    """Whether every entry of ``value`` is 0 or 1 (always true for bool tensors)."""
    if value.dtype is torch.bool:
        return True
    if is_int(value.dtype):
        return torch.equal(value.clamp(0, 1), value)
    return bool(((value == 0) | (value == 1)).all())


def fmt_shape(shape: Sequence[int]) -> str:
    """``[4, 3]`` for a shape."""
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def fmt_num(value: Any) -> str:
    """A number as a short string (``1.0``, ``-3``, ``inf``)."""
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float):
        text = f"{value:.6g}"
        return text if any(c in text for c in ".ein") else text + ".0"
    return str(value)


def fmt_tensor(t: torch.Tensor, max_items: int = 8) -> str:
    """A scalar when every entry is equal, a short list, or a min/max summary."""
    if t.numel() == 0:
        return "[]"
    flat = t.reshape(-1)
    first = flat[0]
    if bool((flat == first).all()):
        return fmt_num(first)
    if t.numel() <= max_items:
        return "[" + ", ".join(fmt_num(v) for v in flat.tolist()) + "]"
    return f"<tensor {fmt_shape(t.shape)}, min {fmt_num(flat.min())}, max {fmt_num(flat.max())}>"
