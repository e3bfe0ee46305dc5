"""``A2CLoss``: the advantage actor-critic loss (Mnih et al. 2016)."""

from __future__ import annotations

from torch import Tensor

from rlbricks.modules import TensorDictModuleBase
from rlbricks.objectives._onpolicy import OnPolicyLoss
from rlbricks.tensordict import TensorDict

__all__ = ["A2CLoss"]


class A2CLoss(OnPolicyLoss):
    """The advantage actor-critic loss (the synchronous A3C of Mnih et al. 2016).

    With the advantage ``A`` (detached):

    * ``loss_objective = -mean(log pi(a|s) * A)``;
    * ``loss_entropy = -entropy_coef * mean(H[pi(.|s)])`` (exact entropy, or a
      Monte Carlo estimate over ``samples_mc_entropy`` samples);
    * ``loss_critic = critic_coef * mean(d(V(s), value_target))``, ``d`` the
      squared error (``"l2"``) or the Huber loss (``"smooth_l1"``).

    Unlike PPO it reads no ``"sample_log_prob"``: the data must come from the
    current policy.  The advantage is computed when the input lacks it (GAE
    with ``gamma=0.99, lmbda=0.95`` by default, see :meth:`make_value_estimator`)
    on a shallow copy of the input.  The keys are those of
    :class:`~rlbricks.objectives.PPOLoss`, and the gradients reach the same
    parameters: the objective and entropy the actor's, the critic loss the
    critic's, both a shared trunk.  Diagnostic: ``entropy``.

    Args:
        actor_network: the policy; it must build a distribution (``get_dist(td)``).
        critic_network: the state-value network (writes ``"state_value"``),
            or ``None``: no critic loss, the input must hold the advantage.
        entropy_bonus: add ``loss_entropy``.
        samples_mc_entropy: samples of the Monte Carlo entropy estimate.
        entropy_coef: weight of the entropy bonus.
        critic_coef: weight of the critic loss.
        loss_critic_type: ``"smooth_l1"`` or ``"l2"``.

    Raises:
        LossValueError: an actor without ``get_dist`` or an unknown ``loss_critic_type``.

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import ppo_models
        >>> from rlbricks.objectives import A2CLoss
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> actor, critic = ppo_models(Composite(observation=Unbounded(shape=(3,))),
        ...                            Bounded(-1.0, 1.0, shape=(2,)))
        >>> loss = A2CLoss(actor, critic, entropy_coef=0.001, loss_critic_type="l2")
        >>> with torch.no_grad():
        ...     batch = actor(TensorDict({"observation": torch.randn(4, 5, 3)}, [4, 5]))
        >>> batch["next"] = {"observation": torch.randn(4, 5, 3), "reward": torch.ones(4, 5, 1),
        ...                  "done": torch.zeros(4, 5, 1, dtype=torch.bool),
        ...                  "terminated": torch.zeros(4, 5, 1, dtype=torch.bool)}
        >>> out = loss(batch)
        >>> sorted(out.keys())
        ['entropy', 'loss_critic', 'loss_entropy', 'loss_objective']
    """

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        critic_network: TensorDictModuleBase | None = None,
        *,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coef: float = 0.01,
        critic_coef: float = 1.0,
        loss_critic_type: str = "smooth_l1",
    ) -> None:
        super().__init__(
            actor_network,
            critic_network,
            entropy_bonus=entropy_bonus,
            entropy_coef=entropy_coef,
            critic_coef=critic_coef,
            loss_critic_type=loss_critic_type,
            samples_mc_entropy=samples_mc_entropy,
        )

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The losses of a batch; the advantage is computed first when the input lacks it.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
            >>> from rlbricks.objectives import A2CLoss
            >>> from rlbricks.tensordict import TensorDict
            >>> net = TensorDictModule(nn.Linear(2, 3), ["observation"], ["logits"])
            >>> _ = nn.init.zeros_(net.module.weight), nn.init.zeros_(net.module.bias)
            >>> actor = ProbabilisticActor(net, ["logits"],
            ...                            distribution_class=torch.distributions.Categorical)
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": torch.zeros(4).long(),
            ...                     "advantage": torch.full((4, 1), 2.0)}, [4])
            >>> out = A2CLoss(actor, entropy_bonus=False)(batch)
            >>> round(out["loss_objective"].item(), 4)  # -log(1/3) * 2
            2.1972
        """
        td, advantage = self._prepare(tensordict)
        log_prob, dist = self._log_prob(td, advantage)
        out: dict[str, Tensor] = {"loss_objective": -(log_prob * advantage).mean()}
        self._add_entropy(out, dist)
        self._add_critic_loss(out, td)
        return TensorDict(out)
