"""``DQNLoss``: the Q-learning loss of DQN (Mnih et al. 2015) and Double DQN (van Hasselt et al. 2016)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch
from torch import nn

from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossModule
from rlbricks.objectives._utils import bootstrap_target
from rlbricks.objectives._utils import check_loss_function
from rlbricks.objectives._utils import distance_loss
from rlbricks.objectives._utils import gather_action
from rlbricks.objectives._utils import infer_action_space
from rlbricks.objectives._utils import masked_argmax
from rlbricks.objectives._utils import next_view
from rlbricks.objectives._utils import read_action_mask
from rlbricks.objectives.value import TD0Estimator
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

if TYPE_CHECKING:
    from rlbricks.specs import TensorSpec

__all__ = ["DQNLoss"]


class DQNLoss(LossModule):
    """The DQN loss: regress ``Q(s, a)`` of the taken action on a bootstrapped target.

    The target is ``r + gamma * (1 - terminated) * V'(s')`` computed by the
    value estimator (TD(0) by default; ``loss.make_value_estimator(gamma=...)``
    sets ``gamma``, default ``0.99``), where ``V'(s') = max_a Q_target(s', a)``;
    with ``double_dqn=True`` the action is picked by the online network and
    valued by the target one, ``V'(s') = Q_target(s', argmax_a Q(s', a))``.
    When the network is a :class:`~rlbricks.modules.QValueActor` with an
    action mask, the maximum respects the mask of ``s'`` (read from
    ``tensordict["next"]`` under the actor's mask key).  The absolute TD
    error ``|Q(s, a) - target|`` is written into the input under
    ``"td_error"`` (shape ``[*batch]``) for prioritized replay.

    n-step transitions (:class:`~rlbricks.transforms.MultiStepTransform`)
    carry ``"steps_to_next_obs"``, the number ``k`` of rewards summed into
    ``("next", "reward")``; when the batch holds it, ``V'(s')`` is discounted
    by ``gamma ** k`` instead of ``gamma`` (TD(0) estimator only), so
    ``gamma`` stays the one-step discount.

    Keys (change them with :meth:`set_keys`):

    | name | default | role |
    |---|---|---|
    | ``action`` | ``"action"`` | the taken action (one-hot or index) |
    | ``action_value`` | ``"action_value"`` | the network's output ``[*batch, n_actions]`` |
    | ``reward`` | ``("next", "reward")`` | reward ``[*batch, 1]`` |
    | ``done`` | ``("next", "done")`` | end of the trajectory ``[*batch, 1]`` |
    | ``terminated`` | ``("next", "terminated")`` | no bootstrap after it ``[*batch, 1]`` |
    | ``td_error`` | ``"td_error"`` | written: ``[*batch]`` |
    | ``priority_weight`` | ``"_weight"`` | importance weights, used when present |
    | ``steps_to_next_obs`` | ``"steps_to_next_obs"`` | n-step look-ahead ``[*batch, 1]``, used when present |

    Returns ``{"loss_value", "pred_value", "target_value"}``: the (weighted)
    mean of the per-sample distance, and the means of ``Q(s, a)`` and of the
    target (detached).

    Args:
        value_network: a module writing ``"action_value"`` (a
            :class:`~rlbricks.modules.QValueActor`).
        loss_function: ``"l2"`` (squared error), ``"l1"`` or ``"smooth_l1"`` (Huber).
        delay_value: keep a target copy of the network (update it with
            :class:`~rlbricks.objectives.SoftUpdate` or
            :class:`~rlbricks.objectives.HardUpdate`); ``False`` bootstraps on
            the online network.
        double_dqn: Double DQN targets.
        action_space: ``"one_hot"`` or ``"categorical"``, or, as in TorchRL,
            the action spec itself (``action_space=env.action_spec``: a
            ``OneHot`` or ``Categorical`` spec, or a Composite holding one
            under ``"action"``); read from the network (``action_space``
            attribute or action spec) when ``None``.

    Raises:
        LossValueError: an unknown ``loss_function``; an ``action_space`` that is
            neither a known name nor a ``OneHot``/``Categorical`` spec, or none
            given and none readable from the network; at call time, n-step
            transitions with an estimator other than TD(0).

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import dqn_model
        >>> from rlbricks.objectives import DQNLoss
        >>> from rlbricks.specs import Composite, OneHot, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> obs = Composite(observation=Unbounded(shape=(4,)))
        >>> loss = DQNLoss(dqn_model(obs, OneHot(2), num_cells=(16,)), double_dqn=True)
        >>> _ = loss.make_value_estimator(gamma=0.9)
        >>> batch = TensorDict({
        ...     "observation": torch.randn(8, 4),
        ...     "action": OneHot(2).rand((8,)),
        ...     "next": {"observation": torch.randn(8, 4), "reward": torch.ones(8, 1),
        ...              "done": torch.zeros(8, 1, dtype=torch.bool),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)},
        ... }, batch_size=[8])
        >>> out = loss(batch)
        >>> out["loss_value"].backward()
        >>> batch["td_error"].shape
        torch.Size([8])

        As in TorchRL, the action space may be given as the env's action spec:

        >>> from rlbricks.modules import MLP, QValueActor
        >>> from rlbricks.specs import Categorical
        >>> action_spec = Categorical(2)  # env.action_spec
        >>> actor = QValueActor(MLP(4, out_features=2, num_cells=(8,)), spec=action_spec)
        >>> DQNLoss(actor, action_space=action_spec).action_space
        'categorical'
    """

    default_keys: ClassVar[dict[str, NestedKey]] = {
        "action": "action",
        "action_value": "action_value",
        "reward": ("next", "reward"),
        "done": ("next", "done"),
        "terminated": ("next", "terminated"),
        "td_error": "td_error",
        "priority_weight": "_weight",
        "steps_to_next_obs": "steps_to_next_obs",
    }
    default_value_type: ClassVar[Any] = "td0"

    value_network: nn.Module

    def __init__(
        self,
        value_network: nn.Module,
        *,
        loss_function: str = "l2",
        delay_value: bool = True,
        double_dqn: bool = False,
        action_space: str | TensorSpec[Any] | None = None,
    ) -> None:
        super().__init__()
        self.loss_function = check_loss_function(loss_function, "DQNLoss")
        self.action_space = infer_action_space(value_network, action_space, "DQNLoss")
        self.double_dqn = bool(double_dqn)
        self.register_network("value_network", value_network, delay=delay_value)

    def _value_estimator_defaults(self) -> dict[str, Any]:
        # the loss computes the next-state values itself; gamma defaults to 0.99
        return {"value_network": None, "gamma": 0.99}

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The loss of a batch of transitions ``[*batch]``; writes ``"td_error"`` into it.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import QValueActor
            >>> from rlbricks.objectives import DQNLoss
            >>> from rlbricks.tensordict import TensorDict
            >>> loss = DQNLoss(QValueActor(nn.Linear(3, 2), action_space="categorical"))
            >>> batch = TensorDict({"observation": torch.randn(4, 3), "action": torch.tensor([0, 1, 1, 0]),
            ...     "next": {"observation": torch.randn(4, 3), "reward": torch.zeros(4, 1),
            ...              "done": torch.ones(4, 1, dtype=torch.bool),
            ...              "terminated": torch.ones(4, 1, dtype=torch.bool)}}, [4])
            >>> sorted(loss(batch).keys())
            ['loss_value', 'pred_value', 'target_value']
        """
        keys = self.tensor_keys
        action = self._get(tensordict, "action")
        values = self.value_network(tensordict.copy()).get(keys.action_value)
        pred = gather_action(values, action, self.action_space)
        with torch.no_grad():
            next_value = self._n_step_discount(tensordict, self._next_value(tensordict))
            target = bootstrap_target(self, tensordict, next_value, pred).reshape(pred.shape)
        per_sample = distance_loss(pred, target, self.loss_function)
        self._write_td_error(tensordict, (pred - target).abs())
        return TensorDict(
            {
                "loss_value": self._reduce(per_sample, tensordict),
                "pred_value": pred.detach().mean(),
                "target_value": target.mean(),
            }
        )

    def _n_step_discount(self, tensordict: TensorDict, next_value: torch.Tensor) -> torch.Tensor:
        """``next_value * gamma ** (k - 1)`` for n-step transitions (``k = steps_to_next_obs``).

        The estimator discounts ``V'(s')`` once by ``gamma``; the extra factor
        makes it ``gamma ** k``, the discount of a value ``k`` steps ahead.
        One-step batches (no ``steps_to_next_obs``) are returned unchanged.
        """
        steps = tensordict.get(self.tensor_keys.steps_to_next_obs, None)
        if steps is None:
            return next_value
        estimator = self.value_estimator
        if not isinstance(estimator, TD0Estimator):
            raise LossValueError(
                "DQNLoss: the batch holds n-step transitions "
                f"({self.tensor_keys.steps_to_next_obs!r}), which only the td0 value estimator "
                f"bootstraps (got {type(estimator).__name__}); use "
                "loss.make_value_estimator('td0', gamma=...)"
            )
        gamma = torch.as_tensor(estimator.gamma, dtype=next_value.dtype, device=next_value.device)
        power = (steps.to(next_value.dtype) - 1.0).reshape(next_value.shape)
        return next_value * gamma**power

    def _next_value(self, tensordict: TensorDict) -> torch.Tensor:
        """``V'(s')``, ``[*batch, 1]``: the target network's value of the greedy next action.

        The greedy action is the argmax of the action values (of the online
        network for double DQN), restricted by the network's action mask
        when it has one; an ``"action"`` the network may write (with
        exploration, for instance) is not used.
        """
        keys = self.tensor_keys
        nxt = next_view(tensordict)
        mask = read_action_mask(self.value_network, nxt)
        target_values = self.target_network("value_network")(nxt.copy()).get(keys.action_value)
        if self.double_dqn:
            online_values = self.value_network(nxt.copy()).get(keys.action_value)
            index = masked_argmax(online_values, mask)
        else:
            index = masked_argmax(target_values, mask)
        return target_values.gather(-1, index.unsqueeze(-1))
