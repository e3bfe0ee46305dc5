"""``LossModule``: the base of every loss (networks, target copies, keys, value estimator)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

import torch
from torch import Tensor
from torch import nn

from rlbricks.objectives._errors import LossKeyError
from rlbricks.objectives._errors import LossValueError
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import is_tensordict
from rlbricks.tensordict import unravel_key

__all__ = ["LossKeys", "LossModule"]


class LossKeys(Mapping[str, NestedKey]):
    """The TensorDict keys a loss reads and writes, by name (``loss.tensor_keys``).

    A read-only mapping from a key's *name* (``"action"``, ``"reward"``, ...)
    to the TensorDict key it currently stands for; the names are also
    attributes (``loss.tensor_keys.reward``).  Change entries with
    :meth:`LossModule.set_keys`.

    Args:
        keys: the name -> key table.

    Example:
        >>> from rlbricks.objectives import LossKeys
        >>> keys = LossKeys({"reward": ("next", "reward"), "action": "action"})
        >>> keys.reward, keys["action"], sorted(keys)
        (('next', 'reward'), 'action', ['action', 'reward'])
    """

    def __init__(self, keys: Mapping[str, NestedKey]) -> None:
        self._keys: dict[str, NestedKey] = {name: unravel_key(k) for name, k in keys.items()}

    def __getitem__(self, name: str) -> NestedKey:
        return self._keys[name]

    def __getattr__(self, name: str) -> NestedKey:
        try:
            key: NestedKey = self.__dict__["_keys"][name]
            return key
        except KeyError:
            raise AttributeError(
                f"no key named {name!r}; the names are {sorted(self.__dict__['_keys'])}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"LossKeys({self._keys})"


def _requires_no_grad(module: nn.Module) -> nn.Module:
    for param in module.parameters():
        param.requires_grad_(False)
    return module


class LossModule(nn.Module):
    """The base class of every loss: networks, their target copies, keys and value estimator.

    A loss is an ``nn.Module`` whose ``forward(tensordict)`` returns a
    TensorDict (``batch_size=[]``) of scalar entries: the ``"loss_*"`` entries
    carry gradients and the user sums them (or steps one optimiser per
    entry); every other entry is a detached diagnostic (``"alpha"``,
    ``"entropy"``, ...).  When the loss computes a per-sample TD error it
    writes it, detached, into the *input* TensorDict under the key named
    ``"td_error"`` (shape ``[*batch]``), ready for
    ``TensorDictPrioritizedReplayBuffer.update_tensordict_priority``; when
    the input holds importance weights (``"_weight"``, written by prioritized
    buffers) the per-sample losses are weighted by them.

    **How a subclass is written.**

    * *Networks.* Call :meth:`register_network` in ``__init__`` for each
      network: ``self.register_network("value_network", net, delay=True)``
      stores ``net`` as ``self.value_network``.  ``copies=n`` stores an
      ``nn.ModuleList`` of ``n`` networks with separate parameters instead
      (twin critics; the copies after the first are re-initialised).
    * *Target copies.* ``delay=True`` also stores a deep copy as
      ``self.target_value_network`` (the name prefixed with ``target_``).
      Target copies are registered submodules, so ``state_dict``, ``.to()``
      and checkpoints include them, but their parameters have
      ``requires_grad=False``: handing ``loss.parameters()`` to an optimiser
      is safe, since they never get a gradient and the optimiser skips them.
      Only :class:`~rlbricks.objectives.SoftUpdate` /
      :class:`~rlbricks.objectives.HardUpdate` change them.
      :meth:`target_network` returns the target copy of a network, or the
      network itself when it is not delayed (use it under
      ``torch.no_grad()``).  :meth:`target_pairs` lists every
      ``(network, target copy)`` pair for the updaters.
    * *Keys.* Declare the class attribute ``default_keys``, the table
      ``{name: default key}`` of every entry the loss reads or writes
      (nested keys are tuples).  Read the current keys from
      ``self.tensor_keys`` (a :class:`LossKeys`); users change them with
      :meth:`set_keys`, which rejects unknown names with an error listing
      the valid ones and then calls the hook :meth:`_keys_changed`.
    * *Value estimator.* Set ``default_value_type`` to the
      :class:`~rlbricks.objectives.ValueEstimators` member (or its name)
      used when the user makes none (TD0 for DQN/DDPG/TD3/SAC, GAE for
      PPO/A2C).  :meth:`make_value_estimator` builds one through
      ``rlbricks.objectives.value.make_value_estimator(value_type,
      **kwargs)`` where ``kwargs`` are :meth:`_value_estimator_defaults`
      (e.g. ``{"value_network": self.critic_network}``) updated with the
      user's hyper-parameters; it then forwards the loss's keys named by
      :meth:`_value_estimator_keys` to the estimator's ``set_keys``.
      ``self.value_estimator`` returns the estimator, making the default
      one on first use.  The estimator is not a registered submodule (its
      value network is already one of the loss's), so ``state_dict`` holds
      each parameter once; ``.to(device)`` still moves it.
    * *Forward.* Override :meth:`forward`.  Read entries with
      :meth:`_get` (a missing key raises :class:`LossKeyError` listing the
      available ones) and average per-sample losses with
      :meth:`_reduce` (which applies importance weights).

    **Non-finite losses from non-finite data.** After each call, every
    returned ``"loss_*"`` entry is tested with ``math.isfinite`` (a few
    microseconds per entry; on CUDA it waits for the loss to be computed).  When one is NaN or
    infinite, the input entries named ``"reward"``, ``"done"``,
    ``"terminated"`` and ``"truncated"`` (those the loss has) are inspected,
    and if one of them holds NaN or an infinity a :class:`LossError` names
    the loss entry, the input key and the offending entries: the data is
    broken (e.g. an env that returned a NaN reward), not the optimisation.  A
    non-finite loss from finite inputs (a diverged network, too high a
    learning rate) is returned as it is.  Set ``loss.check_nonfinite_inputs
    = False`` to skip the test entirely.  The test is a forward hook of the
    base class, so subclasses get it without calling anything.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import ValueOperator
        >>> from rlbricks.objectives import LossModule
        >>> from rlbricks.tensordict import TensorDict
        >>> class RegressValue(LossModule):
        ...     default_keys = {"value": "state_value", "value_target": "value_target"}
        ...
        ...     def __init__(self, critic):
        ...         super().__init__()
        ...         self.register_network("critic_network", critic, delay=True)
        ...
        ...     def forward(self, tensordict):
        ...         value = self.critic_network(tensordict.copy())[self.tensor_keys.value]
        ...         target = self._get(tensordict, "value_target")
        ...         loss = self._reduce((value - target).pow(2).squeeze(-1), tensordict)
        ...         return TensorDict({"loss_value": loss})
        >>> loss = RegressValue(ValueOperator(nn.Linear(3, 1)))
        >>> td = TensorDict({"observation": torch.randn(5, 3), "value_target": torch.ones(5, 1)}, [5])
        >>> out = loss(td)
        >>> out["loss_value"].shape, loss.target_critic_network.module.weight.requires_grad
        (torch.Size([]), False)
        >>> loss.set_keys(value_target="returns").tensor_keys.value_target
        'returns'
    """

    default_keys: ClassVar[Mapping[str, NestedKey]] = {}
    """Name -> default TensorDict key of every entry the loss reads or writes."""

    default_value_type: ClassVar[Any] = None
    """The value estimator made when the user makes none (``None``: the loss uses none)."""

    check_nonfinite_inputs: bool = True
    """Whether a non-finite ``"loss_*"`` output makes the loss look for non-finite
    rewards and done flags in its input, and raise naming them (see above)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_forward_hook(_check_nonfinite_losses, with_kwargs=True)
        self._tensor_keys = LossKeys(self.default_keys)
        self._delayed: list[str] = []
        self.__dict__["_value_estimator_obj"] = None
        self.__dict__["_structure_version"] = 0  # bumped when networks or their tensors change

    # ------------------------------------------------------------------ #
    # networks and target copies
    # ------------------------------------------------------------------ #
    def register_network(
        self, name: str, network: nn.Module, *, delay: bool = False, copies: int | None = None
    ) -> None:
        """Store ``network`` as ``self.<name>``, with a frozen target copy when ``delay``.

        Args:
            name: the attribute name, e.g. ``"value_network"``.
            network: the network.
            delay: also store a deep copy as ``self.target_<name>``, with
                ``requires_grad=False`` parameters.
            copies: store an ``nn.ModuleList`` of that many networks with
                separate parameters: ``network`` first, then deep copies
                whose parameters are re-initialised (every submodule with a
                ``reset_parameters`` method is reset).  ``None`` stores the
                network itself.

        Raises:
            LossValueError: ``network`` is not an ``nn.Module`` or ``copies < 1``.

        Example:
            >>> from torch import nn
            >>> from rlbricks.objectives import LossModule
            >>> loss = LossModule()
            >>> loss.register_network("qvalue_network", nn.Linear(2, 1), delay=True, copies=2)
            >>> len(loss.qvalue_network), len(loss.target_qvalue_network)
            (2, 2)
            >>> bool((loss.qvalue_network[0].weight != loss.qvalue_network[1].weight).any())
            True
        """
        if not isinstance(network, nn.Module):
            raise LossValueError(
                f"{type(self).__name__}: {name} must be an nn.Module (e.g. a ValueOperator), "
                f"got {type(network).__name__}"
            )
        stored: nn.Module = network
        if copies is not None:
            if copies < 1:
                raise LossValueError(f"{type(self).__name__}: copies must be >= 1, got {copies}")
            stored = nn.ModuleList([network] + [reset_copy(network) for _ in range(copies - 1)])
        setattr(self, name, stored)
        self.__dict__["_structure_version"] += 1
        if delay:
            setattr(self, f"target_{name}", _requires_no_grad(copy.deepcopy(stored)))
            if name not in self._delayed:
                self._delayed.append(name)

    def target_network(self, name: str) -> nn.Module:
        """The target copy of the network ``name``, or the network itself when not delayed.

        Example:
            >>> from torch import nn
            >>> from rlbricks.objectives import LossModule
            >>> loss = LossModule()
            >>> loss.register_network("actor_network", nn.Linear(2, 1))
            >>> loss.target_network("actor_network") is loss.actor_network
            True
        """
        if name in self._delayed:
            target: nn.Module = getattr(self, f"target_{name}")
            return target
        try:
            network: nn.Module = getattr(self, name)
        except AttributeError:
            raise LossValueError(f"{type(self).__name__} has no network named {name!r}") from None
        return network

    def target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """Every ``(network, target copy)`` pair, for the target updaters.

        Example:
            >>> from torch import nn
            >>> from rlbricks.objectives import LossModule
            >>> loss = LossModule()
            >>> loss.register_network("value_network", nn.Linear(2, 1), delay=True)
            >>> [type(m).__name__ for m in loss.target_pairs()[0]]
            ['Linear', 'Linear']
        """
        return [(getattr(self, name), getattr(self, f"target_{name}")) for name in self._delayed]

    # ------------------------------------------------------------------ #
    # keys
    # ------------------------------------------------------------------ #
    @property
    def tensor_keys(self) -> LossKeys:
        """The keys the loss reads and writes, by name (see :class:`LossKeys`).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss
            >>> DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot")).tensor_keys.reward
            ('next', 'reward')
        """
        return self._tensor_keys

    def set_keys(self, **keys: NestedKey) -> LossModule:
        """Change the TensorDict keys the loss reads or writes; returns ``self``.

        Args:
            **keys: ``name=key`` pairs; the names are those of
                ``default_keys`` (see the loss's table), nested keys are tuples.

        Raises:
            LossValueError: a name is not one of the loss's key names (the message
                lists them) or a key is malformed.

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss
            >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
            >>> loss.set_keys(reward=("next", "scaled_reward")).tensor_keys.reward
            ('next', 'scaled_reward')
        """
        table = dict(self._tensor_keys)
        for name, key in keys.items():
            if name not in table:
                raise LossValueError(
                    f"{type(self).__name__} has no key named {name!r}; the key names are "
                    f"{sorted(table)}"
                )
            try:
                table[name] = unravel_key(key)
            except TypeError as err:
                raise LossValueError(f"{type(self).__name__}.set_keys({name}=...): {err}") from None
        self._tensor_keys = LossKeys(table)
        self._keys_changed()
        estimator = self.__dict__["_value_estimator_obj"]
        if estimator is not None:
            self._forward_keys(estimator)
        return self

    def _keys_changed(self) -> None:
        """Hook called after :meth:`set_keys`; a subclass updates what depends on keys."""

    # ------------------------------------------------------------------ #
    # value estimator
    # ------------------------------------------------------------------ #
    def _value_estimator_defaults(self) -> dict[str, Any]:
        """The keyword arguments given to every estimator this loss makes (e.g. its value network)."""
        return {}

    def _value_estimator_keys(self) -> dict[str, NestedKey]:
        """The estimator's key names -> the loss's keys, forwarded to ``estimator.set_keys``."""
        return {}

    def _forward_keys(self, estimator: Any) -> None:
        keys = self._value_estimator_keys()
        if keys:
            estimator.set_keys(**keys)

    def make_value_estimator(self, value_type: Any = None, **hyperparams: Any) -> LossModule:
        """Make the value estimator the loss uses for its targets; returns ``self``.

        Args:
            value_type: a :class:`~rlbricks.objectives.ValueEstimators` member
                (or its name); ``None`` is the loss's default
                (``default_value_type``).
            **hyperparams: the estimator's hyper-parameters (``gamma``,
                ``lmbda``, ...); they override the loss's defaults.

        Raises:
            LossValueError: the loss uses no value estimator.

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss
            >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
            >>> type(loss.make_value_estimator(gamma=0.9).value_estimator).__name__
            'TD0Estimator'
        """
        if value_type is None:
            value_type = self.default_value_type
        if value_type is None:
            raise LossValueError(
                f"{type(self).__name__} uses no value estimator (its default_value_type is None): "
                "name the estimator, e.g. make_value_estimator('td0', gamma=0.99), or set "
                "default_value_type on the class"
            )
        from rlbricks.objectives.value import make_value_estimator

        kwargs = {**self._value_estimator_defaults(), **hyperparams}
        estimator = make_value_estimator(value_type, **kwargs)
        self._forward_keys(estimator)
        self.__dict__["_value_estimator_obj"] = estimator
        return self

    @property
    def value_estimator(self) -> Any:
        """The value estimator (the default one is made on first use).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss
            >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="one_hot"))
            >>> type(loss.value_estimator).__name__
            'TD0Estimator'
        """
        if self.__dict__["_value_estimator_obj"] is None:
            self.make_value_estimator()
        return self.__dict__["_value_estimator_obj"]

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> LossModule:
        super()._apply(fn, *args, **kwargs)
        self.__dict__["_structure_version"] += 1  # .to() may have replaced tensors
        estimator = self.__dict__["_value_estimator_obj"]
        if isinstance(estimator, nn.Module):
            estimator._apply(fn, *args, **kwargs)
        return self

    # ------------------------------------------------------------------ #
    # forward and helpers
    # ------------------------------------------------------------------ #
    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Compute the losses of a batch: scalar ``"loss_*"`` entries plus detached diagnostics.

        Args:
            tensordict: the batch (for example a replay sample, ``[B]``, or a
                collected trajectory batch, ``[*batch, T]``).

        Returns:
            A TensorDict with ``batch_size=[]``.

        Example:
            >>> from rlbricks.objectives import LossModule
            >>> try:
            ...     LossModule()(None)
            ... except NotImplementedError as err:
            ...     print(err)
            LossModule must implement forward(tensordict)
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward(tensordict)")

    def _get(self, tensordict: TensorDict, name: str) -> Any:
        """The entry of ``tensordict`` under the key named ``name``, or a :class:`LossKeyError`."""
        key = self._tensor_keys[name]
        value = tensordict.get(key, None)
        if value is None:
            available = list(tensordict.keys(include_nested=True, leaves_only=True))
            raise LossKeyError(
                f"{type(self).__name__} reads {key!r}, which the TensorDict does not hold; "
                f"available keys: {available} (change the key with set_keys({name}=...))"
            )
        return value

    def _reduce(self, per_sample: Tensor, tensordict: TensorDict) -> Tensor:
        """The mean of ``per_sample`` (``[*batch]``), weighted by the importance weights if present.

        The weights are read under the key named ``"priority_weight"`` when
        the loss declares that name and the input holds the entry.
        """
        name = "priority_weight"
        if name in self._tensor_keys:
            weight = tensordict.get(self._tensor_keys[name], None)
            if weight is not None:
                weight = weight.to(per_sample.dtype).reshape(per_sample.shape)
                return (per_sample * weight).mean()
        return per_sample.mean()

    def _write_td_error(self, tensordict: TensorDict, td_error: Tensor) -> None:
        """Write ``td_error`` (detached, ``[*batch]``) into the input under the ``"td_error"`` key."""
        if "td_error" in self._tensor_keys:
            tensordict.set(self._tensor_keys["td_error"], td_error.detach())

    def _nonfinite_input_error(
        self, name: str, loss: Tensor, tensordict: Any
    ) -> LossValueError | None:
        """The error explaining the non-finite ``loss`` entry ``name`` by the input's
        rewards and done flags, or ``None`` when those are finite."""
        found = []
        for key_name in _CHECKED_INPUTS:
            if key_name not in self._tensor_keys:
                continue
            key = self._tensor_keys[key_name]
            value = tensordict.get(key, None)
            if not isinstance(value, Tensor) or not value.is_floating_point():
                continue
            bad = ~value.isfinite()
            if bool(bad.any()):
                idx = tuple(bad.nonzero()[0].tolist())
                found.append(
                    f"{key!r} ({int(bad.sum())} of {value.numel()} entries, first at index "
                    f"{idx}: {value[idx].item()})"
                )
        if not found:
            return None
        what = str(loss.item()) if loss.numel() == 1 else "not finite"
        return LossValueError(
            f"{type(self).__name__}: {name} is {what} because the input holds non-finite "
            f"values under {'; '.join(found)}; fix the data upstream (e.g. the env's reward or a "
            "transform) or drop those rows before the loss"
        )


_CHECKED_INPUTS = ("reward", "done", "terminated", "truncated")


def _check_nonfinite_losses(
    module: LossModule, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
) -> None:
    """Forward hook of every loss: raise when a non-finite ``loss_*`` comes from a
    non-finite reward or done flag of the input (see :class:`LossModule`)."""
    if not module.check_nonfinite_inputs or not is_tensordict(output):
        return
    for name, value in output.items():
        if not (isinstance(name, str) and name.startswith("loss_") and isinstance(value, Tensor)):
            continue
        value = value.detach()
        # a scalar (the usual loss) is tested in Python: isfinite() would cost a kernel call
        if value.numel() == 1:
            finite = math.isfinite(value.item())
        else:
            finite = bool(value.isfinite().all())
        if not finite:
            tensordict = args[0] if args else kwargs.get("tensordict")
            if is_tensordict(tensordict):
                error = module._nonfinite_input_error(name, value, tensordict)
                if error is not None:
                    raise error
            return


def reset_copy(network: nn.Module) -> nn.Module:
    """A deep copy of ``network`` whose parameters are re-initialised where possible.

    Every submodule with a ``reset_parameters`` method (``nn.Linear``,
    ``nn.Conv2d``, ...) is reset, so the copy has its own random
    initialisation; the other parameters keep the copied values.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.objectives._loss_base import reset_copy
        >>> net = nn.Linear(4, 4)
        >>> bool(torch.equal(reset_copy(net).weight, net.weight))
        False
    """
    clone = copy.deepcopy(network)
    with torch.no_grad():
        for module in clone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone
