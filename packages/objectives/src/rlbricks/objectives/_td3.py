"""``TD3Loss``: twin delayed DDPG (Fujimoto et al. 2018)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import cast

import torch
from torch import Tensor
from torch import nn

from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossModule
from rlbricks.objectives._utils import action_bounds
from rlbricks.objectives._utils import bootstrap_target
from rlbricks.objectives._utils import call_frozen
from rlbricks.objectives._utils import check_loss_function
from rlbricks.objectives._utils import distance_loss
from rlbricks.objectives._utils import next_view
from rlbricks.objectives._utils import register_critics
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["TD3Loss"]


class TD3Loss(LossModule):
    """The TD3 losses: twin critics, clipped double-Q targets and target policy smoothing.

    * ``loss_qvalue``: the sum over the ``num_qvalue_nets`` critics of the
      mean distance between ``Q_i(s, a)`` and the target
      ``r + gamma * (1 - terminated) * min_i Q'_i(s', a')`` (value estimator,
      TD(0) by default), where ``a' = pi'(s') + clip(N(0, policy_noise^2),
      -noise_clip, noise_clip)`` projected into the action spec's bounds.
    * ``loss_actor``: ``-Q_1(s, pi(s))`` with the critic's parameters frozen
      (moves the actor only).

    The critics are ``num_qvalue_nets`` copies of ``qvalue_network`` with
    separate parameters (the copies re-initialised), or the networks given as
    a list.  Delaying the actor updates (one actor step every ``d`` critic
    steps, as in the paper) is up to the training loop: step the optimiser of
    ``loss_actor`` every ``d`` calls.  ``policy_noise`` and ``noise_clip``
    are in action units.  The mean over the critics of ``|Q_i(s, a) -
    target|`` is written into the input as ``"td_error"`` (``[*batch]``).

    Keys (change them with :meth:`set_keys`):

    | name | default | role |
    |---|---|---|
    | ``action`` | ``"action"`` | the taken action, also what the actor writes |
    | ``state_action_value`` | ``"state_action_value"`` | what the critics write |
    | ``reward`` | ``("next", "reward")`` | reward ``[*batch, 1]`` |
    | ``done`` | ``("next", "done")`` | end of the trajectory ``[*batch, 1]`` |
    | ``terminated`` | ``("next", "terminated")`` | no bootstrap after it ``[*batch, 1]`` |
    | ``td_error`` | ``"td_error"`` | written: ``[*batch]`` |
    | ``priority_weight`` | ``"_weight"`` | importance weights, used when present |

    Returns ``{"loss_actor", "loss_qvalue", "pred_value", "target_value",
    "next_state_value"}``.

    Args:
        actor_network: a deterministic actor writing ``"action"``.
        qvalue_network: a critic writing ``"state_action_value"``, or a list
            of ``num_qvalue_nets`` critics.
        action_spec: the action spec whose ``low``/``high`` bound the
            smoothed target actions; ``None`` reads the actor's ``spec``
            (no bounds if it has none).
        num_qvalue_nets: the number of critics.
        policy_noise: standard deviation of the target policy noise.
        noise_clip: the noise is clipped to ``[-noise_clip, noise_clip]``.
        delay_actor: keep a target copy of the actor.
        delay_qvalue: keep target copies of the critics.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"`` for ``loss_qvalue``.

    Raises:
        LossValueError: an unknown ``loss_function``, a negative noise, or a list
            of critics whose length is not ``num_qvalue_nets``.

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import td3_models
        >>> from rlbricks.objectives import SoftUpdate, TD3Loss
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> obs = Composite(observation=Unbounded(shape=(3,)))
        >>> actor, critic = td3_models(obs, Bounded(-1.0, 1.0, shape=(2,)), num_cells=(16,))
        >>> loss = TD3Loss(actor, critic)
        >>> batch = TensorDict({
        ...     "observation": torch.randn(8, 3), "action": torch.rand(8, 2) * 2 - 1,
        ...     "next": {"observation": torch.randn(8, 3), "reward": torch.randn(8, 1),
        ...              "done": torch.zeros(8, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)},
        ... }, batch_size=[8])
        >>> out = loss(batch)
        >>> (out["loss_actor"] + out["loss_qvalue"]).backward()
        >>> len(loss.qvalue_network), len(loss.target_qvalue_network)
        (2, 2)
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
    qvalue_network: nn.ModuleList

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module | Sequence[nn.Module],
        *,
        action_spec: Any = None,
        num_qvalue_nets: int = 2,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        delay_actor: bool = True,
        delay_qvalue: bool = True,
        loss_function: str = "l2",
    ) -> None:
        super().__init__()
        self.loss_function = check_loss_function(loss_function, "TD3Loss")
        if policy_noise < 0 or noise_clip < 0:
            raise LossValueError(
                f"TD3Loss: policy_noise and noise_clip must be >= 0, got {policy_noise} and "
                f"{noise_clip}"
            )
        self.policy_noise = float(policy_noise)
        self.noise_clip = float(noise_clip)
        self.register_network("actor_network", actor_network, delay=delay_actor)
        register_critics(self, qvalue_network, num_qvalue_nets, delay_qvalue, "TD3Loss")
        self.num_qvalue_nets = len(self.qvalue_network)
        if action_spec is None:
            action_spec = getattr(actor_network, "spec", None)
        bounds = action_bounds(action_spec)
        self.action_low: Tensor | None
        self.action_high: Tensor | None
        if bounds is None:
            self.register_buffer("action_low", None)
            self.register_buffer("action_high", None)
        else:
            self.register_buffer("action_low", bounds[0].detach().clone())
            self.register_buffer("action_high", bounds[1].detach().clone())

    def _value_estimator_defaults(self) -> dict[str, Any]:
        # the loss computes the next-state values itself; gamma defaults to 0.99
        return {"value_network": None, "gamma": 0.99}

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The actor and critic losses of a batch ``[*batch]``; writes ``"td_error"`` into it.

        Example:
            >>> import torch
            >>> from rlbricks.modules.recipes import td3_models
            >>> from rlbricks.objectives import TD3Loss
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.tensordict import TensorDict
            >>> actor, critic = td3_models(Composite(observation=Unbounded(shape=(2,))),
            ...                            Unbounded(shape=(1,)), num_cells=(8,))
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": torch.randn(4, 1),
            ...     "next": {"observation": torch.randn(4, 2), "reward": torch.zeros(4, 1),
            ...              "done": torch.zeros(4, 1, dtype=torch.bool),
            ...              "terminated": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
            >>> sorted(TD3Loss(actor, critic)(batch).keys())
            ['loss_actor', 'loss_qvalue', 'next_state_value', 'pred_value', 'target_value']
        """
        keys = self.tensor_keys
        self._get(tensordict, "action")
        preds = [
            q(tensordict.copy()).get(keys.state_action_value).squeeze(-1)
            for q in self.qvalue_network
        ]
        with torch.no_grad():
            next_value = self._next_value(tensordict)
            target = bootstrap_target(
                self, tensordict, next_value, torch.stack(preds).mean(0)
            ).reshape(preds[0].shape)
        loss_qvalue = sum(
            self._reduce(distance_loss(pred, target, self.loss_function), tensordict)
            for pred in preds
        )
        td_error = torch.stack([(pred - target).abs() for pred in preds]).mean(0)
        self._write_td_error(tensordict, td_error)
        return TensorDict(
            {
                "loss_actor": self.actor_loss(tensordict),
                "loss_qvalue": loss_qvalue,
                "pred_value": torch.stack(preds).detach().mean(),
                "target_value": target.mean(),
                "next_state_value": next_value.mean(),
            }
        )

    def smoothed_target_action(self, action: Tensor) -> Tensor:
        """``action`` plus clipped Gaussian noise, projected into the action bounds.

        Example:
            >>> import torch
            >>> from rlbricks.modules.recipes import td3_models
            >>> from rlbricks.objectives import TD3Loss
            >>> from rlbricks.specs import Bounded, Composite, Unbounded
            >>> actor, critic = td3_models(Composite(observation=Unbounded(shape=(2,))),
            ...                            Bounded(-1.0, 1.0, shape=(1,)), num_cells=(8,))
            >>> loss = TD3Loss(actor, critic, policy_noise=10.0, noise_clip=0.5)
            >>> a = loss.smoothed_target_action(torch.full((1000, 1), 0.9))
            >>> bool(a.max() <= 1.0), bool(a.min() >= 0.4 - 1e-6)
            (True, True)
        """
        noise = (torch.randn_like(action) * self.policy_noise).clamp(
            -self.noise_clip, self.noise_clip
        )
        smoothed = action + noise
        if self.action_low is not None and self.action_high is not None:
            low = self.action_low.to(smoothed.dtype)
            high = self.action_high.to(smoothed.dtype)
            smoothed = torch.maximum(torch.minimum(smoothed, high), low)
        return smoothed

    def _next_value(self, tensordict: TensorDict) -> Tensor:
        keys = self.tensor_keys
        nxt = self.target_network("actor_network")(next_view(tensordict))
        nxt.set(keys.action, self.smoothed_target_action(nxt.get(keys.action)))
        critics = cast(nn.ModuleList, self.target_network("qvalue_network"))
        values = [q(nxt.copy()).get(keys.state_action_value) for q in critics]
        return torch.stack(values).min(0).values

    def actor_loss(self, tensordict: TensorDict) -> Tensor:
        """``loss_actor = mean(-Q_1(s, pi(s)))``, with the critic's parameters frozen.

        Example:
            >>> import torch
            >>> from rlbricks.modules.recipes import td3_models
            >>> from rlbricks.objectives import TD3Loss
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.tensordict import TensorDict
            >>> actor, critic = td3_models(Composite(observation=Unbounded(shape=(2,))),
            ...                            Unbounded(shape=(1,)), num_cells=(8,))
            >>> loss = TD3Loss(actor, critic)
            >>> loss.actor_loss(TensorDict({"observation": torch.randn(4, 2)}, [4])).backward()
            >>> all(p.grad is None for p in loss.qvalue_network.parameters())
            True
        """
        keys = self.tensor_keys
        policy_td = self.actor_network(tensordict.exclude(keys.action))
        q = call_frozen(self.qvalue_network[0], policy_td).get(keys.state_action_value)
        return -q.mean()
