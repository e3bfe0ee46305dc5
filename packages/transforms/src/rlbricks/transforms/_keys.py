"""Transforms of the key structure: ``RenameTransform``, ``ExcludeTransform``,
``SelectTransform`` and ``CatTensors``."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs import Bounded
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._base import as_keys
from rlbricks.transforms._errors import TransformKeyError
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._spec_utils import DONE_KEYS
from rlbricks.transforms._spec_utils import missing_key

__all__ = ["CatTensors", "ExcludeTransform", "RenameTransform", "SelectTransform"]

_RESERVED = ("reward", *DONE_KEYS)


def _check_not_reserved(owner: str, keys: list[NestedKey], what: str) -> None:
    for key in keys:
        if key in _RESERVED:
            raise TransformValueError(
                f"{owner}: {key!r} cannot be {what}: every env writes 'reward', 'done', "
                "'terminated' and 'truncated' under these names"
            )


class RenameTransform(Transform):
    """Rename entries: ``in_keys[i]`` becomes ``out_keys[i]`` (inputs: ``out_keys_inv`` →
    ``in_keys_inv``).

    The specs follow. Reward and done flags keep their names, and so does
    ``"action"``; state inputs can be renamed with the inverse keys.

    Args:
        in_keys: the env's names of the outputs.
        out_keys: their new names.
        in_keys_inv: the env's names of state inputs.
        out_keys_inv: the names the user writes them under.
        create_copy: keep the old entries too.

    Raises:
        TransformValueError: a reserved key (reward, done flags, action) would be renamed.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import RenameTransform
        >>> td = TensorDict({"observation": torch.zeros(2), "next": {"observation": torch.ones(2)}})
        >>> out = RenameTransform("observation", "obs")(td)
        >>> list(out.keys(include_nested=True, leaves_only=True))
        [('next', 'obs'), 'obs']
    """

    def __init__(
        self,
        in_keys: KeysLike,
        out_keys: KeysLike,
        in_keys_inv: KeysLike = None,
        out_keys_inv: KeysLike = None,
        create_copy: bool = False,
    ) -> None:
        if out_keys is None or (in_keys_inv is not None and out_keys_inv is None):
            raise TransformValueError(
                "RenameTransform: give the new names (out_keys, out_keys_inv)"
            )
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        name = type(self).__name__
        _check_not_reserved(name, [*self.in_keys, *self.out_keys], "renamed")
        if "action" in [*self.in_keys_inv, *self.out_keys_inv]:
            raise TransformValueError(
                f"{name}: the action is always 'action' and cannot be renamed"
            )
        self.create_copy = create_copy

    def _call(self, tensordict: TensorDict) -> TensorDict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = tensordict.get(in_key, None)
            if value is None:
                continue
            if not self.create_copy:
                tensordict.exclude(in_key, inplace=True)
            tensordict.set(out_key, value)
        return tensordict

    def _inv_call(self, tensordict: TensorDict) -> TensorDict:
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = tensordict.get(out_key, None)
            if value is None:
                continue
            if not self.create_copy:
                tensordict.exclude(out_key, inplace=True)
            tensordict.set(in_key, value)
        return tensordict

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Move the renamed entries in the observation and state specs.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, RenameTransform
            >>> specs = RenameTransform("observation", "count").transform_env_specs(
            ...     EnvSpecs.from_env(CountingEnv()))
            >>> specs.observation.keys()
            ['count']
        """
        specs.observation = self.transform_observation_spec(specs.observation)
        name = type(self).__name__
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key not in specs.observation and out_key not in specs.observation:
                raise missing_key(name, in_key, specs)
        state = specs.state
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            if in_key not in state:
                raise TransformValueError(
                    f"{name}: {in_key!r} is not a state input of the env; its state inputs "
                    f"are {state.keys(include_nested=True, leaves_only=True)}"
                )
            spec = state[in_key]
            if not self.create_copy:
                del state[in_key]
            state[out_key] = spec
        return specs

    def transform_observation_spec(self, observation_spec: Any) -> Any:
        """Move each renamed entry of the observation spec to its new key.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.transforms import RenameTransform
            >>> spec = Composite(a=Unbounded(), b=Unbounded())
            >>> RenameTransform("a", "c").transform_observation_spec(spec).keys()
            ['b', 'c']
        """
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key not in observation_spec:
                continue
            spec = observation_spec[in_key]
            if not self.create_copy:
                del observation_spec[in_key]
            observation_spec[out_key] = spec
        return observation_spec

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        copy = ", create_copy=True" if self.create_copy else ""
        return super().extra_repr() + copy


class ExcludeTransform(Transform):
    """Drop entries from the outputs (and from the observation spec).

    On a plain TensorDict the keys are dropped from the root and from
    ``"next"``. Reward and done flags cannot be excluded.

    Args:
        *excluded_keys: the keys to drop.

    Raises:
        TransformValueError: a key is reserved, or (on an env) not an output of the env.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import ExcludeTransform
        >>> td = TensorDict({"a": torch.zeros(1), "b": torch.zeros(1), "next": {"a": torch.zeros(1)}})
        >>> sorted(ExcludeTransform("a")(td).keys(include_nested=True))
        ['b', 'next']
    """

    def __init__(self, *excluded_keys: NestedKey) -> None:
        super().__init__()
        self.excluded_keys = as_keys(list(excluded_keys))
        _check_not_reserved(type(self).__name__, self.excluded_keys, "excluded")

    def _call(self, tensordict: TensorDict) -> TensorDict:
        return tensordict.exclude(*self.excluded_keys, inplace=True)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Remove the keys from the observation spec.

        Example:
            >>> from rlbricks.envs.testing import NestedSpecEnv
            >>> from rlbricks.transforms import EnvSpecs, ExcludeTransform
            >>> specs = ExcludeTransform(("data", "step")).transform_env_specs(
            ...     EnvSpecs.from_env(NestedSpecEnv()))
            >>> specs.observation.keys(include_nested=True, leaves_only=True)
            [('data', 'states')]
        """
        for key in self.excluded_keys:
            if key not in specs.observation:
                raise missing_key(type(self).__name__, key, specs)
            del specs.observation[key]
        return specs

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"excluded_keys={self.excluded_keys}"


class SelectTransform(Transform):
    """Keep only some output entries (plus the reward and done flags, always kept).

    On a plain TensorDict the root and ``"next"`` keep the selected keys,
    ``"reward"``, the done flags and ``"next"`` itself; everything else
    (``"action"`` too, unless selected) is dropped.

    Args:
        *selected_keys: the keys to keep.

    Raises:
        TransformValueError: (on an env) a key is not an output of the env.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import SelectTransform
        >>> td = TensorDict({"a": torch.zeros(1), "b": torch.zeros(1), "done": torch.zeros(1)})
        >>> sorted(SelectTransform("a")(td).keys())
        ['a', 'done']
    """

    def __init__(self, *selected_keys: NestedKey) -> None:
        super().__init__()
        self.selected_keys = as_keys(list(selected_keys))
        self._keep = [*self.selected_keys, *_RESERVED, "next"]

    def _call(self, tensordict: TensorDict) -> TensorDict:
        return tensordict.select(*self._keep, strict=False, inplace=True)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Keep only the selected keys in the observation spec.

        Example:
            >>> from rlbricks.envs.testing import NestedSpecEnv
            >>> from rlbricks.transforms import EnvSpecs, SelectTransform
            >>> specs = SelectTransform(("data", "step")).transform_env_specs(
            ...     EnvSpecs.from_env(NestedSpecEnv()))
            >>> specs.observation.keys(include_nested=True, leaves_only=True)
            [('data', 'step')]
        """
        keep = []
        for key in self.selected_keys:
            if key in specs.observation:
                keep.append(key)
            elif key not in _RESERVED:
                raise missing_key(type(self).__name__, key, specs)
        specs.observation = specs.observation.select(*keep)
        return specs

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"selected_keys={self.selected_keys}"


class CatTensors(Transform):
    """Concatenate entries into one, along a (negative) dim of the entries.

    Args:
        in_keys: the entries to concatenate, in this order.
        out_key: where the result goes.
        dim: the dim (negative: counted from the end, so batch dims do not matter).
        del_keys: drop the ``in_keys`` entries.

    Raises:
        TransformValueError: ``dim`` is not negative, or no ``in_keys`` are given.
        TransformKeyError: some ``in_keys`` are present in the data and others are not.
        TransformValueError: (on an env) an entry is missing or the dtypes differ.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import CatTensors
        >>> td = TensorDict({"a": torch.zeros(2, 1), "b": torch.ones(2, 3)}, batch_size=[2])
        >>> out = CatTensors(["a", "b"], "observation")(td)
        >>> out["observation"].tolist(), sorted(out.keys())
        ([[0.0, 1.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]], ['observation'])
    """

    def __init__(
        self,
        in_keys: KeysLike,
        out_key: NestedKey = "observation_vector",
        dim: int = -1,
        del_keys: bool = True,
    ) -> None:
        super().__init__(in_keys)
        name = type(self).__name__
        if not self.in_keys:
            raise TransformValueError(f"{name}: give the in_keys to concatenate")
        if dim >= 0:
            raise TransformValueError(
                f"{name}: dim must be negative (counted from the last dim, whatever the batch "
                f"dims), got {dim}"
            )
        self.out_keys = [unravel_key(out_key)]
        self.out_key = self.out_keys[0]
        self.dim = dim
        self.del_keys = del_keys

    def _call(self, tensordict: TensorDict) -> TensorDict:
        values = [tensordict.get(key, None) for key in self.in_keys]
        missing = [key for key, v in zip(self.in_keys, values) if v is None]
        if len(missing) == len(values):
            return tensordict
        if missing:
            raise TransformKeyError(
                f"CatTensors: entries {missing} are missing (present: "
                f"{sorted(map(str, tensordict.keys(include_nested=True, leaves_only=True)))})"
            )
        out = torch.cat(values, dim=self.dim)
        if self.del_keys:
            tensordict.exclude(*self.in_keys, inplace=True)
        return tensordict.set(self.out_key, out)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Replace the entries by their concatenation (Bounded if they all are).

        Example:
            >>> from rlbricks.envs.testing import NestedSpecEnv
            >>> from rlbricks.transforms import CatTensors, EnvSpecs
            >>> t = CatTensors([("data", "states"), ("data", "step")], "obs")
            >>> t.transform_env_specs(EnvSpecs.from_env(NestedSpecEnv())).observation["obs"].shape
            torch.Size([4])
        """
        name = type(self).__name__
        obs = specs.observation
        parts: list[TensorSpec[Any]] = []
        for key in self.in_keys:
            if key not in obs:
                raise missing_key(name, key, specs)
            parts.append(obs[key])
        dtypes = {p.dtype for p in parts}
        if len(dtypes) != 1:
            raise TransformValueError(
                f"{name}: the entries {self.in_keys} have different dtypes {sorted(map(str, dtypes))}"
                ": cast them first (DTypeCastTransform)"
            )
        dtype = parts[0].dtype
        device = parts[0].device
        new: TensorSpec[Any]
        if all(type(p) is Bounded for p in parts):
            low = torch.cat([p.low for p in parts], dim=self.dim)  # type: ignore[attr-defined]
            high = torch.cat([p.high for p in parts], dim=self.dim)  # type: ignore[attr-defined]
            new = Bounded(low, high, shape=low.shape, device=device, dtype=dtype)  # type: ignore[arg-type]
        else:
            shape = _cat_shape([p.shape for p in parts], self.dim)
            if shape is None:
                raise TransformValueError(
                    f"{name}: cannot concatenate {self.in_keys} along dim {self.dim}: their "
                    f"shapes {[tuple(p.shape) for p in parts]} differ elsewhere than along it"
                )
            new = Unbounded(shape=shape, device=device, dtype=dtype)  # type: ignore[arg-type]
        if self.del_keys:
            for key in self.in_keys:
                del obs[key]
        obs[self.out_key] = new
        return specs

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"in_keys={self.in_keys}, out_key={self.out_key!r}, dim={self.dim}"


def _cat_shape(shapes: list[torch.Size], dim: int) -> torch.Size | None:
    """The shape of ``torch.cat`` of tensors of ``shapes`` along ``dim``; None if they don't fit."""
    ndim = len(shapes[0])
    if any(len(shape) != ndim for shape in shapes) or not -ndim <= dim < ndim:
        return None
    dim %= ndim
    rest = [shape[:dim] + shape[dim + 1 :] for shape in shapes]
    if any(r != rest[0] for r in rest):
        return None
    total = sum(shape[dim] for shape in shapes)
    return torch.Size((*shapes[0][:dim], total, *shapes[0][dim + 1 :]))
