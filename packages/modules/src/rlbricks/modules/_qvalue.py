"""Greedy policies over action values: ``QValueActor`` and ``DistributionalQValueActor``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rlbricks.modules._actors import as_composite
from rlbricks.modules._common import KeysLike
from rlbricks.modules._common import TensorDictModule
from rlbricks.modules._common import TensorDictModuleBase
from rlbricks.modules._common import read_key
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._sequential import TensorDictSequential
from rlbricks.specs import Binary
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import unravel_key

__all__ = [
    "DistributionalQValueActor",
    "QValueActor",
    "action_space_of",
    "greedy_action",
    "resolve_action_space",
]

ACTION_SPACES = ("one_hot", "categorical")
# the names TorchRL accepts for these two spaces
_NAMES = {"one_hot": "one_hot", "one-hot": "one_hot", "categorical": "categorical"}
_UNSUPPORTED = (MultiOneHot, MultiCategorical, Binary)

ActionSpace = str | TensorSpec[Any]


def _spec_of_action(spec: TensorSpec[Any] | None) -> TensorSpec[Any] | None:
    if not isinstance(spec, Composite):
        return spec
    if "action" not in spec:
        return None
    return spec["action"]


def action_space_of(action_space: ActionSpace, owner: str = "action_space_of") -> str:
    """The name, ``"one_hot"`` or ``"categorical"``, of an action space given by name or by spec.

    As in TorchRL, the Q-value actors and the DQN losses take their
    ``action_space`` as a name or as the env's action spec
    (``action_space=env.action_spec``): a :class:`~rlbricks.specs.OneHot`
    spec is ``"one_hot"``, a :class:`~rlbricks.specs.Categorical` one is
    ``"categorical"``, and a :class:`~rlbricks.specs.Composite` stands for its
    ``"action"`` entry. TorchRL's spelling ``"one-hot"`` is accepted too.

    Args:
        action_space: a name or an action spec.
        owner: the module named in error messages.

    Raises:
        ModuleValueError: an unknown name; a Composite without ``"action"``;
            a spec that is not one choice among ``n`` actions (``Bounded``,
            ``Unbounded``, and ``MultiOneHot``, ``MultiCategorical``,
            ``Binary``, which TorchRL maps to spaces of several sub-actions
            that these modules do not support); or an object that is neither
            a name nor a spec.

    Example:
        >>> from rlbricks.modules import action_space_of
        >>> from rlbricks.specs import Categorical, Composite, OneHot
        >>> action_space_of(OneHot(4)), action_space_of(Composite(action=Categorical(4)))
        ('one_hot', 'categorical')
        >>> action_space_of("one-hot")
        'one_hot'
    """
    if isinstance(action_space, str):
        name = _NAMES.get(action_space)
        if name is None:
            raise ModuleValueError(
                f"{owner}: action_space must be one of {list(ACTION_SPACES)}, or the action "
                f"spec (OneHot or Categorical), got {action_space!r}"
            )
        return name
    if not isinstance(action_space, TensorSpec):
        raise ModuleValueError(
            f"{owner}: action_space must be one of {list(ACTION_SPACES)}, or the action spec "
            f"(OneHot or Categorical, e.g. env.action_spec), got {action_space!r} "
            f"({type(action_space).__name__})"
        )
    spec = _spec_of_action(action_space)
    if spec is None:
        keys = list(action_space.keys()) if isinstance(action_space, Composite) else []
        raise ModuleValueError(
            f"{owner}: the Composite action_space has no 'action' entry (keys {keys}); pass "
            "the action spec itself, e.g. env.action_spec"
        )
    if isinstance(spec, OneHot):
        return "one_hot"
    if isinstance(spec, Categorical):
        return "categorical"
    hint = ""
    if isinstance(spec, _UNSUPPORTED):
        hint = (
            f"; a {type(spec).__name__} action (several sub-actions, or bits) is not "
            "supported: give the env one Categorical(n) or OneHot(n) action over the joint "
            "choices"
        )
    raise ModuleValueError(
        f"{owner} picks one of n actions: the spec must be OneHot or Categorical, got "
        f"{type(spec).__name__}{hint}"
    )


def resolve_action_space(
    spec: TensorSpec[Any] | None, action_space: ActionSpace | None, owner: str
) -> tuple[str, TensorSpec[Any] | None]:
    """The action-space name of a Q-value actor, and its action spec.

    ``action_space`` wins when it is a name (the spec then only gives the
    action's dtype and shape). As in TorchRL, it may be the action spec
    itself, which then serves as ``spec`` too; passing two different specs
    is an error. Without ``action_space`` the name is read from ``spec``.
    """
    if isinstance(action_space, TensorSpec):
        if spec is not None and _spec_of_action(spec) != _spec_of_action(action_space):
            raise ModuleValueError(
                f"{owner}: spec={spec} and action_space={action_space} are different specs; "
                "pass the action spec once, as spec= or as action_space="
            )
        return action_space_of(action_space, owner), spec if spec is not None else action_space
    if action_space is not None:
        return action_space_of(action_space, owner), spec
    leaf = _spec_of_action(spec)
    if leaf is None:
        raise ModuleValueError(
            f"{owner}: give the action spec (spec=OneHot(n) or Categorical(n)) or "
            "action_space='one_hot' | 'categorical'"
        )
    return action_space_of(leaf, owner), spec


def greedy_action(
    values: Tensor, mask: Tensor | None, action_space: str, spec: TensorSpec[Any] | None
) -> tuple[Tensor, Tensor]:
    """``(action, index)`` of the best allowed action of ``values`` (``[..., n]``).

    ``index`` has shape ``values.shape[:-1]``.  The action is one-hot (with
    the spec's dtype, ``bool`` without a spec) or the index (with the spec's
    dtype, and a trailing dim of size 1 when the spec's shape ends with one).
    """
    if mask is not None:
        values = values.masked_fill(~mask.to(torch.bool), float("-inf"))
    index = values.argmax(-1)
    if action_space == "one_hot":
        dtype = spec.dtype if spec is not None and spec.dtype is not None else torch.bool
        action = torch.nn.functional.one_hot(index, values.shape[-1]).to(dtype)
        return action, index
    action = index
    if spec is not None:
        if spec.dtype is not None:
            action = action.to(spec.dtype)
        lead = tuple(index.shape)
        shape = tuple(spec.shape)
        if shape and shape[-1] == 1 and lead[len(lead) - len(shape) :] != shape:
            action = action.unsqueeze(-1)  # e.g. Categorical(n, shape=(1,)): actions are [..., 1]
    return action, index


class _QValueHead(TensorDictModuleBase):
    """Reads ``action_value`` (and a mask), writes the greedy action and its value."""

    def __init__(
        self,
        action_space: str,
        spec: TensorSpec[Any] | None,
        action_mask_key: NestedKey | None,
        action_value_key: NestedKey = "action_value",
    ) -> None:
        super().__init__()
        self.action_space = action_space
        self.action_spec = _spec_of_action(spec)
        self.action_mask_key = None if action_mask_key is None else unravel_key(action_mask_key)
        self.action_value_key = action_value_key
        self.in_keys = [action_value_key]
        if self.action_mask_key is not None:
            self.in_keys.append(self.action_mask_key)
        self.out_keys = ["action", "chosen_action_value"]

    def _mask(self, tensordict: TensorDict) -> Tensor | None:
        if self.action_mask_key is None:
            return None
        mask: Tensor = read_key(self, tensordict, self.action_mask_key)
        return mask

    def forward(self, tensordict: TensorDict) -> TensorDict:
        values: Tensor = read_key(self, tensordict, self.action_value_key)
        action, index = greedy_action(
            values, self._mask(tensordict), self.action_space, self.action_spec
        )
        tensordict.set("action", action)
        tensordict.set("chosen_action_value", values.gather(-1, index.unsqueeze(-1)))
        return tensordict


class QValueActor(TensorDictSequential):
    """A greedy policy over action values (DQN): the action is the argmax of ``module``'s output.

    ``module`` maps the in_keys entries to one value per action,
    ``[..., n_actions]``, written as ``"action_value"``.  The actor then writes
    ``"action"`` (the argmax, one-hot or index) and ``"chosen_action_value"``
    (its value, ``[..., 1]``).  With ``action_mask_key``, the bool entry
    under that key (``[..., n_actions]``, ``True`` = allowed) restricts the
    choice: a masked action is never picked.  Random exploration is added by
    an :class:`EGreedyModule` placed after the actor.

    It is a :class:`TensorDictSequential` of the value network (``actor[0]``,
    a :class:`TensorDictModule`) and the greedy head.

    Args:
        module: the value network.
        in_keys: the keys it reads.
        spec: the action spec (``OneHot`` or ``Categorical``, or a Composite
            holding ``"action"``); kept as ``actor.spec``.
        action_space: ``"one_hot"`` or ``"categorical"`` (which wins over
            ``spec``), or, as in TorchRL, the action spec itself (then it is
            ``spec`` too; see :func:`action_space_of`); read from ``spec``
            when ``None``.
        action_mask_key: the key of the action mask, if any.

    Raises:
        ModuleValueError: neither ``spec`` nor ``action_space`` tells the action
            space, the spec is not one choice among ``n`` actions, or
            ``spec`` and ``action_space`` are two different specs.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.specs import OneHot
        >>> from rlbricks.tensordict import TensorDict
        >>> actor = QValueActor(nn.Linear(4, 3), spec=OneHot(3))
        >>> td = actor(TensorDict({"observation": torch.randn(5, 4)}, [5]))
        >>> td["action"].shape, td["chosen_action_value"].shape
        (torch.Size([5, 3]), torch.Size([5, 1]))
        >>> bool((td["action"].float().argmax(-1) == td["action_value"].argmax(-1)).all())
        True
        >>> actor = QValueActor(nn.Linear(4, 3), action_space=OneHot(3))  # TorchRL's form
        >>> actor.action_space, actor.spec["action"] == OneHot(3)
        ('one_hot', True)
        >>> masked = QValueActor(lambda obs: obs, action_space="categorical",
        ...                      action_mask_key="action_mask")
        >>> masked(TensorDict({"observation": torch.tensor([3.0, 1.0, 2.0]),
        ...                    "action_mask": torch.tensor([False, True, True])}))["action"]
        tensor(2)
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: KeysLike = "observation",
        spec: TensorSpec[Any] | None = None,
        action_space: str | TensorSpec[Any] | None = None,
        action_mask_key: NestedKey | None = None,
    ) -> None:
        space, spec = resolve_action_space(spec, action_space, "QValueActor")
        net = TensorDictModule(module, in_keys, "action_value")
        super().__init__(net, _QValueHead(space, spec, action_mask_key))
        self.action_space = space
        self.spec = as_composite(spec, "action")


class _DistributionalQValueHead(_QValueHead):
    """Reads atom logits ``[..., n_actions, n_atoms]``, writes log-probs and the greedy action."""

    support: Tensor

    def __init__(
        self,
        support: Tensor,
        action_space: str,
        spec: TensorSpec[Any] | None,
        action_mask_key: NestedKey | None,
    ) -> None:
        super().__init__(action_space, spec, action_mask_key, "action_value")
        self.register_buffer("support", support)
        self.out_keys = ["action_value", "action"]

    def forward(self, tensordict: TensorDict) -> TensorDict:
        logits: Tensor = read_key(self, tensordict, "action_value")
        n_atoms = self.support.shape[-1]
        if logits.ndim < 2 or logits.shape[-1] != n_atoms:
            raise ModuleValueError(
                f"DistributionalQValueActor: the network's output must be "
                f"[..., n_actions, n_atoms={n_atoms}], got shape {tuple(logits.shape)}"
            )
        log_probs = torch.log_softmax(logits, dim=-1)
        q_values = (log_probs.exp() * self.support).sum(-1)
        action, _ = greedy_action(
            q_values, self._mask(tensordict), self.action_space, self.action_spec
        )
        tensordict.set("action_value", log_probs)
        tensordict.set("action", action)
        return tensordict


class DistributionalQValueActor(TensorDictSequential):
    """A greedy policy over return distributions (C51): argmax of the expected return.

    ``module`` maps the in_keys entries to logits over the atoms of each
    action's return distribution, ``[..., n_actions, n_atoms]``.  The actor
    takes a softmax over the atoms, writes the **log-probabilities** as
    ``"action_value"`` (same shape; what a distributional DQN loss reads),
    and writes as ``"action"`` the argmax over actions of the expected return
    ``Q(a) = sum_i p_i(a) * support_i``.  Masks work as in
    :class:`QValueActor`.

    Args:
        module: the network writing atom logits.
        support: the return value of each atom, ``[n_atoms]`` (e.g.
            ``torch.linspace(-10, 10, 51)``); kept as a buffer, so it follows
            ``.to(device)``.
        in_keys: the keys the network reads.
        spec: the action spec (``OneHot`` or ``Categorical``).
        action_space: ``"one_hot"`` or ``"categorical"``, or the action spec
            itself (as in :class:`QValueActor`); read from ``spec`` when ``None``.
        action_mask_key: the key of the action mask, if any.

    Raises:
        ModuleValueError: the action space is unknown, or ``support`` is not 1-d.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import DistributionalQValueActor
        >>> from rlbricks.tensordict import TensorDict
        >>> support = torch.linspace(-1.0, 1.0, 5)
        >>> net = nn.Sequential(nn.Linear(4, 2 * 5), nn.Unflatten(-1, (2, 5)))
        >>> actor = DistributionalQValueActor(net, support, action_space="categorical")
        >>> td = actor(TensorDict({"observation": torch.randn(3, 4)}, [3]))
        >>> td["action_value"].shape, td["action"].shape
        (torch.Size([3, 2, 5]), torch.Size([3]))
        >>> torch.allclose(td["action_value"].exp().sum(-1), torch.ones(3, 2))
        True
    """

    def __init__(
        self,
        module: Callable[..., Any],
        support: Tensor,
        in_keys: KeysLike = "observation",
        spec: TensorSpec[Any] | None = None,
        action_space: str | TensorSpec[Any] | None = None,
        action_mask_key: NestedKey | None = None,
    ) -> None:
        space, spec = resolve_action_space(spec, action_space, "DistributionalQValueActor")
        support = torch.as_tensor(support, dtype=torch.get_default_dtype())
        if support.ndim != 1 or support.numel() < 2:
            raise ModuleValueError(
                "DistributionalQValueActor: support must be a 1-d tensor of at least two atom "
                f"values, got shape {tuple(support.shape)}"
            )
        net = TensorDictModule(module, in_keys, "action_value")
        super().__init__(net, _DistributionalQValueHead(support, space, spec, action_mask_key))
        self.action_space = space
        self.spec = as_composite(spec, "action")
