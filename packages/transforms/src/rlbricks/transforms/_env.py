"""``TransformedEnv``: an env whose outputs, inputs and specs go through transforms."""

from __future__ import annotations

from typing import Any

from rlbricks.envs import EnvBase
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.transforms._base import EnvSpecs
from rlbricks.transforms._base import Transform
from rlbricks.transforms._compose import Compose
from rlbricks.transforms._errors import TransformTypeError
from rlbricks.transforms._errors import TransformValueError

__all__ = ["TransformedEnv"]

_BASE, _EXACT = "base_env", "exact"  # the base env's entries in state_dict()


class TransformedEnv(EnvBase):
    """An env seen through a transform: specs, resets and steps are rewritten on the way.

    ``batch_size`` and ``device`` are the base env's; the specs are the base
    env's specs rewritten by the transforms (recomputed whenever a transform
    is appended or inserted). A step runs, in order:

    1. the inverse transforms, last to first, on a shallow copy of the input
       (only when some transform has an inverse, e.g. an action cast);
    2. ``base_env.step``;
    3. every transform's ``_step`` hook, first to last, on the ``"next"`` output.

    A reset runs ``base_env.reset`` (given only the ``"_reset"`` mask and the
    base env's state entries) and then every transform's ``_reset`` hook.
    Partial resets of batched base envs (``SerialEnv``, ``ParallelEnv``,
    ``GymEnv(num_envs=...)``) work as for any env: sub-envs outside the
    ``"_reset"`` mask keep the values of the input TensorDict, so
    ``rollout(break_when_any_done=False)`` and ``step_and_maybe_reset`` are
    correct. Transforms may run on the batched outputs here, or inside each
    ``ParallelEnv`` worker (``ParallelEnv(n, lambda: TransformedEnv(...))``):
    both give the same data.

    Attribute lookups that fail on the TransformedEnv go to the base env
    (``env.num_workers``, ``env.sub_env_attr(...)``).

    Actions are checked in two places. ``step`` checks the shape and dtype
    of ``"action"`` against the transformed ``action_spec`` (what the policy
    must write); the values are checked by ``base_env.step``, after the
    inverse transforms, against the base env's spec: what reaches the
    simulator. A transform may accept actions outside its own spec on purpose
    (``ClipTransform(in_keys_inv=["action"])`` clamps them), and without an
    action transform the two checks would be the same one twice.
    ``validate_actions`` is the base env's: setting it on either sets both.

    Args:
        env: the base env.
        transform: a transform (wrapped into a :class:`Compose`), a Compose
            (used as is) or None (no transform yet: use :meth:`append_transform`).

    Raises:
        TransformValueError: the transform already belongs to another env or Compose,
            or its ``in_keys`` are not in the base env's specs.

    Example:
        >>> from rlbricks.envs import check_env_specs
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.transforms import RewardSum, StepCounter, TransformedEnv
        >>> env = TransformedEnv(CountingEnv(max_steps=3, batch_size=[2]), StepCounter())
        >>> env.append_transform(RewardSum())
        TransformedEnv(env=CountingEnv(batch_size=(2,), device=cpu), transforms=[StepCounter, RewardSum])
        >>> check_env_specs(env)
        >>> td = env.rollout(3)
        >>> td["next", "step_count"][0].squeeze(-1).tolist()
        [1, 2, 3]
    """

    def __init__(self, env: EnvBase, transform: Transform | None = None) -> None:
        if not isinstance(env, EnvBase):
            raise TransformTypeError(f"TransformedEnv wraps an EnvBase, got {type(env).__name__}")
        super().__init__(
            batch_size=env.batch_size, device=env.device, validate_actions=env.validate_actions
        )
        self.base_env = env
        self._is_view = False
        if transform is None:
            compose = Compose()
        elif isinstance(transform, Compose):
            compose = transform
        elif isinstance(transform, Transform):
            compose = Compose(transform)
        else:
            raise TransformTypeError(
                f"TransformedEnv: transform must be a Transform, got {type(transform).__name__}"
            )
        if compose.container is not None:
            raise TransformValueError(
                "TransformedEnv: this Compose already belongs to another env or Compose: pass "
                "transform.clone()"
            )
        compose._set_container(self)
        self.transform = compose
        self._rebuild()

    @classmethod
    def _view(cls, env: EnvBase, transform: Compose) -> TransformedEnv:
        """``env`` seen through transforms that belong elsewhere (``Transform.parent``)."""
        view = cls(env, transform)
        view._is_view = True
        return view

    # ------------------------------------------------------------------ #
    # specs
    # ------------------------------------------------------------------ #
    @property
    def validate_actions(self) -> bool:
        """Whether actions' values are checked: the base env's setting, shared.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import StepCounter, TransformedEnv
            >>> env = TransformedEnv(CountingEnv(), StepCounter())
            >>> env.validate_actions = False
            >>> env.base_env.validate_actions
            False
        """
        return self.base_env.validate_actions

    @validate_actions.setter
    def validate_actions(self, value: bool) -> None:
        self.base_env.validate_actions = value

    def check_action(self, tensordict: TensorDict, *, values: bool | None = None) -> None:
        """Shape and dtype of ``"action"`` against the transformed ``action_spec``.

        The values are left to ``base_env.step`` (after the inverse
        transforms): see the class docstring.

        Raises:
            ActionError: the action's shape or dtype does not fit ``action_spec``.

        Example:
            >>> import torch
            >>> from rlbricks.envs.testing import ContinuousActionEnv
            >>> from rlbricks.transforms import ClipTransform, TransformedEnv
            >>> env = TransformedEnv(ContinuousActionEnv(), ClipTransform(
            ...     -0.5, 0.5, in_keys=[], in_keys_inv=["action"]))
            >>> td = env.reset().set("action", torch.tensor([3.0, 0.0]))
            >>> env.check_action(td)  # clamped on the way: the base env gets 0.5
            >>> env.step(td)["next", "observation"].tolist()
            [0.5, 0.0]
        """
        super().check_action(tensordict, values=False)

    def _rebuild(self) -> None:
        """Recompute the specs from the base env's specs through the transforms."""
        specs = self.transform.transform_env_specs(EnvSpecs.from_env(self.base_env))
        self.observation_spec = specs.observation
        self.action_spec = specs.action
        self.reward_spec = specs.reward
        self.done_spec = specs.done
        self.state_spec = specs.state
        self._any_inverse = self.transform._has_inverse()
        self._base_state_keys: list[NestedKey] = list(
            self.base_env.state_spec.keys(include_nested=True, leaves_only=True)
        )
        self.transform._clear_parent_cache()

    def _on_change(self) -> None:
        self._rebuild()

    def _parent_of(self, child: Transform) -> EnvBase | None:
        return self.base_env if child is self.transform else None

    def append_transform(self, transform: Transform) -> TransformedEnv:
        """Add ``transform`` after the others (closest to the user); return ``self``.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import StepCounter, TransformedEnv
            >>> env = TransformedEnv(CountingEnv()).append_transform(StepCounter())
            >>> "step_count" in env.observation_spec
            True
        """
        self.transform.append(transform)
        return self

    def insert_transform(self, index: int, transform: Transform) -> TransformedEnv:
        """Insert ``transform`` before position ``index``; return ``self``.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import InitTracker, StepCounter, TransformedEnv
            >>> env = TransformedEnv(CountingEnv(), StepCounter()).insert_transform(0, InitTracker())
            >>> [type(t).__name__ for t in env.transform]
            ['InitTracker', 'StepCounter']
        """
        self.transform.insert(index, transform)
        return self

    # ------------------------------------------------------------------ #
    # EnvBase
    # ------------------------------------------------------------------ #
    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        base_in = None
        if tensordict is not None:
            source = tensordict
            keep: list[NestedKey] = []
            if self._base_state_keys:
                if self._any_inverse:
                    source = self.transform.inv(tensordict)
                keep = [k for k in self._base_state_keys if k in source.keys(include_nested=True)]
            if "_reset" in tensordict.entries:
                keep.append("_reset")
            if keep:
                base_in = source.select(*keep)
        out = self.base_env.reset(base_in)
        return self.transform._reset(tensordict, out)

    def _step(self, tensordict: TensorDict) -> TensorDict:
        compose = self.transform
        if self._any_inverse:
            levels = compose._inv_levels(tensordict)
            nxt = self.base_env.step(levels[0]).entries["next"]
        else:
            levels = None
            nxt = self.base_env.step(tensordict).entries["next"]
        return compose._step_levels(tensordict, levels, nxt)  # type: ignore[arg-type]

    def _set_seed(self, seed: int) -> None:
        self.base_env.set_seed(seed)

    def set_seed(self, seed: int) -> int:
        """Seed the base env; return what it returns (the next seed to use).

        Example:
            >>> from rlbricks.envs import SerialEnv
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import TransformedEnv
            >>> TransformedEnv(SerialEnv(2, CountingEnv)).set_seed(3)
            5
        """
        return self.base_env.set_seed(seed)

    def close(self) -> None:
        """Close the base env (idempotent).

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import TransformedEnv
            >>> env = TransformedEnv(CountingEnv())
            >>> env.close()
            >>> env.base_env.is_closed
            True
        """
        if not self._is_view:
            self.base_env.close()
        super().close()

    # ------------------------------------------------------------------ #
    # transform state
    # ------------------------------------------------------------------ #
    def state_dict(self) -> dict[str, Any]:
        """The transforms' state (``transform.state_dict()``: buffers such as statistics).

        When the base env has a ``state_dict`` (e.g. a gymnasium env), its
        state is included under ``"base_env"`` and ``"exact"`` repeats whether
        it is complete, so that a collector can continue the saved episodes.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import RewardScaling, TransformedEnv
            >>> env = TransformedEnv(CountingEnv(), RewardScaling(0.0, 2.0))
            >>> sorted(env.state_dict())
            ['transforms.0.loc', 'transforms.0.scale']
        """
        state = dict(self.transform.state_dict())
        base_state = getattr(self.base_env, "state_dict", None)
        if callable(base_state):
            base = base_state()
            state[_BASE] = base
            state[_EXACT] = bool(base.get(_EXACT, False))
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the transforms' state (and the base env's) saved by :meth:`state_dict`.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import RewardScaling, TransformedEnv
            >>> a = TransformedEnv(CountingEnv(), RewardScaling(0.0, 2.0))
            >>> b = TransformedEnv(CountingEnv(), RewardScaling(0.0, 1.0))
            >>> b.load_state_dict(a.state_dict())
            >>> b.transform[0].scale
            tensor(2.)
        """
        own = {k: v for k, v in state_dict.items() if k not in (_BASE, _EXACT)}
        self.transform.load_state_dict(own)
        if _BASE in state_dict:
            self.base_env.load_state_dict(state_dict[_BASE])  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: forward public names to the base env
        if name.startswith("_") or "base_env" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(self.__dict__["base_env"], name)

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.transform)
        return f"{type(self).__name__}(env={self.base_env!r}, transforms=[{names}])"
