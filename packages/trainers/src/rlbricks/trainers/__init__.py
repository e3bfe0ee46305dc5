"""rlbricks.trainers: the training loops, their observer hooks, loggers, settings and checkpoints.

:class:`OnPolicyTrainer` (collect, advantages, epochs x minibatches) and
:class:`OffPolicyTrainer` (collect, store, sampled updates, target updates)
run the two loops of model-free RL, each step a named method; hooks observe
them (logging, evaluation, schedules). :class:`Trainer` is their base and the
generic loop whose stages take any callable. ``save``/``load_state``
checkpoint the whole run as JSON plus weights-only tensor files.

Example:
    >>> from rlbricks.trainers import STAGES
    >>> STAGES
    ('batch_process', 'pre_optim_steps', 'process_optim_batch', 'post_loss', 'post_optim', 'pre_steps_log', 'post_steps_log', 'post_steps')
"""

from rlbricks.trainers._algo_hooks import AdvantageHook
from rlbricks.trainers._algo_hooks import BatchSubSampler
from rlbricks.trainers._algo_hooks import ReplayBufferTrainer
from rlbricks.trainers._config import add_collector_args
from rlbricks.trainers._config import add_env_args
from rlbricks.trainers._config import add_logger_args
from rlbricks.trainers._config import add_loss_args
from rlbricks.trainers._config import add_optim_args
from rlbricks.trainers._config import add_replay_args
from rlbricks.trainers._config import add_trainer_args
from rlbricks.trainers._config import make_logger
from rlbricks.trainers._config import make_parser
from rlbricks.trainers._config import parse_args
from rlbricks.trainers._errors import CheckpointError
from rlbricks.trainers._errors import ConfigError
from rlbricks.trainers._errors import MissingExtraError
from rlbricks.trainers._errors import TrainerError
from rlbricks.trainers._errors import TrainerKeyError
from rlbricks.trainers._errors import TrainerStateError
from rlbricks.trainers._errors import TrainerTypeError
from rlbricks.trainers._errors import TrainerValueError
from rlbricks.trainers._hooks import ClearCudaCache
from rlbricks.trainers._hooks import ExplorationAnnealHook
from rlbricks.trainers._hooks import LinearSchedule
from rlbricks.trainers._hooks import TargetNetUpdaterHook
from rlbricks.trainers._hooks import TrainerHookBase
from rlbricks.trainers._hooks import UpdateWeights
from rlbricks.trainers._log_hooks import CountFramesLog
from rlbricks.trainers._log_hooks import LogReward
from rlbricks.trainers._log_hooks import LogScalar
from rlbricks.trainers._loggers import CSVLogger
from rlbricks.trainers._loggers import Logger
from rlbricks.trainers._loggers import TensorboardLogger
from rlbricks.trainers._loops import OBSERVER_STAGES
from rlbricks.trainers._loops import OffPolicyTrainer
from rlbricks.trainers._loops import OnPolicyTrainer
from rlbricks.trainers._recorder import Recorder
from rlbricks.trainers._settings import EnvConfig
from rlbricks.trainers._settings import OffPolicyConfig
from rlbricks.trainers._settings import OnPolicyConfig
from rlbricks.trainers._settings import TrainerConfig
from rlbricks.trainers._setup import evaluate_and_report
from rlbricks.trainers._setup import make_env
from rlbricks.trainers._setup import make_off_policy_trainer
from rlbricks.trainers._setup import make_on_policy_trainer
from rlbricks.trainers._setup import make_optimizer
from rlbricks.trainers._setup import make_recorder
from rlbricks.trainers._setup import make_run
from rlbricks.trainers._setup import make_trainer
from rlbricks.trainers._setup import run_report
from rlbricks.trainers._setup import seed_everything
from rlbricks.trainers._setup import train_and_evaluate
from rlbricks.trainers._trainer import STAGES
from rlbricks.trainers._trainer import Trainer

__version__ = "0.1.1"

__all__ = [
    # the loops
    "OnPolicyTrainer",
    "OffPolicyTrainer",
    "Trainer",
    "OBSERVER_STAGES",
    "STAGES",
    # settings
    "TrainerConfig",
    "OnPolicyConfig",
    "OffPolicyConfig",
    "EnvConfig",
    # hooks
    "TrainerHookBase",
    "ReplayBufferTrainer",
    "AdvantageHook",
    "UpdateWeights",
    "Recorder",
    "LogScalar",
    "LogReward",
    "CountFramesLog",
    "TargetNetUpdaterHook",
    "ExplorationAnnealHook",
    "LinearSchedule",
    "BatchSubSampler",
    "ClearCudaCache",
    # loggers
    "Logger",
    "CSVLogger",
    "TensorboardLogger",
    # config
    "make_parser",
    "parse_args",
    "make_logger",
    "add_env_args",
    "add_collector_args",
    "add_replay_args",
    "add_loss_args",
    "add_optim_args",
    "add_logger_args",
    "add_trainer_args",
    # example set-up
    "seed_everything",
    "make_env",
    "make_optimizer",
    "make_recorder",
    "make_run",
    "make_trainer",
    "make_on_policy_trainer",
    "make_off_policy_trainer",
    "run_report",
    "train_and_evaluate",
    "evaluate_and_report",
    # errors
    "TrainerError",
    "TrainerValueError",
    "TrainerTypeError",
    "TrainerKeyError",
    "TrainerStateError",
    "MissingExtraError",
    "CheckpointError",
    "ConfigError",
]
