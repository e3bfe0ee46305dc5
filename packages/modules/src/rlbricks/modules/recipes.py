"""Ready-made models for the standard algorithms, sized from specs.

Each recipe takes the observation spec (a ``Composite``) and the action spec,
or an environment (anything with ``.observation_spec`` and ``.action_spec``),
and returns TensorDict modules with the standard keys, ready for the losses:

| recipe | returns | action specs |
|---|---|---|
| :func:`dqn_model` | ``QValueActor`` or ``DistributionalQValueActor`` | ``OneHot``, ``Categorical`` |
| :func:`ddpg_models`, :func:`td3_models` | ``(Actor, ValueOperator)`` | ``Bounded``, ``Unbounded`` |
| :func:`sac_models` | ``(ProbabilisticActor, ValueOperator[, ValueOperator])`` | ``Bounded``, ``Unbounded`` |
| :func:`ppo_models` | ``(ProbabilisticActor, ValueOperator)`` or ``ActorValueOperator`` | all four |

**Inputs.** The network reads ``observation_key``; by default
``"observation"`` when the spec has it, else ``"pixels"``, else its only
entry.  A 1-d entry feeds an MLP.  A 3-d entry is an image and feeds a
:class:`~rlbricks.modules.ConvNet` (``cnn=None`` decides from the shape;
``cnn=False`` flattens it into the MLP instead).  Images may be
``[C, H, W]`` or ``[H, W, C]``: the channels are the smaller of the first and
last dims (ties: first), and ``uint8`` pixels are divided by 255.  Other
dtypes are cast to the default float dtype.

**Batched specs.** An environment's specs carry its batch dims in front (a
``Composite`` of shape ``[4]`` holds ``"observation"`` of shape ``[4, 3]``);
the recipes drop the ``Composite``'s leading dims from every spec, so they
size the models from one environment's shapes.

**Actions stay in the spec.** Continuous actions are squashed into the box by
``tanh`` (``Bounded``); the deterministic actors project their action into
the spec (``safe=True``) and so does a policy over a ``OneHot`` spec, so that
its samples become the spec's bool one-hot.  The other stochastic policies
draw in the spec by construction and skip the projection, and their
distributions skip torch's argument checks (``validate_args=False``): both
cost more than the network on small problems.

The models are built eagerly (no lazy layers left), so they can be copied
for target networks and handed to an optimiser at once.  Exploration is
added by the caller (e.g. an ``EGreedyModule`` after the DQN actor).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Literal
from typing import overload

import torch
from torch import nn

from rlbricks.modules._actors import Actor
from rlbricks.modules._actors import ActorValueOperator
from rlbricks.modules._actors import ProbabilisticActor
from rlbricks.modules._actors import ValueOperator
from rlbricks.modules._common import TensorDictModule
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._models import MLP
from rlbricks.modules._models import DuelingMlpDQNet
from rlbricks.modules._noisy import NoisyLinear
from rlbricks.modules._qvalue import DistributionalQValueActor
from rlbricks.modules._qvalue import QValueActor
from rlbricks.modules._recipe_blocks import BoxTanh
from rlbricks.modules._recipe_blocks import Device
from rlbricks.modules._recipe_blocks import categorical_actor
from rlbricks.modules._recipe_blocks import continuous_shape
from rlbricks.modules._recipe_blocks import discrete_n
from rlbricks.modules._recipe_blocks import encoder
from rlbricks.modules._recipe_blocks import gaussian_actor
from rlbricks.modules._recipe_blocks import hidden_cells
from rlbricks.modules._recipe_blocks import observation_input
from rlbricks.modules._recipe_blocks import parse_specs
from rlbricks.modules._recipe_blocks import qvalue_operator
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import NestedKey

__all__ = ["dqn_model", "ddpg_models", "td3_models", "sac_models", "ppo_models"]


# --------------------------------------------------------------------------- #
# recipes
# --------------------------------------------------------------------------- #
def dqn_model(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = None,
    *,
    observation_key: NestedKey | None = None,
    num_cells: Sequence[int] | None = None,
    cnn: bool | None = None,
    cnn_kwargs: Mapping[str, Any] | None = None,
    dueling: bool = False,
    noisy: bool = False,
    distributional: int | None = None,
    v_min: float = -10.0,
    v_max: float = 10.0,
    action_mask_key: NestedKey | None = None,
    device: Device = None,
) -> QValueActor | DistributionalQValueActor:
    """A Q-network actor for DQN and its variants (dueling, noisy, distributional).

    The network maps the observation to one value per action (an MLP with
    ReLU, after a ConvNet for images); the actor writes ``"action_value"``,
    ``"action"`` (greedy) and ``"chosen_action_value"``.

    Args:
        observation_spec: the observation ``Composite``, or an environment.
        action_spec: a ``OneHot`` or ``Categorical`` spec (``None`` with an environment).
        observation_key: the observation to read (see the module doc for the default).
        num_cells: hidden layers of the MLP; default ``(64, 64)``, ``(512,)`` after a ConvNet.
        cnn: use a ConvNet: ``None`` for images only, ``False`` never.
        cnn_kwargs: :class:`~rlbricks.modules.ConvNet` arguments (default: the
            Atari DQN convs, or 3 x 3 convs for images smaller than 36 pixels).
        dueling: a dueling head (Wang et al. 2016): one shared layer of
            ``num_cells[0]`` units, then value and advantage streams with the
            other layers.
        noisy: :class:`~rlbricks.modules.NoisyLinear` layers (call
            :func:`~rlbricks.modules.reset_noise` on the model to draw new noise).
        distributional: the number of atoms of a C51 return distribution
            (``None``: plain Q-values).  Gives a ``DistributionalQValueActor``.
        v_min: the lowest atom's value (distributional only).
        v_max: the highest atom's value (distributional only).
        action_mask_key: the key of an action mask the actor respects.
        device: device of the parameters.

    Returns:
        A ``QValueActor``, or a ``DistributionalQValueActor`` with ``distributional``.

    Raises:
        ModuleValueError: a non-discrete action spec, an observation the recipe
            cannot read, fewer than two atoms or ``v_min >= v_max``.

    Example:
        >>> import torch
        >>> from rlbricks.modules.recipes import dqn_model
        >>> from rlbricks.specs import Composite, OneHot, Unbounded
        >>> obs = Composite(observation=Unbounded(shape=(4,)))
        >>> actor = dqn_model(obs, OneHot(2), dueling=True)
        >>> td = actor(obs.rand((8,)))
        >>> td["action"].shape, td["action"].dtype, td["action_value"].shape
        (torch.Size([8, 2]), torch.bool, torch.Size([8, 2]))
    """
    who = "dqn_model"
    observations, action = parse_specs(observation_spec, action_spec, who)
    n = discrete_n(action, who)
    if distributional is not None and (
        isinstance(distributional, bool)
        or not isinstance(distributional, int)
        or distributional < 2
    ):
        raise ModuleValueError(
            f"{who}: distributional must be a number of atoms >= 2, got {distributional!r}"
        )
    if distributional is not None and not v_min < v_max:
        raise ModuleValueError(f"{who}: v_min must be < v_max, got {v_min} and {v_max}")
    inputs = observation_input(observations, observation_key, who)
    enc = encoder(inputs, cnn, cnn_kwargs, device, who)
    cells = hidden_cells(num_cells, enc.pixels, (64, 64))
    out: int | tuple[int, int] = n if distributional is None else (n, distributional)
    layer: dict[str, Any] = {"activation_class": nn.ReLU}
    if noisy:
        layer["layer_class"] = NoisyLinear
    head: nn.Module
    if dueling:
        if not cells:
            raise ModuleValueError(
                f"{who}: a dueling head needs at least one hidden layer in num_cells"
            )
        head = DuelingMlpDQNet(
            out,
            in_features=enc.features,
            mlp_kwargs_feature={"num_cells": (), "out_features": cells[0], **layer},
            mlp_kwargs_output={"num_cells": cells[1:], **layer},
            device=device,
        )
    else:
        head = MLP(enc.features, out, num_cells=cells, device=device, **layer)
    net = nn.Sequential(enc.module, head)
    if distributional is None:
        return QValueActor(net, [inputs.key], spec=action, action_mask_key=action_mask_key)
    support = torch.linspace(v_min, v_max, distributional, device=device)
    return DistributionalQValueActor(
        net, support, [inputs.key], spec=action, action_mask_key=action_mask_key
    )


def _deterministic_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None,
    observation_key: NestedKey | None,
    num_cells: Sequence[int] | None,
    cnn: bool | None,
    cnn_kwargs: Mapping[str, Any] | None,
    device: Device,
    default: Sequence[int],
    who: str,
) -> tuple[Actor, ValueOperator]:
    observations, action = parse_specs(observation_spec, action_spec, who)
    shape = continuous_shape(action, who)
    inputs = observation_input(observations, observation_key, who)
    enc = encoder(inputs, cnn, cnn_kwargs, device, who)
    cells = hidden_cells(num_cells, enc.pixels, default)
    mlp = MLP(enc.features, shape, num_cells=cells, activation_class=nn.ReLU, device=device)
    squash: nn.Module = BoxTanh(action, device) if isinstance(action, Bounded) else nn.Identity()
    actor = Actor(nn.Sequential(enc.module, mlp, squash), [inputs.key], spec=action, safe=True)
    critic = qvalue_operator(inputs, shape, num_cells, default, cnn, cnn_kwargs, device, who)
    return actor, critic


def ddpg_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = None,
    *,
    observation_key: NestedKey | None = None,
    num_cells: Sequence[int] | None = None,
    cnn: bool | None = None,
    cnn_kwargs: Mapping[str, Any] | None = None,
    device: Device = None,
) -> tuple[Actor, ValueOperator]:
    """A deterministic actor and a Q-value critic for DDPG.

    The actor's MLP (ReLU) output goes through ``tanh`` scaled to the box of a
    ``Bounded`` spec (an ``Unbounded`` spec keeps it as is).  The critic reads
    the observation and ``"action"`` and writes ``"state_action_value"``.

    Args:
        observation_spec: the observation ``Composite``, or an environment.
        action_spec: a ``Bounded`` or ``Unbounded`` spec (``None`` with an environment).
        observation_key: the observation to read (see the module doc for the default).
        num_cells: hidden layers of both MLPs; default ``(400, 300)`` (the
            DDPG paper), ``(512,)`` after a ConvNet.
        cnn: use a ConvNet: ``None`` for images only, ``False`` never.
        cnn_kwargs: :class:`~rlbricks.modules.ConvNet` arguments.
        device: device of the parameters.

    Returns:
        ``(actor, critic)``: an ``Actor`` and a ``ValueOperator``.

    Raises:
        ModuleValueError: a discrete action spec or an observation the recipe cannot read.

    Example:
        >>> from rlbricks.modules.recipes import ddpg_models
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> obs = Composite(observation=Unbounded(shape=(3,)))
        >>> actor, critic = ddpg_models(obs, Bounded(-2.0, 2.0, shape=(1,)))
        >>> td = critic(actor(obs.rand((5,))))
        >>> bool(td["action"].abs().max() <= 2), td["state_action_value"].shape
        (True, torch.Size([5, 1]))
    """
    return _deterministic_models(
        observation_spec,
        action_spec,
        observation_key,
        num_cells,
        cnn,
        cnn_kwargs,
        device,
        (400, 300),
        "ddpg_models",
    )


def td3_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = None,
    *,
    observation_key: NestedKey | None = None,
    num_cells: Sequence[int] | None = None,
    cnn: bool | None = None,
    cnn_kwargs: Mapping[str, Any] | None = None,
    device: Device = None,
) -> tuple[Actor, ValueOperator]:
    """A deterministic actor and a Q-value critic for TD3.

    The same layout as :func:`ddpg_models` with the TD3 paper's default sizes;
    the loss makes the twin critics from the one returned.

    Args:
        observation_spec: the observation ``Composite``, or an environment.
        action_spec: a ``Bounded`` or ``Unbounded`` spec (``None`` with an environment).
        observation_key: the observation to read (see the module doc for the default).
        num_cells: hidden layers of both MLPs; default ``(256, 256)``, ``(512,)`` after a ConvNet.
        cnn: use a ConvNet: ``None`` for images only, ``False`` never.
        cnn_kwargs: :class:`~rlbricks.modules.ConvNet` arguments.
        device: device of the parameters.

    Returns:
        ``(actor, critic)``: an ``Actor`` and a ``ValueOperator``.

    Raises:
        ModuleValueError: a discrete action spec or an observation the recipe cannot read.

    Example:
        >>> from rlbricks.modules.recipes import td3_models
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> obs = Composite(observation=Unbounded(shape=(3,)))
        >>> actor, critic = td3_models(obs, Bounded(-1.0, 1.0, shape=(2,)), num_cells=(32, 32))
        >>> critic.in_keys, critic.out_keys
        (['observation', 'action'], ['state_action_value'])
    """
    return _deterministic_models(
        observation_spec,
        action_spec,
        observation_key,
        num_cells,
        cnn,
        cnn_kwargs,
        device,
        (256, 256),
        "td3_models",
    )


@overload
def sac_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = ...,
    *,
    observation_key: NestedKey | None = ...,
    num_cells: Sequence[int] | None = ...,
    num_qvalue_nets: Literal[1] = ...,
    scale_mapping: str = ...,
    cnn: bool | None = ...,
    cnn_kwargs: Mapping[str, Any] | None = ...,
    device: Device = ...,
) -> tuple[ProbabilisticActor, ValueOperator]: ...


@overload
def sac_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = ...,
    *,
    observation_key: NestedKey | None = ...,
    num_cells: Sequence[int] | None = ...,
    num_qvalue_nets: Literal[2],
    scale_mapping: str = ...,
    cnn: bool | None = ...,
    cnn_kwargs: Mapping[str, Any] | None = ...,
    device: Device = ...,
) -> tuple[ProbabilisticActor, ValueOperator, ValueOperator]: ...


def sac_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = None,
    *,
    observation_key: NestedKey | None = None,
    num_cells: Sequence[int] | None = None,
    num_qvalue_nets: int = 1,
    scale_mapping: str = "biased_softplus_1.0",
    cnn: bool | None = None,
    cnn_kwargs: Mapping[str, Any] | None = None,
    device: Device = None,
) -> (
    tuple[ProbabilisticActor, ValueOperator]
    | tuple[ProbabilisticActor, ValueOperator, ValueOperator]
):
    """A squashed-Gaussian actor and Q-value critic(s) for SAC.

    The actor's MLP (ReLU) writes ``"loc"`` and ``"scale"`` (through a
    :class:`~rlbricks.modules.NormalParamExtractor`); the action is drawn from
    a :class:`~rlbricks.modules.TanhNormal` whose bounds are the spec's
    (``Bounded``), or from a Normal (``Unbounded``, as a ``TruncatedNormal``
    with infinite bounds).  Each critic reads the observation and ``"action"``
    and writes ``"state_action_value"``.

    Args:
        observation_spec: the observation ``Composite``, or an environment.
        action_spec: a ``Bounded`` or ``Unbounded`` spec (``None`` with an environment).
        observation_key: the observation to read (see the module doc for the default).
        num_cells: hidden layers of the MLPs; default ``(256, 256)``, ``(512,)`` after a ConvNet.
        num_qvalue_nets: 1 (a loss that makes the twin critics from one) or 2
            (two independent critics).
        scale_mapping: how the actor's raw scale becomes positive
            (see :class:`~rlbricks.modules.NormalParamExtractor`).
        cnn: use a ConvNet: ``None`` for images only, ``False`` never.
        cnn_kwargs: :class:`~rlbricks.modules.ConvNet` arguments.
        device: device of the parameters.

    Returns:
        ``(actor, critic)`` or ``(actor, critic_1, critic_2)``.

    Raises:
        ModuleValueError: a discrete action spec, an observation the recipe cannot
            read, or ``num_qvalue_nets`` other than 1 or 2.

    Example:
        >>> from rlbricks.modules.recipes import sac_models
        >>> from rlbricks.specs import Bounded, Composite, Unbounded
        >>> obs = Composite(observation=Unbounded(shape=(3,)))
        >>> actor, q1, q2 = sac_models(obs, Bounded(-2.0, 2.0, shape=(1,)), num_qvalue_nets=2)
        >>> td = actor(obs.rand((5,)))
        >>> bool(td["action"].abs().max() <= 2), q1(td)["state_action_value"].shape
        (True, torch.Size([5, 1]))
        >>> type(actor.get_dist(td)).__name__
        'TanhNormal'
    """
    who = "sac_models"
    if num_qvalue_nets not in (1, 2):
        raise ModuleValueError(f"{who}: num_qvalue_nets must be 1 or 2, got {num_qvalue_nets!r}")
    observations, action = parse_specs(observation_spec, action_spec, who)
    shape = continuous_shape(action, who)
    inputs = observation_input(observations, observation_key, who)
    default = (256, 256)
    actor = gaussian_actor(
        inputs,
        action,
        num_cells,
        default,
        cnn,
        cnn_kwargs,
        scale_mapping,
        False,
        nn.ReLU,
        device,
        who,
    )
    critics = [
        qvalue_operator(inputs, shape, num_cells, default, cnn, cnn_kwargs, device, who)
        for _ in range(num_qvalue_nets)
    ]
    if num_qvalue_nets == 1:
        return actor, critics[0]
    return actor, critics[0], critics[1]


@overload
def ppo_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = ...,
    *,
    observation_key: NestedKey | None = ...,
    shared_trunk: Literal[False] = ...,
    num_cells: Sequence[int] | None = ...,
    scale_mapping: str = ...,
    cnn: bool | None = ...,
    cnn_kwargs: Mapping[str, Any] | None = ...,
    device: Device = ...,
) -> tuple[ProbabilisticActor, ValueOperator]: ...


@overload
def ppo_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = ...,
    *,
    observation_key: NestedKey | None = ...,
    shared_trunk: Literal[True],
    num_cells: Sequence[int] | None = ...,
    scale_mapping: str = ...,
    cnn: bool | None = ...,
    cnn_kwargs: Mapping[str, Any] | None = ...,
    device: Device = ...,
) -> ActorValueOperator: ...


def ppo_models(
    observation_spec: Any,
    action_spec: TensorSpec[Any] | None = None,
    *,
    observation_key: NestedKey | None = None,
    shared_trunk: bool = False,
    num_cells: Sequence[int] | None = None,
    scale_mapping: str = "biased_softplus_1.0",
    cnn: bool | None = None,
    cnn_kwargs: Mapping[str, Any] | None = None,
    device: Device = None,
) -> tuple[ProbabilisticActor, ValueOperator] | ActorValueOperator:
    """A stochastic actor and a state-value critic for PPO (and A2C), discrete or continuous.

    The actor writes ``"action"`` and ``"sample_log_prob"``.  Its distribution
    follows the action spec: :class:`~rlbricks.modules.TanhNormal` in the box
    of a ``Bounded`` spec, a Normal for ``Unbounded``,
    :class:`~rlbricks.modules.Categorical` over ``"logits"`` for a
    ``Categorical`` spec and :class:`~rlbricks.modules.OneHotCategorical` for
    a ``OneHot`` spec.  The critic writes ``"state_value"``.  The MLPs use
    tanh activations.

    Args:
        observation_spec: the observation ``Composite``, or an environment.
        action_spec: the action spec (``None`` with an environment).
        observation_key: the observation to read (see the module doc for the default).
        shared_trunk: one trunk (encoder and MLP, writing ``"hidden"``) shared
            by a linear policy head and a linear value head, returned as an
            ``ActorValueOperator``.
        num_cells: hidden layers of the MLPs (of the trunk when shared);
            default ``(64, 64)``, ``(512,)`` after a ConvNet.
        scale_mapping: how the raw scale becomes positive (continuous actions).
        cnn: use a ConvNet: ``None`` for images only, ``False`` never.
        cnn_kwargs: :class:`~rlbricks.modules.ConvNet` arguments.
        device: device of the parameters.

    Returns:
        ``(actor, critic)``, or an ``ActorValueOperator`` with ``shared_trunk``
        (``get_policy_operator()`` collects data, ``get_value_operator()`` gives values).

    Raises:
        ModuleValueError: an action spec of another kind (e.g. ``MultiOneHot``) or
            an observation the recipe cannot read.

    Example:
        >>> from rlbricks.modules.recipes import ppo_models
        >>> from rlbricks.specs import Categorical, Composite, Unbounded
        >>> obs = Composite(observation=Unbounded(shape=(4,)))
        >>> actor, critic = ppo_models(obs, Categorical(2))
        >>> td = critic(actor(obs.rand((6,))))
        >>> td["action"].shape, td["sample_log_prob"].shape, td["state_value"].shape
        (torch.Size([6]), torch.Size([6]), torch.Size([6, 1]))
        >>> agent = ppo_models(obs, Categorical(2), shared_trunk=True)
        >>> sorted(agent(obs.rand((6,))).keys())
        ['action', 'hidden', 'logits', 'observation', 'sample_log_prob', 'state_value']
    """
    who = "ppo_models"
    observations, action = parse_specs(observation_spec, action_spec, who)
    inputs = observation_input(observations, observation_key, who)
    discrete = isinstance(action, (OneHot, Categorical))
    if not discrete:
        continuous_shape(action, who)

    def policy(
        trunk: tuple[NestedKey, int] | None, cells: Sequence[int] | None
    ) -> ProbabilisticActor:
        if discrete:
            return categorical_actor(
                inputs, action, cells, (64, 64), cnn, cnn_kwargs, device, who, trunk
            )
        return gaussian_actor(
            inputs,
            action,
            cells,
            (64, 64),
            cnn,
            cnn_kwargs,
            scale_mapping,
            True,
            nn.Tanh,
            device,
            who,
            trunk,
        )

    if not shared_trunk:
        enc = encoder(inputs, cnn, cnn_kwargs, device, who)
        value_net = MLP(
            enc.features, 1, num_cells=hidden_cells(num_cells, enc.pixels, (64, 64)), device=device
        )
        critic = ValueOperator(nn.Sequential(enc.module, value_net), [inputs.key])
        return policy(None, num_cells), critic
    enc = encoder(inputs, cnn, cnn_kwargs, device, who)
    cells = hidden_cells(num_cells, enc.pixels, (64, 64))
    if not cells:
        raise ModuleValueError(
            f"{who}: a shared trunk needs at least one hidden layer in num_cells"
        )
    body = MLP(
        enc.features, cells[-1], num_cells=cells[:-1], activate_last_layer=True, device=device
    )
    common = TensorDictModule(nn.Sequential(enc.module, body), [inputs.key], ["hidden"])
    value_head = ValueOperator(nn.Linear(cells[-1], 1, device=device), ["hidden"])
    return ActorValueOperator(common, policy(("hidden", cells[-1]), None), value_head)
