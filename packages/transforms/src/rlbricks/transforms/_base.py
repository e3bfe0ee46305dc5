"""``Transform``: the base class of every transform, and ``EnvSpecs``, the specs it rewrites.

A transform is an ``nn.Module`` with two lives:

* on a plain TensorDict (a replay-buffer sample, a collected batch):
  ``transform(td)`` calls :meth:`Transform.forward`;
* attached to an env through :class:`~rlbricks.transforms.TransformedEnv`: the
  env calls the hooks ``_reset``, ``_step`` and ``inv``, and builds its specs
  with ``transform_env_specs``.

The class docstring of :class:`Transform` is the reference for subclass authors.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any

import torch
from torch import nn

from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key
from rlbricks.transforms._errors import TransformTypeError
from rlbricks.transforms._errors import TransformValueError

if TYPE_CHECKING:
    from rlbricks.envs import EnvBase

__all__ = ["EnvSpecs", "KeysLike", "Transform", "as_keys"]

KeysLike = NestedKey | Sequence[NestedKey] | None


def as_keys(keys: KeysLike) -> list[NestedKey]:
    """``keys`` as a list of canonical keys: ``None`` → ``[]``, one key → ``[key]``.

    Example:
        >>> from rlbricks.transforms._base import as_keys
        >>> as_keys("observation"), as_keys([("next", ("reward",))]), as_keys(None)
        (['observation'], [('next', 'reward')], [])
    """
    if keys is None:
        return []
    if isinstance(keys, (str, tuple)):
        return [unravel_key(keys)]
    return [unravel_key(k) for k in keys]


@dataclass
class EnvSpecs:
    """The five specs of an env, handed from transform to transform while they are rewritten.

    :class:`~rlbricks.transforms.TransformedEnv` fills one from its base env
    (clones: a transform may edit them in place), passes it through
    ``transform.transform_env_specs`` and installs the result as its own specs.

    Attributes:
        observation: spec of the observation entries (also the root of a reset).
        action: spec of ``"action"``.
        reward: spec of ``"reward"``.
        done: spec of ``"done"``, ``"terminated"`` and ``"truncated"``.
        state: spec of the non-action inputs.
        batch_size: the env's batch shape (every spec starts with it).
        device: the env's device (give it to new specs).

    Example:
        >>> import torch
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.transforms import EnvSpecs
        >>> specs = EnvSpecs.from_env(CountingEnv(batch_size=[2]))
        >>> specs.batch_size, specs.observation["observation"].shape
        (torch.Size([2]), torch.Size([2, 1]))
    """

    observation: Composite
    action: TensorSpec[Any]
    reward: TensorSpec[Any]
    done: Composite
    state: Composite
    batch_size: torch.Size
    device: torch.device

    @classmethod
    def from_env(cls, env: EnvBase) -> EnvSpecs:
        """Clones of ``env``'s specs.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs
            >>> sorted(EnvSpecs.from_env(CountingEnv()).done.keys())
            ['done', 'terminated', 'truncated']
        """
        return cls(
            observation=env.observation_spec.clone(),
            action=env.action_spec.clone(),
            reward=env.reward_spec.clone(),
            done=env.done_spec.clone(),
            state=env.state_spec.clone(),
            batch_size=env.batch_size,
            device=env.device,
        )


class Transform(nn.Module):
    """Base class of the transforms: rewrite TensorDict entries, on an env or on plain data.

    **Keys.** ``in_keys`` are read and the results written to ``out_keys``
    (same length; ``out_keys=None`` means in place). ``in_keys_inv`` and
    ``out_keys_inv`` describe the inverse direction (actions): the user
    writes ``out_keys_inv`` and the base env receives ``in_keys_inv``. In both
    directions, ``in_*`` keys are the env-side names and ``out_*`` keys the
    user-side names. Keys are relative to the TensorDict being transformed
    (``"reward"``, not ``("next", "reward")``).

    **What to override.** A subclass overrides only the hooks it needs:

    * ``_apply_transform(value) -> value``: the per-entry map. The default
      ``_call`` applies it to every ``in_key`` present (missing keys are
      skipped: a reset output has no reward) and writes ``out_key``. Enough for
      stateless element-wise transforms.
    * ``_call(td) -> td``: the whole TensorDict at once, when keys interact
      (concatenations, renames, new entries). It may edit ``td`` in place.
    * ``forward(td) -> td``: the plain-TensorDict path. The default calls
      ``_call`` on the root and, when present, on ``td["next"]``, so a batch of
      transitions is transformed like the env's outputs. Override it when data
      along time matters (frame stacks, n-step returns, episode counters).
    * ``_reset(tensordict, tensordict_reset) -> tensordict_reset``: the env's
      reset output. ``tensordict`` is the reset input (None, or holding a
      ``"_reset"`` mask ``[*batch, 1]`` for partial resets of batched envs;
      :meth:`reset_mask` reads it). The default calls ``_call``. This is the
      *per-episode reset hook*: a transform with internal per-episode state
      (a frame buffer) resets it here, **only for the sub-envs whose mask is
      True**; for the other sub-envs the outputs are discarded by the env
      (they keep their previous values), so they may hold anything.
    * ``_step(tensordict, next_tensordict) -> next_tensordict``: the env's step
      output (``next_tensordict``, keys relative to ``"next"``). ``tensordict``
      is the step input as this transform received it (root entries such as
      ``"step_count"`` of the previous step). The default calls ``_call``.
      A stateless way to carry per-episode values is to read them from
      ``tensordict`` and write the new ones to ``next_tensordict``
      (see ``StepCounter``); such transforms work with partial resets and
      inside ``ParallelEnv`` workers for free, provided the carried entry is
      declared in the state spec too (batched envs hand their sub-envs only
      the action and the state entries).
    * ``_inv_apply_transform(value) -> value`` or ``_inv_call(td) -> td``: the
      inverse map applied to the action (and state inputs) before they reach
      the base env. :meth:`inv` calls ``_inv_call`` on a shallow copy, so the
      user's TensorDict keeps what the user wrote.
    * Spec hooks, each given a clone it may edit: ``transform_observation_spec``,
      ``transform_reward_spec``, ``transform_done_spec``,
      ``transform_action_spec`` (input side: the spec the *user* sees) and
      ``transform_state_spec``; or ``transform_env_specs(specs)`` to see all
      five at once (e.g. a new observation entry shaped like the reward). Every
      entry a transform writes must be declared: ``check_env_specs`` and
      ``ParallelEnv`` (which preallocates from the specs) rely on it. An entry
      written on ``"next"`` and carried to the root by ``step_mdp`` belongs to
      the observation spec, and must then also be written by ``_reset``.

    **State.** Statistics and parameters live in buffers
    (``register_buffer``), so ``state_dict``/``load_state_dict`` and ``.to``
    work as for any module; :meth:`clone` gives an independent copy (a
    transform belongs to one env at a time).

    **Parent.** Once attached, :attr:`parent` is the env this transform reads
    from: the base env followed by the transforms before it.

    Args:
        in_keys: keys read (env side).
        out_keys: keys written (user side); ``None``: same as ``in_keys``.
        in_keys_inv: keys the inverse writes for the base env (env side).
        out_keys_inv: keys the inverse reads (user side); ``None``: same as
            ``in_keys_inv``.

    Raises:
        TransformValueError: ``in_keys`` and ``out_keys`` (or their inverse twins)
            differ in length.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.transforms import Transform
        >>> class Double(Transform):
        ...     def _apply_transform(self, value):
        ...         return value * 2
        >>> t = Double(in_keys=["observation"])
        >>> td = TensorDict({"observation": torch.ones(2), "next": {"observation": torch.ones(2)}})
        >>> t(td)["next", "observation"]
        tensor([2., 2.])
    """

    def __init__(
        self,
        in_keys: KeysLike = None,
        out_keys: KeysLike = None,
        in_keys_inv: KeysLike = None,
        out_keys_inv: KeysLike = None,
    ) -> None:
        super().__init__()
        self.in_keys = as_keys(in_keys)
        self.out_keys = as_keys(out_keys) if out_keys is not None else list(self.in_keys)
        self.in_keys_inv = as_keys(in_keys_inv)
        self.out_keys_inv = (
            as_keys(out_keys_inv) if out_keys_inv is not None else list(self.in_keys_inv)
        )
        name = type(self).__name__
        if len(self.in_keys) != len(self.out_keys):
            raise TransformValueError(
                f"{name}: in_keys {self.in_keys} and out_keys {self.out_keys} differ in length; "
                "give one out_key per in_key (or out_keys=None to transform in place)"
            )
        if len(self.in_keys_inv) != len(self.out_keys_inv):
            raise TransformValueError(
                f"{name}: in_keys_inv {self.in_keys_inv} and out_keys_inv {self.out_keys_inv} "
                "differ in length; give one out_key_inv per in_key_inv"
            )
        # the Compose or TransformedEnv holding this transform; kept out of the module tree
        self.__dict__["_container"] = None

    # ------------------------------------------------------------------ #
    # the plain-TensorDict path
    # ------------------------------------------------------------------ #
    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Transform a plain TensorDict (in place) and return it.

        The root entries are transformed, and so are the entries of
        ``tensordict["next"]`` when it exists: a batch of transitions (from a
        collector or a replay buffer) comes out as the transformed env would
        have written it.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import RewardScaling
            >>> td = TensorDict({"next": {"reward": torch.ones(3, 1)}}, batch_size=[3])
            >>> RewardScaling(loc=1.0, scale=2.0)(td)["next", "reward"].squeeze(-1)
            tensor([3., 3., 3.])
        """
        out = self._call(tensordict)
        nxt = out.entries.get("next")
        if isinstance(nxt, TensorDict):
            new = self._call(nxt)
            if new is not nxt:
                out.set("next", new)
        return out

    def _call(self, tensordict: TensorDict) -> TensorDict:
        """Map every present ``in_key`` through ``_apply_transform`` into its ``out_key``."""
        for in_key, out_key in zip(self.in_keys, self.out_keys):
            value = tensordict.get(in_key, None)
            if value is None:
                continue
            tensordict.set(out_key, self._apply_transform(value))
        return tensordict

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        """The per-entry map used by the default ``_call``."""
        raise NotImplementedError(
            f"{type(self).__name__} must override _apply_transform(value) or _call(tensordict)"
        )

    # ------------------------------------------------------------------ #
    # env hooks
    # ------------------------------------------------------------------ #
    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        """Transform the output of the env's reset (see the class docstring)."""
        return self._call(tensordict_reset)

    def _step(self, tensordict: TensorDict, next_tensordict: TensorDict) -> TensorDict:
        """Transform the output of the env's step (see the class docstring)."""
        return self._call(next_tensordict)

    @staticmethod
    def reset_mask(tensordict: TensorDict | None, batch_size: torch.Size) -> torch.Tensor | None:
        """Which sub-envs a reset starts anew: bool ``[*batch_size, 1]``, or None for all.

        Args:
            tensordict: the reset input given to ``_reset``.
            batch_size: the env's batch shape (``tensordict_reset.batch_size``).

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import Transform
            >>> td = TensorDict({"_reset": torch.tensor([[True], [False]])}, batch_size=[2])
            >>> Transform.reset_mask(td, torch.Size([2])).squeeze(-1)
            tensor([ True, False])
            >>> Transform.reset_mask(None, torch.Size([2])) is None
            True
        """
        if tensordict is None:
            return None
        mask = tensordict.entries.get("_reset")
        if mask is None:
            return None
        if not isinstance(mask, torch.Tensor):
            raise TransformTypeError(f"'_reset' must be a bool tensor, got {type(mask).__name__}")
        if not batch_size:
            return mask.reshape(-1).any().reshape(1)
        return mask.reshape(*batch_size, -1).any(-1, keepdim=True)

    # ------------------------------------------------------------------ #
    # inverse (actions)
    # ------------------------------------------------------------------ #
    def inv(self, tensordict: TensorDict) -> TensorDict:
        """Apply the inverse transform: what the user wrote → what the base env reads.

        Works on a shallow copy, so ``tensordict`` itself is left as it is;
        returns ``tensordict`` unchanged when the transform has no inverse.

        Example:
            >>> import torch
            >>> from rlbricks.tensordict import TensorDict
            >>> from rlbricks.transforms import DTypeCastTransform
            >>> t = DTypeCastTransform(torch.float64, torch.float32, in_keys=[],
            ...                        in_keys_inv=["action"])
            >>> td = TensorDict({"action": torch.zeros(2)})
            >>> t.inv(td)["action"].dtype, td["action"].dtype
            (torch.float64, torch.float32)
        """
        if not self._has_inverse():
            return tensordict
        return self._inv_call(tensordict.copy())

    def _has_inverse(self) -> bool:
        """Whether ``inv`` changes anything (lets envs skip the copy)."""
        return bool(self.in_keys_inv) or type(self)._inv_call is not Transform._inv_call

    def _inv_call(self, tensordict: TensorDict) -> TensorDict:
        """Map every present ``out_key_inv`` through ``_inv_apply_transform`` into ``in_key_inv``."""
        for in_key, out_key in zip(self.in_keys_inv, self.out_keys_inv):
            value = tensordict.get(out_key, None)
            if value is None:
                continue
            tensordict.set(in_key, self._inv_apply_transform(value))
        return tensordict

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        """The per-entry inverse map used by the default ``_inv_call``."""
        raise NotImplementedError(
            f"{type(self).__name__} declares in_keys_inv but does not override "
            "_inv_apply_transform(value) or _inv_call(tensordict)"
        )

    # ------------------------------------------------------------------ #
    # specs
    # ------------------------------------------------------------------ #
    def transform_env_specs(self, specs: EnvSpecs) -> EnvSpecs:
        """Rewrite the env's specs; by default through the five per-spec hooks.

        The hooks run in the order reward, done, observation, action, state.
        Override this method instead when one spec depends on another.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import EnvSpecs, StepCounter
            >>> specs = StepCounter().transform_env_specs(EnvSpecs.from_env(CountingEnv()))
            >>> sorted(specs.observation.keys())
            ['observation', 'step_count']
        """
        specs.reward = self.transform_reward_spec(specs.reward)
        specs.done = self.transform_done_spec(specs.done)
        specs.observation = self.transform_observation_spec(specs.observation)
        specs.action = self.transform_action_spec(specs.action)
        specs.state = self.transform_state_spec(specs.state)
        return specs

    def transform_observation_spec(self, observation_spec: Composite) -> Composite:
        """The observation spec after the transform (identity by default).

        Example:
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.transforms import RenameTransform
            >>> spec = Composite(observation=Unbounded(shape=(3,)))
            >>> RenameTransform("observation", "obs").transform_observation_spec(spec).keys()
            ['obs']
        """
        return observation_spec

    def transform_reward_spec(self, reward_spec: TensorSpec[Any]) -> TensorSpec[Any]:
        """The reward spec after the transform (identity by default).

        Example:
            >>> from rlbricks.specs import Unbounded
            >>> from rlbricks.transforms import RewardClipping
            >>> RewardClipping(-1.0, 1.0).transform_reward_spec(Unbounded(shape=(1,))).high
            tensor([1.])
        """
        return reward_spec

    def transform_done_spec(self, done_spec: Composite) -> Composite:
        """The done spec after the transform (identity by default).

        Example:
            >>> from rlbricks.envs import done_spec_for
            >>> from rlbricks.transforms import StepCounter
            >>> spec = done_spec_for(torch.Size([]))
            >>> StepCounter().transform_done_spec(spec) is spec
            True
        """
        return done_spec

    def transform_action_spec(self, action_spec: TensorSpec[Any]) -> TensorSpec[Any]:
        """The action spec the user sees after the transform (identity by default).

        Example:
            >>> import torch
            >>> from rlbricks.specs import Unbounded
            >>> from rlbricks.transforms import DTypeCastTransform
            >>> t = DTypeCastTransform(torch.float64, torch.float32, in_keys=[],
            ...                        in_keys_inv=["action"])
            >>> t.transform_action_spec(Unbounded(shape=(2,), dtype=torch.float64)).dtype
            torch.float32
        """
        return action_spec

    def transform_state_spec(self, state_spec: Composite) -> Composite:
        """The spec of the non-action inputs after the transform (identity by default).

        Example:
            >>> from rlbricks.specs import Composite
            >>> from rlbricks.transforms import StepCounter
            >>> StepCounter().transform_state_spec(Composite()).keys()
            []
        """
        return state_spec

    # ------------------------------------------------------------------ #
    # attachment
    # ------------------------------------------------------------------ #
    @property
    def container(self) -> Any:
        """The :class:`Compose` or :class:`TransformedEnv` holding this transform, or None.

        Example:
            >>> from rlbricks.transforms import Compose, StepCounter
            >>> t = StepCounter()
            >>> Compose(t)[0].container is not None, StepCounter().container
            (True, None)
        """
        return self.__dict__["_container"]

    def _set_container(self, container: Any) -> None:
        self.__dict__["_container"] = container

    @property
    def parent(self) -> EnvBase | None:
        """The env whose outputs this transform receives, or None when not attached to one.

        That is the base env followed by the transforms placed before this one
        (a :class:`TransformedEnv` sharing the base env and those transforms),
        or the base env itself for the first transform. Transforms that need
        specs or data of their input (``ObservationNorm.init_stats``) use it.

        Example:
            >>> from rlbricks.envs.testing import CountingEnv
            >>> from rlbricks.transforms import Compose, StepCounter, TransformedEnv, RewardSum
            >>> env = TransformedEnv(CountingEnv(), Compose(StepCounter(), RewardSum()))
            >>> type(env.transform[0].parent).__name__, sorted(env.transform[1].parent.observation_spec.keys())
            ('CountingEnv', ['observation', 'step_count'])
        """
        container = self.__dict__["_container"]
        if container is None:
            return None
        return container._parent_of(self)

    def _on_change(self) -> None:
        """Tell the holder that the transforms changed (specs must be rebuilt)."""
        container = self.__dict__["_container"]
        if container is not None:
            container._on_change()

    def clone(self) -> Transform:
        """An independent deep copy, attached to nothing (buffers are copied).

        Example:
            >>> from rlbricks.transforms import RewardScaling
            >>> t = RewardScaling(loc=0.0, scale=2.0)
            >>> c = t.clone()
            >>> c.scale is t.scale, bool(c.scale == t.scale)
            (False, True)
        """
        return copy.deepcopy(self)  # __getstate__ detaches the copy

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        state["_container"] = None  # the env may not be picklable; a copy is attached to nothing
        return state

    def extra_repr(self) -> str:
        """The settings shown by ``repr``."""
        parts = []
        if self.in_keys:
            parts.append(f"in_keys={self.in_keys}")
        if self.out_keys != self.in_keys:
            parts.append(f"out_keys={self.out_keys}")
        if self.in_keys_inv:
            parts.append(f"in_keys_inv={self.in_keys_inv}")
        if self.out_keys_inv != self.in_keys_inv:
            parts.append(f"out_keys_inv={self.out_keys_inv}")
        return ", ".join(parts)
