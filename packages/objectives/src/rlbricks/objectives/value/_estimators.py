"""The estimator modules: thin TensorDict wrappers around the functions of ``functional``."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from torch import Tensor

from rlbricks.objectives.value import functional as F
from rlbricks.objectives.value._base import Batch
from rlbricks.objectives.value._base import ValueEstimatorBase
from rlbricks.objectives.value._base import ValueNetwork
from rlbricks.objectives.value._base import check_factor_value
from rlbricks.objectives.value._errors import ValueEstimatorValueError
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["GAE", "TD0Estimator", "TD1Estimator", "TDLambdaEstimator", "VTrace"]

_Factor = float | Tensor


class _Discounted(ValueEstimatorBase):
    """An estimator with a discount factor ``gamma`` (a number, or a tensor kept as a buffer)."""

    gamma: _Factor

    def __init__(
        self,
        gamma: _Factor,
        value_network: ValueNetwork | None,
        *,
        differentiable: bool = False,
        skip_existing: bool = False,
    ) -> None:
        super().__init__(
            value_network=value_network,
            differentiable=differentiable,
            skip_existing=skip_existing,
        )
        self._set_factor("gamma", gamma)

    def _set_factor(self, name: str, value: Any) -> None:
        value = check_factor_value(type(self).__name__, name, value, 0.0, 1.0)
        if isinstance(value, Tensor):
            self.register_buffer(name, value)
        else:
            setattr(self, name, value)

    def _hyperparameters(self) -> Iterator[tuple[str, Any]]:
        yield "gamma", self.gamma
        yield from super()._hyperparameters()


class TD0Estimator(_Discounted):
    """One-step TD target: ``value_target = r + gamma * (1 - terminated) * V(s')``.

    The advantage is ``value_target - V(s)``.  See
    :func:`~rlbricks.objectives.value.functional.td0_return_estimate`.

    Args:
        gamma: the discount factor.
        value_network: the critic writing the ``"value"`` key (or ``None``).
        differentiable: let gradients flow through the estimate.
        skip_existing: reuse values already present in the TensorDict.

    Raises:
        ValueEstimatorValueError: ``gamma`` is not in ``[0, 1]``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import ValueOperator
        >>> from rlbricks.objectives import TD0Estimator
        >>> from rlbricks.tensordict import TensorDict
        >>> critic = ValueOperator(nn.Linear(3, 1))
        >>> flags = torch.zeros(8, 1, dtype=torch.bool)
        >>> td = TensorDict({"observation": torch.randn(8, 3), "next": {
        ...     "observation": torch.randn(8, 3), "reward": torch.randn(8, 1),
        ...     "done": flags, "terminated": flags}}, batch_size=[8])
        >>> td = TD0Estimator(gamma=0.99, value_network=critic)(td)
        >>> torch.allclose(td["value_target"],
        ...                td["next", "reward"] + 0.99 * td["next", "state_value"])
        True
    """

    _target_reads_value: ClassVar[bool] = False

    def _value_target(self, tensordict: TensorDict, batch: Batch) -> Tensor:
        return F.td0_return_estimate(self.gamma, batch.next_value, batch.reward, batch.terminated)


class TD1Estimator(_Discounted):
    """TD(1) target: the discounted rewards to the end of each trajectory, then a bootstrap.

    Inside the batch, a trajectory ends where ``done`` is set or at the last
    step; there ``V(s')`` is bootstrapped unless the step terminated.  See
    :func:`~rlbricks.objectives.value.functional.td1_return_estimate`.

    Args:
        gamma: the discount factor.
        value_network: the critic writing the ``"value"`` key (or ``None``).
        differentiable: let gradients flow through the estimate.
        skip_existing: reuse values already present in the TensorDict.

    Raises:
        ValueEstimatorValueError: ``gamma`` is not in ``[0, 1]``.

    Example:
        >>> import torch
        >>> from rlbricks.objectives import TD1Estimator
        >>> from rlbricks.tensordict import TensorDict
        >>> flags = torch.zeros(1, 3, 1, dtype=torch.bool)
        >>> td = TensorDict({"state_value": torch.zeros(1, 3, 1), "next": {
        ...     "state_value": torch.full((1, 3, 1), 8.0), "reward": torch.ones(1, 3, 1),
        ...     "done": flags, "terminated": flags}}, batch_size=[1, 3])
        >>> TD1Estimator(gamma=0.5, value_network=None)(td)["value_target"].flatten()
        tensor([2.7500, 3.5000, 5.0000])
    """

    _target_reads_value: ClassVar[bool] = False

    def _value_target(self, tensordict: TensorDict, batch: Batch) -> Tensor:
        return F.td1_return_estimate(
            self.gamma,
            batch.next_value,
            batch.reward,
            batch.done,
            batch.terminated,
            time_dim=batch.time_dim,
        )


class TDLambdaEstimator(_Discounted):
    """TD(lambda) target: a lambda-weighted mix of the n-step bootstrapped returns.

    See :func:`~rlbricks.objectives.value.functional.td_lambda_return_estimate`
    for the recurrence; the advantage is ``value_target - V(s)``.

    Args:
        gamma: the discount factor.
        lmbda: the lambda (0 gives TD(0), 1 gives TD(1)).
        value_network: the critic writing the ``"value"`` key (or ``None``).
        differentiable: let gradients flow through the estimate.
        skip_existing: reuse values already present in the TensorDict.

    Raises:
        ValueEstimatorValueError: ``gamma`` or ``lmbda`` is not in ``[0, 1]``.

    Example:
        >>> import torch
        >>> from rlbricks.objectives import TDLambdaEstimator
        >>> from rlbricks.tensordict import TensorDict
        >>> flags = torch.zeros(1, 2, 1, dtype=torch.bool)
        >>> td = TensorDict({"state_value": torch.zeros(1, 2, 1), "next": {
        ...     "state_value": torch.tensor([[[2.0], [4.0]]]), "reward": torch.zeros(1, 2, 1),
        ...     "done": flags, "terminated": flags}}, batch_size=[1, 2])
        >>> TDLambdaEstimator(gamma=1.0, lmbda=0.5, value_network=None)(td)["value_target"].flatten()
        tensor([3., 4.])
    """

    lmbda: _Factor

    def __init__(
        self,
        gamma: _Factor,
        lmbda: _Factor,
        value_network: ValueNetwork | None,
        *,
        differentiable: bool = False,
        skip_existing: bool = False,
    ) -> None:
        super().__init__(
            gamma, value_network, differentiable=differentiable, skip_existing=skip_existing
        )
        self._set_factor("lmbda", lmbda)

    _target_reads_value: ClassVar[bool] = False

    def _value_target(self, tensordict: TensorDict, batch: Batch) -> Tensor:
        return F.td_lambda_return_estimate(
            self.gamma,
            self.lmbda,
            batch.next_value,
            batch.reward,
            batch.done,
            batch.terminated,
            time_dim=batch.time_dim,
        )

    def _hyperparameters(self) -> Iterator[tuple[str, Any]]:
        yield "lmbda", self.lmbda
        yield from super()._hyperparameters()


class GAE(_Discounted):
    """Generalized advantage estimation (Schulman et al., 2016).

    ``advantage`` is the GAE, ``value_target = advantage + V(s)`` (the
    TD(lambda) return).  See
    :func:`~rlbricks.objectives.value.functional.generalized_advantage_estimate`.

    Args:
        gamma: the discount factor.
        lmbda: the GAE lambda.
        value_network: the critic writing the ``"value"`` key (or ``None``).
        average_gae: standardise the written advantage over the whole batch
            (zero mean, unit standard deviation); the value target keeps the
            raw advantage.
        differentiable: let gradients flow through the estimate.
        skip_existing: reuse values already present in the TensorDict.

    Raises:
        ValueEstimatorValueError: ``gamma`` or ``lmbda`` is not in ``[0, 1]``.

    Example:
        >>> import torch
        >>> from rlbricks.objectives import GAE
        >>> from rlbricks.tensordict import TensorDict
        >>> done = torch.tensor([[[False], [False], [True]]])
        >>> td = TensorDict({"state_value": torch.zeros(1, 3, 1), "next": {
        ...     "state_value": torch.zeros(1, 3, 1), "reward": torch.ones(1, 3, 1),
        ...     "done": done, "terminated": done}}, batch_size=[1, 3])
        >>> GAE(gamma=0.5, lmbda=1.0, value_network=None)(td)["advantage"].flatten()
        tensor([1.7500, 1.5000, 1.0000])
    """

    lmbda: _Factor

    def __init__(
        self,
        gamma: _Factor,
        lmbda: _Factor,
        value_network: ValueNetwork | None,
        *,
        average_gae: bool = False,
        differentiable: bool = False,
        skip_existing: bool = False,
    ) -> None:
        super().__init__(
            gamma, value_network, differentiable=differentiable, skip_existing=skip_existing
        )
        self._set_factor("lmbda", lmbda)
        self.average_gae = average_gae

    def _estimate(self, tensordict: TensorDict, batch: Batch) -> tuple[Tensor, Tensor]:
        assert batch.value is not None  # GAE always reads the root values
        advantage, target = F.generalized_advantage_estimate(
            self.gamma,
            self.lmbda,
            batch.value,
            batch.next_value,
            batch.reward,
            batch.done,
            batch.terminated,
            time_dim=batch.time_dim,
        )
        if self.average_gae:
            advantage = _standardise(advantage)
        return advantage, target

    def _value_target(self, tensordict: TensorDict, batch: Batch) -> Tensor:
        return self._estimate(tensordict, batch)[1]

    def _hyperparameters(self) -> Iterator[tuple[str, Any]]:
        yield "lmbda", self.lmbda
        yield "average_gae", self.average_gae
        yield from super()._hyperparameters()


def _standardise(x: Tensor) -> Tensor:
    """``x`` with zero mean and unit standard deviation (left centred when constant)."""
    centred = x - x.mean()
    if x.numel() < 2:
        return centred
    return centred / x.std().clamp_min(1e-8)


class VTrace(_Discounted):
    """V-trace (Espeholt et al., 2018): off-policy corrected targets and advantages for IMPALA.

    Reads the behaviour policy's log-probability of the taken action
    (``"sample_log_prob"``, written at collection time) and the current
    policy's: ``actor_network.get_dist(td).log_prob(td["action"])`` when an
    actor is given (e.g. a :class:`~rlbricks.modules.ProbabilisticActor`),
    else the ``"log_prob"`` entry of the TensorDict.  Writes
    ``value_target = vs`` and the policy-gradient ``advantage``.  See
    :func:`~rlbricks.objectives.value.functional.vtrace_advantage_estimate`.

    Args:
        gamma: the discount factor.
        value_network: the critic writing the ``"value"`` key (or ``None``).
        actor_network: an object with ``get_dist(tensordict)`` returning the
            current policy's distribution; ``None`` to read ``"log_prob"``.
        rho_thresh: the clip of the importance weights (rho bar).
        c_thresh: the clip of the trace coefficients (c bar).
        differentiable: let gradients flow through the estimate.
        skip_existing: reuse values already present in the TensorDict.

    Raises:
        ValueEstimatorValueError: ``gamma`` is not in ``[0, 1]``, a threshold is not
            positive, or ``actor_network`` has no ``get_dist``.

    Example:
        >>> import torch
        >>> from rlbricks.objectives import VTrace
        >>> from rlbricks.tensordict import TensorDict
        >>> flags = torch.zeros(1, 2, 1, dtype=torch.bool)
        >>> td = TensorDict({
        ...     "state_value": torch.zeros(1, 2, 1), "sample_log_prob": torch.zeros(1, 2),
        ...     "log_prob": torch.zeros(1, 2),
        ...     "next": {"state_value": torch.zeros(1, 2, 1), "reward": torch.ones(1, 2, 1),
        ...              "done": flags, "terminated": flags}}, batch_size=[1, 2])
        >>> VTrace(gamma=0.5, value_network=None)(td)["value_target"].flatten()
        tensor([1.5000, 1.0000])
    """

    default_keys: ClassVar[Mapping[str, NestedKey]] = {
        **ValueEstimatorBase.default_keys,
        "sample_log_prob": "sample_log_prob",
        "log_prob": "log_prob",
        "action": "action",
    }

    def __init__(
        self,
        gamma: _Factor,
        value_network: ValueNetwork | None,
        actor_network: Any = None,
        *,
        rho_thresh: _Factor = 1.0,
        c_thresh: _Factor = 1.0,
        differentiable: bool = False,
        skip_existing: bool = False,
    ) -> None:
        super().__init__(
            gamma, value_network, differentiable=differentiable, skip_existing=skip_existing
        )
        if actor_network is not None and not callable(getattr(actor_network, "get_dist", None)):
            raise ValueEstimatorValueError(
                f"VTrace: actor_network must have a get_dist(tensordict) method (e.g. a "
                f"ProbabilisticActor), got {type(actor_network).__name__}; or pass None and "
                f"write the current policy's log-prob under the 'log_prob' key"
            )
        self.actor_network = actor_network
        for name, value in (("rho_thresh", rho_thresh), ("c_thresh", c_thresh)):
            value = check_factor_value("VTrace", name, value, 0.0, float("inf"))
            if not isinstance(value, Tensor) and value <= 0:
                raise ValueEstimatorValueError(f"VTrace: {name}={value} must be positive")
            if isinstance(value, Tensor):
                self.register_buffer(name, value)
            else:
                setattr(self, name, value)

    rho_thresh: _Factor
    c_thresh: _Factor

    def _extra_in_keys(self) -> list[NestedKey]:
        keys = [self._keys["sample_log_prob"]]
        if self.actor_network is None:
            return keys + [self._keys["log_prob"]]
        return keys + [self._keys["action"], *getattr(self.actor_network, "in_keys", [])]

    def _log_pi(self, tensordict: TensorDict) -> Tensor:
        if self.actor_network is None:
            return self._read(tensordict, self._keys["log_prob"])
        action = self._read(tensordict, self._keys["action"])
        dist = self.actor_network.get_dist(tensordict)
        return dist.log_prob(action)

    def _estimate(self, tensordict: TensorDict, batch: Batch) -> tuple[Tensor, Tensor]:
        assert batch.value is not None  # V-trace always reads the root values
        log_mu = self._read(tensordict, self._keys["sample_log_prob"])
        log_pi = self._log_pi(tensordict)
        pi_label = self._keys["log_prob"] if self.actor_network is None else "actor log_prob"
        named = [
            (pi_label, log_pi),
            (self._keys["sample_log_prob"], log_mu),
            (self._keys["value"], batch.value),
        ]
        log_pi, log_mu, _ = self._shape_like(tensordict, named)
        return F.vtrace_advantage_estimate(
            self.gamma,
            log_pi,
            log_mu,
            batch.value,
            batch.next_value,
            batch.reward,
            batch.done,
            batch.terminated,
            self.rho_thresh,
            self.c_thresh,
            time_dim=batch.time_dim,
        )

    def _value_target(self, tensordict: TensorDict, batch: Batch) -> Tensor:
        return self._estimate(tensordict, batch)[1]

    def _hyperparameters(self) -> Iterator[tuple[str, Any]]:
        yield "rho_thresh", self.rho_thresh
        yield "c_thresh", self.c_thresh
        yield from super()._hyperparameters()
