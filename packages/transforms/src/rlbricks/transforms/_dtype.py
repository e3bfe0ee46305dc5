"""``DTypeCastTransform`` and ``DoubleToFloat``: cast entries between dtypes, both ways."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._spec_utils import cast_spec
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["DTypeCastTransform", "DoubleToFloat"]


class DTypeCastTransform(Transform):
    """Cast outputs from ``dtype_in`` to ``dtype_out``, and inputs (actions) back.

    Outputs: the entries ``in_keys`` (observations, ``"reward"``) are cast to
    ``dtype_out``; with ``in_keys=None`` every ``dtype_in`` entry is, on an env
    and on a plain TensorDict alike. Inputs: the user writes ``dtype_out``
    entries ``out_keys_inv`` and the base env receives them cast back to
    ``dtype_in`` under ``in_keys_inv``. With both ``in_keys`` and
    ``in_keys_inv`` left to None, the inputs to cast (action, state entries of
    dtype ``dtype_in``) are found in the env's specs when the transform is
    attached. The specs are rewritten accordingly (Unbounded and Bounded entries).

    Args:
        dtype_in: the env's dtype.
        dtype_out: the dtype the user sees.
        in_keys: outputs to cast (None: every ``dtype_in`` entry).
        out_keys: where the cast outputs go (None: in place).
        in_keys_inv: inputs the base env reads as ``dtype_in`` (see above).
        out_keys_inv: inputs the user writes (None: same as ``in_keys_inv``).

    Raises:
        TransformValueError: an entry to cast has a discrete spec, or is missing.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import DTypeCastTransform
        >>> t = DTypeCastTransform(torch.float64, torch.float32)
        >>> td = TensorDict({"obs": torch.zeros(2, dtype=torch.float64), "n": torch.zeros(2, dtype=torch.long)})
        >>> out = t(td)
        >>> out["obs"].dtype, out["n"].dtype
        (torch.float32, torch.int64)
    """

    def __init__(
        self,
        dtype_in: torch.dtype,
        dtype_out: torch.dtype,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        in_keys_inv: KeysLike = None,
        out_keys_inv: KeysLike = None,
    ) -> None:
        if out_keys is not None and in_keys is None:
            raise TransformValueError(
                f"{type(self).__name__}: out_keys needs explicit in_keys (one out_key per in_key)"
            )
        super().__init__(in_keys, out_keys, in_keys_inv, out_keys_inv)
        self.dtype_in = dtype_in
        self.dtype_out = dtype_out
        self._all_outputs = in_keys is None
        self._find_inputs = in_keys is None and in_keys_inv is None

    # ------------------------------------------------------------------ #
    # data
    # ------------------------------------------------------------------ #
    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(self.dtype_out)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.to(self.dtype_in)

    def _call(self, tensordict: TensorDict) -> TensorDict:
        if not self._all_outputs:
            return super()._call(tensordict)
        dtype_in, dtype_out = self.dtype_in, self.dtype_out
        for key, value in list(tensordict.items(include_nested=True, leaves_only=True)):
            if value.dtype == dtype_in and (isinstance(key, str) or key[0] != "next"):
                tensordict.set(key, value.to(dtype_out))
        return tensordict

    # ------------------------------------------------------------------ #
    # specs
    # ------------------------------------------------------------------ #
    def _cast(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        return cast_spec(spec, self.dtype_out, type(self).__name__)

    def _uncast(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        if spec.dtype != self.dtype_in:
            raise TransformValueError(
                f"{type(self).__name__}: the env's input has dtype {spec.dtype}, not "
                f"dtype_in={self.dtype_in}: fix in_keys_inv"
            )
        return cast_spec(spec, self.dtype_out, type(self).__name__)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Cast the specs of the outputs to ``dtype_out`` and of the inputs to ``dtype_out``.

        Example:
            >>> import torch
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import DTypeCastTransform, EnvSpecs
            >>> t = DTypeCastTransform(torch.float32, torch.float64)
            >>> specs = t.transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            >>> specs.observation["observation"].dtype, specs.reward.dtype
            (torch.float64, torch.float64)
        """
        name = type(self).__name__
        if self._all_outputs:
            obs = specs.observation
            for key in obs.keys(include_nested=True, leaves_only=True):
                if obs[key].dtype == self.dtype_in:
                    obs[key] = self._cast(obs[key])
            if specs.reward.dtype == self.dtype_in:
                specs.reward = self._cast(specs.reward)
        else:
            route_specs(specs, self.in_keys, self.out_keys, self._cast, name)
        if self._find_inputs:
            found: list[NestedKey] = []
            if specs.action.dtype == self.dtype_in and not isinstance(specs.action, Composite):
                found.append("action")
            for key in specs.state.keys(include_nested=True, leaves_only=True):
                if specs.state[key].dtype == self.dtype_in:
                    found.append(key)
            self.in_keys_inv = list(found)
            self.out_keys_inv = list(found)
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            if in_key == "action":
                if out_key != "action":
                    raise TransformValueError(
                        f"{name}: the action is always read from 'action', got out_key_inv "
                        f"{out_key!r}"
                    )
                specs.action = self._uncast(specs.action)
            elif in_key in specs.state:
                specs.state[out_key] = self._uncast(specs.state[in_key])
                if out_key != in_key:
                    del specs.state[in_key]
            else:
                raise TransformValueError(
                    f"{name}: in_key_inv {in_key!r} is not an input of the env; its inputs are "
                    f"{['action', *specs.state.keys(include_nested=True, leaves_only=True)]}"
                )
        return specs

    def transform_action_spec(self, action_spec: TensorSpec[Any]) -> TensorSpec[Any]:
        """The action spec in ``dtype_out`` when ``"action"`` is an ``in_key_inv``.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Bounded
            >>> from rlbricks.transforms import DTypeCastTransform
            >>> t = DTypeCastTransform(torch.float64, torch.float32, in_keys_inv=["action"])
            >>> t.transform_action_spec(Bounded(-1.0, 1.0, dtype=torch.float64)).dtype
            torch.float32
        """
        return self._uncast(action_spec) if "action" in self.in_keys_inv else action_spec

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        base = super().extra_repr()
        dtypes = f"dtype_in={self.dtype_in}, dtype_out={self.dtype_out}"
        return f"{dtypes}, {base}" if base else dtypes


class DoubleToFloat(DTypeCastTransform):
    """Cast float64 outputs to float32, and float32 actions back to float64 for the env.

    ``DTypeCastTransform(torch.float64, torch.float32, ...)``: with no keys
    given, every float64 output is cast, and every float64 input (action,
    state) of the env is exposed as float32.

    Args:
        in_keys: outputs to cast (None: every float64 entry).
        out_keys: where the cast outputs go (None: in place).
        in_keys_inv: inputs the base env reads as float64.
        out_keys_inv: inputs the user writes as float32 (None: same as ``in_keys_inv``).

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import DoubleToFloat
        >>> td = TensorDict({"next": {"observation": torch.zeros(3, dtype=torch.float64)}})
        >>> DoubleToFloat()(td)["next", "observation"].dtype
        torch.float32
    """

    def __init__(
        self,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        in_keys_inv: KeysLike = None,
        out_keys_inv: KeysLike = None,
    ) -> None:
        super().__init__(torch.float64, torch.float32, in_keys, out_keys, in_keys_inv, out_keys_inv)
