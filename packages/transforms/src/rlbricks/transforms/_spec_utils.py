"""Helpers that rewrite leaf specs (dtype casts, reshapes, new bounds) and route keys to specs."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import torch

from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import NestedKey
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._errors import TransformValueError

__all__ = [
    "DONE_KEYS",
    "bounded",
    "cast_spec",
    "missing_key",
    "reshape_spec",
    "route_specs",
]

DONE_KEYS = ("done", "terminated", "truncated")

SpecFn = Callable[[TensorSpec[Any]], TensorSpec[Any]]


def cast_spec(spec: TensorSpec[Any], dtype: torch.dtype, owner: str) -> TensorSpec[Any]:
    """``spec`` with values of ``dtype`` (Unbounded and Bounded specs, and Composites of them).

    Example:
        >>> import torch
        >>> from rlbricks.specs import Bounded
        >>> cast_spec(Bounded(0.0, 1.0, shape=(2,), dtype=torch.float64), torch.float32, "t").dtype
        torch.float32
    """
    if isinstance(spec, Composite):
        out = spec.clone()
        for key in out.keys(include_nested=True, leaves_only=True):
            out[key] = cast_spec(out[key], dtype, owner)
        return out
    if type(spec) is Unbounded:
        return Unbounded(shape=spec.shape, device=spec.device, dtype=dtype)
    if type(spec) is Bounded:
        return Bounded(
            spec.low.to(dtype),
            spec.high.to(dtype),
            shape=spec.shape,
            device=spec.device,
            dtype=dtype,
        )
    raise TransformValueError(
        f"{owner}: cannot cast a {type(spec).__name__} spec to {dtype}; only Unbounded and "
        "Bounded entries can be cast: restrict in_keys to those entries"
    )


def bounded(spec: TensorSpec[Any], low: Any, high: Any) -> Bounded:
    """A Bounded spec with ``spec``'s shape, device and dtype and the given bounds.

    Example:
        >>> from rlbricks.specs import Unbounded
        >>> bounded(Unbounded(shape=(2,)), -1.0, 1.0).high
        tensor([1., 1.])
    """
    dtype = spec.dtype if spec.dtype is not None else torch.float32
    low_t = torch.as_tensor(low, dtype=dtype, device=spec.device)
    high_t = torch.as_tensor(high, dtype=dtype, device=spec.device)
    return Bounded(low_t, high_t, shape=spec.shape, device=spec.device, dtype=dtype)


def reshape_spec(
    spec: TensorSpec[Any], fn: Callable[[torch.Tensor], torch.Tensor], owner: str
) -> TensorSpec[Any]:
    """``spec`` whose values are ``fn(value)`` for a shape-only ``fn`` (flatten, unsqueeze...).

    Example:
        >>> from rlbricks.specs import Bounded
        >>> reshape_spec(Bounded(0.0, 1.0, shape=(2, 3)), lambda x: x.flatten(-2), "t").shape
        torch.Size([6])
    """
    if type(spec) is Bounded:
        low, high = fn(spec.low), fn(spec.high)
        return Bounded(low, high, shape=low.shape, device=spec.device, dtype=spec.dtype)
    shape = fn(torch.zeros(spec.shape, device="meta")).shape
    if type(spec) is Unbounded:
        return Unbounded(shape=shape, device=spec.device, dtype=spec.dtype)
    if type(spec) is Categorical:
        return Categorical(spec.n, shape=shape, device=spec.device, dtype=spec.dtype)
    if type(spec) is Binary and shape[-1:] == spec.shape[-1:]:
        return Binary(spec.n, shape=shape, device=spec.device, dtype=spec.dtype)
    raise TransformValueError(
        f"{owner}: cannot reshape a {type(spec).__name__} spec of shape {tuple(spec.shape)}; "
        "only Unbounded, Bounded and Categorical entries can change shape"
    )


def missing_key(owner: str, key: NestedKey, specs: EnvSpecs) -> TransformValueError:
    """The error for an ``in_key`` that no spec of the env holds, listing the keys that exist."""
    obs = specs.observation.keys(include_nested=True, leaves_only=True)
    return TransformValueError(
        f"{owner}: key {key!r} is not an output of the env; its outputs are "
        f"{[*obs, 'reward', *DONE_KEYS]}: fix in_keys"
    )


def route_specs(
    specs: EnvSpecs,
    in_keys: Sequence[NestedKey],
    out_keys: Sequence[NestedKey],
    fn: SpecFn,
    owner: str,
) -> EnvSpecs:
    """Set ``out_key`` to ``fn(spec of in_key)`` for each pair, wherever ``in_key`` lives.

    ``"reward"`` maps to the reward spec (and must keep its name); other keys
    to the observation spec. The ``in_key`` entry of a renamed output is left
    in place (the caller removes it when the transform does).

    Raises:
        TransformValueError: an ``in_key`` is in no spec, or ``"reward"`` would be renamed.
    """
    for in_key, out_key in zip(in_keys, out_keys):
        if in_key == "reward":
            if out_key != "reward":
                raise TransformValueError(
                    f"{owner}: the reward cannot be written to another key ({out_key!r}): a "
                    "reset has no reward to fill it with; use out_keys=['reward']"
                )
            specs.reward = fn(specs.reward)
        elif in_key in specs.observation:
            specs.observation[out_key] = fn(specs.observation[in_key])
        else:
            raise missing_key(owner, in_key, specs)
    return specs


def route_inverse_specs(
    specs: EnvSpecs,
    in_keys_inv: Sequence[NestedKey],
    out_keys_inv: Sequence[NestedKey],
    fn: SpecFn,
    owner: str,
) -> EnvSpecs:
    """Set the user-side input ``out_key`` to ``fn(spec of in_key)`` for each inverse pair.

    ``"action"`` maps to the action spec (and must keep its name); other keys
    to the state spec.

    Raises:
        TransformValueError: an ``in_key`` is not an input of the env, or the action
            would be renamed.
    """
    for in_key, out_key in zip(in_keys_inv, out_keys_inv):
        if in_key == "action":
            if out_key != "action":
                raise TransformValueError(
                    f"{owner}: the action is always read from 'action', got out_key_inv "
                    f"{out_key!r}: use out_keys_inv=['action']"
                )
            specs.action = fn(specs.action)
        elif in_key in specs.state:
            specs.state[out_key] = fn(specs.state[in_key])
        else:
            raise TransformValueError(
                f"{owner}: {in_key!r} is not an input of the env; its inputs are "
                f"{['action', *specs.state.keys(include_nested=True, leaves_only=True)]}"
            )
    return specs
