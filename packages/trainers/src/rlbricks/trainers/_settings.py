"""Typed settings of the trainers: dataclasses that library code builds directly.

The argparse layer (:func:`~rlbricks.trainers.make_parser`,
:func:`~rlbricks.trainers.parse_args`) is optional: each settings class has a
``from_args`` that reads its fields from a parsed namespace, so a script that
never touches argparse builds the same objects by hand and gets the same
behaviour.
"""

from __future__ import annotations

import dataclasses
import os
from argparse import Namespace
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

from rlbricks.trainers._errors import ConfigError

__all__ = ["EnvConfig", "OffPolicyConfig", "OnPolicyConfig", "TrainerConfig"]

_PathLike = str | os.PathLike[str]
_C = TypeVar("_C", bound="TrainerConfig")


def _positive(owner: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class TrainerConfig:
    """What every trainer needs: the length of the run, clipping, logging and checkpoints.

    Args:
        total_frames: stop after this many collected frames.
        clip_norm: clip the gradients at this threshold (None: no clipping).
        clip_grad_norm: clip the global norm (True) or each value (False).
        log_interval: frames between two writes of a scalar to the logger.
        save_trainer_interval: frames between two checkpoints.
        save_trainer_file: the checkpoint folder (None: no checkpoints).
        resume: a checkpoint folder to continue from (see :class:`Trainer`).
        progress_bar: show a tqdm bar when stdout is a terminal.
        run_dir: where ``summary.json`` goes (None: the logger's folder).
        device: where the algorithm's tensors live (None: where the collector puts them).

    Raises:
        ConfigError: a count that is not a positive integer.

    Example:
        >>> from rlbricks.trainers import TrainerConfig
        >>> TrainerConfig(total_frames=1000, clip_norm=0.5).clip_norm
        0.5
    """

    total_frames: int
    clip_norm: float | None = None
    clip_grad_norm: bool = True
    log_interval: int = 1_000
    save_trainer_interval: int = 10_000
    save_trainer_file: _PathLike | None = None
    resume: _PathLike | None = None
    progress_bar: bool = True
    run_dir: _PathLike | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        owner = type(self).__name__
        _positive(owner, "total_frames", self.total_frames)
        _positive(owner, "log_interval", self.log_interval)
        _positive(owner, "save_trainer_interval", self.save_trainer_interval)
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ConfigError(f"{owner}.clip_norm must be > 0 or None, got {self.clip_norm!r}")

    @classmethod
    def from_args(cls: type[_C], args: Namespace, **overrides: Any) -> _C:
        """The settings read from the ``collector``, ``optim`` and ``trainer`` argument groups.

        Fields that the namespace does not hold keep their defaults;
        ``overrides`` win over both.

        Raises:
            ConfigError: an override that is not a field of this class.

        Example:
            >>> from rlbricks.trainers import OnPolicyConfig, make_parser
            >>> args = make_parser("collector", "optim", "trainer").parse_args(
            ...     ["--total_frames=2048", "--clip_norm=0.5"])
            >>> config = OnPolicyConfig.from_args(args, epochs=4)
            >>> config.total_frames, config.clip_norm, config.epochs
            (2048, 0.5, 4)
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no field {', '.join(unknown)}; its fields are "
                f"{', '.join(sorted(names))}"
            )
        read = {
            "total_frames": "total_frames",
            "clip_norm": "clip_norm",
            "log_interval": "log_interval",
            "save_trainer_interval": "save_trainer_interval",
            "save_trainer_file": "save_trainer_file",
            "resume": "resume",
            "device": "device",
            **cls._args_names(),
        }
        values: dict[str, Any] = {
            field: getattr(args, arg) for field, arg in read.items() if hasattr(args, arg)
        }
        if hasattr(args, "clip_grad_value"):
            values["clip_grad_norm"] = not args.clip_grad_value
        if hasattr(args, "no_progress_bar"):
            values["progress_bar"] = not args.no_progress_bar
        values.update(overrides)
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def _args_names(cls) -> dict[str, str]:
        """The fields of a subclass read from the namespace: ``{field: argument}``."""
        return {}

    def trainer_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :class:`Trainer` these settings give.

        Example:
            >>> from rlbricks.trainers import TrainerConfig
            >>> sorted(TrainerConfig(total_frames=10).trainer_kwargs())[:3]
            ['clip_grad_norm', 'clip_norm', 'log_interval']
        """
        return {
            "clip_norm": self.clip_norm,
            "clip_grad_norm": self.clip_grad_norm,
            "log_interval": self.log_interval,
            "save_trainer_interval": self.save_trainer_interval,
            "save_trainer_file": self.save_trainer_file,
            "resume": self.resume,
            "progress_bar": self.progress_bar,
            "run_dir": self.run_dir,
        }


@dataclass
class OnPolicyConfig(TrainerConfig):
    """The settings of :class:`OnPolicyTrainer`: epochs and minibatches over each batch.

    Args:
        epochs: passes over each collected batch.
        minibatch_size: rows per optimiser step; each epoch is a fresh random
            permutation of the batch's rows, cut in this size (the last
            minibatch is shorter when the rows do not divide). None: one step
            per epoch on the whole batch, in its collected ``[envs, time]``
            shape (A2C, IMPALA).
        update_weights_interval: send the weights to the collector every this many batches.

    Example:
        >>> from rlbricks.trainers import OnPolicyConfig
        >>> OnPolicyConfig(total_frames=100_000, epochs=10, minibatch_size=64).epochs
        10
    """

    epochs: int = 10
    minibatch_size: int | None = 64
    update_weights_interval: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        _positive(owner, "epochs", self.epochs)
        if self.minibatch_size is not None:
            _positive(owner, "minibatch_size", self.minibatch_size)
        _positive(owner, "update_weights_interval", self.update_weights_interval)


@dataclass
class OffPolicyConfig(TrainerConfig):
    """The settings of :class:`OffPolicyTrainer`: updates per batch and their sample size.

    Args:
        batch_size: transitions per sample of the replay buffer.
        updates_per_batch: optimiser updates after each collected batch (the
            update-to-data ratio is ``updates_per_batch / frames_per_batch``).
        learning_starts: no update before this many frames were collected
            (they only fill the buffer).
        update_weights_interval: send the weights to the collector every this many batches.

    Example:
        >>> from rlbricks.trainers import OffPolicyConfig
        >>> OffPolicyConfig(total_frames=50_000, batch_size=64, updates_per_batch=128).batch_size
        64
    """

    batch_size: int = 256
    updates_per_batch: int = 1
    learning_starts: int = 0
    update_weights_interval: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        _positive(owner, "batch_size", self.batch_size)
        _positive(owner, "updates_per_batch", self.updates_per_batch, minimum=0)
        _positive(owner, "learning_starts", self.learning_starts, minimum=0)
        _positive(owner, "update_weights_interval", self.update_weights_interval)

    @classmethod
    def _args_names(cls) -> dict[str, str]:
        return {"batch_size": "batch_size", "updates_per_batch": "optim_steps_per_batch"}


@dataclass
class EnvConfig:
    """The env that :func:`~rlbricks.trainers.make_env` builds (the ``env`` argument group).

    Args:
        env_name: the gymnasium id, or the dm_control domain.
        env_task: the dm_control task (e.g. ``"run"``).
        env_library: ``"gym"`` or ``"dm_control"``.
        num_envs: sub-envs of a gymnasium vector env.
        env_workers: ``ParallelEnv`` processes of one env each (then ``num_envs=1``).
        frame_skip: repeat each action this many times.
        seed: the training env's seed (the evaluation env gets ``seed + 1000``).
        max_frames_per_traj: truncate episodes after this many steps (None: the env's limit).
        categorical_action_encoding: discrete actions as indices, not one-hot vectors.
        pixels: learn from rendered frames.
        image_size: frames are resized to this square size.
        frame_stack: frames stacked per observation.
        noop_max: up to this many random no-ops after each reset (training env).
        reward_clip: clip training rewards to [-1, 1].
        reward_scaling: multiply training rewards by this (None: unchanged).
        eval_envs: sub-envs of the evaluation env (None: ``num_envs``).

    Raises:
        ConfigError: a count that is not a positive integer, or an unknown library.

    Example:
        >>> from rlbricks.trainers import EnvConfig, make_env
        >>> env = make_env(EnvConfig("CartPole-v1", num_envs=2))
        >>> env.batch_size
        torch.Size([2])
        >>> env.close()
    """

    env_name: str = "CartPole-v1"
    env_task: str = ""
    env_library: str = "gym"
    num_envs: int = 1
    env_workers: int = 1
    frame_skip: int = 1
    seed: int = 0
    max_frames_per_traj: int | None = None
    categorical_action_encoding: bool = False
    pixels: bool = False
    image_size: int = 84
    frame_stack: int = 4
    noop_max: int = 0
    reward_clip: bool = False
    reward_scaling: float | None = None
    eval_envs: int | None = None

    def __post_init__(self) -> None:
        for name in ("num_envs", "env_workers", "frame_skip", "image_size", "frame_stack"):
            _positive("EnvConfig", name, getattr(self, name))
        _positive("EnvConfig", "noop_max", self.noop_max, minimum=0)
        if self.eval_envs is not None:
            _positive("EnvConfig", "eval_envs", self.eval_envs)
        if self.env_library not in ("gym", "dm_control"):
            raise ConfigError(
                f"EnvConfig.env_library must be 'gym' or 'dm_control', got {self.env_library!r}"
            )

    @classmethod
    def from_args(cls, args: Namespace, **overrides: Any) -> EnvConfig:
        """The fields the namespace holds (the ``env`` group, ``--eval_envs``); ``overrides`` win.

        Example:
            >>> from rlbricks.trainers import EnvConfig, make_parser
            >>> args = make_parser("env").parse_args(["--num_envs=4", "--seed=3"])
            >>> config = EnvConfig.from_args(args)
            >>> config.num_envs, config.seed, config.env_name
            (4, 3, 'CartPole-v1')
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ConfigError(f"EnvConfig has no field {', '.join(unknown)}")
        values = {name: getattr(args, name) for name in names if hasattr(args, name)}
        values.update(overrides)
        return cls(**values)
