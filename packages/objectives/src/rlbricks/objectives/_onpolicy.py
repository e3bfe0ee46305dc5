"""What the on-policy losses share: advantage, log-probabilities, entropy and the critic loss.

:class:`OnPolicyLoss` is the private base of ``PPOLoss`` (and its clipped and
KL-penalised variants), ``A2CLoss`` and ``ReinforceLoss``.  The free
functions below hold the maths so that the tests can check them one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import ClassVar
from typing import cast

import torch
from torch import Tensor
from torch import nn
from torch.distributions import Distribution

from rlbricks.modules import ProbabilisticTensorDictModule
from rlbricks.modules import TensorDictModuleBase
from rlbricks.modules import TensorDictSequential
from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossModule
from rlbricks.objectives._utils import distance_loss
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = [
    "OnPolicyLoss",
    "ZeroValue",
    "align_to",
    "effective_sample_size",
    "entropy_estimate",
    "kl_estimate",
    "normalize_advantage",
    "policy_head",
]

_CRITIC_LOSSES = ("l2", "smooth_l1")


def align_to(x: Tensor, like: Tensor, what: str, owner: str) -> Tensor:
    """``x`` shaped like ``like``: a per-sample ``[*batch]`` tensor gains ``like``'s trailing 1.

    Log-probabilities are ``[*batch]`` while advantages (like rewards) are
    ``[*batch, 1]``; any other mismatch is an error, rather than a silent
    broadcast to ``[*batch, *batch]``.

    Raises:
        LossValueError: the shapes differ otherwise.

    Example:
        >>> import torch
        >>> from rlbricks.objectives._onpolicy import align_to
        >>> align_to(torch.zeros(4, 3), torch.zeros(4, 3, 1), "log_prob", "PPOLoss").shape
        torch.Size([4, 3, 1])
    """
    if x.shape == like.shape:
        return x
    if like.shape == (*x.shape, 1):
        return x.unsqueeze(-1)
    raise LossValueError(
        f"{owner}: {what} has shape {tuple(x.shape)} but the advantage has shape "
        f"{tuple(like.shape)}; they must match (a trailing singleton dim may differ). A "
        "log-probability must sum over the action dims: use a distribution with an event dim "
        "(TanhNormal, TruncatedNormal, or torch.distributions.Independent(Normal(...), 1))"
    )


def normalize_advantage(advantage: Tensor, eps: float = 1e-8) -> Tensor:
    """``(advantage - mean) / std`` over every element (unchanged when it has a single element).

    ``std`` is the unbiased standard deviation, kept at least ``eps``.

    Example:
        >>> import torch
        >>> from rlbricks.objectives._onpolicy import normalize_advantage
        >>> normalize_advantage(torch.tensor([1.0, 2.0, 3.0]))
        tensor([-1.,  0.,  1.])
    """
    if advantage.numel() < 2:
        return advantage
    return (advantage - advantage.mean()) / advantage.std().clamp_min(eps)


def entropy_estimate(dist: Distribution, samples: int = 1) -> Tensor:
    """The entropy of ``dist`` per batch element: exact when it has one, else Monte Carlo.

    The Monte Carlo estimate is ``-mean_i log p(x_i)`` over ``samples`` draws
    ``x_i`` (reparameterised when the distribution has ``rsample``, so the
    gradient reaches the parameters through the samples too).

    Example:
        >>> import math
        >>> import torch
        >>> from rlbricks.objectives._onpolicy import entropy_estimate
        >>> uniform = torch.distributions.Categorical(logits=torch.zeros(4))
        >>> round(entropy_estimate(uniform).item(), 4) == round(math.log(4), 4)
        True
    """
    try:
        return dist.entropy()
    except NotImplementedError:
        pass
    if dist.has_rsample:
        draws = dist.rsample(torch.Size([samples]))
    else:
        draws = dist.sample(torch.Size([samples]))
    return -dist.log_prob(draws).mean(0)


def kl_estimate(log_weight: Tensor) -> Tensor:
    """Per-sample estimate of ``KL(old || new)`` from ``log_weight = log p_new(a) - log p_old(a)``.

    With ``r = exp(log_weight)`` and ``a`` drawn from the old policy,
    ``(r - 1) - log r`` is an unbiased estimate of the KL divergence that is
    never negative (each term is ``>= 0`` since ``log r <= r - 1``).

    Example:
        >>> import torch
        >>> from rlbricks.objectives._onpolicy import kl_estimate
        >>> kl_estimate(torch.tensor([0.0, 0.5]))
        tensor([0.0000, 0.1487])
    """
    return torch.expm1(log_weight) - log_weight


def effective_sample_size(log_weight: Tensor) -> Tensor:
    """The effective sample size of the importance weights, as a fraction of their number.

    ``(sum w)^2 / sum(w^2) / N`` with ``w = exp(log_weight)``: 1 when every
    weight is equal, down to ``1/N`` when one weight dominates.  Computed in
    log space.

    Example:
        >>> import torch
        >>> from rlbricks.objectives._onpolicy import effective_sample_size
        >>> effective_sample_size(torch.zeros(8))
        tensor(1.)
    """
    flat = log_weight.reshape(-1)
    log_ess = 2 * torch.logsumexp(flat, 0) - torch.logsumexp(2 * flat, 0)
    return log_ess.exp() / flat.numel()


def policy_head(actor: nn.Module) -> ProbabilisticTensorDictModule | None:
    """The module that builds the actor's distribution (the last one of a sequence), if any.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
        >>> from rlbricks.objectives._onpolicy import policy_head
        >>> actor = ProbabilisticActor(TensorDictModule(nn.Linear(2, 3), ["observation"], ["logits"]),
        ...                            ["logits"], distribution_class=torch.distributions.Categorical)
        >>> policy_head(actor).in_keys
        ['logits']
    """
    module: nn.Module = actor
    while True:
        if isinstance(module, ProbabilisticTensorDictModule):
            return module
        if isinstance(module, TensorDictSequential) and len(module) > 0:
            module = module[-1]
            continue
        return None


class ZeroValue(TensorDictModuleBase):
    """A value network that writes zeros ``[*batch, 1]``: REINFORCE without a baseline.

    Args:
        out_key: where the zeros go.

    Example:
        >>> import torch
        >>> from rlbricks.objectives._onpolicy import ZeroValue
        >>> from rlbricks.tensordict import TensorDict
        >>> ZeroValue()(TensorDict({}, [2, 3]))["state_value"].shape
        torch.Size([2, 3, 1])
    """

    def __init__(self, out_key: NestedKey = "state_value") -> None:
        super().__init__()
        self.in_keys = []
        self.out_keys = [out_key]

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """Write zeros of shape ``[*tensordict.batch_size, 1]`` under the out_key.

        They live on the device of the TensorDict (of its first entry when
        it has no device) and have the default floating dtype.

        Example:
            >>> import torch
            >>> from rlbricks.objectives._onpolicy import ZeroValue
            >>> from rlbricks.tensordict import TensorDict
            >>> ZeroValue("v")(TensorDict({"x": torch.ones(2)}, [2]))["v"]
            tensor([[0.],
                    [0.]])
        """
        device = tensordict.device
        if device is None:
            first = next(iter(tensordict.values(include_nested=True, leaves_only=True)), None)
            device = first.device if isinstance(first, torch.Tensor) else None
        zeros = torch.zeros(*tensordict.batch_size, 1, device=device)
        tensordict.set(self.out_keys[0], zeros)
        return tensordict


class OnPolicyLoss(LossModule):
    """Private base of the on-policy losses: advantage, log-probabilities, entropy, critic loss.

    ``forward`` of a subclass calls :meth:`_prepare` (a shallow copy of the
    input holding ``"advantage"``, computed by the value estimator when
    missing), :meth:`_log_weight` or :meth:`_log_prob`, then
    :meth:`_add_entropy` and :meth:`_add_critic_loss`.
    """

    default_keys: ClassVar[dict[str, NestedKey]] = {
        "action": "action",
        "sample_log_prob": "sample_log_prob",
        "advantage": "advantage",
        "value_target": "value_target",
        "value": "state_value",
        "reward": ("next", "reward"),
        "done": ("next", "done"),
        "terminated": ("next", "terminated"),
    }
    default_value_type: ClassVar[Any] = "gae"

    actor_network: TensorDictModuleBase
    critic_network: TensorDictModuleBase | None

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        critic_network: TensorDictModuleBase | None,
        *,
        entropy_bonus: bool = True,
        entropy_coef: float = 0.01,
        critic_coef: float = 1.0,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        clip_value: float | None = None,
        samples_mc_entropy: int = 1,
        delay_value: bool = False,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if not callable(getattr(actor_network, "get_dist", None)):
            raise LossValueError(
                f"{owner}: actor_network must build a distribution (have get_dist(td)), got "
                f"{type(actor_network).__name__}; use a ProbabilisticActor"
            )
        if loss_critic_type not in _CRITIC_LOSSES:
            raise LossValueError(
                f"{owner}: loss_critic_type must be one of {list(_CRITIC_LOSSES)}, "
                f"got {loss_critic_type!r}"
            )
        if samples_mc_entropy < 1:
            raise LossValueError(
                f"{owner}: samples_mc_entropy must be >= 1, got {samples_mc_entropy}"
            )
        if clip_value is not None and clip_value <= 0:
            raise LossValueError(f"{owner}: clip_value must be > 0 or None, got {clip_value}")
        if critic_network is None and delay_value:
            raise LossValueError(f"{owner}: delay_value=True needs a critic_network")
        self.register_network("actor_network", actor_network)
        if critic_network is None:
            self.critic_network = None
        else:
            self.register_network("critic_network", critic_network, delay=delay_value)
        self.entropy_bonus = bool(entropy_bonus)
        self.entropy_coef = float(entropy_coef)
        self.critic_coef = float(critic_coef)
        self.loss_critic_type = loss_critic_type
        self.normalize_advantage = bool(normalize_advantage)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.samples_mc_entropy = int(samples_mc_entropy)

    # ------------------------------------------------------------------ #
    # value estimator wiring
    # ------------------------------------------------------------------ #
    def _value_network(self) -> nn.Module:
        if self.critic_network is None:
            return ZeroValue(self.tensor_keys.value)
        return self.target_network("critic_network")

    def _value_estimator_defaults(self) -> dict[str, Any]:
        return {"value_network": self._value_network()}

    def _value_estimator_keys(self) -> dict[str, NestedKey]:
        names = ("advantage", "value_target", "value", "sample_log_prob", "action")
        keys = {name: self.tensor_keys[name] for name in names}
        for name in ("reward", "done", "terminated"):
            key = self.tensor_keys[name]
            if not (isinstance(key, tuple) and len(key) > 1 and key[0] == "next"):
                raise LossValueError(
                    f"{type(self).__name__}: the value estimator reads {name} under 'next', but "
                    f"the {name} key is {key!r}; use set_keys({name}=('next', ...))"
                )
            keys[name] = key[1:] if len(key) > 2 else key[1]
        return keys

    def make_value_estimator(self, value_type: Any = None, **hyperparams: Any) -> LossModule:
        """Make the estimator that computes ``"advantage"`` and ``"value_target"``; returns ``self``.

        The estimator reads the critic (its target copy with
        ``delay_value=True``; zeros for a loss without critic) and the loss's
        keys.  A hyper-parameter left out takes the loss's default:
        ``gamma=0.99``, and ``lmbda=0.95`` for GAE and TD(lambda); V-trace
        also gets the loss's actor.

        Args:
            value_type: a :class:`~rlbricks.objectives.ValueEstimators`
                member or its name; ``None`` is the loss's default.
            **hyperparams: the estimator's arguments (``gamma``, ``lmbda``, ...).

        Example:
            >>> from rlbricks.modules.recipes import ppo_models
            >>> from rlbricks.objectives import ClipPPOLoss
            >>> from rlbricks.specs import Categorical, Composite, Unbounded
            >>> actor, critic = ppo_models(Composite(observation=Unbounded(shape=(3,))), Categorical(2))
            >>> loss = ClipPPOLoss(actor, critic).make_value_estimator("td_lambda", gamma=0.9)
            >>> estimator = loss.value_estimator
            >>> type(estimator).__name__, estimator.gamma, estimator.lmbda
            ('TDLambdaEstimator', 0.9, 0.95)
        """
        from rlbricks.objectives.value import ValueEstimators

        kind = ValueEstimators.parse(self.default_value_type if value_type is None else value_type)
        hyperparams.setdefault("gamma", 0.99)
        if kind in (ValueEstimators.GAE, ValueEstimators.TDLambda):
            hyperparams.setdefault("lmbda", 0.95)
        if kind is ValueEstimators.VTrace:
            hyperparams.setdefault("actor_network", self.actor_network)
        return super().make_value_estimator(kind, **hyperparams)

    def _forward_keys(self, estimator: Any) -> None:
        roles = getattr(estimator, "tensor_keys", {})
        keys = {name: key for name, key in self._value_estimator_keys().items() if name in roles}
        if keys:
            estimator.set_keys(**keys)

    def _keys_changed(self) -> None:
        estimator = self.__dict__["_value_estimator_obj"]
        network = getattr(estimator, "value_network", None)
        if isinstance(network, ZeroValue):
            network.out_keys = [self.tensor_keys.value]

    # ------------------------------------------------------------------ #
    # steps of forward
    # ------------------------------------------------------------------ #
    def _prepare(self, tensordict: TensorDict) -> tuple[TensorDict, Tensor]:
        """A shallow copy of the input holding the advantage, and the (normalised) advantage."""
        td = tensordict.copy()
        if td.get(self.tensor_keys.advantage, None) is None:
            # on a copy: the estimator may run the actor (V-trace), which would overwrite the
            # collected distribution parameters that KLPENPPOLoss reads
            with torch.no_grad():
                estimated = self.value_estimator(td.copy())
            for name in ("advantage", "value_target", "value"):
                value = estimated.get(self.tensor_keys[name], None)
                if value is not None:
                    td.set(self.tensor_keys[name], value)
        advantage = self._get(td, "advantage").detach()
        if self.normalize_advantage:
            advantage = normalize_advantage(advantage)
        return td, advantage

    def _dist(self, td: TensorDict) -> Distribution:
        """The current policy's distribution (the actor writes into a copy of ``td``)."""
        get_dist = cast(Callable[[TensorDict], Distribution], self.actor_network.get_dist)
        return get_dist(td.copy())

    def _log_prob(self, td: TensorDict, advantage: Tensor) -> tuple[Tensor, Distribution]:
        """``log pi(a|s)`` of the taken actions under the current policy, shaped like the advantage."""
        dist = self._dist(td)
        log_prob = dist.log_prob(self._get(td, "action"))
        return align_to(log_prob, advantage, "log_prob", type(self).__name__), dist

    def _log_weight(self, td: TensorDict, advantage: Tensor) -> tuple[Tensor, Distribution]:
        """``log pi(a|s) - log pi_old(a|s)``, shaped like the advantage, and the current distribution."""
        log_prob, dist = self._log_prob(td, advantage)
        old = self._get(td, "sample_log_prob").detach()
        old = align_to(old, advantage, "sample_log_prob", type(self).__name__)
        return log_prob - old, dist

    def _add_entropy(self, out: dict[str, Tensor], dist: Distribution) -> None:
        """Write ``"entropy"`` and ``"loss_entropy" = -entropy_coef * entropy`` when enabled."""
        if not self.entropy_bonus:
            return
        entropy = entropy_estimate(dist, self.samples_mc_entropy).mean()
        out["entropy"] = entropy.detach()
        out["loss_entropy"] = -self.entropy_coef * entropy

    def _add_critic_loss(self, out: dict[str, Tensor], td: TensorDict) -> None:
        """Write ``"loss_critic"`` (and ``"value_clip_fraction"`` with ``clip_value``)."""
        if self.critic_network is None:
            return
        owner = type(self).__name__
        target = self._get(td, "value_target").detach()
        old_value = self._get(td, "value").detach() if self.clip_value is not None else None
        value = self.critic_network(td.copy()).get(self.tensor_keys.value)
        if value.shape != target.shape:
            raise LossValueError(
                f"{owner}: the critic's value has shape {tuple(value.shape)} but the value "
                f"target has shape {tuple(target.shape)}; the critic must write [*batch, 1]"
            )
        loss = distance_loss(value, target, self.loss_critic_type)
        if old_value is not None and self.clip_value is not None:
            delta = (value - old_value).clamp(-self.clip_value, self.clip_value)
            clipped = distance_loss(old_value + delta, target, self.loss_critic_type)
            loss = torch.maximum(loss, clipped)
            outside = (value - old_value).abs() > self.clip_value
            out["value_clip_fraction"] = outside.to(value.dtype).mean()
        out["loss_critic"] = self.critic_coef * loss.mean()
