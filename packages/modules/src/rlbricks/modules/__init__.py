"""rlbricks.modules: TensorDict-aware nn modules, actors, distributions, models, exploration.

Wrap any network with :class:`TensorDictModule` (keys in, keys out), chain
modules with :class:`TensorDictSequential`, build policies and critics with
the actor classes, and get ready-made networks for the classic algorithms
from :mod:`rlbricks.modules.recipes`. Depends on torch, numpy,
``rlbricks-tensordict`` and ``rlbricks-specs`` only.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from rlbricks.modules import MLP, QValueActor
    >>> from rlbricks.specs import OneHot
    >>> from rlbricks.tensordict import TensorDict
    >>> actor = QValueActor(MLP(in_features=4, out_features=2), spec=OneHot(2))
    >>> td = actor(TensorDict({"observation": torch.randn(8, 4)}, batch_size=[8]))
    >>> td["action"].shape, td["action_value"].shape
    (torch.Size([8, 2]), torch.Size([8, 2]))
"""

__version__ = "0.1.1"

from rlbricks.modules._actors import Actor
from rlbricks.modules._actors import ActorCriticWrapper
from rlbricks.modules._actors import ActorValueOperator
from rlbricks.modules._actors import ProbabilisticActor
from rlbricks.modules._actors import ValueOperator
from rlbricks.modules._categorical import Categorical
from rlbricks.modules._categorical import OneHotCategorical
from rlbricks.modules._common import TensorDictModule
from rlbricks.modules._common import TensorDictModuleBase
from rlbricks.modules._delta import Delta
from rlbricks.modules._delta import TanhDelta
from rlbricks.modules._distributions import TanhNormal
from rlbricks.modules._distributions import TruncatedNormal
from rlbricks.modules._errors import ModuleError
from rlbricks.modules._errors import ModuleKeyError
from rlbricks.modules._errors import ModuleValueError
from rlbricks.modules._exploration import ExplorationType
from rlbricks.modules._exploration import exploration_type
from rlbricks.modules._exploration import set_exploration_type
from rlbricks.modules._exploration_modules import AdditiveGaussianModule
from rlbricks.modules._exploration_modules import EGreedyModule
from rlbricks.modules._lstm import LSTMModule
from rlbricks.modules._models import MLP
from rlbricks.modules._models import ConvNet
from rlbricks.modules._models import DuelingCnnDQNet
from rlbricks.modules._models import DuelingMlpDQNet
from rlbricks.modules._noisy import NoisyLinear
from rlbricks.modules._noisy import reset_noise
from rlbricks.modules._ou import OrnsteinUhlenbeckProcessModule
from rlbricks.modules._param_extractor import NormalParamExtractor
from rlbricks.modules._probabilistic import ProbabilisticTensorDictModule
from rlbricks.modules._qvalue import DistributionalQValueActor
from rlbricks.modules._qvalue import QValueActor
from rlbricks.modules._qvalue import action_space_of
from rlbricks.modules._sequential import TensorDictSequential

__all__: list[str] = [
    # TensorDict modules
    "TensorDictModuleBase",
    "TensorDictModule",
    "TensorDictSequential",
    "ProbabilisticTensorDictModule",
    # actors and critics
    "Actor",
    "ProbabilisticActor",
    "ValueOperator",
    "QValueActor",
    "DistributionalQValueActor",
    "action_space_of",
    "ActorValueOperator",
    "ActorCriticWrapper",
    # recurrent
    "LSTMModule",
    # exploration
    "ExplorationType",
    "set_exploration_type",
    "exploration_type",
    "EGreedyModule",
    "AdditiveGaussianModule",
    "OrnsteinUhlenbeckProcessModule",
    # errors
    "ModuleError",
    "ModuleValueError",
    "ModuleKeyError",
    # distributions
    "TanhNormal",
    "TruncatedNormal",
    "Delta",
    "TanhDelta",
    "OneHotCategorical",
    "Categorical",
    "NormalParamExtractor",
    # models
    "MLP",
    "ConvNet",
    "DuelingMlpDQNet",
    "DuelingCnnDQNet",
    "NoisyLinear",
    "reset_noise",
]
