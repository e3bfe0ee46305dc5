"""Shape transforms: ``FlattenObservation`` and ``UnsqueezeTransform``."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs import TensorSpec
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._spec_utils import reshape_spec
from rlbricks.transforms._spec_utils import route_inverse_specs
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["FlattenObservation", "UnsqueezeTransform"]


def _negative(owner: str, name: str, dim: int) -> int:
    if dim >= 0:
        raise TransformValueError(
            f"{owner}: {name} must be negative (counted from the last dim, so that batch dims "
            f"do not matter), got {dim}"
        )
    return dim


class FlattenObservation(Transform):
    """Flatten the dims ``first_dim`` to ``last_dim`` (negative) of entries into one.

    Args:
        first_dim: the first dim to flatten (negative).
        last_dim: the last dim to flatten (negative, ``>= first_dim``).
        in_keys: the entries (default ``["observation"]``).
        out_keys: where the results go (None: in place).

    Raises:
        TransformValueError: a dim is not negative, or ``first_dim > last_dim``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import FlattenObservation
        >>> td = TensorDict({"observation": torch.zeros(5, 2, 3, 4)}, batch_size=[5])
        >>> FlattenObservation(-3, -1)(td)["observation"].shape
        torch.Size([5, 24])
    """

    def __init__(
        self,
        first_dim: int,
        last_dim: int = -1,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
    ) -> None:
        super().__init__(in_keys if in_keys is not None else ["observation"], out_keys)
        name = type(self).__name__
        self.first_dim = _negative(name, "first_dim", first_dim)
        self.last_dim = _negative(name, "last_dim", last_dim)
        if first_dim > last_dim:
            raise TransformValueError(
                f"{name}: first_dim={first_dim} is after last_dim={last_dim}; swap them"
            )

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.flatten(self.first_dim, self.last_dim)

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        if spec.ndim < -self.first_dim:
            raise TransformValueError(
                f"{type(self).__name__}: cannot flatten dims {self.first_dim}..{self.last_dim} of "
                f"an entry of shape {tuple(spec.shape)}; pick dims inside the entry's shape"
            )
        return reshape_spec(spec, self._apply_transform, type(self).__name__)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """The flattened entries get the flattened shape (and bounds).

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.specs import Bounded
            >>> from rlbricks.transforms import EnvSpecs, FlattenObservation
            >>> specs = EnvSpecs.from_env(CountingEnv(batch_size=[4]))
            >>> specs.observation["pixels"] = Bounded(0.0, 1.0, shape=(4, 3, 8, 8))
            >>> FlattenObservation(-3, -1, in_keys=["pixels"]).transform_env_specs(specs
            ...     ).observation["pixels"].shape
            torch.Size([4, 192])
        """
        return route_specs(specs, self.in_keys, self.out_keys, self._map_spec, type(self).__name__)

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"first_dim={self.first_dim}, last_dim={self.last_dim}, {super().extra_repr()}"


class UnsqueezeTransform(Transform):
    """Add a singleton dim at ``dim`` (negative) to entries; the inverse squeezes it.

    With ``in_keys_inv``, the user writes inputs (e.g. the action) with the
    extra dim and the base env receives them squeezed.

    Args:
        dim: where the new dim goes (negative: ``-1`` appends it).
        in_keys: the outputs (default ``["observation"]``).
        out_keys: where the results go (None: in place).
        in_keys_inv: inputs the base env reads without the dim.
        out_keys_inv: inputs the user writes with it (None: same as ``in_keys_inv``).

    Raises:
        TransformValueError: ``dim`` is not negative.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import UnsqueezeTransform
        >>> td = TensorDict({"observation": torch.zeros(5, 3)}, batch_size=[5])
        >>> UnsqueezeTransform(-2)(td)["observation"].shape
        torch.Size([5, 1, 3])
    """

    def __init__(
        self,
        dim: int,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        in_keys_inv: KeysLike = None,
        out_keys_inv: KeysLike = None,
    ) -> None:
        super().__init__(
            in_keys if in_keys is not None else ["observation"], out_keys, in_keys_inv, out_keys_inv
        )
        self.dim = _negative(type(self).__name__, "dim", dim)

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.unsqueeze(self.dim)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.squeeze(self.dim)

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        return reshape_spec(spec, self._apply_transform, type(self).__name__)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Outputs and (inverse) inputs get the extra dim in their specs.

        Example:
            >>> from rlbricks.envs.testing import ContinuousActionEnv
            >>> from rlbricks.transforms import EnvSpecs, UnsqueezeTransform
            >>> t = UnsqueezeTransform(-1, in_keys_inv=["action"])
            >>> specs = t.transform_env_specs(EnvSpecs.from_env(ContinuousActionEnv()))
            >>> specs.observation["observation"].shape, specs.action.shape
            (torch.Size([2, 1]), torch.Size([2, 1]))
        """
        name = type(self).__name__
        route_specs(specs, self.in_keys, self.out_keys, self._map_spec, name)
        return route_inverse_specs(specs, self.in_keys_inv, self.out_keys_inv, self._map_spec, name)

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"dim={self.dim}, {super().extra_repr()}"
