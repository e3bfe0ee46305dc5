"""``ClipTransform``: clamp entries (and, inverse, inputs) to a box."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs import Bounded
from rlbricks.specs import TensorSpec
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._spec_utils import bounded
from rlbricks.transforms._spec_utils import route_inverse_specs
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["ClipTransform"]


class ClipTransform(Transform):
    """Clamp entries to ``[low, high]``; their specs become that box (intersected with theirs).

    ``low`` and ``high`` are numbers or tensors broadcasting against the
    entries (buffers, saved in ``state_dict``); None leaves that side open.
    With ``in_keys_inv``, inputs the user writes (e.g. actions) are clamped
    before they reach the base env.

    Args:
        low: the lower bound (None: none).
        high: the upper bound (None: none).
        in_keys: the outputs to clamp (default ``["observation"]``).
        out_keys: where the results go (None: in place).
        in_keys_inv: inputs to clamp for the base env.
        out_keys_inv: the user's names of those inputs (None: same as ``in_keys_inv``).

    Raises:
        TransformValueError: both bounds are None, or ``low > high`` somewhere.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import ClipTransform
        >>> td = TensorDict({"observation": torch.tensor([-5.0, 0.5, 5.0])})
        >>> ClipTransform(-1.0, 1.0)(td)["observation"]
        tensor([-1.0000,  0.5000,  1.0000])
    """

    low: torch.Tensor
    high: torch.Tensor

    def __init__(
        self,
        low: float | torch.Tensor | None = None,
        high: float | torch.Tensor | None = None,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        in_keys_inv: KeysLike = None,
        out_keys_inv: KeysLike = None,
    ) -> None:
        super().__init__(
            in_keys if in_keys is not None else ["observation"], out_keys, in_keys_inv, out_keys_inv
        )
        name = type(self).__name__
        if low is None and high is None:
            raise TransformValueError(f"{name}: give low, high or both")
        dtype = torch.get_default_dtype()
        low_t = torch.as_tensor(-float("inf") if low is None else low, dtype=dtype).clone()
        high_t = torch.as_tensor(float("inf") if high is None else high, dtype=dtype).clone()
        if (low_t > high_t).any():
            raise TransformValueError(f"{name}: low={low!r} is above high={high!r}")
        self.register_buffer("low", low_t)
        self.register_buffer("high", high_t)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        low, high = self.low.to(value.dtype), self.high.to(value.dtype)
        return torch.minimum(torch.maximum(value, low), high)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return self._apply_transform(value)

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        if spec.dtype is None or not spec.dtype.is_floating_point:
            raise TransformValueError(
                f"{type(self).__name__}: clips floating entries, got dtype {spec.dtype}; restrict "
                "in_keys to floating entries (or cast them first with DTypeCastTransform)"
            )
        low = self.low.to(spec.device, spec.dtype).expand(spec.shape)
        high = self.high.to(spec.device, spec.dtype).expand(spec.shape)
        if isinstance(spec, Bounded):
            low = torch.maximum(low, spec.low).clamp(max=spec.high)
            high = torch.minimum(high, spec.high).clamp(min=spec.low)
        return bounded(spec, low, high)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """The clamped outputs and inputs get Bounded specs.

        Example:
            >>> from rlbricks.envs.testing import ContinuousActionEnv
            >>> from rlbricks.transforms import ClipTransform, EnvSpecs
            >>> specs = ClipTransform(-0.5, 0.5, in_keys_inv=["action"]).transform_env_specs(
            ...     EnvSpecs.from_env(ContinuousActionEnv()))
            >>> specs.observation["observation"].high, specs.action.high
            (tensor([0.5000, 0.5000]), tensor([0.5000, 0.5000]))
        """
        name = type(self).__name__
        route_specs(specs, self.in_keys, self.out_keys, self._map_spec, name)
        return route_inverse_specs(specs, self.in_keys_inv, self.out_keys_inv, self._map_spec, name)

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"low={self.low.tolist()}, high={self.high.tolist()}, {super().extra_repr()}"
