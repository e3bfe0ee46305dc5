"""``ValueEstimatorBase``: read a batch of transitions, run the critic, write advantages."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any
from typing import ClassVar
from typing import NamedTuple

import torch
from torch import Tensor
from torch import nn

from rlbricks.objectives.value._errors import ValueEstimatorKeyError
from rlbricks.objectives.value._errors import ValueEstimatorValueError
from rlbricks.objectives.value._errors import missing_key_error
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key

__all__ = ["Batch", "ValueEstimatorBase", "check_factor_value"]

ValueNetwork = Callable[[TensorDict], TensorDict]
"""A critic: any callable that reads a TensorDict and writes the value entry into it."""


class Batch(NamedTuple):
    """The tensors an estimator works on, each shaped ``[*batch, T, F]`` (time at ``time_dim``).

    ``value`` is ``None`` when only a value target that does not read it was asked for.
    """

    value: Tensor | None
    next_value: Tensor
    reward: Tensor
    done: Tensor
    terminated: Tensor
    time_dim: int


def check_factor_value(owner: str, name: str, value: Any, low: float, high: float) -> Any:
    """Check that a hyperparameter is a number in ``[low, high]`` or a tensor; return it."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueEstimatorValueError(
            f"{owner}: {name} must be a number or a tensor, got {type(value).__name__}"
        )
    if not low <= value <= high:
        raise ValueEstimatorValueError(f"{owner}: {name}={value} is outside [{low}, {high}]")
    return float(value)


class ValueEstimatorBase(nn.Module):
    """The base of the value-estimator modules: keys, critic calls, gradient policy.

    An estimator reads a batch of transitions shaped ``[*batch, T]`` (time is
    the last batch dim, as collectors yield it), computes the value of every
    root state and of every ``"next"`` state with ``value_network`` (unless
    the values are already there and ``skip_existing=True``, or there is no
    network), and writes ``"advantage"`` and ``"value_target"`` (each
    ``[*batch, T, 1]``) into the TensorDict.  Rewards and done flags are read
    under ``"next"``; every key can be changed with :meth:`set_keys`.

    The estimate is computed under ``torch.no_grad()`` (the value network
    included), because advantages and value targets are regression targets
    and weights, not functions to differentiate; build the estimator with
    ``differentiable=True`` to let gradients flow through it.

    Subclasses implement ``_value_target`` (or ``_estimate`` when the
    advantage is not ``value_target - value``) and list their extra keys in
    ``default_keys``.

    Args:
        value_network: the critic, a callable ``TensorDict -> TensorDict`` that
            writes the ``"value"`` key (e.g. a
            :class:`~rlbricks.modules.ValueOperator`); ``None`` when the values
            are always precomputed in the data.
        differentiable: let gradients flow through the estimate.
        skip_existing: reuse values already present in the TensorDict instead
            of calling ``value_network``.

    Raises:
        ValueEstimatorValueError: ``value_network`` is not callable.

    Example:
        >>> import torch
        >>> from rlbricks.objectives import TD0Estimator
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict({
        ...     "state_value": torch.zeros(2, 1),
        ...     "next": {"state_value": torch.ones(2, 1), "reward": torch.ones(2, 1),
        ...              "done": torch.zeros(2, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(2, 1, dtype=torch.bool)},
        ... }, batch_size=[2])
        >>> TD0Estimator(gamma=0.5, value_network=None)(td)["value_target"].flatten()
        tensor([1.5000, 1.5000])
    """

    default_keys: ClassVar[Mapping[str, NestedKey]] = {
        "advantage": "advantage",
        "value_target": "value_target",
        "value": "state_value",
        "reward": "reward",
        "done": "done",
        "terminated": "terminated",
    }
    """The keys read and written, by role; ``reward``, ``done`` and ``terminated`` live under ``"next"``."""

    value_network: ValueNetwork | None

    def __init__(
        self,
        *,
        value_network: ValueNetwork | None,
        differentiable: bool = False,
        skip_existing: bool = False,
    ) -> None:
        super().__init__()
        if value_network is not None and not callable(value_network):
            raise ValueEstimatorValueError(
                f"{type(self).__name__}: value_network must be a callable TensorDict -> "
                f"TensorDict (e.g. a ValueOperator) or None, got {type(value_network).__name__}"
            )
        self.value_network = value_network
        self.differentiable = differentiable
        self.skip_existing = skip_existing
        self._keys: dict[str, NestedKey] = dict(self.default_keys)

    # ------------------------------------------------------------------ #
    # keys
    # ------------------------------------------------------------------ #
    @property
    def tensor_keys(self) -> Mapping[str, NestedKey]:
        """The keys in use, by role (read-only; change them with :meth:`set_keys`).

        Example:
            >>> from rlbricks.objectives import GAE
            >>> GAE(gamma=0.99, lmbda=0.95, value_network=None).tensor_keys["value"]
            'state_value'
        """
        return MappingProxyType(self._keys)

    def set_keys(self, **keys: NestedKey) -> ValueEstimatorBase:
        """Change the keys the estimator reads and writes; return the estimator.

        Args:
            **keys: ``role=key`` pairs; the roles are those of ``default_keys``
                (``advantage``, ``value_target``, ``value``, ``reward``, ``done``,
                ``terminated``, plus the estimator's own ones).  Nested keys are
                tuples.  ``reward``/``done``/``terminated`` are read under
                ``"next"``; ``value`` is read at the root and under ``"next"``.

        Raises:
            ValueEstimatorValueError: a role is unknown, or a key is malformed.

        Example:
            >>> from rlbricks.objectives import GAE
            >>> gae = GAE(gamma=0.99, lmbda=0.95, value_network=None)
            >>> gae.set_keys(value="critic_value", advantage=("agent", "advantage")).tensor_keys[
            ...     "advantage"]
            ('agent', 'advantage')
        """
        for role, key in keys.items():
            if role not in self._keys:
                raise ValueEstimatorValueError(
                    f"{type(self).__name__}.set_keys: unknown role {role!r}; the roles are "
                    f"{sorted(self._keys)}"
                )
            try:
                self._keys[role] = unravel_key(key)
            except TypeError as err:
                raise ValueEstimatorValueError(
                    f"{type(self).__name__}.set_keys({role}=...): {err}"
                ) from None
        return self

    def _data_key(self, role: str) -> NestedKey:
        """The key of ``role`` under ``"next"``."""
        return unravel_key(("next", self._keys[role]))

    @property
    def in_keys(self) -> list[NestedKey]:
        """The entries read (those the value network reads when it runs, else the values).

        Example:
            >>> from rlbricks.objectives import TD0Estimator
            >>> TD0Estimator(gamma=0.9, value_network=None).in_keys  # doctest: +NORMALIZE_WHITESPACE
            ['state_value', ('next', 'state_value'), ('next', 'reward'), ('next', 'done'),
             ('next', 'terminated')]
        """
        network_keys = getattr(self.value_network, "in_keys", None)
        if self.value_network is None or network_keys is None:
            network_keys = [self._keys["value"]]
        keys = [unravel_key(k) for k in network_keys]
        keys += [unravel_key(("next", k)) for k in keys]
        keys += [self._data_key(role) for role in ("reward", "done", "terminated")]
        return keys + self._extra_in_keys()

    def _extra_in_keys(self) -> list[NestedKey]:
        return []

    @property
    def out_keys(self) -> list[NestedKey]:
        """The entries written: ``advantage`` and ``value_target`` (and the values, with a network).

        Example:
            >>> from rlbricks.objectives import TD0Estimator
            >>> TD0Estimator(gamma=0.9, value_network=None).out_keys
            ['advantage', 'value_target']
        """
        keys = [self._keys["advantage"], self._keys["value_target"]]
        if self.value_network is not None:
            keys += [self._keys["value"], unravel_key(("next", self._keys["value"]))]
        return keys

    # ------------------------------------------------------------------ #
    # reading the batch
    # ------------------------------------------------------------------ #
    def _grad_context(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext() if self.differentiable else torch.no_grad()

    def _read(self, tensordict: TensorDict, key: NestedKey) -> Any:
        value = tensordict.get(key, None)
        if value is None:
            available = list(tensordict.keys(include_nested=True, leaves_only=True))
            raise missing_key_error(type(self).__name__, key, available)
        return value

    def _next(self, tensordict: TensorDict) -> TensorDict:
        next_td = self._read(tensordict, "next")
        if not isinstance(next_td, TensorDict):
            raise ValueEstimatorValueError(
                f"{type(self).__name__}: 'next' must hold a TensorDict of the next step "
                f"(reward, done, terminated, observation), got {type(next_td).__name__}"
            )
        return next_td

    def _value(
        self, tensordict: TensorDict, params: Mapping[str, Tensor] | None, where: str
    ) -> Tensor:
        """The value of the states of ``tensordict`` (``where`` names it in messages)."""
        key = self._keys["value"]
        network = self.value_network
        if network is None or (self.skip_existing and tensordict.get(key, None) is not None):
            if network is None and tensordict.get(key, None) is None:
                available = list(tensordict.keys(include_nested=True, leaves_only=True))
                raise ValueEstimatorKeyError(
                    f"{type(self).__name__} has no value_network and {where} holds no {key!r} "
                    f"entry (available keys: {available}); pass value_network=, precompute "
                    f"the values, or point set_keys(value=...) at them"
                )
            return self._read(tensordict, key)
        if params is None:
            out = network(tensordict)
        elif isinstance(network, nn.Module):
            out = torch.func.functional_call(network, dict(params), (tensordict,))
        else:
            raise ValueEstimatorValueError(
                f"{type(self).__name__}: params= needs value_network to be an nn.Module, got "
                f"{type(network).__name__}"
            )
        if not isinstance(out, TensorDict):
            raise ValueEstimatorValueError(
                f"{type(self).__name__}: value_network must return the TensorDict it wrote "
                f"{key!r} into, got {type(out).__name__}"
            )
        value = out.get(key, None)
        if value is None:
            available = list(out.keys(include_nested=True, leaves_only=True))
            raise ValueEstimatorValueError(
                f"{type(self).__name__}: value_network did not write {key!r} (it wrote "
                f"{available}); match its out_keys with set_keys(value=...)"
            )
        if out is not tensordict:
            tensordict.set(key, value)
        return value

    def _batch(
        self,
        tensordict: TensorDict,
        params: Mapping[str, Tensor] | None,
        target_params: Mapping[str, Tensor] | None,
        with_value: bool = True,
    ) -> Batch:
        """Values, rewards and flags, shaped alike, and the time dim."""
        if tensordict.batch_dims < 1:
            raise ValueEstimatorValueError(
                f"{type(self).__name__} needs a TensorDict with a time dimension: batch_size "
                f"[*batch, T] with time last (as collectors yield), got batch_size "
                f"{tuple(tensordict.batch_size)}; for a single step use td.unsqueeze(-1)"
            )
        next_td = self._next(tensordict)
        if target_params is None:
            target_params = params
        value_key = self._keys["value"]
        next_value = self._value(next_td, target_params, "tensordict['next']")
        named = [(unravel_key(("next", value_key)), next_value)]
        for role in ("reward", "done", "terminated"):
            key = self._data_key(role)
            named.append((key, self._read(tensordict, key)))
        if with_value:
            named.append((value_key, self._value(tensordict, params, "the TensorDict")))
        shaped = self._shape_like(tensordict, named)
        value = shaped[4] if with_value else None
        next_value, reward, done, terminated = shaped[:4]
        return Batch(value, next_value, reward, done, terminated, tensordict.batch_dims - 1)

    def _shape_like(
        self, tensordict: TensorDict, named: Sequence[tuple[NestedKey, Tensor]]
    ) -> list[Tensor]:
        """Give ``[*batch]`` entries a trailing feature dim, then check all shapes agree."""
        batch = tensordict.batch_size
        tensors = [t.unsqueeze(-1) if t.shape == batch else t for _, t in named]
        first_key = named[0][0]
        for (key, _), tensor in zip(named, tensors):
            if tensor.shape != tensors[0].shape:
                raise ValueEstimatorValueError(
                    f"{type(self).__name__}: {key!r} has shape {tuple(tensor.shape)} but "
                    f"{first_key!r} has shape {tuple(tensors[0].shape)}; with batch_size "
                    f"{tuple(batch)} both must be {tuple(batch)} or [*batch_size, F] alike"
                )
        return tensors

    # ------------------------------------------------------------------ #
    # the public calls
    # ------------------------------------------------------------------ #
    #: whether ``_value_target`` reads ``batch.value`` (the root values)
    _target_reads_value: ClassVar[bool] = True

    def _value_target(self, tensordict: TensorDict, batch: Batch) -> Tensor:
        """The value target of ``batch``; implemented by each estimator."""
        raise NotImplementedError(f"{type(self).__name__} must implement _value_target")

    def _estimate(self, tensordict: TensorDict, batch: Batch) -> tuple[Tensor, Tensor]:
        """``(advantage, value_target)`` of ``batch``: by default ``target - value``."""
        target = self._value_target(tensordict, batch)
        assert batch.value is not None  # forward always reads the root values
        return target - batch.value, target

    def forward(
        self,
        tensordict: TensorDict,
        *,
        params: Mapping[str, Tensor] | None = None,
        target_params: Mapping[str, Tensor] | None = None,
    ) -> TensorDict:
        """Write ``"advantage"`` and ``"value_target"`` into ``tensordict`` and return it.

        Args:
            tensordict: transitions with batch size ``[*batch, T]``, time last.
            params: parameters (and buffers) to run ``value_network`` with on
                the root states, as in ``dict(critic.named_parameters())``;
                ``None`` uses the network's own.
            target_params: the same for the ``"next"`` states (e.g. a target
                network's); defaults to ``params``.

        Returns:
            ``tensordict``, with the two entries (``[*batch, T, 1]``) and the
            values computed by the network.

        Raises:
            ValueEstimatorKeyError: an entry is missing (the message lists the
                available keys).
            ValueEstimatorValueError: the shapes disagree, or the TensorDict has no
                batch dim.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import ValueOperator
            >>> from rlbricks.objectives import GAE
            >>> from rlbricks.tensordict import TensorDict
            >>> critic = ValueOperator(nn.Linear(3, 1))
            >>> flags = torch.zeros(4, 10, 1, dtype=torch.bool)
            >>> td = TensorDict({
            ...     "observation": torch.randn(4, 10, 3),
            ...     "next": {"observation": torch.randn(4, 10, 3), "reward": torch.randn(4, 10, 1),
            ...              "done": flags, "terminated": flags},
            ... }, batch_size=[4, 10])
            >>> td = GAE(gamma=0.99, lmbda=0.95, value_network=critic)(td)
            >>> td["advantage"].shape, td["advantage"].requires_grad
            (torch.Size([4, 10, 1]), False)
        """
        with self._grad_context():
            batch = self._batch(tensordict, params, target_params)
            advantage, value_target = self._estimate(tensordict, batch)
        tensordict.set(self._keys["advantage"], advantage)
        tensordict.set(self._keys["value_target"], value_target)
        return tensordict

    def value_estimate(
        self,
        tensordict: TensorDict,
        *,
        params: Mapping[str, Tensor] | None = None,
        target_params: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """The value target alone (nothing written but the values the network computes).

        Losses that regress a critic towards a bootstrapped target call this.

        Args:
            tensordict: transitions with batch size ``[*batch, T]``, time last.
            params: as in :meth:`forward`.
            target_params: as in :meth:`forward`.

        Returns:
            The value target, ``[*batch, T, 1]``.

        Raises:
            ValueEstimatorKeyError: an entry is missing.
            ValueEstimatorValueError: the shapes disagree.

        Example:
            >>> import torch
            >>> from rlbricks.objectives import TD0Estimator
            >>> from rlbricks.tensordict import TensorDict
            >>> flags = torch.tensor([[False], [True]])
            >>> td = TensorDict({"state_value": torch.zeros(2, 1), "next": {
            ...     "state_value": torch.full((2, 1), 10.0), "reward": torch.ones(2, 1),
            ...     "done": flags, "terminated": flags}}, batch_size=[2])
            >>> TD0Estimator(gamma=0.9, value_network=None).value_estimate(td).flatten()
            tensor([10.,  1.])
        """
        with self._grad_context():
            batch = self._batch(tensordict, params, target_params, self._target_reads_value)
            return self._value_target(tensordict, batch)

    def _hyperparameters(self) -> Iterator[tuple[str, Any]]:
        yield "differentiable", self.differentiable
        yield "skip_existing", self.skip_existing

    def extra_repr(self) -> str:
        """The hyperparameters, shown by ``repr(estimator)``."""
        return ", ".join(f"{name}={value}" for name, value in self._hyperparameters())
