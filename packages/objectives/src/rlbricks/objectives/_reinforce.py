"""``ReinforceLoss``: the REINFORCE policy gradient (Williams 1992), with an optional baseline."""

from __future__ import annotations

from typing import Any
from typing import ClassVar

from torch import Tensor

from rlbricks.modules import TensorDictModuleBase
from rlbricks.objectives._onpolicy import OnPolicyLoss
from rlbricks.tensordict import TensorDict

__all__ = ["ReinforceLoss"]


class ReinforceLoss(OnPolicyLoss):
    """REINFORCE: the Monte Carlo policy gradient, with a learned baseline when a critic is given.

    ``loss_objective = -mean(log pi(a|s) * A)`` where the advantage ``A``
    (detached) is, by default (the TD(1) estimator, ``gamma=0.99``), the
    discounted return-to-go ``G_t`` minus the baseline ``V(s_t)``.  Without a
    critic the baseline is zero and ``A = G_t`` (a truncated episode is then
    cut off: nothing is bootstrapped after its last step).  With a critic,
    ``loss_critic = mean(d(V(s), value_target))`` regresses it on the return,
    ``d`` the squared error (``"l2"``) or the Huber loss (``"smooth_l1"``).

    ``delay_value=True`` keeps a frozen target copy of the critic
    (``loss.target_critic_network``) that the estimator uses for the baseline
    and for bootstrapping; update it with
    :class:`~rlbricks.objectives.SoftUpdate` or
    :class:`~rlbricks.objectives.HardUpdate`.

    The advantage is computed when the input lacks it, on a shallow copy of
    the input (change the estimator with :meth:`make_value_estimator`); the
    keys are those of :class:`~rlbricks.objectives.PPOLoss` (it reads no
    ``"sample_log_prob"``).  ``loss_objective`` reaches the actor's
    parameters only, ``loss_critic`` the critic's only.

    Args:
        actor_network: the policy; it must build a distribution (``get_dist(td)``).
        critic_network: the baseline (writes ``"state_value"``), or ``None``.
        delay_value: use a target copy of the critic for the advantage.
        loss_critic_type: ``"smooth_l1"`` or ``"l2"``.

    Raises:
        LossValueError: an actor without ``get_dist``, an unknown
            ``loss_critic_type``, or ``delay_value`` without a critic.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
        >>> from rlbricks.objectives import ReinforceLoss
        >>> from rlbricks.tensordict import TensorDict
        >>> net = TensorDictModule(nn.Linear(2, 3), ["observation"], ["logits"])
        >>> actor = ProbabilisticActor(net, ["logits"], distribution_class=torch.distributions.Categorical)
        >>> loss = ReinforceLoss(actor).make_value_estimator(gamma=0.5)
        >>> # one trajectory of 3 steps, reward 1 each: returns-to-go 1.75, 1.5, 1
        >>> batch = TensorDict({"observation": torch.randn(1, 3, 2), "action": torch.zeros(1, 3).long(),
        ...     "next": {"observation": torch.randn(1, 3, 2), "reward": torch.ones(1, 3, 1),
        ...              "done": torch.tensor([[[False], [False], [True]]]),
        ...              "terminated": torch.tensor([[[False], [False], [True]]])}}, [1, 3])
        >>> loss.value_estimator(batch)["advantage"].flatten()
        tensor([1.7500, 1.5000, 1.0000])
        >>> sorted(loss(batch).keys())
        ['loss_objective']
    """

    default_value_type: ClassVar[Any] = "td1"

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        critic_network: TensorDictModuleBase | None = None,
        *,
        delay_value: bool = False,
        loss_critic_type: str = "smooth_l1",
    ) -> None:
        super().__init__(
            actor_network,
            critic_network,
            entropy_bonus=False,
            loss_critic_type=loss_critic_type,
            delay_value=delay_value,
        )

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The losses of a batch; the advantage is computed first when the input lacks it.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule, ValueOperator
            >>> from rlbricks.objectives import ReinforceLoss
            >>> from rlbricks.tensordict import TensorDict
            >>> net = TensorDictModule(nn.Linear(2, 3), ["observation"], ["logits"])
            >>> actor = ProbabilisticActor(net, ["logits"],
            ...                            distribution_class=torch.distributions.Categorical)
            >>> loss = ReinforceLoss(actor, ValueOperator(nn.Linear(2, 1)), delay_value=True)
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": torch.zeros(4).long(),
            ...     "advantage": torch.ones(4, 1), "value_target": torch.ones(4, 1)}, [4])
            >>> sorted(loss(batch).keys())
            ['loss_critic', 'loss_objective']
        """
        td, advantage = self._prepare(tensordict)
        log_prob, _ = self._log_prob(td, advantage)
        out: dict[str, Tensor] = {"loss_objective": -(log_prob * advantage).mean()}
        self._add_critic_loss(out, td)
        return TensorDict(out)
