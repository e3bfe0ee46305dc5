"""Actors and critics: ``Actor``, ``ProbabilisticActor``, ``ValueOperator`` and their combinations."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from rlbricks.modules._common import KeysLike
from rlbricks.modules._common import TensorDictModule
from rlbricks.modules._common import TensorDictModuleBase
from rlbricks.modules._common import as_keys
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._exploration import ExplorationType
from rlbricks.modules._probabilistic import DistributionFactory
from rlbricks.modules._probabilistic import ProbabilisticTensorDictModule
from rlbricks.modules._sequential import TensorDictSequential
from rlbricks.modules._spec_utils import project
from rlbricks.specs import Composite
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = [
    "Actor",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "ProbabilisticActor",
    "ValueOperator",
    "as_composite",
    "project_into",
]


def as_composite(spec: TensorSpec[Any] | None, key: NestedKey) -> Composite | None:
    """``spec`` as a :class:`Composite`: a leaf spec becomes the entry ``key``."""
    if spec is None or isinstance(spec, Composite):
        return spec
    if not isinstance(spec, TensorSpec):
        raise ModuleValueError(
            f"spec must be a TensorSpec (e.g. Bounded(...)), got {type(spec).__name__}"
        )
    composite = Composite()
    composite[key] = spec
    return composite


def project_into(
    spec: Composite | None, tensordict: TensorDict, keys: list[NestedKey], owner: str
) -> None:
    """Project, in the TensorDict, every entry of ``keys`` that ``spec`` describes."""
    if spec is None:
        return
    for key in keys:
        if key in spec:
            tensordict.set(key, project(spec[key], tensordict.get(key), owner))


class Actor(TensorDictModule):
    """A deterministic policy: a network that maps observations to an action.

    A :class:`TensorDictModule` with the usual policy keys as defaults.  The
    action spec is kept as ``actor.spec`` (a :class:`~rlbricks.specs.Composite`
    keyed by the out_key when a leaf spec is given) for the exploration
    modules and losses that need it; with ``safe=True`` every output that the
    spec describes is projected into it (clamped into the box, for instance).
    A spec with environment batch dims (``env.action_spec`` of a batched
    env) also projects outputs with other leading dims, such as replay
    samples: its environment dims are dropped, which requires every
    environment to share the same bounds.

    Args:
        module: the network.
        in_keys: the keys it reads.
        out_keys: the keys it writes.
        spec: the action spec: a leaf spec for ``out_keys[0]`` or a Composite.
        safe: project the outputs into ``spec``.

    Raises:
        ModuleValueError: ``safe=True`` without a spec.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import Actor
        >>> from rlbricks.specs import Bounded
        >>> from rlbricks.tensordict import TensorDict
        >>> actor = Actor(nn.Linear(4, 2), spec=Bounded(-0.1, 0.1, shape=(2,)), safe=True)
        >>> td = actor(TensorDict({"observation": torch.randn(16, 4)}, [16]))
        >>> bool(td["action"].abs().max() <= 0.1)
        True
        >>> actor.spec["action"].shape
        torch.Size([2])
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: KeysLike = "observation",
        out_keys: KeysLike = "action",
        spec: TensorSpec[Any] | None = None,
        safe: bool = False,
    ) -> None:
        super().__init__(module, in_keys, out_keys)
        if safe and spec is None:
            raise ModuleValueError(
                "Actor(safe=True) needs the action spec to project into: pass spec="
            )
        self.spec = as_composite(spec, self.out_keys[0])
        self.safe = safe

    def forward(
        self, tensordict: TensorDict, tensordict_out: TensorDict | None = None
    ) -> TensorDict:
        """Run the network and write the action (projected into the spec when ``safe``).

        Example:
            >>> import torch
            >>> from rlbricks.modules import Actor
            >>> from rlbricks.tensordict import TensorDict
            >>> Actor(torch.tanh)(TensorDict({"observation": torch.zeros(1)}))["action"]
            tensor([0.])
        """
        out = super().forward(tensordict, tensordict_out)
        if self.safe:
            project_into(self.spec, out, self.out_keys, "Actor")
        return out


class ProbabilisticActor(TensorDictSequential):
    """A stochastic policy: a network writing distribution parameters, then a sample of it.

    The same as ``TensorDictSequential(module,
    ProbabilisticTensorDictModule(in_keys, out_keys, ...))``: ``module`` (a
    TensorDict module) writes the parameters named by ``in_keys``, and the
    distribution built from them gives the action according to the current
    :class:`ExplorationType`.  ``actor.in_keys`` are then the keys ``module``
    reads (e.g. ``["observation"]``).  :meth:`get_dist` returns the
    distribution for a TensorDict, as on-policy losses need.  The arguments
    after ``in_keys`` are keyword-only.

    Args:
        module: a TensorDict module writing the parameter entries.
        in_keys: the parameter entries (list of keys or ``{keyword: key}``).
        spec: the action spec (kept as ``actor.spec``; a leaf spec is keyed by
            the out_key).
        distribution_class: the distribution; ``None`` means
            :class:`~rlbricks.modules.Delta`.
        distribution_kwargs: extra keyword arguments of the distribution.
        return_log_prob: also write the log-probability under ``log_prob_key``.
        out_keys: where the action goes.
        log_prob_key: where the log-probability goes.
        default_interaction_type: the exploration type used when none is set.
        safe: project the action into ``spec`` after sampling (the
            log-probability stays the one of the unprojected sample).

    Raises:
        ModuleValueError: ``module`` is not a TensorDict module, or ``safe=True``
            without a spec.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from torch.distributions import Categorical
        >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
        >>> from rlbricks.tensordict import TensorDict
        >>> net = TensorDictModule(nn.Linear(4, 3), ["observation"], ["logits"])
        >>> actor = ProbabilisticActor(net, ["logits"], distribution_class=Categorical,
        ...                            return_log_prob=True)
        >>> actor.in_keys, actor.out_keys
        (['observation'], ['logits', 'action', 'sample_log_prob'])
        >>> td = actor(TensorDict({"observation": torch.randn(5, 4)}, [5]))
        >>> td["action"].shape, td["sample_log_prob"].shape
        (torch.Size([5]), torch.Size([5]))
        >>> actor.get_dist(td).logits.shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        module: TensorDictModuleBase,
        in_keys: KeysLike | Mapping[str, NestedKey],
        *,
        spec: TensorSpec[Any] | None = None,
        distribution_class: DistributionFactory | None = None,
        distribution_kwargs: Mapping[str, Any] | None = None,
        return_log_prob: bool = False,
        out_keys: KeysLike = "action",
        log_prob_key: NestedKey = "sample_log_prob",
        default_interaction_type: ExplorationType | str = ExplorationType.RANDOM,
        safe: bool = False,
    ) -> None:
        if not isinstance(module, TensorDictModuleBase):
            raise ModuleValueError(
                f"ProbabilisticActor: module must be a TensorDict module writing the "
                f"distribution's parameters, got {type(module).__name__}; wrap the network: "
                "TensorDictModule(net, in_keys=['observation'], out_keys=['loc', 'scale'])"
            )
        head = ProbabilisticTensorDictModule(
            in_keys,
            out_keys,
            distribution_class=distribution_class,
            distribution_kwargs=distribution_kwargs,
            return_log_prob=return_log_prob,
            log_prob_key=log_prob_key,
            default_interaction_type=default_interaction_type,
        )
        super().__init__(module, head)
        if safe and spec is None:
            raise ModuleValueError(
                "ProbabilisticActor(safe=True) needs the action spec to project into: pass spec="
            )
        self.spec = as_composite(spec, head.sample_key)
        self.safe = safe
        self._sample_key = head.sample_key

    def forward(
        self, tensordict: TensorDict, tensordict_out: TensorDict | None = None
    ) -> TensorDict:
        """Write the distribution parameters and the action (projected when ``safe``).

        Example:
            >>> import torch
            >>> from rlbricks.modules import ProbabilisticActor, TensorDictModule
            >>> from rlbricks.tensordict import TensorDict
            >>> net = TensorDictModule(lambda x: (x, x.exp()), ["observation"], ["loc", "scale"])
            >>> actor = ProbabilisticActor(net, ["loc", "scale"],
            ...                            distribution_class=torch.distributions.Normal)
            >>> actor(TensorDict({"observation": torch.zeros(3)}))["action"].shape
            torch.Size([3])
        """
        out = super().forward(tensordict, tensordict_out)
        if self.safe:
            project_into(self.spec, out, [self._sample_key], "ProbabilisticActor")
        return out


class ValueOperator(TensorDictModule):
    """A critic: a network writing a state value, or a state-action value when it reads the action.

    A :class:`TensorDictModule` whose out_key defaults to
    ``"state_action_value"`` when ``"action"`` is among the in_keys and to
    ``"state_value"`` otherwise.  The network receives the in_keys entries as
    positional arguments, in order.

    Args:
        module: the network.
        in_keys: the keys it reads.
        out_keys: the key(s) it writes; ``None`` picks the default above.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import ValueOperator
        >>> from rlbricks.tensordict import TensorDict
        >>> class QNet(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.linear = nn.Linear(4 + 2, 1)
        ...
        ...     def forward(self, observation, action):
        ...         return self.linear(torch.cat([observation, action], -1))
        >>> critic = ValueOperator(QNet(), in_keys=["observation", "action"])
        >>> critic.out_keys
        ['state_action_value']
        >>> td = TensorDict({"observation": torch.randn(8, 4), "action": torch.randn(8, 2)}, [8])
        >>> critic(td)["state_action_value"].shape
        torch.Size([8, 1])
        >>> ValueOperator(nn.Linear(4, 1)).out_keys
        ['state_value']
    """

    def __init__(
        self,
        module: Callable[..., Any],
        in_keys: KeysLike = "observation",
        out_keys: KeysLike | None = None,
    ) -> None:
        if out_keys is None:
            reads_action = "action" in as_keys(in_keys, "in_keys")
            out_keys = "state_action_value" if reads_action else "state_value"
        super().__init__(module, in_keys, out_keys)


def _check_td_module(module: Any, role: str, owner: str) -> TensorDictModuleBase:
    if not isinstance(module, TensorDictModuleBase):
        raise ModuleValueError(
            f"{owner}: {role} must be a TensorDict module (TensorDictModule, Actor, "
            f"ValueOperator, ...), got {type(module).__name__}"
        )
    return module


class ActorValueOperator(TensorDictSequential):
    """A shared trunk followed by a policy head and a value head.

    Calling it runs the three modules: ``common_operator`` writes a shared
    representation that both heads read.  The getters give the parts that
    share parameters with it: :meth:`get_policy_operator` (trunk + policy,
    to collect data) and :meth:`get_value_operator` (trunk + value, for the
    loss), and the bare heads.

    Args:
        common_operator: the shared trunk.
        policy_operator: the policy head (an :class:`Actor`,
            :class:`ProbabilisticActor`, ...).
        value_operator: the value head (a :class:`ValueOperator`).

    Raises:
        ModuleValueError: an argument is not a TensorDict module.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import (
        ...     Actor, ActorValueOperator, TensorDictModule, ValueOperator)
        >>> from rlbricks.tensordict import TensorDict
        >>> trunk = TensorDictModule(nn.Linear(4, 8), ["observation"], ["hidden"])
        >>> agent = ActorValueOperator(trunk, Actor(nn.Linear(8, 2), ["hidden"]),
        ...                            ValueOperator(nn.Linear(8, 1), ["hidden"]))
        >>> td = agent(TensorDict({"observation": torch.randn(3, 4)}, [3]))
        >>> sorted(td.keys())
        ['action', 'hidden', 'observation', 'state_value']
        >>> policy = agent.get_policy_operator()
        >>> policy.in_keys, policy.out_keys
        (['observation'], ['hidden', 'action'])
    """

    def __init__(
        self,
        common_operator: TensorDictModuleBase,
        policy_operator: TensorDictModuleBase,
        value_operator: TensorDictModuleBase,
    ) -> None:
        name = "ActorValueOperator"
        super().__init__(
            _check_td_module(common_operator, "common_operator", name),
            _check_td_module(policy_operator, "policy_operator", name),
            _check_td_module(value_operator, "value_operator", name),
        )

    def get_policy_operator(self) -> TensorDictSequential:
        """The trunk followed by the policy head (shares their parameters).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorValueOperator, TensorDictModule, ValueOperator
            >>> agent = ActorValueOperator(TensorDictModule(nn.Linear(3, 8), ["observation"], ["h"]),
            ...                            Actor(nn.Linear(8, 2), ["h"]), ValueOperator(nn.Linear(8, 1), ["h"]))
            >>> agent.get_policy_operator()[1] is agent.get_policy_head()
            True
        """
        return TensorDictSequential(self._part(0), self._part(1))

    def get_value_operator(self) -> TensorDictSequential:
        """The trunk followed by the value head (shares their parameters).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorValueOperator, TensorDictModule, ValueOperator
            >>> agent = ActorValueOperator(TensorDictModule(nn.Linear(3, 8), ["observation"], ["h"]),
            ...                            Actor(nn.Linear(8, 2), ["h"]), ValueOperator(nn.Linear(8, 1), ["h"]))
            >>> agent.get_value_operator().out_keys
            ['h', 'state_value']
        """
        return TensorDictSequential(self._part(0), self._part(2))

    def get_policy_head(self) -> TensorDictModuleBase:
        """The policy head alone (it reads the trunk's output).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorValueOperator, TensorDictModule, ValueOperator
            >>> agent = ActorValueOperator(TensorDictModule(nn.Linear(3, 8), ["observation"], ["h"]),
            ...                            Actor(nn.Linear(8, 2), ["h"]), ValueOperator(nn.Linear(8, 1), ["h"]))
            >>> agent.get_policy_head().in_keys
            ['h']
        """
        return self._part(1)

    def get_value_head(self) -> TensorDictModuleBase:
        """The value head alone (it reads the trunk's output).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorValueOperator, TensorDictModule, ValueOperator
            >>> agent = ActorValueOperator(TensorDictModule(nn.Linear(3, 8), ["observation"], ["h"]),
            ...                            Actor(nn.Linear(8, 2), ["h"]), ValueOperator(nn.Linear(8, 1), ["h"]))
            >>> agent.get_value_head().out_keys
            ['state_value']
        """
        return self._part(2)


class ActorCriticWrapper(TensorDictSequential):
    """A policy and a critic without shared parameters, run one after the other.

    Calling it runs the policy, then the critic (which may read the action the
    policy wrote).  The getters return the two modules themselves;
    ``get_policy_head``/``get_value_head`` are the same as the operators, so
    code written for :class:`ActorValueOperator` works unchanged.

    Args:
        policy_operator: the policy.
        value_operator: the critic.

    Raises:
        ModuleValueError: an argument is not a TensorDict module.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from rlbricks.modules import Actor, ActorCriticWrapper, ValueOperator
        >>> from rlbricks.tensordict import TensorDict
        >>> agent = ActorCriticWrapper(Actor(nn.Linear(4, 2)), ValueOperator(nn.Linear(4, 1)))
        >>> sorted(agent(TensorDict({"observation": torch.randn(4)})).keys())
        ['action', 'observation', 'state_value']
        >>> agent.get_policy_operator() is agent.get_policy_head()
        True
    """

    def __init__(
        self, policy_operator: TensorDictModuleBase, value_operator: TensorDictModuleBase
    ) -> None:
        name = "ActorCriticWrapper"
        super().__init__(
            _check_td_module(policy_operator, "policy_operator", name),
            _check_td_module(value_operator, "value_operator", name),
        )

    def get_policy_operator(self) -> TensorDictModuleBase:
        """The policy.

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorCriticWrapper, ValueOperator
            >>> agent = ActorCriticWrapper(Actor(nn.Linear(3, 2)), ValueOperator(nn.Linear(3, 1)))
            >>> agent.get_policy_operator().out_keys
            ['action']
        """
        return self._part(0)

    def get_value_operator(self) -> TensorDictModuleBase:
        """The critic.

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorCriticWrapper, ValueOperator
            >>> agent = ActorCriticWrapper(Actor(nn.Linear(3, 2)), ValueOperator(nn.Linear(3, 1)))
            >>> agent.get_value_operator().out_keys
            ['state_value']
        """
        return self._part(1)

    def get_policy_head(self) -> TensorDictModuleBase:
        """The policy (the same as :meth:`get_policy_operator`: there is no trunk).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorCriticWrapper, ValueOperator
            >>> agent = ActorCriticWrapper(Actor(nn.Linear(3, 2)), ValueOperator(nn.Linear(3, 1)))
            >>> agent.get_policy_head() is agent[0]
            True
        """
        return self.get_policy_operator()

    def get_value_head(self) -> TensorDictModuleBase:
        """The critic (the same as :meth:`get_value_operator`: there is no trunk).

        Example:
            >>> from torch import nn
            >>> from rlbricks.modules import Actor, ActorCriticWrapper, ValueOperator
            >>> agent = ActorCriticWrapper(Actor(nn.Linear(3, 2)), ValueOperator(nn.Linear(3, 1)))
            >>> agent.get_value_head() is agent[1]
            True
        """
        return self.get_value_operator()
