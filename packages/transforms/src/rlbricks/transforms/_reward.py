"""Reward transforms: ``RewardScaling``, ``RewardClipping`` and ``RewardSum`` (episode return)."""

from __future__ import annotations

from typing import Any

import torch

from rlbricks.specs import Bounded
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import KeysLike
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformKeyError
from rlbricks.transforms._errors import TransformValueError
from rlbricks.transforms._spec_utils import bounded
from rlbricks.transforms._spec_utils import missing_key
from rlbricks.transforms._spec_utils import route_specs

__all__ = ["RewardClipping", "RewardScaling", "RewardSum"]


def _as_float_tensor(value: Any, name: str, owner: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.get_default_dtype()).clone()
    if not torch.isfinite(t).all():
        raise TransformValueError(f"{owner}: {name} must be finite, got {value!r}")
    return t


class RewardScaling(Transform):
    """An affine map of the reward: ``reward * scale + loc``.

    With ``standard_normal=True`` the map is ``(reward - loc) / scale``
    instead (standardise with a known mean and standard deviation). ``loc``
    and ``scale`` are buffers (saved in ``state_dict``); tensors broadcast
    against the reward.

    Args:
        loc: the shift.
        scale: the factor (non-zero).
        in_keys: the entries to scale (default ``["reward"]``).
        standard_normal: subtract ``loc`` and divide by ``scale`` instead.

    Raises:
        TransformValueError: ``scale`` is zero somewhere, or a value is not finite.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import RewardScaling
        >>> td = TensorDict({"next": {"reward": torch.tensor([[1.0], [3.0]])}}, batch_size=[2])
        >>> RewardScaling(loc=-1.0, scale=0.5)(td)["next", "reward"].squeeze(-1)
        tensor([-0.5000,  0.5000])
        >>> td = TensorDict({"next": {"reward": torch.tensor([[1.0], [3.0]])}}, batch_size=[2])
        >>> RewardScaling(2.0, 0.5, standard_normal=True)(td)["next", "reward"].squeeze(-1)
        tensor([-2.,  2.])
    """

    loc: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        loc: float | torch.Tensor,
        scale: float | torch.Tensor,
        in_keys: KeysLike = None,
        standard_normal: bool = False,
    ) -> None:
        super().__init__(in_keys if in_keys is not None else ["reward"])
        name = type(self).__name__
        scale_t = _as_float_tensor(scale, "scale", name)
        if (scale_t == 0).any():
            raise TransformValueError(f"{name}: scale must be non-zero, got {scale!r}")
        self.register_buffer("loc", _as_float_tensor(loc, "loc", name))
        self.register_buffer("scale", scale_t)
        self.standard_normal = standard_normal

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if self.standard_normal:
            return (value - self.loc) / self.scale
        return value * self.scale + self.loc

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        if isinstance(spec, Bounded):
            a, b = self._apply_transform(spec.low), self._apply_transform(spec.high)
            return bounded(spec, torch.minimum(a, b), torch.maximum(a, b))
        if spec.dtype is None or not spec.dtype.is_floating_point:
            raise TransformValueError(
                f"{type(self).__name__}: cannot scale an entry of dtype {spec.dtype}; cast it to "
                "float first (DTypeCastTransform)"
            )
        return Unbounded(shape=spec.shape, device=spec.device, dtype=spec.dtype)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Bounded specs get the mapped bounds; others become Unbounded.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, RewardScaling
            >>> specs = RewardScaling(0.0, 2.0).transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            >>> type(specs.reward).__name__
            'Unbounded'
        """
        return route_specs(specs, self.in_keys, self.out_keys, self._map_spec, type(self).__name__)

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return (
            f"loc={self.loc.tolist()}, scale={self.scale.tolist()}, "
            f"standard_normal={self.standard_normal}, {super().extra_repr()}"
        )


class RewardClipping(Transform):
    """Clamp the reward to ``[clamp_min, clamp_max]``; the reward spec becomes that box.

    Args:
        clamp_min: the lower bound (None: no lower bound).
        clamp_max: the upper bound (None: no upper bound).
        in_keys: the entries to clamp (default ``["reward"]``).

    Raises:
        TransformValueError: ``clamp_min > clamp_max``, or both are None.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import RewardClipping
        >>> td = TensorDict({"next": {"reward": torch.tensor([[-3.0], [0.5], [2.0]])}}, batch_size=[3])
        >>> RewardClipping(-1.0, 1.0)(td)["next", "reward"].squeeze(-1)
        tensor([-1.0000,  0.5000,  1.0000])
    """

    def __init__(
        self,
        clamp_min: float | None = None,
        clamp_max: float | None = None,
        in_keys: KeysLike = None,
    ) -> None:
        super().__init__(in_keys if in_keys is not None else ["reward"])
        name = type(self).__name__
        if clamp_min is None and clamp_max is None:
            raise TransformValueError(f"{name}: give clamp_min, clamp_max or both")
        if clamp_min is not None and clamp_max is not None and clamp_min > clamp_max:
            raise TransformValueError(
                f"{name}: clamp_min={clamp_min} is above clamp_max={clamp_max}"
            )
        self.clamp_min = clamp_min
        self.clamp_max = clamp_max

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value.clamp(self.clamp_min, self.clamp_max)

    def _map_spec(self, spec: TensorSpec[Any]) -> TensorSpec[Any]:
        low = -float("inf") if self.clamp_min is None else self.clamp_min
        high = float("inf") if self.clamp_max is None else self.clamp_max
        if isinstance(spec, Bounded):
            return bounded(spec, spec.low.clamp(low, high), spec.high.clamp(low, high))
        return bounded(spec, low, high)

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """The clamped entries get a Bounded spec.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, RewardClipping
            >>> specs = RewardClipping(0.0, 1.0).transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            >>> specs.reward.low, specs.reward.high
            (tensor([0.]), tensor([1.]))
        """
        return route_specs(specs, self.in_keys, self.out_keys, self._map_spec, type(self).__name__)

    def transform_reward_spec(self, reward_spec: TensorSpec[Any]) -> TensorSpec[Any]:
        """The reward spec clamped to ``[clamp_min, clamp_max]`` (when ``"reward"`` is an in_key).

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> from rlbricks.transforms import RewardClipping
            >>> RewardClipping(-1.0, 1.0).transform_reward_spec(Unbounded(shape=(1,))).high
            tensor([1.])
        """
        return self._map_spec(reward_spec) if "reward" in self.in_keys else reward_spec

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return f"clamp_min={self.clamp_min}, clamp_max={self.clamp_max}"


class RewardSum(Transform):
    """The running return of the episode, written to ``("next", "episode_reward")``.

    On an env: a reset writes ``episode_reward = 0`` and each step adds the
    reward to the ``"episode_reward"`` of its input, so the value follows each
    sub-env through partial resets and needs no internal state (it works the
    same inside ``ParallelEnv`` workers). The entry is declared in the
    observation spec (``step_mdp`` carries it to the root) and in the state
    spec (the step reads it; batched envs pass it to their sub-envs). A step input
    without ``"episode_reward"`` counts as the start of an episode.

    On a plain TensorDict: when the root holds ``"episode_reward"``, the step
    rule is applied (``next = root + reward``). Otherwise the data is read as
    trajectories along the last batch dim, each starting an episode: the root
    gets the return before each step and ``"next"`` the return after it,
    restarting after every ``("next", "done")``.

    Args:
        in_keys: the reward entries (default ``["reward"]``).
        out_keys: where their sums go (default ``["episode_reward"]``).

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import RewardSum
        >>> td = TensorDict({"next": {
        ...     "reward": torch.tensor([1.0, 2.0, 3.0, 4.0]).unsqueeze(-1),
        ...     "done": torch.tensor([False, True, False, False]).unsqueeze(-1)}}, batch_size=[4])
        >>> RewardSum()(td)["next", "episode_reward"].squeeze(-1)
        tensor([1., 3., 3., 7.])
    """

    def __init__(self, in_keys: KeysLike = None, out_keys: KeysLike = None) -> None:
        in_keys = in_keys if in_keys is not None else ["reward"]
        if out_keys is None:
            out_keys = ["episode_reward"] if in_keys == ["reward"] else None
        if out_keys is None:
            raise TransformValueError(
                "RewardSum: give out_keys (one per in_key) for in_keys other than reward"
            )
        super().__init__(in_keys, out_keys)
        self._zeros: dict[Any, tuple[torch.Size, torch.dtype]] = {}

    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Declare each ``out_key`` in the observation and state specs, shaped like its reward.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, RewardSum
            >>> specs = RewardSum().transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            >>> specs.observation["episode_reward"].shape
            torch.Size([1])
        """
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            if in_key == "reward":
                spec = specs.reward
            elif in_key in specs.observation:
                spec = specs.observation[in_key]
            else:
                raise missing_key(type(self).__name__, in_key, specs)
            dtype = spec.dtype if spec.dtype is not None else torch.float32
            entry = Unbounded(shape=spec.shape, device=spec.device, dtype=dtype)
            specs.observation[out_key] = entry
            # also an input: batched envs pass each sub-env's running sum on to its step
            specs.state[out_key] = entry.clone()
            self._zeros[out_key] = (spec.shape, dtype)
        return specs

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        for out_key in self.out_keys:
            if out_key not in self._zeros:
                raise TransformValueError(
                    "RewardSum: the env specs were not built through this transform; attach it "
                    "with TransformedEnv"
                )
            shape, dtype = self._zeros[out_key]
            tensordict_reset.set(
                out_key, torch.zeros(shape, dtype=dtype, device=tensordict_reset.device)
            )
        return tensordict_reset

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = next_tensordict.get(in_key)
            previous = tensordict.get(out_key, None)
            next_tensordict.set(out_key, reward if previous is None else previous + reward)
        return next_tensordict

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Episode returns of a plain TensorDict (see the class docstring for the two cases).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import RewardSum
            >>> td = TensorDict({"episode_reward": torch.ones(2, 1),
            ...                  "next": {"reward": torch.ones(2, 1)}}, batch_size=[2])
            >>> RewardSum()(td)["next", "episode_reward"].squeeze(-1)
            tensor([2., 2.])
        """
        nxt = tensordict.get("next", None)
        if not isinstance(nxt, TensorDict):
            raise TransformKeyError(
                "RewardSum needs the ('next', 'reward') entries of stepped data"
            )
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            reward = nxt.get(in_key)
            if out_key in tensordict.keys(include_nested=True):
                nxt.set(out_key, tensordict.get(out_key) + reward)
                continue
            if not tensordict.batch_size:
                raise TransformValueError(
                    f"RewardSum on a TensorDict without batch dims needs the root {out_key!r}"
                )
            done = nxt.get("done", None)
            if done is None:
                raise TransformKeyError(
                    "RewardSum over trajectories needs ('next', 'done') to find the episode ends "
                    f"(or a root {out_key!r} entry, for single transitions)"
                )
            before = torch.empty_like(reward)
            after = torch.empty_like(reward)
            t_dim = tensordict.batch_dims - 1
            acc = torch.zeros_like(reward.select(t_dim, 0))
            for t in range(tensordict.batch_size[-1]):
                before.select(t_dim, t).copy_(acc)
                acc = acc + reward.select(t_dim, t)
                after.select(t_dim, t).copy_(acc)
                acc = torch.where(done.select(t_dim, t), torch.zeros_like(acc), acc)
            tensordict.set(out_key, before)
            nxt.set(out_key, after)
        return tensordict
