"""``SACLoss``: soft actor-critic with a learned temperature (Haarnoja et al. 2018, v2)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from typing import ClassVar
from typing import cast

import torch
from torch import Tensor
from torch import nn

from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossModule
from rlbricks.objectives._utils import bootstrap_target
from rlbricks.objectives._utils import call_frozen
from rlbricks.objectives._utils import check_loss_function
from rlbricks.objectives._utils import distance_loss
from rlbricks.objectives._utils import next_view
from rlbricks.objectives._utils import register_critics
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["SACLoss", "SoftActorCriticBase"]


class SoftActorCriticBase(LossModule):
    """What SAC and discrete SAC share: twin critics and the temperature ``alpha``.

    ``log_alpha`` is an ``nn.Parameter`` (learned through ``loss_alpha``) or,
    with ``fixed_alpha``, a buffer.  Not meant to be used directly.
    """

    log_alpha: Tensor
    actor_network: nn.Module
    qvalue_network: nn.ModuleList
    default_value_type: ClassVar[Any] = "td0"

    def _setup(
        self,
        owner: str,
        actor_network: nn.Module,
        qvalue_network: nn.Module | Sequence[nn.Module],
        num_qvalue_nets: int,
        alpha_init: float,
        fixed_alpha: bool,
        delay_qvalue: bool,
        loss_function: str,
    ) -> None:
        self.loss_function = check_loss_function(loss_function, owner)
        if not alpha_init > 0:
            raise LossValueError(f"{owner}: alpha_init must be > 0, got {alpha_init}")
        self.register_network("actor_network", actor_network)
        register_critics(self, qvalue_network, num_qvalue_nets, delay_qvalue, owner)
        self.num_qvalue_nets = len(self.qvalue_network)
        self.fixed_alpha = bool(fixed_alpha)
        log_alpha = torch.tensor(math.log(alpha_init))
        if self.fixed_alpha:
            self.register_buffer("log_alpha", log_alpha)
        else:
            self.log_alpha = nn.Parameter(log_alpha)

    @property
    def alpha(self) -> Tensor:
        """The temperature ``exp(log_alpha)``, detached.

        Example:
            >>> from rlbricks.modules.recipes import sac_models
            >>> from rlbricks.objectives import SACLoss
            >>> from rlbricks.specs import Bounded, Composite, Unbounded
            >>> actor, critic = sac_models(Composite(observation=Unbounded(shape=(2,))),
            ...                            Bounded(-1.0, 1.0, shape=(1,)), num_cells=(8,))
            >>> SACLoss(actor, critic, alpha_init=0.5).alpha
            tensor(0.5000)
        """
        return self.log_alpha.detach().exp()

    def _value_estimator_defaults(self) -> dict[str, Any]:
        # the loss computes the next-state values itself; gamma defaults to 0.99
        return {"value_network": None, "gamma": 0.99}

    def _alpha_loss(self, gap: Tensor) -> Tensor:
        """``mean(log_alpha * gap)`` where ``gap`` = entropy estimate - target (detached)."""
        if self.fixed_alpha:
            return torch.zeros((), device=gap.device, dtype=gap.dtype)
        return (self.log_alpha * gap.detach()).mean()

    def _target_critics(self) -> nn.ModuleList:
        return cast(nn.ModuleList, self.target_network("qvalue_network"))


def _to_batch(log_prob: Tensor, batch_dims: int) -> Tensor:
    """Sum the trailing (event) dims of a log-probability down to the batch dims."""
    while log_prob.ndim > batch_dims:
        log_prob = log_prob.sum(-1)
    return log_prob


class SACLoss(SoftActorCriticBase):
    """The SAC losses for continuous actions: twin soft Q critics, the actor and the temperature.

    With ``alpha = exp(log_alpha)`` and ``a~ ~ pi(.|s)`` (reparameterised):

    * ``loss_qvalue``: the sum over the critics of the mean distance between
      ``Q_i(s, a)`` and the target ``r + gamma * (1 - terminated) * V'(s')``
      (value estimator, TD(0) by default) with the soft value
      ``V'(s') = min_i Q'_i(s', a') - alpha * log pi(a'|s')``, ``a' ~ pi(.|s')``.
    * ``loss_actor``: ``mean(alpha * log pi(a~|s) - min_i Q_i(s, a~))``; the
      critics run with frozen parameters and ``alpha`` is detached, so it
      moves the actor only.
    * ``loss_alpha``: ``mean(-log_alpha * (log pi(a~|s) + target_entropy))``
      (detached log-probs): moves ``log_alpha`` only.  Zero with ``fixed_alpha``.

    Diagnostics: ``"alpha"`` and ``"entropy"`` (``-mean log pi(a~|s)``).
    The critics are ``num_qvalue_nets`` copies of ``qvalue_network``
    (re-initialised) or the list given.  ``target_entropy="auto"`` is
    ``-prod(action shape)`` (read from the actor's spec, else from the first
    sampled action).  The mean over the critics of ``|Q_i(s, a) - target|`` is
    written into the input as ``"td_error"``; importance weights
    (``"_weight"``) weight ``loss_qvalue``.

    Keys (change them with :meth:`set_keys`):

    | name | default | role |
    |---|---|---|
    | ``action`` | ``"action"`` | the taken action, also what the critics read |
    | ``state_action_value`` | ``"state_action_value"`` | what the critics write |
    | ``reward`` | ``("next", "reward")`` | reward ``[*batch, 1]`` |
    | ``done`` | ``("next", "done")`` | end of the trajectory ``[*batch, 1]`` |
    | ``terminated`` | ``("next", "terminated")`` | no bootstrap after it ``[*batch, 1]`` |
    | ``td_error`` | ``"td_error"`` | written: ``[*batch]`` |
    | ``priority_weight`` | ``"_weight"`` | importance weights, used when present |

    Args:
        actor_network: a :class:`~rlbricks.modules.ProbabilisticActor` whose
            distribution has ``rsample`` (e.g. ``TanhNormal``).
        qvalue_network: a critic writing ``"state_action_value"``, or a list
            of ``num_qvalue_nets`` critics.
        num_qvalue_nets: the number of critics.
        alpha_init: the initial temperature.
        fixed_alpha: keep ``alpha`` fixed at ``alpha_init``.
        target_entropy: ``"auto"`` or a number.
        delay_qvalue: keep target copies of the critics.
        loss_function: ``"l2"``, ``"l1"`` or ``"smooth_l1"`` for ``loss_qvalue``.

    Raises:
        LossValueError: an unknown ``loss_function``, ``alpha_init <= 0``, or a
            bad ``target_entropy``.

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import sac_models
        >>> from rlbricks.objectives import SACLoss
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> obs = Composite(observation=Unbounded(shape=(3,)))
        >>> actor, critic = sac_models(obs, Bounded(-1.0, 1.0, shape=(2,)), num_cells=(16,))
        >>> loss = SACLoss(actor, critic)
        >>> loss.target_entropy
        -2.0
        >>> batch = TensorDict({
        ...     "observation": torch.randn(8, 3), "action": torch.rand(8, 2) * 2 - 1,
        ...     "next": {"observation": torch.randn(8, 3), "reward": torch.randn(8, 1),
        ...              "done": torch.zeros(8, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)},
        ... }, batch_size=[8])
        >>> out = loss(batch)
        >>> sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        >>> sorted(out.keys())
        ['alpha', 'entropy', 'loss_actor', 'loss_alpha', 'loss_qvalue', 'pred_value', 'target_value']
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

    def __init__(
        self,
        actor_network: nn.Module,
        qvalue_network: nn.Module | Sequence[nn.Module],
        *,
        num_qvalue_nets: int = 2,
        alpha_init: float = 1.0,
        fixed_alpha: bool = False,
        target_entropy: float | str = "auto",
        delay_qvalue: bool = True,
        loss_function: str = "l2",
    ) -> None:
        super().__init__()
        self._setup(
            "SACLoss",
            actor_network,
            qvalue_network,
            num_qvalue_nets,
            alpha_init,
            fixed_alpha,
            delay_qvalue,
            loss_function,
        )
        self._target_entropy: float | None
        if target_entropy == "auto":
            self._target_entropy = _auto_entropy(getattr(actor_network, "spec", None))
        elif isinstance(target_entropy, (int, float)) and not isinstance(target_entropy, bool):
            self._target_entropy = float(target_entropy)
        else:
            raise LossValueError(
                f"SACLoss: target_entropy must be 'auto' or a number, got {target_entropy!r}"
            )

    @property
    def target_entropy(self) -> float | None:
        """The entropy the temperature aims at (``None`` until known with ``"auto"``).

        Example:
            >>> from rlbricks.modules.recipes import sac_models
            >>> from rlbricks.objectives import SACLoss
            >>> from rlbricks.specs import Bounded, Composite, Unbounded
            >>> actor, critic = sac_models(Composite(observation=Unbounded(shape=(2,))),
            ...                            Bounded(-1.0, 1.0, shape=(3,)), num_cells=(8,))
            >>> SACLoss(actor, critic).target_entropy, SACLoss(actor, critic, target_entropy=-1).target_entropy
            (-3.0, -1.0)
        """
        return self._target_entropy

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The critic, actor and temperature losses of a batch ``[*batch]``.

        Example:
            >>> import torch
            >>> from rlbricks.modules.recipes import sac_models
            >>> from rlbricks.objectives import SACLoss
            >>> from rlbricks.specs import Composite, Unbounded
            >>> from rlbricks.tensordict import TensorDict
            >>> actor, critic = sac_models(Composite(observation=Unbounded(shape=(2,))),
            ...                            Unbounded(shape=(1,)), num_cells=(8,))
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": torch.randn(4, 1),
            ...     "next": {"observation": torch.randn(4, 2), "reward": torch.zeros(4, 1),
            ...              "done": torch.zeros(4, 1, dtype=torch.bool),
            ...              "terminated": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
            >>> SACLoss(actor, critic, fixed_alpha=True)(batch)["loss_alpha"]
            tensor(0.)
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
        self._write_td_error(
            tensordict, torch.stack([(pred - target).abs() for pred in preds]).mean(0)
        )
        loss_actor, log_prob = self._actor_loss(tensordict)
        target_entropy = self._resolve_target_entropy(tensordict)
        return TensorDict(
            {
                "loss_actor": loss_actor,
                "loss_qvalue": loss_qvalue,
                "loss_alpha": self._alpha_loss(-log_prob - target_entropy),
                "alpha": self.alpha,
                "entropy": -log_prob.detach().mean(),
                "pred_value": torch.stack(preds).detach().mean(),
                "target_value": target.mean(),
            }
        )

    def _sample(self, tensordict: TensorDict, reparameterise: bool) -> tuple[Tensor, Tensor]:
        """``(action, log pi(action|s))`` sampled from the actor on ``tensordict`` (written into it)."""
        dist = self.actor_network.get_dist(tensordict)  # type: ignore[operator]
        action = dist.rsample() if reparameterise else dist.sample()
        log_prob = _to_batch(dist.log_prob(action), tensordict.batch_dims)
        return action, log_prob

    def _next_value(self, tensordict: TensorDict) -> Tensor:
        keys = self.tensor_keys
        nxt = next_view(tensordict)
        action, log_prob = self._sample(nxt, reparameterise=False)
        nxt.set(keys.action, action)
        values = [q(nxt.copy()).get(keys.state_action_value) for q in self._target_critics()]
        q_min = torch.stack(values).min(0).values
        return q_min - self.alpha * log_prob.reshape(q_min.shape)

    def _actor_loss(self, tensordict: TensorDict) -> tuple[Tensor, Tensor]:
        keys = self.tensor_keys
        policy_td = tensordict.exclude(keys.action)
        action, log_prob = self._sample(policy_td, reparameterise=True)
        policy_td.set(keys.action, action)
        values = [
            call_frozen(q, policy_td.copy()).get(keys.state_action_value).squeeze(-1)
            for q in self.qvalue_network
        ]
        q_min = torch.stack(values).min(0).values
        return (self.alpha * log_prob - q_min).mean(), log_prob

    def _resolve_target_entropy(self, tensordict: TensorDict) -> float:
        if self._target_entropy is None:
            action = self._get(tensordict, "action")
            self._target_entropy = -float(math.prod(action.shape[tensordict.batch_dims :]))
        return self._target_entropy


def _auto_entropy(spec: Any) -> float | None:
    """``-prod(action shape)`` from an action spec (``None`` when there is none)."""
    if spec is None:
        return None
    try:
        if "action" in spec:
            spec = spec["action"]
    except TypeError:
        pass
    shape = getattr(spec, "shape", None)
    if shape is None:
        return None
    return -float(math.prod(shape))
