"""Fit an environment's (batched) spec to values with other leading dims.

A batched environment declares its specs with the env batch dims in front
(``Bounded(shape=(n_envs, 2))``).  A policy holding that spec also runs on
replay samples (``[batch, 2]``) and trajectories (``[n_envs, T, 2]``), whose
leading dims differ.  :func:`fit_spec` returns the spec of **one**
environment in that case (the env dims dropped), which is valid when every
environment shares the same bounds, ``n`` and mask.
"""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.modules._errors import ModuleValueError
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded

__all__ = ["fit_spec", "project"]


def _ends_with(shape: torch.Size, suffix: torch.Size) -> bool:
    n = len(suffix)
    return n == 0 or (len(shape) >= n and shape[len(shape) - n :] == suffix)


def _first(tensor: torch.Tensor, drop: int, what: str, owner: str) -> torch.Tensor:
    """``tensor[0, ..., 0]`` over its ``drop`` leading dims, checked to be the same for all."""
    first = tensor[(0,) * drop]
    if not torch.equal(tensor, first.expand_as(tensor)):
        raise ModuleValueError(
            f"{owner}: the spec's {what} differ between its leading (environment) dims, so it "
            "cannot describe values with other leading dims; pass the spec of one environment"
        )
    return first


def _one_env_spec(spec: TensorSpec[Any], drop: int, owner: str) -> TensorSpec[Any]:
    tail = spec.shape[drop:]
    device = spec.device
    if isinstance(spec, Unbounded):
        return Unbounded(shape=tail, device=device, dtype=spec.dtype)
    if isinstance(spec, Bounded):
        low = _first(spec.low, drop, "bounds", owner)
        high = _first(spec.high, drop, "bounds", owner)
        return Bounded(low, high, shape=tail, device=device, dtype=spec.dtype)
    if isinstance(spec, (Categorical, OneHot)):
        mask = spec.mask
        if mask is not None:
            mask = _first(mask, drop, "masks", owner)
        if isinstance(spec, Categorical):
            return Categorical(spec.n, shape=tail, device=device, dtype=spec.dtype, mask=mask)
        return OneHot(spec.n, shape=tail, device=device, dtype=spec.dtype, mask=mask)
    if isinstance(spec, Binary):
        return Binary(shape=tail, device=device, dtype=spec.dtype)
    raise ModuleValueError(
        f"{owner}: a {type(spec).__name__} spec of shape {tuple(spec.shape)} does not fit values "
        "with other leading dims; pass the spec of one environment"
    )


def fit_spec(spec: TensorSpec[Any], shape: torch.Size, owner: str) -> TensorSpec[Any]:
    """``spec`` if values of ``shape`` end with its shape, else the spec of one environment.

    Raises:
        ModuleValueError: no trailing part of ``spec.shape`` matches ``shape``, or
            the environments of the spec differ.
    """
    if _ends_with(shape, spec.shape):
        return spec
    for drop in range(1, len(spec.shape) + 1):
        if _ends_with(shape, spec.shape[drop:]):
            return _one_env_spec(spec, drop, owner)
    raise ModuleValueError(  # unreachable: an empty suffix always matches
        f"{owner}: values of shape {tuple(shape)} do not fit the spec of shape {tuple(spec.shape)}"
    )


def project(spec: TensorSpec[Any], value: torch.Tensor, owner: str) -> torch.Tensor:
    """``spec.project(value)``, dropping the spec's environment dims when ``value`` lacks them."""
    projected: torch.Tensor = fit_spec(spec, value.shape, owner).project(value)
    return projected
