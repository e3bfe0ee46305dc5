"""rlbricks.objectives: losses, value estimators and target-network updates.

A loss is an ``nn.Module`` built from the networks it trains; calling it on a
batch returns a TensorDict of scalar ``loss_*`` entries (sum them and call
``backward()``) plus detached diagnostics. Return and advantage estimators are
pure functions in :mod:`rlbricks.objectives.value.functional`, run as parallel
scans over time, with thin modules that read and write TensorDict keys.

Example:
    >>> import torch
    >>> from rlbricks.modules.recipes import dqn_model
    >>> from rlbricks.objectives import DQNLoss
    >>> from rlbricks.specs import Composite, OneHot, Unbounded
    >>> obs_spec = Composite(observation=Unbounded(shape=(4,)))
    >>> loss = DQNLoss(dqn_model(obs_spec, OneHot(2), num_cells=(16,)))
    >>> _ = loss.make_value_estimator(gamma=0.9)
    >>> batch = obs_spec.rand((8,))
    >>> batch["action"] = OneHot(2).rand((8,))
    >>> batch["next"] = obs_spec.rand((8,))
    >>> batch["next", "reward"] = torch.ones(8, 1)
    >>> batch["next", "done"] = batch["next", "terminated"] = torch.zeros(8, 1, dtype=torch.bool)
    >>> out = loss(batch)
    >>> out["loss_value"].shape, out["loss_value"].requires_grad
    (torch.Size([]), True)
"""

__version__ = "0.1.1"

from rlbricks.objectives._a2c import A2CLoss
from rlbricks.objectives._ddpg import DDPGLoss
from rlbricks.objectives._discrete_sac import DiscreteSACLoss
from rlbricks.objectives._distributional_dqn import DistributionalDQNLoss
from rlbricks.objectives._dqn import DQNLoss
from rlbricks.objectives._errors import LossError
from rlbricks.objectives._errors import LossKeyError
from rlbricks.objectives._errors import LossValueError
from rlbricks.objectives._loss_base import LossKeys
from rlbricks.objectives._loss_base import LossModule
from rlbricks.objectives._ppo import ClipPPOLoss
from rlbricks.objectives._ppo import KLPENPPOLoss
from rlbricks.objectives._ppo import PPOLoss
from rlbricks.objectives._reinforce import ReinforceLoss
from rlbricks.objectives._sac import SACLoss
from rlbricks.objectives._targets import HardUpdate
from rlbricks.objectives._targets import SoftUpdate
from rlbricks.objectives._targets import TargetNetUpdater
from rlbricks.objectives._td3 import TD3Loss
from rlbricks.objectives.value import GAE
from rlbricks.objectives.value import TD0Estimator
from rlbricks.objectives.value import TD1Estimator
from rlbricks.objectives.value import TDLambdaEstimator
from rlbricks.objectives.value import ValueEstimatorBase
from rlbricks.objectives.value import ValueEstimatorError
from rlbricks.objectives.value import ValueEstimatorKeyError
from rlbricks.objectives.value import ValueEstimators
from rlbricks.objectives.value import ValueEstimatorTypeError
from rlbricks.objectives.value import ValueEstimatorValueError
from rlbricks.objectives.value import VTrace

__all__: list[str] = [
    "ValueEstimators",
    "ValueEstimatorBase",
    "TD0Estimator",
    "TD1Estimator",
    "TDLambdaEstimator",
    "GAE",
    "VTrace",
    "ValueEstimatorError",
    "ValueEstimatorValueError",
    "ValueEstimatorKeyError",
    "ValueEstimatorTypeError",
    "LossModule",
    "LossKeys",
    "LossError",
    "LossValueError",
    "LossKeyError",
    "DQNLoss",
    "DistributionalDQNLoss",
    "DDPGLoss",
    "TD3Loss",
    "SACLoss",
    "DiscreteSACLoss",
    "SoftUpdate",
    "HardUpdate",
    "TargetNetUpdater",
    "PPOLoss",
    "ClipPPOLoss",
    "KLPENPPOLoss",
    "A2CLoss",
    "ReinforceLoss",
]
