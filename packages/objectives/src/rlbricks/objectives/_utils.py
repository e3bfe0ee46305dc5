"""Small helpers shared by the losses: regression distances, action encodings, spec bounds."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch import nn
from torch.func import functional_call

from rlbricks.modules import ModuleError
from rlbricks.modules import action_space_of
from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossModule
from rlbricks.tensordict import TensorDict

__all__ = [
    "LOSS_FUNCTIONS",
    "action_bounds",
    "bootstrap_target",
    "call_frozen",
    "check_loss_function",
    "infer_action_space",
    "masked_argmax",
    "distance_loss",
    "gather_action",
    "next_view",
    "read_action_mask",
    "register_critics",
]

LOSS_FUNCTIONS = ("l1", "l2", "smooth_l1")
"""The names ``distance_loss`` accepts."""


def check_loss_function(loss_function: str, owner: str) -> str:
    """``loss_function`` if it is one of :data:`LOSS_FUNCTIONS`, else a :class:`LossError`."""
    if loss_function not in LOSS_FUNCTIONS:
        raise LossValueError(
            f"{owner}: loss_function must be one of {list(LOSS_FUNCTIONS)}, got {loss_function!r}"
        )
    return loss_function


def distance_loss(prediction: Tensor, target: Tensor, loss_function: str) -> Tensor:
    """Element-wise regression distance between ``prediction`` and ``target`` (no reduction).

    ``"l2"`` is the squared error ``(p - t)^2``, ``"l1"`` the absolute error
    and ``"smooth_l1"`` the Huber loss with threshold 1 (quadratic ``0.5 d^2``
    below 1, linear ``|d| - 0.5`` above).

    Example:
        >>> import torch
        >>> from rlbricks.objectives._utils import distance_loss
        >>> p, t = torch.tensor([0.0, 0.0]), torch.tensor([0.5, 3.0])
        >>> distance_loss(p, t, "l2"), distance_loss(p, t, "smooth_l1")
        (tensor([0.2500, 9.0000]), tensor([0.1250, 2.5000]))
    """
    if loss_function == "l2":
        return (prediction - target).pow(2)
    if loss_function == "l1":
        return (prediction - target).abs()
    if loss_function == "smooth_l1":
        return torch.nn.functional.smooth_l1_loss(prediction, target, reduction="none")
    raise LossValueError(
        f"loss_function must be one of {list(LOSS_FUNCTIONS)}, got {loss_function!r}"
    )


def gather_action(values: Tensor, action: Tensor, action_space: str, n_extra: int = 0) -> Tensor:
    """The entries of ``values`` (``[*batch, n, *extra]``) at the taken ``action``: ``[*batch, *extra]``.

    ``action`` is one-hot (``[*batch, n]``, any dtype) for ``"one_hot"``, or an
    index (``[*batch]`` or ``[*batch, 1]``) for ``"categorical"``.
    ``n_extra`` is the number of trailing dims of ``values`` after the action
    dim (1 for the atoms of a distributional critic).

    Raises:
        LossValueError: the action's shape does not fit the values' shape.

    Example:
        >>> import torch
        >>> from rlbricks.objectives._utils import gather_action
        >>> q = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        >>> gather_action(q, torch.tensor([2, 0]), "categorical")
        tensor([3., 4.])
        >>> gather_action(q, torch.tensor([[False, True, False], [True, False, False]]), "one_hot")
        tensor([2., 4.])
    """
    dim = values.ndim - 1 - n_extra
    batch, n = values.shape[:dim], values.shape[dim]
    if action_space == "one_hot" and action.shape == (*batch, n):
        index = action.long().argmax(-1)
    elif action_space == "categorical" and action.shape == batch:
        index = action.long()
    elif action_space == "categorical" and action.shape == (*batch, 1):
        index = action.long().squeeze(-1)
    else:
        layout = (
            f"[*batch, {n}] one-hot"
            if action_space == "one_hot"
            else "[*batch] or [*batch, 1] index"
        )
        raise LossValueError(
            f"the action of shape {tuple(action.shape)} does not fit action values of shape "
            f"{tuple(values.shape)}: with action_space={action_space!r} the action must be "
            f"{layout}, batch={tuple(batch)}"
        )
    gather_index = index.reshape(*batch, 1, *([1] * n_extra))
    gather_index = gather_index.expand(*batch, 1, *values.shape[dim + 1 :])
    return values.gather(dim, gather_index).squeeze(dim)


def action_bounds(spec: Any) -> tuple[Tensor, Tensor] | None:
    """``(low, high)`` of an action spec with bounds, ``None`` for an unbounded one.

    ``spec`` may be a ``Bounded`` spec, a ``Composite`` holding ``"action"``
    or ``None``; any object with tensor attributes ``low`` and ``high`` works.
    """
    if spec is None:
        return None
    try:
        if "action" in spec:
            spec = spec["action"]
    except TypeError:
        pass
    low = getattr(spec, "low", None)
    high = getattr(spec, "high", None)
    if isinstance(low, Tensor) and isinstance(high, Tensor):
        return low, high
    return None


def next_view(tensordict: TensorDict) -> TensorDict:
    """A shallow copy of ``tensordict["next"]`` (new entries written to it stay out of the input)."""
    nxt: TensorDict = tensordict.get("next")
    return nxt.copy()


def infer_action_space(network: Any, action_space: Any, owner: str) -> str:
    """``action_space`` when given, else read from ``network`` (its ``action_space`` or spec).

    ``action_space`` is ``"one_hot"`` or ``"categorical"`` (TorchRL's
    ``"one-hot"`` too), or, as in TorchRL, the action spec itself
    (``action_space=env.action_spec``): see
    :func:`~rlbricks.modules.action_space_of`.

    Raises:
        LossValueError: an unknown action space, a spec that is not one choice
            among ``n`` actions, or none can be read from the network.
    """
    if action_space is None:
        action_space = getattr(network, "action_space", None)
    if action_space is None:
        spec = getattr(network, "spec", None)  # a Composite stands for its "action"
        name = None
        if spec is not None:
            with contextlib.suppress(ModuleError):
                name = action_space_of(spec, owner)
        if name is None:
            raise LossValueError(
                f"{owner}: cannot tell the action space from the network; pass "
                "action_space='one_hot' or 'categorical', or the action spec "
                "(action_space=env.action_spec)"
            )
        return name
    try:
        return action_space_of(action_space, owner)
    except ModuleError as err:
        raise LossValueError(str(err)) from err


def call_frozen(network: nn.Module, tensordict: TensorDict) -> TensorDict:
    """Run ``network`` with its parameters detached: gradients reach the inputs, not the network.

    Used for the actor losses: ``-Q(s, pi(s))`` must move the actor only, so
    the critic runs with detached copies of its parameters (its ``.grad``
    stays untouched), while the gradient still flows through the action.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import TensorDictModule
        >>> from rlbricks.objectives._utils import call_frozen
        >>> from rlbricks.tensordict import TensorDict
        >>> critic = TensorDictModule(nn.Linear(2, 1), ["x"], ["q"])
        >>> x = torch.ones(2, requires_grad=True)
        >>> call_frozen(critic, TensorDict({"x": x}))["q"].sum().backward()
        >>> x.grad is not None, critic.module.weight.grad is None
        (True, True)
    """
    detached = {name: p.detach() for name, p in network.named_parameters()}
    out: TensorDict = functional_call(network, detached, (tensordict,), strict=False)
    return out


def register_critics(
    loss: LossModule,
    qvalue_network: nn.Module | Sequence[nn.Module],
    num_qvalue_nets: int,
    delay: bool,
    owner: str,
) -> None:
    """Store ``num_qvalue_nets`` critics as ``loss.qvalue_network`` (an ``nn.ModuleList``).

    One network is copied (the copies re-initialised); a list must hold
    exactly ``num_qvalue_nets`` networks, used as they are.
    """
    if isinstance(num_qvalue_nets, bool) or not isinstance(num_qvalue_nets, int):
        raise LossValueError(
            f"{owner}: num_qvalue_nets must be an int >= 1, got {num_qvalue_nets!r}"
        )
    if num_qvalue_nets < 1:
        raise LossValueError(f"{owner}: num_qvalue_nets must be >= 1, got {num_qvalue_nets}")
    if isinstance(qvalue_network, nn.Module) and not isinstance(qvalue_network, nn.ModuleList):
        loss.register_network("qvalue_network", qvalue_network, delay=delay, copies=num_qvalue_nets)
        return
    critics = list(qvalue_network)
    if len(critics) != num_qvalue_nets:
        raise LossValueError(
            f"{owner}: got {len(critics)} critics but num_qvalue_nets={num_qvalue_nets}; pass one "
            "critic (copied) or exactly num_qvalue_nets of them"
        )
    if len({id(c) for c in critics}) != len(critics):
        raise LossValueError(
            f"{owner}: the critics must be distinct modules (separate parameters); pass one "
            "critic (it is copied) or num_qvalue_nets separate instances"
        )
    loss.register_network("qvalue_network", nn.ModuleList(critics), delay=delay)


def bootstrap_target(
    loss: LossModule, tensordict: TensorDict, next_value: Tensor, value: Tensor | None = None
) -> Tensor:
    """The value target of ``loss``'s estimator given precomputed next-state values.

    The off-policy losses compute ``V'(s')`` themselves (target networks,
    double-Q minimum, entropy bonus) and hand it to the value estimator,
    which runs no network (it is made with ``value_network=None``).  The
    estimator receives a fresh TensorDict laid out with *its* keys: the root
    value (``value``, e.g. the detached prediction, or zeros; only estimators
    such as GAE read it), and ``V'(s')``, reward, done and terminated (read
    with the loss's keys) under ``"next"``.  The estimator treats the last
    batch dim as time: TD(0) (the default) is per-step, so a replay batch
    ``[B]`` is fine; TD(lambda) needs trajectory batches ``[*batch, T]``.

    Returns:
        ``value_target``, shaped like the reward (``[*batch, 1]``).
    """
    estimator = loss.value_estimator
    ekeys = estimator.tensor_keys
    reward = loss._get(tensordict, "reward")
    terminated = loss._get(tensordict, "terminated")
    done = None
    if "done" in loss.tensor_keys:
        done = tensordict.get(loss.tensor_keys["done"], None)
    if done is None:
        done = terminated
    shape = reward.shape
    next_value = next_value.reshape(shape)
    root_value = torch.zeros_like(next_value) if value is None else value.detach().reshape(shape)
    nxt = TensorDict(batch_size=tensordict.batch_size)
    nxt.set(ekeys["value"], next_value)
    nxt.set(ekeys["reward"], reward)
    nxt.set(ekeys["done"], done)
    nxt.set(ekeys["terminated"], terminated)
    data = TensorDict({"next": nxt}, batch_size=tensordict.batch_size)
    data.set(ekeys["value"], root_value)
    if data.batch_dims == 0:
        data = data.unsqueeze(0)
    target: Tensor = estimator.value_estimate(data)
    return target.reshape(shape)


def read_action_mask(network: nn.Module, tensordict: TensorDict) -> Tensor | None:
    """The action mask ``network`` respects, read from ``tensordict`` (``None`` without one).

    The mask key is the ``action_mask_key`` of the first submodule that sets
    one (a :class:`~rlbricks.modules.QValueActor` built with
    ``action_mask_key=``).
    """
    for module in network.modules():
        key = getattr(module, "action_mask_key", None)
        if key is not None:
            mask: Tensor | None = tensordict.get(key, None)
            return mask
    return None


def masked_argmax(values: Tensor, mask: Tensor | None) -> Tensor:
    """``values.argmax(-1)`` over the allowed entries (``mask`` True) only.

    Example:
        >>> import torch
        >>> from rlbricks.objectives._utils import masked_argmax
        >>> masked_argmax(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([False, True, True]))
        tensor(2)
    """
    if mask is not None:
        values = values.masked_fill(~mask.to(torch.bool), float("-inf"))
    return values.argmax(-1)
