"""``DiscreteSACLoss``: soft actor-critic for discrete actions (Christodoulou 2019)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch
from torch import Tensor
from torch import nn

from rlbricks.objectives._errors import LossError
from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._sac import SoftActorCriticBase
from rlbricks.objectives._utils import bootstrap_target
from rlbricks.objectives._utils import distance_loss
from rlbricks.objectives._utils import gather_action
from rlbricks.objectives._utils import infer_action_space
from rlbricks.objectives._utils import next_view
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

if TYPE_CHECKING:
    from rlbricks.specs import TensorSpec

__all__ = ["DiscreteSACLoss"]


def _log_probs(dist: torch.distributions.Distribution, n: int) -> tuple[Tensor, Tensor]:
    """``(probs, log_probs)`` over the ``n`` actions of a categorical distribution."""
    logits = getattr(dist, "logits", None)
    if not isinstance(logits, Tensor) or logits.shape[-1] != n:
        raise LossValueError(
            "DiscreteSACLoss: the actor's distribution must be categorical over num_actions="
            f"{n} actions (Categorical or OneHotCategorical with logits [..., {n}])"
        )
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs.exp(), log_probs


def _expect(probs: Tensor, values: Tensor) -> Tensor:
    """``sum_a probs * values`` where impossible actions (``probs == 0``) count 0, not NaN."""
    safe = torch.where(probs > 0, values, torch.zeros_like(values))  # keeps gradients finite
    return (probs * safe).sum(-1)


class DiscreteSACLoss(SoftActorCriticBase):
    """The SAC losses for discrete actions: expectations over actions replace sampling.

    The critics map the observation to one value per action (like a DQN
    network, written under ``"action_value"``); the actor is a categorical
    :class:`~rlbricks.modules.ProbabilisticActor`.  With ``pi = pi(.|s)`` and
    ``alpha = exp(log_alpha)``:

    * ``loss_qvalue``: the sum over the critics of the mean distance between
      ``Q_i(s, a)`` (the taken action) and ``r + gamma * (1 - terminated) *
      V'(s')`` (value estimator, TD(0) by default), with
      ``V'(s') = sum_a pi(a|s') (min_i Q'_i(s', a) - alpha log pi(a|s'))``.
    * ``loss_actor``: ``mean(sum_a pi(a|s) (alpha log pi(a|s) - min_i Q_i(s, a)))``
      with the Q-values detached (moves the actor only).
    * ``loss_alpha``: ``mean(log_alpha * (H(pi) - target_entropy))`` with the
      entropy ``H`` detached (moves ``log_alpha`` only).

    ``target_entropy="auto"`` is ``target_entropy_weight * log(num_actions)``,
    with ``target_entropy_weight=0.98`` (98% of the uniform policy's
    entropy).  Actions with probability 0 (masked logits of ``-inf``) add
    nothing to the sums.  The mean over the critics of ``|Q_i(s, a) -
    target|`` is written into the input as ``"td_error"``; importance weights
    (``"_weight"``) weight ``loss_qvalue``.

    Keys (change them with :meth:`set_keys`):

    | name | default | role |
    |---|---|---|
    | ``action`` | ``"action"`` | the taken action (one-hot or index) |
    | ``action_value`` | ``"action_value"`` | what the critics write, ``[*batch, num_actions]`` |
    | ``reward`` | ``("next", "reward")`` | reward ``[*batch, 1]`` |
    | ``done`` | ``("next", "done")`` | end of the trajectory ``[*batch, 1]`` |
    | ``terminated`` | ``("next", "terminated")`` | no bootstrap after it ``[*batch, 1]`` |
    | ``td_error`` | ``"td_error"`` | written: ``[*batch]`` |
    | ``priority_weight`` | ``"_weight"`` | importance weights, used when present |

    Args:
        actor_network: a categorical ``ProbabilisticActor`` (its distribution has ``logits``).
        qvalue_network: a critic writing ``"action_value"`` (e.g. a
            :class:`~rlbricks.modules.QValueActor`), or a list of
            ``num_qvalue_nets`` critics.
        num_actions: the number of actions.
        num_qvalue_nets: the number of critics.
        alpha_init: the initial temperature.
        fixed_alpha: keep ``alpha`` fixed at ``alpha_init``.
        target_entropy_weight: the fraction of ``log(num_actions)`` used by ``"auto"``.
        target_entropy: ``"auto"`` or a number.
        delay_qvalue: keep target copies of the critics.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"`` for ``loss_qvalue``.
        action_space: ``"one_hot"`` or ``"categorical"``, or the action spec
            itself (as in :class:`DQNLoss`); read from the actor's or
            critic's spec when ``None``.

    Raises:
        LossValueError: bad ``num_actions``, ``target_entropy`` or ``loss_function``,
            ``alpha_init <= 0``, or an unknown action space.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import QValueActor
        >>> from rlbricks.modules.recipes import ppo_models
        >>> from rlbricks.objectives import DiscreteSACLoss
        >>> from rlbricks.specs import Categorical, Composite, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> obs = Composite(observation=Unbounded(shape=(4,)))
        >>> actor, _ = ppo_models(obs, Categorical(3), num_cells=(16,))
        >>> loss = DiscreteSACLoss(actor, QValueActor(nn.Linear(4, 3), spec=Categorical(3)), num_actions=3)
        >>> round(loss.target_entropy, 4)  # 0.98 * log(3)
        1.0766
        >>> batch = TensorDict({
        ...     "observation": torch.randn(8, 4), "action": torch.randint(3, (8,)),
        ...     "next": {"observation": torch.randn(8, 4), "reward": torch.randn(8, 1),
        ...              "done": torch.zeros(8, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)},
        ... }, batch_size=[8])
        >>> out = loss(batch)
        >>> (out["loss_actor"] + out["loss_qvalue"] + out["loss_alpha"]).backward()
    """

    default_keys: ClassVar[dict[str, NestedKey]] = {
        "action": "action",
        "action_value": "action_value",
        "reward": ("next", "reward"),
        "done": ("next", "done"),
        "terminated": ("next", "terminated"),
        "td_error": "td_error",
        "priority_weight": "_weight",
    }

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module | Sequence[nn.Module],
        num_actions: int,
        *,
        num_qvalue_nets: int = 2,
        alpha_init: float = 1.0,
        fixed_alpha: bool = False,
        target_entropy_weight: float = 0.98,
        target_entropy: float | str = "auto",
        delay_qvalue: bool = True,
        loss_function: str = "l2",
        action_space: str | TensorSpec[Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(num_actions, bool) or not isinstance(num_actions, int) or num_actions < 2:
            raise LossValueError(
                f"DiscreteSACLoss: num_actions must be an int >= 2, got {num_actions!r}"
            )
        self.num_actions = num_actions
        if action_space is None:
            try:
                action_space = infer_action_space(actor_network, None, "DiscreteSACLoss")
            except LossError:
                critics = (
                    [qvalue_network]
                    if isinstance(qvalue_network, nn.Module)
                    and not isinstance(qvalue_network, nn.ModuleList)
                    else list(qvalue_network)
                )
                first = critics[0] if critics else None
                action_space = infer_action_space(first, None, "DiscreteSACLoss")
        self.action_space = infer_action_space(None, action_space, "DiscreteSACLoss")
        self._setup(
            "DiscreteSACLoss",
            actor_network,
            qvalue_network,
            num_qvalue_nets,
            alpha_init,
            fixed_alpha,
            delay_qvalue,
            loss_function,
        )
        if target_entropy == "auto":
            self.target_entropy = float(target_entropy_weight) * math.log(num_actions)
        elif isinstance(target_entropy, (int, float)) and not isinstance(target_entropy, bool):
            self.target_entropy = float(target_entropy)
        else:
            raise LossValueError(
                f"DiscreteSACLoss: target_entropy must be 'auto' or a number, got {target_entropy!r}"
            )

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The critic, actor and temperature losses of a batch ``[*batch]``.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.modules.recipes import ppo_models
            >>> from rlbricks.objectives import DiscreteSACLoss
            >>> from rlbricks.specs import OneHot, Composite, Unbounded
            >>> from rlbricks.tensordict import TensorDict
            >>> actor, _ = ppo_models(Composite(observation=Unbounded(shape=(2,))), OneHot(2), num_cells=(8,))
            >>> loss = DiscreteSACLoss(actor, QValueActor(nn.Linear(2, 2), spec=OneHot(2)), num_actions=2)
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": OneHot(2).rand((4,)),
            ...     "next": {"observation": torch.randn(4, 2), "reward": torch.zeros(4, 1),
            ...              "done": torch.zeros(4, 1, dtype=torch.bool),
            ...              "terminated": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
            >>> sorted(loss(batch).keys())
            ['alpha', 'entropy', 'loss_actor', 'loss_alpha', 'loss_qvalue', 'pred_value', 'target_value']
        """
        keys = self.tensor_keys
        action = self._get(tensordict, "action")
        all_values = [q(tensordict.copy()).get(keys.action_value) for q in self.qvalue_network]
        preds = [gather_action(v, action, self.action_space) for v in all_values]
        with torch.no_grad():
            next_value = self._next_value(tensordict)
            target = bootstrap_target(
                self, tensordict, next_value, torch.stack(preds).mean(0)
            ).reshape(preds[0].shape)
        loss_qvalue = sum(
            self._reduce(distance_loss(pred, target, self.loss_function), tensordict)
            for pred in preds
        )
        self._write_td_error(
            tensordict, torch.stack([(pred - target).abs() for pred in preds]).mean(0)
        )
        dist = self.actor_network.get_dist(tensordict.exclude(keys.action))  # type: ignore[operator]
        probs, log_probs = _log_probs(dist, self.num_actions)
        q_min = torch.stack(all_values).min(0).values.detach()
        loss_actor = _expect(probs, self.alpha * log_probs - q_min).mean()
        entropy = -_expect(probs, log_probs)
        return TensorDict(
            {
                "loss_actor": loss_actor,
                "loss_qvalue": loss_qvalue,
                "loss_alpha": self._alpha_loss(entropy - self.target_entropy),
                "alpha": self.alpha,
                "entropy": entropy.detach().mean(),
                "pred_value": torch.stack(preds).detach().mean(),
                "target_value": target.mean(),
            }
        )

    def _next_value(self, tensordict: TensorDict) -> Tensor:
        keys = self.tensor_keys
        nxt = next_view(tensordict)
        dist = self.actor_network.get_dist(nxt)  # type: ignore[operator]
        probs, log_probs = _log_probs(dist, self.num_actions)
        values = [q(nxt.copy()).get(keys.action_value) for q in self._target_critics()]
        q_min = torch.stack(values).min(0).values
        return _expect(probs, q_min - self.alpha * log_probs).unsqueeze(-1)
