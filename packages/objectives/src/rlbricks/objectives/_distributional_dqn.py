"""``DistributionalDQNLoss``: the categorical (C51) loss of Bellemare et al. 2017."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any
from typing import ClassVar

import torch
from torch import Tensor
from torch import nn

from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossModule
from rlbricks.objectives._utils import gather_action
from rlbricks.objectives._utils import infer_action_space
from rlbricks.objectives._utils import masked_argmax
from rlbricks.objectives._utils import next_view
from rlbricks.objectives._utils import read_action_mask
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

if TYPE_CHECKING:
    from rlbricks.specs import TensorSpec

__all__ = ["DistributionalDQNLoss", "categorical_projection"]


def categorical_projection(
    support: Tensor, probs: Tensor, reward: Tensor, discount: Tensor
) -> Tensor:
    """Project the distribution of ``reward + discount * Z`` onto ``support`` (C51).

    ``Z`` takes the value ``support[j]`` with probability ``probs[..., j]``.
    Each shifted atom ``Tz_j = clamp(reward + discount * support[j], v_min,
    v_max)`` spreads its probability over the two nearest atoms of the
    (uniform) support, in proportion to its closeness:
    ``m_i = sum_j probs_j * max(0, 1 - |Tz_j - support_i| / dz)``.  An atom
    that lands exactly on a support point gives it all its mass.

    Args:
        support: the atoms, ``[n_atoms]``, evenly spaced and increasing.
        probs: probabilities over the atoms, ``[*batch, n_atoms]``.
        reward: ``[*batch]`` or ``[*batch, 1]``.
        discount: ``gamma * (1 - terminated)``, shaped like ``reward``.

    Returns:
        The projected probabilities, ``[*batch, n_atoms]`` (rows sum to the rows of ``probs``).

    Example:
        >>> import torch
        >>> from rlbricks.objectives._distributional_dqn import categorical_projection
        >>> support = torch.tensor([0.0, 1.0, 2.0])
        >>> probs = torch.tensor([[0.0, 1.0, 0.0]])  # Z = 1 surely
        >>> categorical_projection(support, probs, torch.tensor([0.5]), torch.tensor([1.0]))
        tensor([[0.0000, 0.5000, 0.5000]])
    """
    batch = probs.shape[:-1]
    reward = reward.reshape(*batch, 1)
    discount = discount.reshape(*batch, 1)
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (support.numel() - 1)
    shifted = (reward + discount * support).clamp(v_min, v_max)  # [*batch, n_atoms (j)]
    distance = (shifted.unsqueeze(-2) - support.unsqueeze(-1)).abs()  # [*batch, i, j]
    weight = (1.0 - distance / delta).clamp(min=0.0)
    return (weight * probs.unsqueeze(-2)).sum(-1)


def _find_support(network: nn.Module) -> Tensor:
    for module in network.modules():
        support = getattr(module, "support", None)
        if isinstance(support, Tensor):
            return support
    raise LossValueError(
        "DistributionalDQNLoss: the value network has no 'support' tensor; use a "
        "DistributionalQValueActor (or dqn_model(..., distributional=n_atoms))"
    )


class DistributionalDQNLoss(LossModule):
    """The C51 loss: cross-entropy between the predicted return distribution and a projected target.

    The network (a :class:`~rlbricks.modules.DistributionalQValueActor`)
    writes log-probabilities over the atoms of each action's return,
    ``[*batch, n_actions, n_atoms]``, under ``"action_value"``.  The target
    distribution is the target network's distribution of the greedy next
    action (the argmax of the expected return, which respects an action
    mask), shifted by ``reward + gamma * (1 - terminated) * z`` and projected
    back onto the support with :func:`categorical_projection`.  The loss is
    ``-sum_i m_i log p_i(s, a)``; this per-sample cross-entropy is also
    written into the input as ``"td_error"`` (for prioritized replay, as in
    Rainbow).  ``gamma`` is the discount of one transition; n-step
    transitions (:class:`~rlbricks.transforms.MultiStepTransform`) carry
    ``"steps_to_next_obs"`` = ``k`` and are discounted by ``gamma ** k``.
    With ``double_dqn=True`` the greedy next action is picked by the online
    network and its distribution read from the target network (Double DQN, as
    in Rainbow).  No value estimator is involved.

    Keys (change them with :meth:`set_keys`):

    | name | default | role |
    |---|---|---|
    | ``action`` | ``"action"`` | the taken action (one-hot or index) |
    | ``action_value`` | ``"action_value"`` | log-probabilities ``[*batch, n_actions, n_atoms]`` |
    | ``reward`` | ``("next", "reward")`` | reward ``[*batch, 1]`` |
    | ``terminated`` | ``("next", "terminated")`` | no bootstrap after it ``[*batch, 1]`` |
    | ``td_error`` | ``"td_error"`` | written: the per-sample cross-entropy ``[*batch]`` |
    | ``priority_weight`` | ``"_weight"`` | importance weights, used when present |
    | ``steps_to_next_obs`` | ``"steps_to_next_obs"`` | n-step look-ahead ``[*batch, 1]``, used when present |

    Returns ``{"loss_value"}``: the (weighted) mean cross-entropy.

    Args:
        value_network: a module writing atom log-probabilities, with a
            ``support`` tensor (evenly spaced atoms).
        gamma: the discount factor.
        delay_value: keep a target copy of the network.
        double_dqn: pick the greedy next action with the online network.
        action_space: ``"one_hot"`` or ``"categorical"``, or the action spec
            itself (as in :class:`DQNLoss`); read from the network when ``None``.

    Raises:
        LossValueError: no support, a support that is not evenly spaced, or a
            ``gamma`` outside ``[0, 1]``.

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import dqn_model
        >>> from rlbricks.objectives import DistributionalDQNLoss
        >>> from rlbricks.specs import Categorical, Composite, Unbounded
        >>> obs = Composite(observation=Unbounded(shape=(4,)))
        >>> net = dqn_model(obs, Categorical(2), distributional=11, v_min=-1.0, v_max=1.0)
        >>> loss = DistributionalDQNLoss(net, gamma=0.9)
        >>> batch = TensorDict({
        ...     "observation": torch.randn(8, 4), "action": torch.randint(2, (8,)),
        ...     "next": {"observation": torch.randn(8, 4), "reward": torch.ones(8, 1),
        ...              "terminated": torch.zeros(8, 1, dtype=torch.bool)},
        ... }, batch_size=[8])
        >>> loss(batch)["loss_value"].backward()
        >>> batch["td_error"].shape
        torch.Size([8])
    """

    default_keys: ClassVar[dict[str, NestedKey]] = {
        "action": "action",
        "action_value": "action_value",
        "reward": ("next", "reward"),
        "terminated": ("next", "terminated"),
        "td_error": "td_error",
        "priority_weight": "_weight",
        "steps_to_next_obs": "steps_to_next_obs",
    }

    value_network: nn.Module

    def __init__(
        self,
        value_network: nn.Module,
        gamma: float,
        *,
        delay_value: bool = True,
        double_dqn: bool = False,
        action_space: str | TensorSpec[Any] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= float(gamma) <= 1.0:
            raise LossValueError(f"DistributionalDQNLoss: gamma must be in [0, 1], got {gamma}")
        self.gamma = float(gamma)
        self.double_dqn = bool(double_dqn)
        self.action_space = infer_action_space(value_network, action_space, "DistributionalDQNLoss")
        support = _find_support(value_network)
        steps = support.diff()
        if support.ndim != 1 or not bool(torch.allclose(steps, steps[:1].expand_as(steps))):
            raise LossValueError(
                "DistributionalDQNLoss: the support must be evenly spaced and increasing "
                "(e.g. torch.linspace(v_min, v_max, n_atoms))"
            )
        if not bool((steps > 0).all()):
            raise LossValueError(
                "DistributionalDQNLoss: the support must be increasing "
                "(e.g. torch.linspace(v_min, v_max, n_atoms) with v_min < v_max)"
            )
        self.register_network("value_network", value_network, delay=delay_value)

    @property
    def support(self) -> Tensor:
        """The atoms of the return distribution (the network's support).

        Example:
            >>> from rlbricks.modules.recipes import dqn_model
            >>> from rlbricks.objectives import DistributionalDQNLoss
            >>> from rlbricks.specs import Composite, OneHot, Unbounded
            >>> net = dqn_model(Composite(observation=Unbounded(shape=(2,))), OneHot(2),
            ...                 distributional=3, v_min=0.0, v_max=1.0)
            >>> DistributionalDQNLoss(net, gamma=0.9).support
            tensor([0.0000, 0.5000, 1.0000])
        """
        return _find_support(self.value_network)

    def make_value_estimator(self, value_type: Any = None, **hyperparams: Any) -> LossModule:
        """Not used: the distributional target is built by projection (set ``gamma`` in ``__init__``).

        Raises:
            LossValueError: always.

        Example:
            >>> from rlbricks.modules.recipes import dqn_model
            >>> from rlbricks.objectives import DistributionalDQNLoss, LossError
            >>> from rlbricks.specs import Composite, OneHot, Unbounded
            >>> net = dqn_model(Composite(observation=Unbounded(shape=(2,))), OneHot(2), distributional=3)
            >>> try:
            ...     DistributionalDQNLoss(net, gamma=0.9).make_value_estimator()
            ... except LossError as err:
            ...     print(str(err).split(';')[0])
            DistributionalDQNLoss projects return distributions and uses no value estimator
        """
        raise LossValueError(
            "DistributionalDQNLoss projects return distributions and uses no value estimator; "
            "set the discount with DistributionalDQNLoss(..., gamma=...)"
        )

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The loss of a batch of transitions ``[*batch]``; writes ``"td_error"`` into it.

        Example:
            >>> import torch
            >>> from rlbricks.modules.recipes import dqn_model
            >>> from rlbricks.objectives import DistributionalDQNLoss
            >>> from rlbricks.specs import Composite, OneHot, Unbounded
            >>> from rlbricks.tensordict import TensorDict
            >>> net = dqn_model(Composite(observation=Unbounded(shape=(2,))), OneHot(3), distributional=5)
            >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": OneHot(3).rand((4,)),
            ...     "next": {"observation": torch.randn(4, 2), "reward": torch.zeros(4, 1),
            ...              "terminated": torch.ones(4, 1, dtype=torch.bool)}}, [4])
            >>> DistributionalDQNLoss(net, gamma=0.99)(batch)["loss_value"].shape
            torch.Size([])
        """
        keys = self.tensor_keys
        action = self._get(tensordict, "action")
        reward = self._get(tensordict, "reward")
        terminated = self._get(tensordict, "terminated")
        log_probs = self.value_network(tensordict.copy()).get(keys.action_value)
        if log_probs.ndim < 2:
            raise LossValueError(
                "DistributionalDQNLoss: the network must write [*batch, n_actions, n_atoms] "
                f"log-probabilities under {keys.action_value!r}, got shape {tuple(log_probs.shape)}"
            )
        chosen = gather_action(log_probs, action, self.action_space, n_extra=1)  # [*batch, atoms]
        with torch.no_grad():
            target = self._target_distribution(tensordict, reward, terminated)
        cross_entropy = -(target * chosen).sum(-1)
        self._write_td_error(tensordict, cross_entropy)
        return TensorDict({"loss_value": self._reduce(cross_entropy, tensordict)})

    def _target_distribution(
        self, tensordict: TensorDict, reward: Tensor, terminated: Tensor
    ) -> Tensor:
        keys = self.tensor_keys
        support = self.support
        nxt = next_view(tensordict)
        mask = read_action_mask(self.value_network, nxt)
        out = self.target_network("value_network")(nxt.copy())
        next_probs = out.get(keys.action_value).exp()  # [*batch, n_actions, atoms]
        chooser = next_probs
        if self.double_dqn:
            chooser = self.value_network(nxt).get(keys.action_value).exp()
        greedy = masked_argmax((chooser * support).sum(-1), mask)
        probs = gather_action(next_probs, greedy, "categorical", n_extra=1)
        not_terminal = (~terminated.to(torch.bool)).to(probs.dtype)
        discount = self.gamma * not_terminal
        steps = tensordict.get(keys.steps_to_next_obs, None)
        if steps is not None:  # n-step transitions: gamma ** k
            discount = discount * self.gamma ** (steps.to(probs.dtype) - 1.0).reshape(
                discount.shape
            )
        return categorical_projection(support, probs, reward.to(probs.dtype), discount)
