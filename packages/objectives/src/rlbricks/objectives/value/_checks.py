"""Cheap argument checks shared by the functional estimators."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rlbricks.objectives.value._errors import ValueEstimatorValueError

__all__ = [
    "as_mask",
    "check_data",
    "check_factor",
    "check_floating",
    "float_mask",
    "time_dim_index",
]


def check_data(fn: str, **tensors: Any) -> torch.Size:
    """Check that every argument is a tensor and that all share one shape; return it."""
    first_name = ""
    shape = torch.Size()
    for name, value in tensors.items():
        if not isinstance(value, Tensor):
            raise ValueEstimatorValueError(
                f"{fn}: {name} must be a torch.Tensor, got {type(value).__name__}"
            )
        if not first_name:
            first_name, shape = name, value.shape
        elif value.shape != shape:
            raise ValueEstimatorValueError(
                f"{fn}: {name} has shape {tuple(value.shape)} but {first_name} has shape "
                f"{tuple(shape)}; every data tensor must have the same shape"
            )
    return shape


def check_floating(fn: str, **tensors: Tensor) -> None:
    """Check that value-like tensors hold floating-point numbers."""
    for name, value in tensors.items():
        if not value.is_floating_point():
            raise ValueEstimatorValueError(
                f"{fn}: {name} must be a floating-point tensor, got {value.dtype}; "
                f"convert it with .float()"
            )


def time_dim_index(fn: str, time_dim: int, shape: torch.Size) -> int:
    """``time_dim`` as a non-negative index into ``shape``, or an error telling the fix."""
    ndim = len(shape)
    index = time_dim + ndim if time_dim < 0 else time_dim
    if not 0 <= index < ndim:
        raise ValueEstimatorValueError(
            f"{fn}: time_dim={time_dim} is out of range for tensors of shape {tuple(shape)}; "
            f"the default time_dim=-2 expects [*batch, T, 1] inputs: pass time_dim=-1 for "
            f"[*batch, T] inputs"
        )
    return index


def check_factor(fn: str, name: str, value: Any, shape: torch.Size) -> None:
    """Check that a discount-like factor is a number or a tensor broadcastable to ``shape``."""
    if isinstance(value, Tensor):
        try:
            broadcast = torch.broadcast_shapes(value.shape, shape)
        except RuntimeError:
            broadcast = None
        if broadcast != shape:
            raise ValueEstimatorValueError(
                f"{fn}: {name} has shape {tuple(value.shape)}, which does not broadcast to "
                f"the data shape {tuple(shape)}; give a number or a tensor broadcastable to it"
            )
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueEstimatorValueError(
            f"{fn}: {name} must be a number or a tensor, got {type(value).__name__}"
        )


def as_mask(value: Tensor) -> Tensor:
    """A boolean view of a done-like flag (bool stays as is; numbers are compared to 0)."""
    return value if value.dtype == torch.bool else value != 0


def float_mask(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """``mask`` (bool) as 0/1 numbers of ``dtype``.

    Goes through a ``uint8`` view of the same memory: converting ``uint8`` to
    floating point is vectorised on CPU, converting ``bool`` is several times
    slower.
    """
    return mask.view(torch.uint8).to(dtype)
