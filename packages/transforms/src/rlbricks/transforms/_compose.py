"""``Compose``: a sequence of transforms applied in order (inverses in reverse order)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any
from typing import cast
from typing import overload

from torch import nn

from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import Transform
from rlbricks.transforms._errors import TransformTypeError
from rlbricks.transforms._errors import TransformValueError

if TYPE_CHECKING:
    from rlbricks.envs import EnvBase

__all__ = ["Compose"]


class Compose(Transform):
    """Several transforms applied one after the other.

    Outputs (``forward``, ``_reset``, ``_step``) and specs go through the
    transforms in order; inverses (actions) go through them in reverse order,
    so the last transform is the one closest to the user. A Compose is a
    transform itself and can be nested. ``TransformedEnv.transform`` is always
    a Compose: appending to it (or inserting) rebuilds the env's specs.

    A transform belongs to one Compose at a time; add a :meth:`Transform.clone`
    to reuse it elsewhere.

    Args:
        *transforms: the transforms, in the order they apply to outputs.

    Raises:
        TransformValueError: a transform already belongs to another Compose or env.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import Compose, RewardClipping, RewardScaling
        >>> t = Compose(RewardScaling(loc=0.0, scale=10.0), RewardClipping(-1.0, 1.0))
        >>> len(t), type(t[1]).__name__
        (2, 'RewardClipping')
        >>> td = TensorDict({"next": {"reward": torch.tensor([[0.05], [0.5]])}}, batch_size=[2])
        >>> t(td)["next", "reward"].squeeze(-1)
        tensor([0.5000, 1.0000])
    """

    def __init__(self, *transforms: Transform) -> None:
        super().__init__()
        self.transforms = nn.ModuleList()
        for t in transforms:
            self._adopt(t)
            self.transforms.append(t)
        self.__dict__["_parent_cache"] = {}

    @property
    def _items(self) -> list[Transform]:
        """The transforms, typed (iterating the ModuleList itself, no copy)."""
        return cast("list[Transform]", self.transforms)

    @classmethod
    def _unowned(cls, transforms: list[Transform]) -> Compose:
        """A Compose listing ``transforms`` without becoming their holder (views, slices)."""
        out = cls()
        for t in transforms:
            out.transforms.append(t)
        return out

    def _adopt(self, transform: Any) -> None:
        if not isinstance(transform, Transform):
            raise TransformTypeError(
                f"Compose holds Transform instances, got {type(transform).__name__}: wrap a "
                "function in a Transform subclass"
            )
        if transform.container is not None:
            raise TransformValueError(
                f"{type(transform).__name__} already belongs to a Compose or an env: add "
                "transform.clone() instead"
            )
        transform._set_container(self)

    # ------------------------------------------------------------------ #
    # sequence protocol
    # ------------------------------------------------------------------ #
    @overload
    def __getitem__(self, index: int) -> Transform: ...

    @overload
    def __getitem__(self, index: slice) -> Compose: ...

    def __getitem__(self, index: int | slice) -> Transform | Compose:
        """The transform at ``index``; a slice gives a Compose view of those transforms."""
        if isinstance(index, slice):
            return Compose._unowned(self._items[index])
        return self._items[index]

    def __len__(self) -> int:
        return len(self.transforms)

    def __iter__(self) -> Iterator[Transform]:
        return iter(self._items)

    def append(self, transform: Transform) -> Compose:
        """Add ``transform`` at the end (closest to the user); return ``self``.

        Example:
            >>> from rlbricks.transforms import Compose, StepCounter
            >>> len(Compose().append(StepCounter()))
            1
        """
        self._adopt(transform)
        self.transforms.append(transform)
        self._on_change()
        return self

    def insert(self, index: int, transform: Transform) -> Compose:
        """Insert ``transform`` before position ``index``; return ``self``.

        Example:
            >>> from rlbricks.transforms import Compose, InitTracker, StepCounter
            >>> t = Compose(StepCounter()).insert(0, InitTracker())
            >>> [type(x).__name__ for x in t]
            ['InitTracker', 'StepCounter']
        """
        self._adopt(transform)
        self.transforms.insert(index, transform)
        self._on_change()
        return self

    # ------------------------------------------------------------------ #
    # data
    # ------------------------------------------------------------------ #
    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Apply every transform's ``forward`` in order.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import Compose, RenameTransform, UnsqueezeTransform
            >>> t = Compose(UnsqueezeTransform(-1, in_keys=["x"]), RenameTransform("x", "y"))
            >>> t(TensorDict({"x": torch.zeros(3)}))["y"].shape
            torch.Size([3, 1])
        """
        for t in self._items:
            tensordict = t(tensordict)
        return tensordict

    def _call(self, tensordict: TensorDict) -> TensorDict:
        for t in self._items:
            tensordict = t._call(tensordict)
        return tensordict

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        for t in self._items:
            tensordict_reset = t._reset(tensordict, tensordict_reset)
        return tensordict_reset

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        levels = self._inv_levels(tensordict) if self._has_inverse() else None
        return self._step_levels(tensordict, levels, next_tensordict)

    def _inv_levels(self, tensordict: TensorDict) -> list[TensorDict]:
        """The step input as each transform sees it: ``levels[k]`` is the input of transform
        ``k`` (``levels[-1]`` is ``tensordict``), ``levels[0]`` the base env's input."""
        levels = [tensordict]
        for t in reversed(self._items):
            tensordict = t.inv(tensordict)
            levels.append(tensordict)
        levels.reverse()
        return levels

    def _step_levels(
        self,
        tensordict: TensorDict,
        levels: list[TensorDict] | None,
        next_tensordict: TensorDict,
    ) -> TensorDict:
        if levels is None:
            for t in self._items:
                next_tensordict = t._step(tensordict, next_tensordict)
        else:
            for k, t in enumerate(self._items):
                next_tensordict = t._step(levels[k + 1], next_tensordict)
        return next_tensordict

    def inv(self, tensordict: TensorDict) -> TensorDict:
        """Apply the inverses from the last transform to the first (input left untouched).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import Compose, DTypeCastTransform
            >>> t = Compose(DTypeCastTransform(torch.float64, torch.float32, in_keys=[],
            ...                                in_keys_inv=["action"]))
            >>> t.inv(TensorDict({"action": torch.zeros(1)}))["action"].dtype
            torch.float64
        """
        for t in reversed(self._items):
            tensordict = t.inv(tensordict)
        return tensordict

    def _has_inverse(self) -> bool:
        return any(t._has_inverse() for t in self._items)

    # ------------------------------------------------------------------ #
    # specs
    # ------------------------------------------------------------------ #
    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Every transform's ``transform_env_specs``, in order.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import Compose, EnvSpecs, RewardSum, StepCounter
            >>> specs = Compose(StepCounter(), RewardSum()).transform_env_specs(
            ...     EnvSpecs.from_env(CountingEnv()))
            >>> sorted(specs.observation.keys())
            ['episode_reward', 'observation', 'step_count']
        """
        for t in self._items:
            specs = t.transform_env_specs(specs)
        return specs

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        """Every transform's ``transform_observation_spec``, in order.

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.transforms import Compose, RenameTransform
            >>> t = Compose(RenameTransform("a", "b"), RenameTransform("b", "c"))
            >>> t.transform_observation_spec(Composite(a=Unbounded())).keys()
            ['c']
        """
        for t in self._items:
            observation_spec = t.transform_observation_spec(observation_spec)
        return observation_spec

    def transform_reward_spec(self, reward_spec: TensorSpec[Any]) -> TensorSpec[Any]:
        """Every transform's ``transform_reward_spec``, in order.

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> from rlbricks.transforms import Compose, RewardClipping
            >>> Compose(RewardClipping(0.0, 1.0)).transform_reward_spec(Unbounded(shape=(1,))).low
            tensor([0.])
        """
        for t in self._items:
            reward_spec = t.transform_reward_spec(reward_spec)
        return reward_spec

    def transform_done_spec(self, done_spec: Composite) -> Composite:
        """Every transform's ``transform_done_spec``, in order.

        Example:
            >>> import torch
            >>> from rlbricks.envs import done_spec_for
            >>> from rlbricks.transforms import Compose
            >>> sorted(Compose().transform_done_spec(done_spec_for(torch.Size([]))).keys())
            ['done', 'terminated', 'truncated']
        """
        for t in self._items:
            done_spec = t.transform_done_spec(done_spec)
        return done_spec

    def transform_action_spec(self, action_spec: TensorSpec[Any]) -> TensorSpec[Any]:
        """Every transform's ``transform_action_spec``, in order.

        Example:
            >>> import torch
            >>> from rlbricks.specs import Unbounded
            >>> from rlbricks.transforms import Compose, DoubleToFloat
            >>> t = Compose(DoubleToFloat(in_keys_inv=["action"]))
            >>> t.transform_action_spec(Unbounded(dtype=torch.float64)).dtype
            torch.float32
        """
        for t in self._items:
            action_spec = t.transform_action_spec(action_spec)
        return action_spec

    def transform_state_spec(self, state_spec: Composite) -> Composite:
        """Every transform's ``transform_state_spec``, in order.

        Example:
            >>> from rlbricks.specs import Composite
            >>> from rlbricks.transforms import Compose
            >>> Compose().transform_state_spec(Composite()).keys()
            []
        """
        for t in self._items:
            state_spec = t.transform_state_spec(state_spec)
        return state_spec

    # ------------------------------------------------------------------ #
    # attachment
    # ------------------------------------------------------------------ #
    def _parent_of(self, child: Transform) -> EnvBase | None:
        """The base env followed by the transforms before ``child`` (cached)."""
        index = next((i for i, t in enumerate(self._items) if t is child), None)
        if index is None:
            return None
        cache: dict[int, EnvBase | None] = self.__dict__["_parent_cache"]
        if index in cache:
            return cache[index]
        env = self.parent
        if env is not None and index > 0:
            from rlbricks.transforms._env import TransformedEnv

            env = TransformedEnv._view(env, Compose._unowned(self._items[:index]))
        cache[index] = env
        return env

    def _on_change(self) -> None:
        self._clear_parent_cache()
        super()._on_change()

    def _clear_parent_cache(self) -> None:
        self.__dict__["_parent_cache"] = {}
        for t in self._items:
            if isinstance(t, Compose):
                t._clear_parent_cache()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_parent_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for t in self._items:  # copies (clone, pickling) hold their own transforms
            t._set_container(self)

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        return ""
