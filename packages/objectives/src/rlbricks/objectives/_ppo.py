"""PPO losses (Schulman et al. 2017): ``PPOLoss``, ``ClipPPOLoss`` and ``KLPENPPOLoss``."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Distribution
from torch.distributions import kl_divergence

from rlbricks.modules import TensorDictModuleBase
from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._onpolicy import OnPolicyLoss
from rlbricks.objectives._onpolicy import align_to
from rlbricks.objectives._onpolicy import effective_sample_size
from rlbricks.objectives._onpolicy import kl_estimate
from rlbricks.objectives._onpolicy import policy_head
from rlbricks.tensordict import TensorDict

__all__ = ["ClipPPOLoss", "KLPENPPOLoss", "PPOLoss"]


class PPOLoss(OnPolicyLoss):
    """The PPO loss with the plain importance-weighted surrogate (no clip, no penalty).

    With ``r = pi(a|s) / pi_old(a|s)`` (``pi_old`` is the log-probability the
    collecting policy wrote, ``"sample_log_prob"``) and the advantage ``A``:

    * ``loss_objective = -mean(r * A)``;
    * ``loss_entropy = -entropy_coef * mean(H[pi(.|s)])``: the exact entropy
      when the distribution has ``entropy()``, else a Monte Carlo estimate
      over ``samples_mc_entropy`` samples (``TanhNormal`` has no closed form);
    * ``loss_critic = critic_coef * mean(d(V(s), value_target))`` with ``d``
      the squared error (``"l2"``) or the Huber loss (``"smooth_l1"``).  With
      ``clip_value=c`` the value may move at most ``c`` away from the value in
      the input (``"state_value"``, written when the advantage was computed):
      ``d = max(d(V), d(V_old + clamp(V - V_old, -c, c)))``.

    The user sums the ``loss_*`` entries.  ``loss_objective`` and
    ``loss_entropy`` reach the actor's parameters only and ``loss_critic``
    the critic's only (both reach a trunk they share: pass
    ``agent.get_policy_operator()`` and ``agent.get_value_operator()`` of an
    :class:`~rlbricks.modules.ActorValueOperator`).  Detached diagnostics:
    ``entropy``, ``kl_approx`` (the mean of ``(r - 1) - log r``, an estimate
    of ``KL(pi_old || pi)``), ``ESS`` (the effective sample size of ``r`` as a
    fraction of the batch) and ``value_clip_fraction`` with ``clip_value``.

    When the input has no ``"advantage"``, the value estimator runs first (GAE
    with ``gamma=0.99, lmbda=0.95`` unless :meth:`make_value_estimator` made
    another) on a shallow copy: the input is left unchanged.  It needs the
    time dimension, so either call the loss on ``[*batch, T]`` trajectories
    or run ``loss.value_estimator(data)`` once on them before splitting them
    into minibatches (the usual PPO loop).

    Keys (change them with :meth:`set_keys`):

    | name | default | role |
    |---|---|---|
    | ``action`` | ``"action"`` | the taken action |
    | ``sample_log_prob`` | ``"sample_log_prob"`` | its log-probability under the collecting policy |
    | ``advantage`` | ``"advantage"`` | read, or written by the estimator |
    | ``value_target`` | ``"value_target"`` | the critic's target |
    | ``value`` | ``"state_value"`` | the critic's output |
    | ``reward``, ``done``, ``terminated`` | ``("next", ...)`` | read by the estimator |

    Args:
        actor_network: the policy; it must build a distribution
            (``get_dist(td)``), like a :class:`~rlbricks.modules.ProbabilisticActor`.
        critic_network: the state-value network (writes ``"state_value"``);
            ``None`` for no critic loss, the input must then hold the advantage.
        entropy_bonus: add ``loss_entropy``.
        samples_mc_entropy: samples of the Monte Carlo entropy estimate.
        entropy_coef: weight of the entropy bonus.
        critic_coef: weight of the critic loss.
        loss_critic_type: ``"smooth_l1"`` or ``"l2"``.
        normalize_advantage: standardise the advantage over the batch
            (``(A - mean) / std``) before using it.
        clip_value: the largest change of the value per update, or ``None``.

    Raises:
        LossValueError: an actor without ``get_dist``, an unknown
            ``loss_critic_type`` or a non-positive ``clip_value`` or
            ``samples_mc_entropy``.

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import ppo_models
        >>> from rlbricks.objectives import PPOLoss
        >>> from rlbricks.specs import Categorical, Composite, Unbounded
        >>> from rlbricks.tensordict import TensorDict
        >>> actor, critic = ppo_models(Composite(observation=Unbounded(shape=(3,))), Categorical(2))
        >>> loss = PPOLoss(actor, critic)
        >>> with torch.no_grad():
        ...     batch = actor(TensorDict({"observation": torch.randn(4, 5, 3)}, [4, 5]))
        >>> batch["next"] = {"observation": torch.randn(4, 5, 3), "reward": torch.ones(4, 5, 1),
        ...                  "done": torch.zeros(4, 5, 1, dtype=torch.bool),
        ...                  "terminated": torch.zeros(4, 5, 1, dtype=torch.bool)}
        >>> out = loss(batch)
        >>> sorted(k for k in out.keys() if k.startswith("loss_"))
        ['loss_critic', 'loss_entropy', 'loss_objective']
        >>> sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        >>> round(out["ESS"].item(), 3)  # data from the current policy: every weight is 1
        1.0
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
        normalize_advantage: bool = False,
        clip_value: float | None = None,
    ) -> None:
        super().__init__(
            actor_network,
            critic_network,
            entropy_bonus=entropy_bonus,
            entropy_coef=entropy_coef,
            critic_coef=critic_coef,
            loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage,
            clip_value=clip_value,
            samples_mc_entropy=samples_mc_entropy,
        )

    def forward(self, tensordict: TensorDict) -> TensorDict:
        """The losses of a batch; the advantage is computed first when the input lacks it.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
            >>> from rlbricks.objectives import PPOLoss
            >>> from rlbricks.tensordict import TensorDict
            >>> actor = ProbabilisticActor(TensorDictModule(nn.Linear(2, 3), ["observation"], ["logits"]),
            ...     ["logits"], distribution_class=torch.distributions.Categorical)
            >>> batch = TensorDict({"observation": torch.randn(6, 2), "action": torch.zeros(6).long(),
            ...     "sample_log_prob": torch.zeros(6), "advantage": torch.ones(6, 1)}, [6])
            >>> out = PPOLoss(actor, entropy_bonus=False)(batch)
            >>> sorted(out.keys())
            ['ESS', 'kl_approx', 'loss_objective']
        """
        td, advantage = self._prepare(tensordict)
        log_weight, dist = self._log_weight(td, advantage)
        out: dict[str, Tensor] = {}
        out["loss_objective"] = self._objective(td, log_weight, dist, advantage, out)
        detached = log_weight.detach()
        out["kl_approx"] = kl_estimate(detached).mean()
        out["ESS"] = effective_sample_size(detached)
        self._add_entropy(out, dist)
        self._add_critic_loss(out, td)
        return TensorDict(out)

    def _objective(
        self,
        td: TensorDict,
        log_weight: Tensor,
        dist: Distribution,
        advantage: Tensor,
        out: dict[str, Tensor],
    ) -> Tensor:
        """``-mean(r * A)``; subclasses change the surrogate and may add diagnostics to ``out``."""
        return -(log_weight.exp() * advantage).mean()


class ClipPPOLoss(PPOLoss):
    """The PPO loss with the clipped surrogate objective (PPO-Clip).

    ``loss_objective = -mean(min(r * A, clamp(r, 1 - eps, 1 + eps) * A))``
    with ``r = pi(a|s) / pi_old(a|s)``: the objective stops rewarding moves
    of the ratio beyond ``1 +- eps`` in the direction the advantage favours.
    Everything else (entropy, critic, keys, advantage computation) is as in
    :class:`PPOLoss`, with the extra diagnostic ``clip_fraction``: the
    fraction of samples whose ratio lies outside ``[1 - eps, 1 + eps]``.

    Args:
        actor_network: the policy (``get_dist(td)``).
        critic_network: the state-value network, or ``None``.
        clip_epsilon: the half-width ``eps`` of the clip range, ``> 0``.
        entropy_bonus: add ``loss_entropy``.
        samples_mc_entropy: samples of the Monte Carlo entropy estimate.
        entropy_coef: weight of the entropy bonus.
        critic_coef: weight of the critic loss.
        loss_critic_type: ``"smooth_l1"`` or ``"l2"``.
        normalize_advantage: standardise the advantage over the batch.
        clip_value: the largest change of the value per update, or ``None``.

    Raises:
        LossValueError: ``clip_epsilon <= 0``, or an argument :class:`PPOLoss` rejects.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
        >>> from rlbricks.objectives import ClipPPOLoss
        >>> from rlbricks.tensordict import TensorDict
        >>> actor = ProbabilisticActor(TensorDictModule(nn.Linear(2, 3), ["observation"], ["logits"]),
        ...     ["logits"], distribution_class=torch.distributions.Categorical)
        >>> _ = nn.init.zeros_(actor[0].module.weight), nn.init.zeros_(actor[0].module.bias)
        >>> # uniform policy: log pi = log(1/3); the data claims log pi_old = log(1/2), so r = 2/3
        >>> batch = TensorDict({"observation": torch.randn(4, 2), "action": torch.zeros(4).long(),
        ...     "sample_log_prob": torch.full((4,), 0.5).log(), "advantage": -torch.ones(4, 1)}, [4])
        >>> out = ClipPPOLoss(actor, clip_epsilon=0.2, entropy_bonus=False)(batch)
        >>> round(out["loss_objective"].item(), 4), out["clip_fraction"].item()  # -min(-2/3, -0.8)
        (0.8, 1.0)
    """

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        critic_network: TensorDictModuleBase | None = None,
        *,
        clip_epsilon: float = 0.2,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coef: float = 0.01,
        critic_coef: float = 1.0,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        clip_value: float | None = None,
    ) -> None:
        if not clip_epsilon > 0:
            raise LossValueError(f"ClipPPOLoss: clip_epsilon must be > 0, got {clip_epsilon}")
        super().__init__(
            actor_network,
            critic_network,
            entropy_bonus=entropy_bonus,
            samples_mc_entropy=samples_mc_entropy,
            entropy_coef=entropy_coef,
            critic_coef=critic_coef,
            loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage,
            clip_value=clip_value,
        )
        self.clip_epsilon = float(clip_epsilon)

    def _objective(
        self,
        td: TensorDict,
        log_weight: Tensor,
        dist: Distribution,
        advantage: Tensor,
        out: dict[str, Tensor],
    ) -> Tensor:
        eps = self.clip_epsilon
        ratio = log_weight.exp()
        clipped = ratio.clamp(1.0 - eps, 1.0 + eps)
        gain = torch.minimum(ratio * advantage, clipped * advantage)
        out["clip_fraction"] = ((ratio.detach() - 1.0).abs() > eps).to(ratio.dtype).mean()
        return -gain.mean()


class KLPENPPOLoss(PPOLoss):
    """The PPO loss with an adaptive KL penalty (PPO-Penalty).

    ``loss_objective = -mean(r * A) + beta * mean(KL(pi_old(.|s) || pi(.|s)))``.
    The KL divergence is exact when the old distribution can be rebuilt from
    its parameters in the input (the entries the actor's distribution reads,
    e.g. ``"logits"`` or ``"loc"``/``"scale"``, as the collecting actor wrote
    them) and torch knows the divergence of the pair; otherwise it is the
    sample estimate ``(r - 1) - log r`` at the taken actions.

    After each forward call ``beta`` is adapted to the measured divergence
    ``d`` (Schulman et al. 2017, section 4): ``beta *= increment`` when
    ``d > 1.5 * dtarg``, ``beta *= decrement`` when ``d < dtarg / 1.5``.  The
    outputs ``kl`` (the mean divergence) and ``beta`` (the coefficient used in
    this call, before the update) are detached diagnostics; ``beta`` is a
    buffer, so ``state_dict`` keeps it.

    Args:
        actor_network: the policy (``get_dist(td)``).
        critic_network: the state-value network, or ``None``.
        dtarg: the target divergence, ``> 0``.
        beta: the initial penalty coefficient, ``>= 0``.
        increment: factor applied to ``beta`` when the divergence is too large, ``>= 1``.
        decrement: factor applied when it is too small, in ``(0, 1]``.
        entropy_bonus: add ``loss_entropy``.
        samples_mc_entropy: samples of the Monte Carlo entropy estimate.
        entropy_coef: weight of the entropy bonus.
        critic_coef: weight of the critic loss.
        loss_critic_type: ``"smooth_l1"`` or ``"l2"``.
        normalize_advantage: standardise the advantage over the batch.
        clip_value: the largest change of the value per update, or ``None``.

    Raises:
        LossValueError: a hyper-parameter out of its range, or an argument
            :class:`PPOLoss` rejects.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
        >>> from rlbricks.objectives import KLPENPPOLoss
        >>> from rlbricks.tensordict import TensorDict
        >>> actor = ProbabilisticActor(TensorDictModule(nn.Linear(2, 3), ["observation"], ["logits"]),
        ...     ["logits"], distribution_class=torch.distributions.Categorical, return_log_prob=True)
        >>> with torch.no_grad():
        ...     batch = actor(TensorDict({"observation": torch.randn(8, 2)}, [8]))
        >>> batch["advantage"] = torch.randn(8, 1)
        >>> loss = KLPENPPOLoss(actor, dtarg=0.01, beta=1.0)
        >>> out = loss(batch)  # same policy: KL = 0 < dtarg / 1.5, so beta halves
        >>> out["kl"].item(), out["beta"].item(), loss.beta.item()
        (0.0, 1.0, 0.5)
    """

    beta: Tensor

    def __init__(
        self,
        actor_network: TensorDictModuleBase,
        critic_network: TensorDictModuleBase | None = None,
        *,
        dtarg: float = 0.01,
        beta: float = 1.0,
        increment: float = 2.0,
        decrement: float = 0.5,
        entropy_bonus: bool = True,
        samples_mc_entropy: int = 1,
        entropy_coef: float = 0.01,
        critic_coef: float = 1.0,
        loss_critic_type: str = "smooth_l1",
        normalize_advantage: bool = False,
        clip_value: float | None = None,
    ) -> None:
        checks = {
            "dtarg > 0": dtarg > 0,
            "beta >= 0": beta >= 0,
            "increment >= 1": increment >= 1,
            "0 < decrement <= 1": 0 < decrement <= 1,
        }
        for rule, ok in checks.items():
            if not ok:
                raise LossValueError(
                    f"KLPENPPOLoss: needs {rule}; got dtarg={dtarg}, beta={beta}, "
                    f"increment={increment}, decrement={decrement}"
                )
        super().__init__(
            actor_network,
            critic_network,
            entropy_bonus=entropy_bonus,
            samples_mc_entropy=samples_mc_entropy,
            entropy_coef=entropy_coef,
            critic_coef=critic_coef,
            loss_critic_type=loss_critic_type,
            normalize_advantage=normalize_advantage,
            clip_value=clip_value,
        )
        self.dtarg = float(dtarg)
        self.increment = float(increment)
        self.decrement = float(decrement)
        self.register_buffer("beta", torch.tensor(float(beta)))

    def _kl(self, td: TensorDict, log_weight: Tensor, dist: Distribution) -> Tensor:
        """``KL(pi_old || pi)`` per sample, shaped like ``log_weight``: exact when possible."""
        head = policy_head(self.actor_network)
        if head is not None and all(key in td for key in head.in_keys):
            old_dist = head.get_dist(td.select(*head.in_keys).detach())
            try:
                kl = kl_divergence(old_dist, dist)
            except NotImplementedError:
                pass
            else:
                return align_to(kl, log_weight, "the KL divergence", type(self).__name__)
        return kl_estimate(log_weight)

    def _objective(
        self,
        td: TensorDict,
        log_weight: Tensor,
        dist: Distribution,
        advantage: Tensor,
        out: dict[str, Tensor],
    ) -> Tensor:
        kl = self._kl(td, log_weight, dist).mean()
        beta = self.beta.clone()
        out["kl"] = kl.detach()
        out["beta"] = beta
        self._update_beta(kl.detach())
        return -(log_weight.exp() * advantage).mean() + beta * kl

    @torch.no_grad()
    def _update_beta(self, kl: Tensor) -> None:
        if kl > 1.5 * self.dtarg:
            self.beta.mul_(self.increment)
        elif kl < self.dtarg / 1.5:
            self.beta.mul_(self.decrement)
