"""``DDPGLoss``: deterministic policy gradient with a Q critic (Lillicrap et al. 2016)."""

from __future__ import annotations

from typing import Any
from typing import ClassVar

import torch
from torch import Tensor
from torch import nn

from rlbricks.objectives._loss_base import LossModule
from rlbricks.objectives._utils import bootstrap_target
from rlbricks.objectives._utils import call_frozen
from rlbricks.objectives._utils import check_loss_function
from rlbricks.objectives._utils import distance_loss
from rlbricks.objectives._utils import next_view
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["DDPGLoss"]


class DDPGLoss(LossModule):
    """The DDPG losses: a TD critic ``Q(s, a)`` and a deterministic actor maximising it.

    * ``loss_value``: the distance between ``Q(s, a)`` and the target
      ``r + gamma * (1 - terminated) * Q'(s', pi'(s'))`` made by the value
      estimator (TD(0) by default) from the target actor ``pi'`` and target
      critic ``Q'`` (the online ones when not delayed), without gradient.
    * ``loss_actor``: ``-Q(s, pi(s))``.  The critic runs with detached
      parameters, so this loss moves the actor only; ``loss_value`` moves
      the critic only.

    The absolute TD error is written into the input as ``"td_error"``
    (``[*batch]``), and importance weights (``"_weight"``) weight
    ``loss_value`` when present.

    Keys (change them with :meth:`set_keys`):

    | name | default | role |
    |---|---|---|
    | ``action`` | ``"action"`` | the taken action, also what the actor writes |
    | ``state_action_value`` | ``"state_action_value"`` | what the critic writes |
    | ``reward`` | ``("next", "reward")`` | reward ``[*batch, 1]`` |
    | ``done`` | ``("next", "done")`` | end of the trajectory ``[*batch, 1]`` |
    | ``terminated`` | ``("next", "terminated")`` | no bootstrap after it ``[*batch, 1]`` |
    | ``td_error`` | ``"td_error"`` | written: ``[*batch]`` |
    | ``priority_weight`` | ``"_weight"`` | importance weights, used when present |

    Returns ``{"loss_actor", "loss_value", "pred_value", "target_value"}``.

    Args:
        actor_network: a deterministic actor writing ``"action"`` (an
            :class:`~rlbricks.modules.Actor`).
        value_network: a critic reading the observation and ``"action"`` and
            writing ``"state_action_value"`` (a :class:`~rlbricks.modules.ValueOperator`).
        delay_actor: keep a target copy of the actor.
        delay_value: keep a target copy of the critic.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"`` for ``loss_value``.

    Raises:
        LossValueError: an unknown ``loss_function``.

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import ddpg_models
        >>> from rlbricks.objectives import DDPGLoss, SoftUpdate
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> obs = Composite(observation=Unbounded(shape=(3,)))
        >>> actor, critic = ddpg_models(obs, Bounded(-1.0, 1.0, shape=(1,)), num_cells=(16,))
        >>> loss = DDPGLoss(actor, critic)
        >>> _ = loss.make_value_estimator(gamma=0.99)
        >>> batch = TensorDict({
        ...     "observation": torch.randn(8, 3), "action": torch.rand(8, 1) * 2 - 1,
        ...     "next": {"observation": torch.randn(8, 3), "reward": torch.randn(8, 1),
        ...              "done": torch.zeros(8, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)},
        ... }, batch_size=[8])
        >>> out = loss(batch)
        >>> (out["loss_actor"] + out["loss_value"]).backward()
        >>> SoftUpdate(loss, tau=0.01).step()
    """

    default_keys: ClassVar[dict[str, NestedKey]] = {
        "action": "action",
        "state_action_value": "state_action_value",
        "reward": ("next", "reward"),
        "done": ("next", "done"),
        "terminated": ("next", "terminated"),
        "td_error": "td_error",
        "priority_weight": "_weight",
    }
    default_value_type: ClassVar[Any] = "td0"

    actor_network: nn.Module
    value_network: nn.Module

    def __init__(
        self,
        actor_network: nn.Module,
        value_network: nn.Module,
        *,
        delay_actor: bool = False,
        delay_value: bool = True,
        loss_function: str = "l2",
    ) -> None:
        super().__init__()
        self.loss_function = check_loss_function(loss_function, "DDPGLoss")
        self.register_network("actor_network", actor_network, delay=delay_actor)
        self.register_network("value_network", value_network, delay=delay_value)

    def _value_estimator_defaults(self) -> dict[str, Any]:
        # the loss computes the next-state values itself; gamma defaults to 0.99
        return {"value_network": None, "gamma": 0.99}

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The actor and critic losses of a batch ``[*batch]``; writes ``"td_error"`` into it.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ValueOperator
            >>> from rlbricks.objectives import DDPGLoss
            >>> from rlbricks.tensordict import TensorDict
            >>> class Q(nn.Module):
            ...     def __init__(self):
            ...         super().__init__()
            ...         self.net = nn.Linear(3, 1)
            ...     def forward(self, obs, action):
            ...         return self.net(torch.cat([obs, action], -1))
            >>> loss = DDPGLoss(Actor(nn.Linear(2, 1)), ValueOperator(Q(), ["observation", "action"]))
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": torch.randn(4, 1),
            ...     "next": {"observation": torch.randn(4, 2), "reward": torch.zeros(4, 1),
            ...              "done": torch.zeros(4, 1, dtype=torch.bool),
            ...              "terminated": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
            >>> sorted(loss(batch).keys())
            ['loss_actor', 'loss_value', 'pred_value', 'target_value']
        """
        loss_value, pred, target = self.value_loss(tensordict)
        return TensorDict(
            {
                "loss_actor": self.actor_loss(tensordict),
                "loss_value": loss_value,
                "pred_value": pred.detach().mean(),
                "target_value": target.mean(),
            }
        )

    def value_loss(self, tensordict: TensorDict) -> tuple[Tensor, Tensor, Tensor]:
        """``(loss_value, Q(s, a), target)``; writes ``"td_error"`` into ``tensordict``.

        Example:
            >>> import torch
            >>> from rlbricks.modules.recipes import ddpg_models
            >>> from rlbricks.objectives import DDPGLoss
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.tensordict import TensorDict
            >>> actor, critic = ddpg_models(Composite(observation=Unbounded(shape=(2,))),
            ...                             Unbounded(shape=(1,)), num_cells=(8,))
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": torch.randn(4, 1),
            ...     "next": {"observation": torch.randn(4, 2), "reward": torch.zeros(4, 1),
            ...              "done": torch.ones(4, 1, dtype=torch.bool),
            ...              "terminated": torch.ones(4, 1, dtype=torch.bool)}}, [4])
            >>> loss_value, pred, target = DDPGLoss(actor, critic).value_loss(batch)
            >>> target.flatten()  # terminated: the target is the reward
            tensor([0., 0., 0., 0.])
        """
        keys = self.tensor_keys
        self._get(tensordict, "action")
        pred = self.value_network(tensordict.copy()).get(keys.state_action_value).squeeze(-1)
        with torch.no_grad():
            nxt = self.target_network("actor_network")(next_view(tensordict))
            nxt = self.target_network("value_network")(nxt)
            next_value = nxt.get(keys.state_action_value)
            target = bootstrap_target(self, tensordict, next_value, pred).reshape(pred.shape)
        self._write_td_error(tensordict, (pred - target).abs())
        loss = self._reduce(distance_loss(pred, target, self.loss_function), tensordict)
        return loss, pred, target

    def actor_loss(self, tensordict: TensorDict) -> Tensor:
        """``loss_actor = mean(-Q(s, pi(s)))``, with the critic's parameters frozen.

        Example:
            >>> import torch
            >>> from rlbricks.modules.recipes import ddpg_models
            >>> from rlbricks.objectives import DDPGLoss
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.tensordict import TensorDict
            >>> actor, critic = ddpg_models(Composite(observation=Unbounded(shape=(2,))),
            ...                             Unbounded(shape=(1,)), num_cells=(8,))
            >>> loss = DDPGLoss(actor, critic)
            >>> loss.actor_loss(TensorDict({"observation": torch.randn(4, 2)}, [4])).backward()
            >>> all(p.grad is None for p in critic.parameters())
            True
        """
        keys = self.tensor_keys
        policy_td = self.actor_network(tensordict.exclude(keys.action))
        q = call_frozen(self.value_network, policy_td).get(keys.state_action_value)
        return -q.mean()
