"""``EnvBase``: the environment interface, TensorDict in and TensorDict out."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import torch

from rlbricks.envs._actions import ActionCheck
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._step_mdp import DONE_KEYS
from rlbricks.envs._step_mdp import step_mdp
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

__all__ = ["EnvBase", "done_spec_for"]

DeviceLike = torch.device | str | int | None


def done_spec_for(batch_size: torch.Size, device: DeviceLike = None) -> Composite:
    """The default done spec: ``done``, ``terminated`` and ``truncated``, bool ``[*batch, 1]``.

    Example:
        >>> import torch
        >>> from rlbricks.envs import done_spec_for
        >>> sorted(done_spec_for(torch.Size([4])).keys())
        ['done', 'terminated', 'truncated']
    """
    shape = (*batch_size, 1)
    flags = {k: Categorical(2, shape=shape, dtype=torch.bool, device=device) for k in DONE_KEYS}
    return Composite(flags, shape=batch_size, device=device)


def fill_done(td: TensorDict, batch_size: torch.Size) -> TensorDict:
    """Add the missing done flags so that ``done == terminated | truncated`` (in place)."""
    flags = td.entries
    done: Any = flags.get("done")
    term: Any = flags.get("terminated")
    trunc: Any = flags.get("truncated")
    if done is not None and term is not None and trunc is not None:
        return td
    if term is None and trunc is None:
        if done is None:
            done = torch.zeros((*batch_size, 1), dtype=torch.bool, device=td.device)
            td.set("done", done)
        td.set("terminated", done.clone())
        td.set("truncated", torch.zeros_like(done))
    elif done is None:
        if term is None:
            term = torch.zeros_like(trunc)
            td.set("terminated", term)
        if trunc is None:
            trunc = torch.zeros_like(term)
            td.set("truncated", trunc)
        td.set("done", term | trunc)
    elif term is None:
        td.set("terminated", done & ~trunc)
    else:
        td.set("truncated", done & ~term)
    return td


class EnvBase(abc.ABC):
    """Base class of every environment: declare specs, implement three methods.

    A subclass sets ``observation_spec``, ``action_spec`` and ``reward_spec``
    (and optionally ``done_spec`` and ``state_spec``) in ``__init__`` and
    implements:

    * ``_reset(td)`` → a TensorDict with the first observation (``td`` is None,
      or holds a ``"_reset"`` mask ``[*batch, 1]`` for partial resets of batched envs);
    * ``_step(td)`` → a TensorDict with the next observation, ``"reward"`` and
      any of ``"done"``/``"terminated"``/``"truncated"`` (the missing ones are
      filled so that ``done = terminated | truncated``);
    * ``_set_seed(seed)``.

    ``step`` checks ``tensordict["action"]`` against ``action_spec`` before
    ``_step`` sees it and raises :class:`~rlbricks.envs.ActionError`: its shape
    and dtype always (the shape exactly ``action_spec.shape``; the dtype of the
    right kind: floating for a continuous spec, integer or bool for indices),
    its values (bounds, categories, one-hot rows, masks) unless
    ``validate_actions`` is False. See the envs guide, "Action checks".

    Rollout fast path: :func:`~rlbricks.envs.rollout` with a policy and the
    collectors first call the public :meth:`policy_rollout`; when it returns
    None they run the generic loop (``policy`` then ``step_and_maybe_reset``,
    step after step).  Any env may override it to run a whole rollout its own
    way; a result must be exactly what the generic loop gives (entries,
    values, episode boundaries, action checks), and None is always allowed.
    :class:`~rlbricks.envs.GymWrapper` implements it. See the envs guide,
    "Rollout fast path".

    Args:
        batch_size: the env's batch shape (``()`` for a single env).
        device: where the env's tensors live.
        validate_actions: check the action's values too (the default); False
            skips them in hot loops (shape and dtype stay checked). Also an
            attribute: ``env.validate_actions = False``.

    Example:
        >>> import torch
        >>> from rlbricks.envs import EnvBase
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> class Drift(EnvBase):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.observation_spec = Composite(observation=Unbounded(shape=(1,)))
        ...         self.action_spec = Bounded(-1.0, 1.0, shape=(1,))
        ...         self.reward_spec = Unbounded(shape=(1,))
        ...     def _reset(self, td):
        ...         self.x = torch.zeros(1)
        ...         return TensorDict({"observation": self.x.clone()})
        ...     def _step(self, td):
        ...         self.x = self.x + td["action"]
        ...         return TensorDict({"observation": self.x.clone(), "reward": -self.x.abs(),
        ...                            "terminated": self.x.abs() > 3})
        ...     def _set_seed(self, seed):
        ...         torch.manual_seed(seed)
        >>> env = Drift()
        >>> td = env.rollout(5, policy=lambda td: td.set("action", torch.ones(1)))
        >>> td.batch_size, td["next", "observation"][:, 0].tolist()
        (torch.Size([4]), [1.0, 2.0, 3.0, 4.0])
        >>> env.step(env.reset().set("action", torch.full((1,), 5.0)))  # outside [-1, 1]
        Traceback (most recent call last):
            ...
        rlbricks.envs._errors.ActionError: Drift.step: the action 'action' is not in the env's action spec Bounded(shape=[1], dtype=torch.float32, device=cpu, low=-1.0, high=1.0): 1 of 1 values not in [-1.0, 1.0] (min 5.0, max 5.0); first at index (0,): 5.0. Fix the policy's output: clamp it into the bounds (action_spec.project(action) clamps; a tanh-squashed distribution such as TanhNormal stays inside); or pass validate_actions=False to the env (or the collector) to skip value checks.
    """

    def __init__(
        self, *, batch_size: Any = (), device: DeviceLike = None, validate_actions: bool = True
    ) -> None:
        self._batch_size = torch.Size(batch_size)
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        bs = self._batch_size
        self._observation_spec = Composite(shape=bs)
        self._action_spec: TensorSpec[Any] | None = None
        self._reward_spec: TensorSpec[Any] = Unbounded(shape=(*bs, 1), device=self._device)
        self._done_spec = done_spec_for(bs, self._device)
        self._state_spec = Composite(shape=bs)
        self._validate_actions = bool(validate_actions)
        self._action_check: ActionCheck | None = None
        self.is_closed = False

    # ------------------------------------------------------------------ #
    # shape, device, specs
    # ------------------------------------------------------------------ #
    @property
    def batch_size(self) -> torch.Size:
        """The env's batch shape: every spec and output starts with it."""
        return self._batch_size

    @property
    def device(self) -> torch.device:
        """The device of the env's outputs."""
        return self._device

    def _check_spec(self, name: str, spec: TensorSpec[Any]) -> None:
        bs = self._batch_size
        if tuple(spec.shape[: len(bs)]) != tuple(bs):
            raise EnvRuntimeError(
                f"{type(self).__name__}.{name} has shape {tuple(spec.shape)}, which does not start "
                f"with the env's batch_size {tuple(bs)}"
            )

    @property
    def validate_actions(self) -> bool:
        """Whether ``step`` checks the action's values (bounds, categories, masks).

        True by default. Set it to False to skip the value checks in a hot loop
        once a policy is known to be correct; the shape and dtype of the
        action are checked either way (they are nearly free).

        Example:
            >>> import torch
            >>> from rlbricks.envs.testing import ContinuousActionEnv
            >>> env = ContinuousActionEnv()  # actions in [-1, 1]
            >>> env.validate_actions = False
            >>> td = env.step(env.reset().set("action", torch.tensor([5.0, 0.0])))
            >>> td["next", "observation"].tolist()  # not checked: applied as given
            [5.0, 0.0]
        """
        return self._validate_actions

    @validate_actions.setter
    def validate_actions(self, value: bool) -> None:
        self._validate_actions = bool(value)

    @property
    def observation_spec(self) -> Composite:
        """Spec of the observation entries (a ``Composite``; a leaf spec is stored
        under ``"observation"``)."""
        return self._observation_spec

    @observation_spec.setter
    def observation_spec(self, spec: TensorSpec[Any]) -> None:
        self._check_spec("observation_spec", spec)
        if not isinstance(spec, Composite):
            spec = Composite(observation=spec, shape=self._batch_size)
        self._observation_spec = spec

    @property
    def action_spec(self) -> TensorSpec[Any]:
        """Spec of ``"action"``."""
        if self._action_spec is None:
            raise EnvRuntimeError(
                f"{type(self).__name__} declares no action_spec: set it in __init__"
            )
        return self._action_spec

    @action_spec.setter
    def action_spec(self, spec: TensorSpec[Any]) -> None:
        self._check_spec("action_spec", spec)
        self._action_spec = spec

    @property
    def reward_spec(self) -> TensorSpec[Any]:
        """Spec of ``("next", "reward")``."""
        return self._reward_spec

    @reward_spec.setter
    def reward_spec(self, spec: TensorSpec[Any]) -> None:
        self._check_spec("reward_spec", spec)
        self._reward_spec = spec

    @property
    def done_spec(self) -> Composite:
        """Spec of ``"done"``, ``"terminated"`` and ``"truncated"``."""
        return self._done_spec

    @done_spec.setter
    def done_spec(self, spec: TensorSpec[Any]) -> None:
        self._check_spec("done_spec", spec)
        if not isinstance(spec, Composite):
            spec = Composite(done=spec, shape=self._batch_size)
        full = done_spec_for(self._batch_size, self._device)
        for key in spec:
            full[key] = spec[key]
        self._done_spec = full

    @property
    def state_spec(self) -> Composite:
        """Spec of the inputs besides the action (e.g. a state to reset to)."""
        return self._state_spec

    @state_spec.setter
    def state_spec(self, spec: Composite) -> None:
        self._check_spec("state_spec", spec)
        self._state_spec = spec

    @property
    def full_observation_spec(self) -> Composite:
        """Same as ``observation_spec``."""
        return self._observation_spec

    @property
    def full_action_spec(self) -> Composite:
        """``Composite(action=action_spec)``."""
        return Composite(action=self.action_spec, shape=self._batch_size)

    @property
    def full_reward_spec(self) -> Composite:
        """``Composite(reward=reward_spec)``."""
        return Composite(reward=self._reward_spec, shape=self._batch_size)

    @property
    def full_done_spec(self) -> Composite:
        """Same as ``done_spec``."""
        return self._done_spec

    @property
    def full_state_spec(self) -> Composite:
        """Same as ``state_spec``."""
        return self._state_spec

    def fake_tensordict(self) -> TensorDict:
        """A zero-filled TensorDict shaped like one step: root inputs plus ``"next"``."""
        from rlbricks.envs._checks import step_spec

        return step_spec(self).zero()

    # ------------------------------------------------------------------ #
    # the three methods a subclass implements
    # ------------------------------------------------------------------ #
    @abc.abstractmethod
    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        """Return the first observation(s) (and optionally done flags)."""

    @abc.abstractmethod
    def _step(self, tensordict: TensorDict) -> TensorDict:
        """Apply ``tensordict["action"]``; return observation, reward and done flags."""

    @abc.abstractmethod
    def _set_seed(self, seed: int) -> None:
        """Seed the simulator."""

    # ------------------------------------------------------------------ #
    # public API
    # ------------------------------------------------------------------ #
    def reset(self, tensordict: TensorDict | None = None) -> TensorDict:
        """Start new episodes; return the root TensorDict of the first step.

        For batched envs, ``tensordict["_reset"]`` (bool ``[*batch, 1]``) restricts
        the reset to some sub-envs: the others keep the values of ``tensordict``.
        """
        if self.is_closed:
            raise EnvRuntimeError(f"{type(self).__name__} is closed: create a new env")
        out = self._reset(tensordict)
        if out.batch_size != self._batch_size:
            raise EnvRuntimeError(
                f"{type(self).__name__}._reset returned batch_size {tuple(out.batch_size)}, "
                f"expected {tuple(self._batch_size)}: _reset must return a TensorDict of the env's "
                "batch_size"
            )
        fill_done(out, self._batch_size)
        if tensordict is not None and "_reset" in tensordict:
            out = _merge_partial(tensordict, out)
        return out

    def step(self, tensordict: TensorDict) -> TensorDict:
        """Apply ``tensordict["action"]``; write the result under ``tensordict["next"]``.

        The action is checked against ``action_spec`` first (see
        :attr:`validate_actions`). Entries that the input already holds under
        ``"next"`` and that the env does not produce are kept (e.g. the next
        recurrent state a policy writes to ``("next", "recurrent_state")``);
        the env's outputs win.

        Raises:
            ActionError: the action's shape or dtype does not fit the action
                spec, or (with ``validate_actions``) a value is outside it.
        """
        if self.is_closed:
            raise EnvRuntimeError(f"{type(self).__name__} is closed: create a new env")
        self.check_action(tensordict)
        nxt = self._step(tensordict)
        flags = nxt.entries
        if "done" not in flags or "terminated" not in flags or "truncated" not in flags:
            fill_done(nxt, self._batch_size)
        entries = tensordict.entries
        previous = entries.get("next")
        if previous is not None:  # written by the policy: keep what the env did not write
            nxt = _keep_previous(previous, nxt)
        device = tensordict.device
        if (
            nxt.__class__ is TensorDict
            and nxt.batch_size == tensordict.batch_size
            and (device is None or nxt.device == device)
        ):  # what ``set`` would check: store it as is
            entries["next"] = nxt
        else:
            tensordict.set("next", nxt)
        return tensordict

    def check_action(self, tensordict: TensorDict, *, values: bool | None = None) -> None:
        """Check ``tensordict["action"]`` against ``action_spec``, as ``step`` does.

        Shape and dtype always; values too when ``values`` is True (None:
        :attr:`validate_actions`). Nothing is checked when the env declares
        no action spec or the input holds no ``"action"`` (``_step`` then
        reports it). ``step`` calls it first; call it from a custom stepping
        loop that bypasses ``step``, or override it (e.g. an env whose inner
        env checks the values itself).

        Raises:
            ActionError: naming the key, the spec, what was received and the fix.

        Example:
            >>> import torch
            >>> from rlbricks.envs import ActionError
            >>> from rlbricks.envs.testing import CountingEnv
            >>> env = CountingEnv()  # Categorical(2), shape [1]
            >>> env.check_action(env.reset().set("action", torch.tensor([1])))  # fine
            >>> try:
            ...     env.check_action(env.reset().set("action", torch.tensor([1, 0, 1])))
            ... except ActionError as err:
            ...     print(err)  # doctest: +ELLIPSIS
            CountingEnv.step: the action 'action' has shape [3] and dtype torch.int64, but the env's action spec Categorical(...) expects shape [1] (...). Fix the policy's output: ...
        """
        check = self._action_check
        if check is None or check.spec is not self._action_spec:
            check = self._action_checker()
            if check is None:
                return
        action = tensordict.get("action", None)
        if action is not None:
            check.run(action, self.validate_actions if values is None else values, self)

    def _action_checker(self) -> ActionCheck | None:
        """The check of the current action spec (built once per spec), None without a spec."""
        spec = self._action_spec
        if spec is None:
            return None
        check = self._action_check
        if check is None or check.spec is not spec:
            check = self._action_check = ActionCheck(spec)
        return check

    def step_and_maybe_reset(self, tensordict: TensorDict) -> tuple[TensorDict, TensorDict]:
        """``step``, then the root of the next step with finished sub-envs already reset.

        Returns:
            ``(tensordict, next_root)``: the stepped TensorDict (with ``"next"``)
            and the input of the following step.
        """
        tensordict = self.step(tensordict)
        return tensordict, self.maybe_reset(step_mdp(tensordict))

    def maybe_reset(self, tensordict: TensorDict) -> TensorDict:
        """Reset the sub-envs whose ``"done"`` flag is set in the root ``tensordict``.

        ``step_and_maybe_reset`` is ``step``, ``step_mdp`` and this. Use it
        directly when something between the step and the reset changes the
        done flags (e.g. a collector truncating long trajectories).

        Returns:
            ``tensordict`` when nothing is done, else the root with the finished
            sub-envs reset (the others keep their values).

        Example:
            >>> import torch
            >>> from rlbricks.envs.testing import CountingEnv
            >>> env = CountingEnv(max_steps=10, batch_size=[2])
            >>> root = env.reset()
            >>> root["observation"] = torch.tensor([[4.0], [5.0]])
            >>> root["done"] = torch.tensor([[False], [True]])
            >>> env.maybe_reset(root)["observation"].squeeze(-1).tolist()
            [4.0, 0.0]
        """
        root = tensordict
        done: Any = root.entries["done"]
        if _any(done):
            if self._batch_size:  # a shallow copy with the mask: the input is left as it is
                source = root.entries.copy()
                source["_reset"] = done  # a root entry: its shape fits by construction
                root = self.reset(TensorDict.from_trusted(source, root.batch_size, root.device))
            else:  # keys the reset does not produce carry over, as for batched envs
                fresh = self.reset()
                for key, value in root.items():
                    if key not in fresh.entries:
                        fresh.set(key, value)
                root = fresh
        return root

    def rand_action(self, tensordict: TensorDict | None = None) -> TensorDict:
        """Write a random ``"action"`` from the action spec into ``tensordict``."""
        if tensordict is None:
            tensordict = TensorDict(batch_size=self._batch_size, device=self._device)
        tensordict.set("action", self.action_spec.rand())
        return tensordict

    def _random_rollout(
        self, tensordict: TensorDict, max_steps: int, break_when_any_done: bool
    ) -> TensorDict | None:
        """Optional fast path of a random-action ``rollout`` from the root ``tensordict``.

        An env that can run a whole random-action rollout without a
        TensorDict per step (e.g. writing into preallocated arrays) returns
        the stacked result here, exactly what the generic loop would give;
        None (the default) means "use the generic loop".
        """
        return None

    def policy_rollout(
        self,
        tensordict: TensorDict,
        policy: Callable[[TensorDict], TensorDict],
        max_steps: int,
        break_when_any_done: bool,
    ) -> tuple[TensorDict, TensorDict] | None:
        """The env's fast path of a rollout with ``policy``, or None for the generic loop.

        :func:`~rlbricks.envs.rollout` (with a policy) and the collectors call
        it once per rollout or batch, before stepping the env themselves.  An
        env that can run the whole rollout faster than ``step`` after ``step``
        (e.g. writing its outputs into preallocated arrays) overrides it; the
        base returns None, which means "use the generic loop".  An override
        may also return None for the cases it does not cover.

        The contract of a result (see the class docstring, "Rollout fast
        path"): exactly what the generic loop gives, i.e. ``policy`` then
        :meth:`step_and_maybe_reset`, ``max_steps`` times (stopping after the
        first step where any sub-env is done when ``break_when_any_done``),
        with the same entries, values, episode boundaries and action checks.

        Args:
            tensordict: the root TensorDict of the first step (e.g. from
                :meth:`reset`, or the ``next_root`` of a previous call).
            policy: reads a root TensorDict and writes ``"action"`` into it.
            max_steps: the number of steps.
            break_when_any_done: stop after the first step where a sub-env is
                done; otherwise finished sub-envs are reset and the rollout
                goes on.

        Returns:
            None, or ``(steps, next_root)``: the steps stacked on a new last
            batch dim (``[*batch_size, T]``) and the root of the step after the
            last one, finished sub-envs reset, from which the next rollout
            continues.

        Example:
            >>> import torch
            >>> from rlbricks.envs.testing import CountingEnv
            >>> env = CountingEnv(max_steps=5)
            >>> policy = lambda td: td.set("action", torch.ones(1, dtype=torch.long))
            >>> env.policy_rollout(env.reset(), policy, 3, False) is None  # the generic loop
            True
        """
        return None

    def rand_step(self, tensordict: TensorDict | None = None) -> TensorDict:
        """One ``step`` with a random action (resetting first when no input is given)."""
        if tensordict is None:
            tensordict = self.reset()
        return self.step(self.rand_action(tensordict))

    def rollout(
        self,
        max_steps: int,
        policy: Callable[[TensorDict], TensorDict] | None = None,
        *,
        auto_reset: bool = True,
        break_when_any_done: bool = True,
        tensordict: TensorDict | None = None,
    ) -> TensorDict:
        """Run up to ``max_steps`` steps; return them stacked on a last time dim.

        See :func:`rlbricks.envs.rollout` for the arguments.
        """
        from rlbricks.envs._rollout import rollout

        return rollout(
            self,
            max_steps,
            policy,
            auto_reset=auto_reset,
            break_when_any_done=break_when_any_done,
            tensordict=tensordict,
        )

    def set_seed(self, seed: int) -> int:
        """Seed the env; return the next seed to use for another env."""
        self._set_seed(seed)
        return seed + max(1, self._batch_size.numel())

    def close(self) -> None:
        """Release the simulator's resources (idempotent)."""
        self.is_closed = True

    def __enter__(self) -> EnvBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={tuple(self._batch_size)}, device={self._device})"


def _keep_previous(previous: Any, nxt: TensorDict) -> TensorDict:
    """``nxt`` plus the entries of ``previous`` (a TensorDict) that it does not hold."""
    if not isinstance(previous, TensorDict):
        raise EnvRuntimeError(
            f"the input's 'next' entry is a {type(previous).__name__}, not a TensorDict: "
            "env.step writes its outputs there"
        )
    for key in previous.keys(include_nested=True, leaves_only=True):
        if key not in nxt.keys(include_nested=True):
            nxt.set(key, previous.get(key))
    return nxt


def _any(flags: torch.Tensor) -> bool:
    """``bool(flags.any())``, without torch ops for a few flags on the CPU."""
    n = flags.numel()
    if n == 1:
        return bool(flags.item())
    if n <= 64 and flags.dtype is torch.bool and flags.is_cpu:
        return True in flags.numpy().ravel().tolist()
    return bool(flags.any())


def _merge_partial(previous: TensorDict, reset: TensorDict) -> TensorDict:
    """Sub-envs whose ``_reset`` is False keep ``previous``'s values."""
    fast = _merge_flat(previous, reset)
    if fast is not None:
        return fast
    mask = previous.get("_reset")
    out = previous.exclude("_reset")
    for key, value in reset.items(include_nested=True, leaves_only=True):
        old = previous.get(key, None)
        if old is None or old.shape != value.shape:
            out.set(key, value)
            continue
        m = mask.reshape(
            mask.shape[: len(previous.batch_size)] + (1,) * (value.ndim - len(previous.batch_size))
        )
        out.set(key, torch.where(m, value, old))
    return out


def _merge_flat(previous: TensorDict, reset: TensorDict) -> TensorDict | None:
    """``_merge_partial`` for one-level TensorDicts of tensors (None otherwise)."""
    if previous.batch_size != reset.batch_size or (
        previous.device is not None and previous.device != reset.device
    ):
        return None
    source = previous.entries
    mask = source.get("_reset")
    if mask.__class__ is not torch.Tensor:
        return None
    for value in source.values():
        if value.__class__ is not torch.Tensor:
            return None
    for value in reset.entries.values():
        if value.__class__ is not torch.Tensor:
            return None
    out: dict[str, Any] = source.copy()
    del out["_reset"]
    nd = len(previous.batch_size)
    lead = tuple(mask.shape[:nd])
    masks: dict[int, torch.Tensor] = {}
    fresh: dict[str, Any] = reset.entries
    for key, value in fresh.items():
        old = out.get(key)
        if old is None or old.shape != value.shape:
            out[key] = value
            continue
        m = masks.get(value.ndim)
        if m is None:
            shape = lead + (1,) * (value.ndim - nd)
            m = masks[value.ndim] = mask if mask.shape == shape else mask.reshape(shape)
        out[key] = torch.where(m, value, old)
    return TensorDict.from_trusted(out, previous.batch_size, previous.device)
