"""Gymnasium spaces ↔ rlbricks specs, and values across the boundary.

Three conversions, all driven by the gymnasium space:

* :func:`space_to_spec` — a space becomes a spec (batched by ``batch_size``);
* :func:`space_value_to_tensor` — what gymnasium returns (numpy, ints, dicts,
  tuples) becomes tensors / nested dicts matching that spec;
* :func:`tensor_to_space_value` — a value of the spec becomes what
  ``gymnasium.Env.step`` expects.

Conventions:

* ``Box`` keeps the space's dtype (``float64`` stays ``float64``, ``uint8``
  images stay ``uint8``): nothing is cast behind the user's back; cast with a
  transform (``DoubleToFloat``) if needed. A Box with any infinite bound
  becomes ``Unbounded``, otherwise ``Bounded``.
* ``Discrete(n, start=s)`` and ``MultiDiscrete(nvec, start=s)`` are stored as
  indices ``0 .. n-1``: ``s`` is subtracted from gymnasium's values and added
  back to actions, so ``Categorical``/``OneHot`` specs keep their usual domain.
* ``Dict`` becomes a nested ``Composite`` with the same keys; ``Tuple`` a
  ``Composite`` with keys ``"0"``, ``"1"``, ...

Gymnasium is never imported here: spaces are recognised by their class name,
so this module costs nothing when gymnasium is not installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlbricks.envs._errors import EnvTypeError
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded

__all__ = [
    "action_converter",
    "box_converter",
    "space_to_spec",
    "space_value_to_tensor",
    "tensor_to_space_value",
    "torch_dtype",
]

DeviceLike = torch.device | str | int | None


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a numpy dtype (``np.float32`` → ``torch.float32``).

    Example:
        >>> import numpy as np
        >>> from rlbricks.envs._gym_spaces import torch_dtype
        >>> torch_dtype(np.uint8)
        torch.uint8
    """
    return torch.from_numpy(np.zeros((), dtype=np.dtype(dtype))).dtype


def _kind(space: Any) -> str:
    for cls in type(space).__mro__:
        if cls.__name__ in ("Box", "Discrete", "MultiDiscrete", "MultiBinary", "Dict", "Tuple"):
            return cls.__name__
    raise EnvTypeError(
        f"space_to_spec: unsupported gymnasium space {type(space).__name__} ({space!r}); "
        "supported: Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
    )


def space_to_spec(
    space: Any,
    *,
    batch_size: Any = (),
    categorical_action_encoding: bool = False,
    device: DeviceLike = None,
) -> TensorSpec[Any]:
    """Convert a gymnasium space into a spec whose shape starts with ``batch_size``.

    Args:
        space: a ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``,
            ``Dict`` or ``Tuple`` space (nested freely).
        batch_size: leading dims of every spec (e.g. ``[num_envs]``).
        categorical_action_encoding: ``Discrete`` → ``Categorical`` (index)
            and ``MultiDiscrete`` → ``MultiCategorical`` instead of the
            default ``OneHot`` / ``MultiOneHot``.
        device: device of the specs.

    Returns:
        The spec (a ``Composite`` for ``Dict`` and ``Tuple``).

    Raises:
        EnvTypeError: the space type is not supported (the message names it).

    Example:
        >>> import gymnasium as gym
        >>> from rlbricks.envs import space_to_spec
        >>> space_to_spec(gym.spaces.Discrete(3)).shape
        torch.Size([3])
        >>> space_to_spec(gym.spaces.Discrete(3), categorical_action_encoding=True).n
        3
        >>> space_to_spec(gym.spaces.Box(-1, 1, (2,)), batch_size=[4]).shape
        torch.Size([4, 2])
    """
    bs = tuple(torch.Size(batch_size))
    kind = _kind(space)
    if kind == "Box":
        dtype = torch_dtype(space.dtype)
        shape = (*bs, *space.shape)
        low, high = np.asarray(space.low), np.asarray(space.high)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            return Unbounded(shape=shape, device=device, dtype=dtype)
        return Bounded(
            torch.as_tensor(low, dtype=dtype),
            torch.as_tensor(high, dtype=dtype),
            shape=shape,
            device=device,
            dtype=dtype,
        )
    if kind == "Discrete":
        n = int(space.n)
        if categorical_action_encoding:
            return Categorical(n, shape=bs, device=device)
        return OneHot(n, shape=(*bs, n), device=device)
    if kind == "MultiDiscrete":
        nvec = np.asarray(space.nvec)
        if nvec.ndim != 1:
            raise EnvTypeError(
                f"space_to_spec: MultiDiscrete with a {nvec.ndim}-D nvec {nvec.shape} is not "
                "supported; flatten the space first (gymnasium.wrappers.FlattenObservation)"
            )
        if categorical_action_encoding:
            return MultiCategorical(nvec.tolist(), shape=(*bs, len(nvec)), device=device)
        return MultiOneHot(nvec.tolist(), shape=(*bs, int(nvec.sum())), device=device)
    if kind == "MultiBinary":
        return Binary(shape=(*bs, *space.shape), device=device, dtype=torch_dtype(space.dtype))
    children = space.spaces.items() if kind == "Dict" else enumerate(space.spaces)
    return Composite(
        {
            str(key): space_to_spec(
                sub,
                batch_size=bs,
                categorical_action_encoding=categorical_action_encoding,
                device=device,
            )
            for key, sub in children
        },
        shape=bs,
        device=device,
    )


def space_value_to_tensor(value: Any, space: Any, device: DeviceLike = None) -> Any:
    """Convert a value of ``space`` (possibly batched) into tensors.

    Discrete values become indices (``start`` removed) — use the
    ``categorical_action_encoding=True`` spec to describe them; ``Dict`` and
    ``Tuple`` values become dicts (keys ``"0"``, ``"1"``, ... for tuples).

    Example:
        >>> import gymnasium as gym
        >>> from rlbricks.envs._gym_spaces import space_value_to_tensor
        >>> space_value_to_tensor(5, gym.spaces.Discrete(3, start=4))
        tensor(1)
    """
    kind = _kind(space)
    if kind == "Dict":
        return {
            str(k): space_value_to_tensor(value[k], sub, device) for k, sub in space.spaces.items()
        }
    if kind == "Tuple":
        return {
            str(i): space_value_to_tensor(value[i], sub, device)
            for i, sub in enumerate(space.spaces)
        }
    if kind in ("Discrete", "MultiDiscrete"):
        array = np.asarray(value, dtype=np.int64) - np.asarray(space.start, dtype=np.int64)
        return torch.as_tensor(array, device=device)
    array = np.asarray(value, dtype=space.dtype)
    return torch.as_tensor(array, device=device)


def tensor_to_space_value(value: Any, space: Any, spec: TensorSpec[Any]) -> Any:
    """Convert a value of ``spec`` (from :func:`space_to_spec`) into what ``env.step`` expects.

    One-hot values become indices, ``start`` offsets are added back, tensors
    become numpy arrays of the space's dtype (leading batch dims are kept),
    ``Dict``/``Tuple`` spaces get a dict/tuple.

    Example:
        >>> import torch, gymnasium as gym
        >>> from rlbricks.envs import space_to_spec
        >>> from rlbricks.envs._gym_spaces import tensor_to_space_value
        >>> space = gym.spaces.Discrete(3, start=1)
        >>> int(tensor_to_space_value(torch.tensor([False, False, True]), space, space_to_spec(space)))
        3
    """
    kind = _kind(space)
    if kind == "Dict":
        return {k: tensor_to_space_value(value[k], sub, spec[k]) for k, sub in space.spaces.items()}  # type: ignore[index]
    if kind == "Tuple":
        return tuple(
            tensor_to_space_value(value[str(i)], sub, spec[str(i)])  # type: ignore[index]
            for i, sub in enumerate(space.spaces)
        )
    if kind == "Discrete":
        if isinstance(spec, OneHot):
            value = value.to(torch.long).argmax(-1)
        array = value.detach().cpu().numpy().astype(np.int64) + int(space.start)
        return array if array.ndim else array.astype(space.dtype).item()
    if kind == "MultiDiscrete":
        if isinstance(spec, MultiOneHot):
            value = spec.to_categorical(value)
        array = value.detach().cpu().numpy().astype(np.int64) + np.asarray(space.start)
        return array.astype(space.dtype)
    return value.detach().cpu().numpy().astype(space.dtype, copy=False)


# ---------------------------------------------------------------------- #
# per-step fast paths (built once per env, called every step)
# ---------------------------------------------------------------------- #
def box_converter(
    space: Any, device: DeviceLike = None, *, copy: bool = False
) -> Callable[[Any], torch.Tensor] | None:
    """A fast ``space_value_to_tensor`` for a ``Box`` space on the CPU, or None.

    The tensor shares the array's memory (as ``torch.as_tensor`` does) unless
    ``copy`` is set — use it when the simulator reuses its output buffer — or
    the array is read-only or not viewable by torch (negative strides).

    Example:
        >>> import numpy as np, gymnasium as gym
        >>> from rlbricks.envs._gym_spaces import box_converter
        >>> convert = box_converter(gym.spaces.Box(-1, 1, (2,)))
        >>> convert(np.array([0.5, -0.5], dtype=np.float32))
        tensor([ 0.5000, -0.5000])
    """
    if _kind(space) != "Box" or torch.device("cpu" if device is None else device).type != "cpu":
        return None
    dtype = np.dtype(space.dtype)

    def convert(value: Any) -> torch.Tensor:
        array = np.asarray(value, dtype=dtype)
        if copy or not array.flags.writeable:
            array = array.copy()
        try:
            return torch.from_numpy(array)
        except ValueError:  # negative strides
            return torch.from_numpy(array.copy())

    return convert


def action_converter(space: Any, spec: TensorSpec[Any]) -> Callable[[torch.Tensor], Any] | None:
    """A fast ``tensor_to_space_value`` for a ``Discrete`` space, or None.

    Same result as :func:`tensor_to_space_value` (one-hot → index, ``start``
    added back, a Python int for one env, int64 indices for a batch) with
    numpy instead of torch ops on CPU tensors.

    Example:
        >>> import torch, gymnasium as gym
        >>> from rlbricks.envs import space_to_spec
        >>> from rlbricks.envs._gym_spaces import action_converter
        >>> space = gym.spaces.Discrete(3, start=1)
        >>> convert = action_converter(space, space_to_spec(space))
        >>> convert(torch.tensor([False, False, True])), convert(torch.tensor([[0, 1, 0]]))
        (3, array([2]))
    """
    if _kind(space) != "Discrete":
        return None
    start = int(space.start)
    one_hot = isinstance(spec, OneHot)

    def convert(value: torch.Tensor) -> Any:
        if not one_hot and value.ndim == 0 and not value.is_floating_point():
            return value.item() + start  # one env, an index: no numpy array
        if not value.is_cpu or value.requires_grad or value.dtype is torch.bfloat16:
            return tensor_to_space_value(value, space, spec)
        if one_hot and value.dtype is torch.bool and value.ndim == 1:  # one env, no torch op
            row = value.tolist()
            return (row.index(True) if True in row else 0) + start
        array = value.numpy()
        if one_hot:
            if array.dtype != np.bool_:
                array = array.astype(np.int64)  # as ``value.to(torch.long)``
            array = array.argmax(-1)
        if array.ndim:
            array = array.astype(np.int64, copy=not one_hot)  # argmax made a fresh array
            return array + start if start else array
        return int(array) + start

    return convert
