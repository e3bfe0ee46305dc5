"""The shared set-up of the example scripts: seeds, envs, optimisers and run folders from parsed args.

Every example reads its config with :func:`~rlbricks.trainers.parse_args` and
builds its pieces with these functions, so that what differs between two
examples is the algorithm, not the plumbing::

    seed_everything(args.seed)
    env = make_env(args)                       # the collector's env
    eval_env = make_env(args, eval=True)       # the evaluation env (no reward shaping)
    logger, run_dir = make_run(args, "ppo")    # <logdir>/<exp_name>/, default ppo_logging/run/
    optimizer = make_optimizer(args, loss.parameters())
"""

from __future__ import annotations

import functools
import random
from argparse import Namespace
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import ParallelEnv
from rlbricks.trainers._config import _check_number
from rlbricks.trainers._config import make_logger
from rlbricks.trainers._errors import ConfigError
from rlbricks.trainers._loggers import Logger
from rlbricks.trainers._loops import OffPolicyTrainer
from rlbricks.trainers._loops import OnPolicyTrainer
from rlbricks.trainers._recorder import Recorder
from rlbricks.trainers._settings import EnvConfig
from rlbricks.trainers._settings import OffPolicyConfig
from rlbricks.trainers._settings import OnPolicyConfig
from rlbricks.trainers._trainer import Trainer
from rlbricks.transforms import CatFrames
from rlbricks.transforms import Compose
from rlbricks.transforms import DoubleToFloat
from rlbricks.transforms import GrayScale
from rlbricks.transforms import NoopResetEnv
from rlbricks.transforms import Resize
from rlbricks.transforms import RewardClipping
from rlbricks.transforms import RewardScaling
from rlbricks.transforms import StepCounter
from rlbricks.transforms import ToTensorImage
from rlbricks.transforms import Transform
from rlbricks.transforms import TransformedEnv

__all__ = [
    "evaluate_and_report",
    "make_env",
    "make_off_policy_trainer",
    "make_on_policy_trainer",
    "make_optimizer",
    "make_recorder",
    "make_run",
    "make_trainer",
    "run_report",
    "seed_everything",
    "train_and_evaluate",
]

_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
_FUSED = ("adam", "adamw", "sgd")  # the optimisers torch has a fused kernel for


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch.

    Example:
        >>> import torch
        >>> from rlbricks.trainers import seed_everything
        >>> seed_everything(3); a = torch.rand(2)
        >>> seed_everything(3); torch.equal(a, torch.rand(2))
        True
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the examples seed the global generator on purpose
    torch.manual_seed(seed)


def _base_env(
    library: str,
    name: str,
    task: str,
    num_envs: int,
    frame_skip: int,
    pixels: bool,
    device: str | None,
    categorical: bool = False,
) -> EnvBase:
    """One simulator (a gymnasium vector env when ``num_envs > 1``); a module-level
    function so that ``ParallelEnv`` workers can build it under spawn."""
    if library == "gym":
        from rlbricks.envs import GymEnv

        kwargs: dict[str, Any] = {}
        if name.startswith("ALE/"):  # ALE repeats actions itself (and max-pools frames)
            kwargs["frameskip"] = frame_skip
            frame_skip = 1
        return GymEnv(
            name,
            num_envs=num_envs if num_envs > 1 else None,
            from_pixels=pixels,
            pixels_only=pixels,
            frame_skip=frame_skip,
            categorical_action_encoding=categorical,
            device=device,
            **kwargs,
        )
    if library == "dm_control":
        from rlbricks.envs import DMControlEnv

        if num_envs > 1:
            raise ConfigError(
                "dm_control envs are not vectorised: use --env_workers=N (one process each) "
                "instead of --num_envs"
            )
        if not task:
            raise ConfigError(f"a dm_control env needs --env_task (e.g. {name} and 'run')")
        return DMControlEnv(
            name,
            task,
            from_pixels=pixels,
            pixels_only=pixels,
            concat_observations=not pixels,
            frame_skip=frame_skip,
            device=device,
        )
    raise ConfigError(f"unknown --env_library {library!r}; use 'gym' or 'dm_control'")


def _transforms(env: EnvBase, args: EnvConfig, eval: bool) -> list[Transform]:
    out: list[Transform] = []
    atari = args.env_library == "gym" and args.env_name.startswith("ALE/")
    image_key = "observation" if atari else "pixels"
    if args.noop_max and not eval:
        out.append(NoopResetEnv(args.noop_max, seed=args.seed))
    if atari or args.pixels:
        keys = [image_key]
        out += [
            ToTensorImage(in_keys=keys),
            GrayScale(in_keys=keys),
            Resize(args.image_size, args.image_size, in_keys=keys),
            CatFrames(args.frame_stack, dim=-3, in_keys=keys),
        ]
    doubles = [
        k for k, spec in env.observation_spec.items(True, True) if spec.dtype == torch.float64
    ]
    if doubles:
        out.append(DoubleToFloat(in_keys=doubles))
    if args.max_frames_per_traj is not None:
        out.append(StepCounter(args.max_frames_per_traj))
    if not eval:
        if args.reward_clip:
            out.append(RewardClipping(-1.0, 1.0))
        if args.reward_scaling is not None:
            out.append(RewardScaling(0.0, args.reward_scaling))
    return out


def make_env(
    args: Namespace | EnvConfig,
    *,
    eval: bool = False,
    num_envs: int | None = None,
    device: str | torch.device | None = None,
) -> EnvBase:
    """The env the ``env`` argument group describes, with the standard transforms.

    * ``--env_library gym``: ``GymEnv(env_name)``, a gymnasium vector env of
      ``--num_envs`` sub-envs when above 1, discrete actions as one-hot
      vectors or, with ``--categorical_action_encoding``, as indices; Atari ids (``ALE/...``) pass
      ``--frame_skip`` to ALE. ``dm_control``: ``DMControlEnv(env_name,
      env_task)`` with its observations concatenated.
    * ``--env_workers N`` (N > 1): ``ParallelEnv`` of N processes, each holding
      one unbatched env (``--num_envs`` must then be 1).
    * Transforms, only those needed: Atari frames or ``--pixels`` go through
      ToTensorImage → GrayScale → Resize(``--image_size``) →
      CatFrames(``--frame_stack``); ``float64`` observations become ``float32``;
      ``--max_frames_per_traj`` adds a ``StepCounter``. The training env (not
      the ``eval`` one) also gets ``--noop_max`` no-op starts, ``--reward_clip``
      and ``--reward_scaling``. A plain gymnasium env stays untransformed so
      that collectors keep their fast path.
    * Seeded with ``--seed`` (the eval env with ``--seed + 1000``).

    Args:
        args: an :class:`EnvConfig`, or parsed arguments holding the ``env``
            group (read through :meth:`EnvConfig.from_args`).
        eval: build the evaluation env (no reward shaping, no no-op starts,
            ``--eval_envs`` sub-envs when that option exists).
        num_envs: override ``--num_envs``.
        device: device of the env's outputs.

    Raises:
        ConfigError: an unknown library, a dm_control env without task, or
            both ``--env_workers`` and ``--num_envs`` above 1.

    Example:
        >>> from rlbricks.trainers import add_env_args, make_env, make_parser
        >>> args = make_parser("env").parse_args(["--num_envs=4", "--max_frames_per_traj=50"])
        >>> env = make_env(args)
        >>> env.batch_size, type(env).__name__
        (torch.Size([4]), 'TransformedEnv')
        >>> env.close()
    """
    if not isinstance(args, EnvConfig):
        args = EnvConfig.from_args(args)
    if num_envs is None:
        num_envs = args.eval_envs if eval else None
        num_envs = args.num_envs if num_envs is None else num_envs
    factory = functools.partial(
        _base_env,
        args.env_library,
        args.env_name,
        args.env_task,
        int(num_envs),
        args.frame_skip,
        args.pixels,
        None if device is None else str(device),
        args.categorical_action_encoding,
    )
    env: EnvBase
    workers = 1 if eval else args.env_workers
    if workers > 1 and num_envs > 1:
        raise ConfigError(
            f"--env_workers={workers} with --num_envs={num_envs}: a ParallelEnv worker holds one "
            "unbatched env; use either worker processes or a vector env of sub-envs"
        )
    if workers > 1:
        env = ParallelEnv(workers, factory, device=device)
    else:
        env = factory()
    transforms = _transforms(env, args, eval)
    if transforms:
        env = TransformedEnv(env, Compose(*transforms))
    env.set_seed(args.seed + (1000 if eval else 0))
    return env


def make_optimizer(args: Namespace, parameters: Iterable[Any]) -> torch.optim.Optimizer:
    """The optimiser of the ``optim`` group: ``--optimizer``, ``--lr``, ``--weight_decay``,
    ``--fused_optimizer`` (torch's fused kernel: ``fused=True``).

    Raises:
        ConfigError: an unknown optimiser, ``lr <= 0`` or ``weight_decay < 0``
            (checked here too, for arguments that did not go through
            :func:`~rlbricks.trainers.parse_args`), ``--fused_optimizer`` with
            ``rmsprop`` (torch has no fused kernel for it).

    Example:
        >>> import torch
        >>> from rlbricks.trainers import make_optimizer, make_parser
        >>> args = make_parser("optim").parse_args(["--optimizer=sgd", "--lr=0.5"])
        >>> make_optimizer(args, torch.nn.Linear(2, 1).parameters()).param_groups[0]["lr"]
        0.5
    """
    try:
        kind = _OPTIMIZERS[args.optimizer]
    except KeyError:
        raise ConfigError(
            f"unknown --optimizer {args.optimizer!r}; use one of {', '.join(_OPTIMIZERS)}"
        ) from None
    _check_number("lr", args.lr)
    _check_number("weight_decay", args.weight_decay)
    if not getattr(args, "fused_optimizer", False):
        return kind(parameters, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer not in _FUSED:
        raise ConfigError(
            f"--fused_optimizer: torch has no fused {args.optimizer!r}; "
            f"use one of {', '.join(_FUSED)} or drop the flag"
        )
    return kind(parameters, lr=args.lr, weight_decay=args.weight_decay, fused=True)


def make_run(args: Namespace, algo: str) -> tuple[Logger | None, Path]:
    """The logger of the ``logger`` group and the run folder ``<logdir>/<exp_name>``.

    ``--logdir`` defaults to ``<algo>_logging``; the folder holds the logs,
    ``summary.json`` and ``learning_curve.png``.

    Example:
        >>> import tempfile
        >>> from rlbricks.trainers import make_parser, make_run
        >>> args = make_parser("logger").parse_args(["--logger=csv", "--exp_name=demo",
        ...                                          f"--logdir={tempfile.mkdtemp()}/ppo"])
        >>> logger, run_dir = make_run(args, "ppo")
        >>> run_dir.name, type(logger).__name__
        ('demo', 'CSVLogger')
    """
    logdir = Path(args.logdir if args.logdir is not None else f"{algo}_logging")
    logger = make_logger(args.logger, args.exp_name, logdir)
    return logger, logdir / args.exp_name


def _log_hparams(args: Namespace, logger: Logger | None) -> None:
    if logger is not None:
        logger.log_hparams({k: v for k, v in vars(args).items() if k != "config"})


def make_on_policy_trainer(
    args: Namespace,
    collector: Iterable[Any],
    loss_module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    logger: Logger | None,
    run_dir: Path,
    *,
    value_estimator: Any | None = None,
    **settings: Any,
) -> OnPolicyTrainer:
    """The :class:`OnPolicyTrainer` of the parsed groups (:meth:`OnPolicyConfig.from_args`).

    ``settings`` set or override :class:`OnPolicyConfig` fields (e.g.
    ``epochs``, ``minibatch_size``); the run's arguments go to the logger's
    hyper-parameters.

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.trainers import make_parser, make_on_policy_trainer
        >>> args = make_parser("collector", "optim", "logger", "trainer").parse_args(
        ...     ["--total_frames=64", "--clip_norm=0.5"])
        >>> net = torch.nn.Linear(1, 1)
        >>> trainer = make_on_policy_trainer(args, [], net, torch.optim.Adam(net.parameters()),
        ...                                  None, tempfile.mkdtemp(), epochs=4, minibatch_size=16)
        >>> trainer.total_frames, trainer.clip_norm, trainer.epochs, trainer.minibatch_size
        (64, 0.5, 4, 16)
    """
    _log_hparams(args, logger)
    config = OnPolicyConfig.from_args(args, run_dir=run_dir, **settings)
    return OnPolicyTrainer(
        collector, loss_module, optimizer, config, value_estimator=value_estimator, logger=logger
    )


def make_off_policy_trainer(
    args: Namespace,
    collector: Iterable[Any],
    loss_module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    replay_buffer: Any,
    logger: Logger | None,
    run_dir: Path,
    *,
    target_updater: Any | None = None,
    exploration: Any = (),
    **settings: Any,
) -> OffPolicyTrainer:
    """The :class:`OffPolicyTrainer` of the parsed groups (:meth:`OffPolicyConfig.from_args`).

    Reads ``--batch_size`` and ``--optim_steps_per_batch`` (the updates per
    batch) besides the common options; ``target_updater`` and ``exploration``
    go to :class:`OffPolicyTrainer`; ``settings`` set or override
    :class:`OffPolicyConfig` fields. The run's arguments go to the logger's
    hyper-parameters.

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.replay import LazyTensorStorage, TensorDictReplayBuffer
        >>> from rlbricks.trainers import make_parser, make_off_policy_trainer
        >>> args = make_parser("collector", "replay", "optim", "logger", "trainer").parse_args(
        ...     ["--total_frames=64", "--batch_size=32", "--optim_steps_per_batch=8"])
        >>> net = torch.nn.Linear(1, 1)
        >>> buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(100))
        >>> trainer = make_off_policy_trainer(args, [], net, torch.optim.Adam(net.parameters()),
        ...                                   buffer, None, tempfile.mkdtemp())
        >>> trainer.config.batch_size, trainer.updates_per_batch
        (32, 8)
    """
    _log_hparams(args, logger)
    config = OffPolicyConfig.from_args(args, run_dir=run_dir, **settings)
    return OffPolicyTrainer(
        collector,
        loss_module,
        optimizer,
        replay_buffer,
        config,
        target_updater=target_updater,
        exploration=exploration,
        logger=logger,
    )


def make_trainer(
    args: Namespace,
    collector: Iterable[Any],
    loss_module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    logger: Logger | None,
    run_dir: Path,
    **overrides: Any,
) -> Trainer:
    """The :class:`Trainer` of the ``collector``, ``optim``, ``logger`` and ``trainer`` groups.

    Reads ``--total_frames``, ``--optim_steps_per_batch``, ``--clip_norm``,
    ``--clip_grad_value``, ``--no_progress_bar``, ``--log_interval``,
    ``--save_trainer_interval``, ``--save_trainer_file`` and ``--resume``;
    keyword arguments override them (e.g. an on-policy example's
    ``optim_steps_per_batch``). The run's arguments go to the logger's
    hyper-parameters.

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.trainers import make_parser, make_trainer
        >>> args = make_parser("collector", "optim", "logger", "trainer").parse_args(
        ...     ["--total_frames=64", "--clip_norm=0.5"])
        >>> net = torch.nn.Linear(1, 1)
        >>> trainer = make_trainer(args, [], net, torch.optim.Adam(net.parameters()), None,
        ...                        tempfile.mkdtemp(), optim_steps_per_batch=4)
        >>> trainer.total_frames, trainer.clip_norm, trainer.optim_steps_per_batch
        (64, 0.5, 4)
    """
    _log_hparams(args, logger)
    kwargs: dict[str, Any] = {
        "optim_steps_per_batch": args.optim_steps_per_batch,
        "clip_norm": args.clip_norm,
        "clip_grad_norm": not args.clip_grad_value,
        "progress_bar": not args.no_progress_bar,
        "log_interval": args.log_interval,
        "save_trainer_interval": args.save_trainer_interval,
        "save_trainer_file": args.save_trainer_file,
        "resume": args.resume,
        "run_dir": run_dir,
        **overrides,
    }
    return Trainer(collector, args.total_frames, loss_module, optimizer, logger, **kwargs)


def make_recorder(args: Namespace, env: EnvBase, policy: Any) -> Recorder:
    """The evaluation hook of the ``logger`` group: every ``--record_interval`` batches,
    ``--eval_envs`` deterministic episodes of at most ``--record_frames`` steps on ``env``,
    re-seeded with ``--seed + 1000`` before each evaluation.

    Example:
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.trainers import make_parser, make_recorder
        >>> args = make_parser("env", "logger").parse_args(["--record_interval=5"])
        >>> recorder = make_recorder(args, CountingEnv(), lambda td: td)
        >>> recorder.record_interval, recorder.max_steps, recorder.seed
        (5, 1000, 1000)
    """
    return Recorder(
        env,
        policy,
        record_interval=args.record_interval,
        max_steps=args.record_frames,
        num_episodes=args.eval_envs,
        seed=args.seed + 1000,
    )


def train_and_evaluate(trainer: Trainer, recorder: Recorder, episodes: int) -> dict[str, Any]:
    """Train, then :func:`evaluate_and_report`: the closing steps of an example.

    Returns:
        The summary (see :meth:`Trainer.write_summary`).

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.tensordict import TensorDict
        >>> from rlbricks.trainers import Recorder, Trainer, train_and_evaluate
        >>> loss = torch.nn.Module()
        >>> loss.w = torch.nn.Parameter(torch.tensor(1.0))
        >>> loss.forward = lambda td: TensorDict({"loss_w": loss.w * loss.w}, [])
        >>> trainer = Trainer([TensorDict({}, [4])], 4, loss,
        ...                   torch.optim.SGD(loss.parameters(), lr=0.1), run_dir=tempfile.mkdtemp())
        >>> def ones(td):
        ...     td["action"] = td["observation"].long() * 0 + 1
        ...     return td
        >>> summary = train_and_evaluate(trainer, Recorder(CountingEnv(max_steps=3), ones), 2)
        ... # doctest: +ELLIPSIS
        eval return: 3.0 ± 0.0 over 2 episodes (4 frames, ... s of training)
        run folder:  ...
        >>> summary["eval_reward_mean"]
        3.0
    """
    trainer.train()
    return evaluate_and_report(trainer, recorder, episodes)


def evaluate_and_report(trainer: Trainer, recorder: Recorder, episodes: int) -> dict[str, Any]:
    """Evaluate ``episodes`` deterministic episodes, write ``summary.json``, print the report.

    For a script that ran the loop itself (``for batch in trainer.collect(): ...``):
    :meth:`Recorder.evaluate_episodes`, :meth:`Trainer.write_summary` with
    those returns, and :func:`run_report` on stdout.

    Returns:
        The summary (see :meth:`Trainer.write_summary`).

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.envs.testing import CountingEnv
        >>> from rlbricks.trainers import Recorder, Trainer, evaluate_and_report
        >>> trainer = Trainer([], 4, torch.nn.Module(), None, run_dir=tempfile.mkdtemp())
        >>> def ones(td):
        ...     td["action"] = td["observation"].long() * 0 + 1
        ...     return td
        >>> summary = evaluate_and_report(trainer, Recorder(CountingEnv(max_steps=3), ones), 2)
        ... # doctest: +ELLIPSIS
        eval return: 3.0 ± 0.0 over 2 episodes (0 frames, ... s of training)
        run folder:  ...
        >>> summary["eval_episodes"]
        2
    """
    summary = trainer.write_summary(recorder.evaluate_episodes(episodes))
    if trainer.run_dir is not None:
        print(run_report(summary, trainer.run_dir, trainer.logger))
    return summary


def run_report(summary: dict[str, Any], run_dir: Path, logger: Logger | None) -> str:
    """The closing lines of an example: eval return, run folder and how to look at the logs.

    Example:
        >>> from pathlib import Path
        >>> from rlbricks.trainers import run_report
        >>> print(run_report({"eval_reward_mean": 500.0, "eval_reward_std": 0.0,
        ...                   "eval_episodes": 20, "frames": 1000, "wall_time_s": 12.5},
        ...                  Path("ppo_logging/run"), None))
        eval return: 500.0 ± 0.0 over 20 episodes (1000 frames, 12.5 s of training)
        run folder:  ppo_logging/run
    """
    mean, std = summary.get("eval_reward_mean"), summary.get("eval_reward_std")
    score = "n/a" if mean is None else f"{mean:.1f}" + ("" if std is None else f" ± {std:.1f}")
    episodes = summary.get("eval_episodes")
    where = f" over {episodes} episodes" if episodes else ""
    lines = [
        f"eval return: {score}{where} ({summary['frames']} frames, "
        f"{summary['wall_time_s']:.1f} s of training)",
        f"run folder:  {run_dir}",
    ]
    if logger is not None and type(logger).__name__ == "TensorboardLogger":
        lines.append(f"TensorBoard: tensorboard --logdir {run_dir.parent}")
    return "\n".join(lines)
