"""configargparse helpers: the standard argument groups of the examples, strict config files.

An example builds its parser from groups, then reads ``--config=<file>`` plus
flag overrides (flags win over the file)::

    parser = make_parser("env", "collector", "loss", "optim", "logger", "trainer")
    args = parse_args(parser, ["--config=examples/dqn/configs/cartpole.txt", "--lr=1e-3"])

Unlike plain configargparse, a key of the config file that no option knows
is an error that names the key and the file.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import sys
from argparse import ArgumentParser
from argparse import Namespace
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import configargparse

from rlbricks.trainers._errors import ConfigError
from rlbricks.trainers._loggers import CSVLogger
from rlbricks.trainers._loggers import Logger
from rlbricks.trainers._loggers import TensorboardLogger

__all__ = [
    "add_collector_args",
    "add_env_args",
    "add_logger_args",
    "add_loss_args",
    "add_optim_args",
    "add_replay_args",
    "add_trainer_args",
    "make_logger",
    "make_parser",
    "parse_args",
]

Parser = ArgumentParser  # configargparse's parser is an argparse.ArgumentParser


def _none_or(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return None if text.lower() in ("none", "null", "") else kind(text)

    convert.__name__ = kind.__name__
    return convert


def add_env_args(parser: Parser) -> Parser:
    """Add the ``env`` group: ``--env_name``, ``--env_task``, ``--env_library``, ``--num_envs``,
    ``--env_workers``, ``--frame_skip``, ``--seed``, ``--max_frames_per_traj``,
    ``--categorical_action_encoding``, ``--pixels``,
    ``--image_size``, ``--frame_stack``, ``--noop_max``, ``--reward_clip``, ``--reward_scaling``.

    :func:`~rlbricks.trainers.make_env` builds the env they describe.

    Example:
        >>> from rlbricks.trainers import add_env_args, make_parser
        >>> add_env_args(make_parser()).parse_args([]).env_name
        'CartPole-v1'
    """
    group = parser.add_argument_group("env")
    group.add_argument(
        "--env_name", default="CartPole-v1", help="environment id (dm_control: domain)"
    )
    group.add_argument("--env_task", default="", help="dm_control task (e.g. run)")
    group.add_argument("--env_library", default="gym", choices=["gym", "dm_control"])
    group.add_argument("--num_envs", type=int, default=1, help="sub-envs of a gymnasium vector env")
    group.add_argument("--env_workers", type=int, default=1,
                       help="ParallelEnv processes, one env each (then --num_envs=1)")  # fmt: skip
    group.add_argument("--frame_skip", type=int, default=1, help="repeat each action")
    group.add_argument("--seed", type=int, default=0, help="seed of torch, numpy, envs")
    group.add_argument("--max_frames_per_traj", type=_none_or(int), default=None)
    group.add_argument("--categorical_action_encoding", action="store_true",
                       help="discrete actions as indices, not one-hot vectors (gymnasium)")  # fmt: skip
    group.add_argument("--pixels", action="store_true", help="learn from rendered frames")
    group.add_argument("--image_size", type=int, default=84, help="frames are resized to this")
    group.add_argument("--frame_stack", type=int, default=4, help="frames stacked per observation")
    group.add_argument("--noop_max", type=int, default=0, help="random no-ops after each reset")
    group.add_argument(
        "--reward_clip", action="store_true", help="clip training rewards to [-1, 1]"
    )
    group.add_argument("--reward_scaling", type=_none_or(float), default=None,
                       help="multiply training rewards by this")  # fmt: skip
    return parser


def add_collector_args(parser: Parser) -> Parser:
    """Add the ``collector`` group: ``--frames_per_batch``, ``--total_frames``,
    ``--init_random_frames``, ``--reset_at_each_iter``, ``--device``, ``--collection_devices``.

    Example:
        >>> from rlbricks.trainers import add_collector_args, make_parser
        >>> add_collector_args(make_parser()).parse_args(["--total_frames=100"]).total_frames
        100
    """
    group = parser.add_argument_group("collector")
    group.add_argument("--frames_per_batch", type=int, default=1000)
    group.add_argument("--total_frames", type=int, default=100_000)
    group.add_argument("--init_random_frames", type=int, default=0)
    group.add_argument("--reset_at_each_iter", action="store_true")
    group.add_argument("--device", default="cpu", help="device of the training (models, batches)")
    group.add_argument("--collection_devices", default="cpu",
                       help="device the collector runs the policy on")  # fmt: skip
    return parser


def add_replay_args(parser: Parser) -> Parser:
    """Add the ``replay`` group: ``--buffer_size``, ``--batch_size``, ``--prb``, ``--alpha``,
    ``--beta``, ``--buffer_scratch_dir``.

    Example:
        >>> from rlbricks.trainers import add_replay_args, make_parser
        >>> add_replay_args(make_parser()).parse_args(["--prb"]).prb
        True
    """
    group = parser.add_argument_group("replay")
    group.add_argument("--buffer_size", type=int, default=100_000)
    group.add_argument("--batch_size", type=int, default=256, help="rows per optimiser step")
    group.add_argument("--prb", action="store_true", help="prioritized replay")
    group.add_argument("--alpha", type=float, default=0.6, help="priority exponent")
    group.add_argument("--beta", type=float, default=0.4, help="importance-weight exponent")
    group.add_argument("--buffer_scratch_dir", type=_none_or(str), default=None,
                       help="memmap the buffer in this folder (None: in RAM)")  # fmt: skip
    return parser


def add_loss_args(parser: Parser) -> Parser:
    """Add the ``loss`` group: ``--gamma``, ``--loss_function``, ``--tau``,
    ``--hard_update_interval``, ``--value_estimator``.

    Example:
        >>> from rlbricks.trainers import add_loss_args, make_parser
        >>> add_loss_args(make_parser()).parse_args(["--gamma=0.9"]).gamma
        0.9
    """
    group = parser.add_argument_group("loss")
    group.add_argument("--gamma", type=float, default=0.99, help="discount")
    group.add_argument("--loss_function", default="l2", choices=["l1", "l2", "smooth_l1"])
    group.add_argument("--tau", type=float, default=0.005, help="soft target update step")
    group.add_argument("--hard_update_interval", type=_none_or(int), default=None,
                       help="copy targets every N optimiser steps (None: soft updates)")  # fmt: skip
    group.add_argument(
        "--value_estimator", default="td0", choices=["td0", "td1", "td_lambda", "gae"]
    )
    return parser


def add_optim_args(parser: Parser) -> Parser:
    """Add the ``optim`` group: ``--optimizer``, ``--lr``, ``--weight_decay``, ``--clip_norm``,
    ``--clip_grad_value``, ``--fused_optimizer``.

    Example:
        >>> from rlbricks.trainers import add_optim_args, make_parser
        >>> add_optim_args(make_parser()).parse_args(["--lr=0.01"]).lr
        0.01
    """
    group = parser.add_argument_group("optim")
    group.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd", "rmsprop"])
    group.add_argument("--lr", type=float, default=3e-4)
    group.add_argument("--weight_decay", type=float, default=0.0)
    group.add_argument("--clip_norm", type=_none_or(float), default=None,
                       help="gradient clipping threshold (None: no clipping)")  # fmt: skip
    group.add_argument("--clip_grad_value", action="store_true",
                       help="clip each gradient value instead of the global norm")  # fmt: skip
    group.add_argument("--fused_optimizer", action="store_true",
                       help="torch's fused kernel for adam, adamw, sgd: one call per step "
                            "(about 4x faster than the default loop on CPU for small "
                            "networks; rounding differs in the last bits)")  # fmt: skip
    return parser


def add_logger_args(parser: Parser) -> Parser:
    """Add the ``logger`` group: ``--logger``, ``--exp_name``, ``--logdir``, ``--log_interval``,
    ``--record_interval``, ``--record_frames``, ``--eval_episodes``, ``--eval_envs``.

    Example:
        >>> from rlbricks.trainers import add_logger_args, make_parser
        >>> add_logger_args(make_parser()).parse_args([]).logger
        'csv'
    """
    group = parser.add_argument_group("logger")
    group.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "none"])
    group.add_argument("--exp_name", default="run", help="the run's folder name")
    group.add_argument("--logdir", "--log_dir", dest="logdir", type=_none_or(str), default=None,
                       help="the folder of all runs (None: <algo>_logging)")  # fmt: skip
    group.add_argument("--log_interval", type=int, default=1000, help="frames between log writes")
    group.add_argument("--record_interval", type=int, default=10, help="batches between evals")
    group.add_argument("--record_frames", type=int, default=1000,
                       help="the longest evaluation episode, in steps")  # fmt: skip
    group.add_argument("--eval_episodes", type=int, default=20,
                       help="episodes of the final evaluation")  # fmt: skip
    group.add_argument("--eval_envs", type=int, default=1, help="sub-envs of the evaluation env")
    return parser


def add_trainer_args(parser: Parser) -> Parser:
    """Add the ``trainer`` group: ``--optim_steps_per_batch``, ``--save_trainer_interval``,
    ``--save_trainer_file``, ``--resume``, ``--no_progress_bar``.

    Example:
        >>> from rlbricks.trainers import add_trainer_args, make_parser
        >>> add_trainer_args(make_parser()).parse_args([]).optim_steps_per_batch
        1
    """
    group = parser.add_argument_group("trainer")
    group.add_argument("--optim_steps_per_batch", type=int, default=1)
    group.add_argument("--save_trainer_interval", type=int, default=10_000)
    group.add_argument("--save_trainer_file", type=_none_or(str), default=None)
    group.add_argument("--resume", type=_none_or(str), default=None, help="checkpoint to load")
    group.add_argument("--no_progress_bar", action="store_true")
    return parser


_RULES: dict[str, Callable[[float], bool]] = {
    "> 0": lambda v: v > 0,
    ">= 0": lambda v: v >= 0,
    ">= 1": lambda v: v >= 1,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in (0, 1]": lambda v: 0 < v <= 1,
}

# The checks parse_args runs on the numbers of the standard groups: option name ->
# (rule, what the option is). None values ("none" in a config file) are not
# checked; NaN and infinities never pass.
_NUMBER_RULES: dict[str, tuple[str, str]] = {
    # env
    "num_envs": (">= 1", "sub-envs of the vector env"),
    "env_workers": (">= 1", "ParallelEnv processes"),
    "frame_skip": (">= 1", "times each action is repeated"),
    "max_frames_per_traj": (">= 1", "the longest episode, in steps; none for no limit"),
    "image_size": (">= 1", "the side of the resized frames, in pixels"),
    "frame_stack": (">= 1", "frames stacked per observation"),
    "noop_max": (">= 0", "random no-ops after each reset; 0 for none"),
    # collector
    "frames_per_batch": (">= 1", "frames of each collected batch"),
    "total_frames": (">= 1", "frames collected in the whole run"),
    "init_random_frames": (">= 0", "frames of random actions first; 0 for none"),
    # replay
    "buffer_size": (">= 1", "rows the replay buffer holds"),
    "batch_size": (">= 1", "rows per optimiser step"),
    "alpha": (">= 0", "the priority exponent; 0 is uniform sampling"),
    "beta": (">= 0", "the importance-weight exponent"),
    # loss
    "gamma": ("in [0, 1]", "the discount, e.g. 0.99"),
    "tau": ("in (0, 1]", "the soft target update step, e.g. 0.005"),
    "hard_update_interval": (
        ">= 1",
        "optimiser steps between target copies; none for soft updates",
    ),
    # optim
    "lr": ("> 0", "the optimiser's step size, e.g. 3e-4"),
    "weight_decay": (">= 0", "the L2 penalty; 0 for none"),
    "clip_norm": ("> 0", "the gradient clipping threshold; none for no clipping"),
    # logger
    "log_interval": (">= 0", "frames between log writes"),
    "record_interval": (">= 1", "batches between evaluations"),
    "record_frames": (">= 1", "the longest evaluation episode, in steps"),
    "eval_episodes": (">= 1", "episodes of the final evaluation"),
    "eval_envs": (">= 1", "sub-envs of the evaluation env"),
    # trainer
    "optim_steps_per_batch": (">= 0", "optimiser steps per collected batch"),
    "save_trainer_interval": (">= 0", "frames between checkpoints"),
}


def _check_number(name: str, value: Any, where: str = "") -> None:
    """Raise :class:`ConfigError` unless ``value`` passes the rule of ``--name`` in
    ``_NUMBER_RULES`` (a name without a rule, or ``None``, always passes).

    ``where`` (e.g. ``"on the command line"``) tells in the message where the
    value was set.
    """
    rule = _NUMBER_RULES.get(name)
    if rule is None or value is None:
        return
    test, meaning = rule
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if real and math.isfinite(value) and _RULES[test](value):
        return
    source = f" ({where})" if where else ""
    if not real:
        what, got = f"a number {test}", f", got a {type(value).__name__}"
    else:
        what, got = (test if math.isfinite(value) else f"finite and {test}"), ""
    raise ConfigError(
        f"--{name}={value}{source} is invalid: {name} must be {what} ({meaning}){got}"
    )


def _given_on_command_line(name: str, argv: Sequence[str]) -> bool:
    flag = f"--{name}"
    return any(token == flag or token.startswith(f"{flag}=") for token in argv)


def _check_numbers(
    parser: Parser, args: Namespace, argv: Sequence[str], path: str | None, items: Any
) -> None:
    """:func:`_check_number` on every option of ``args`` with a rule, naming where it was set."""
    for name in _NUMBER_RULES:
        if not hasattr(args, name):
            continue
        value = getattr(args, name)
        if _given_on_command_line(name, argv):
            where = "on the command line"
        elif path is not None and name in items:
            where = f"from config file {path}"
        elif value == parser.get_default(name):
            where = "the parser's default"
        else:
            where = "on the command line"
        _check_number(name, value, where)


_GROUPS: dict[str, Callable[[Parser], Parser]] = {
    "env": add_env_args,
    "collector": add_collector_args,
    "replay": add_replay_args,
    "loss": add_loss_args,
    "optim": add_optim_args,
    "logger": add_logger_args,
    "trainer": add_trainer_args,
}


def make_parser(*groups: str, description: str | None = None) -> Parser:
    """A parser with ``--config`` (a ``key = value`` file) and the named argument groups.

    Groups: ``env``, ``collector``, ``replay``, ``loss``, ``optim``, ``logger``, ``trainer``.

    Raises:
        ConfigError: an unknown group.

    Example:
        >>> from rlbricks.trainers import make_parser
        >>> args = make_parser("optim", "trainer").parse_args(["--lr=0.1"])
        >>> args.lr, args.optim_steps_per_batch
        (0.1, 1)
    """
    parser: Parser = configargparse.ArgumentParser(description=description)
    parser.add_argument("--config", is_config_file=True, help="a file of key = value lines")
    for group in groups:
        try:
            _GROUPS[group](parser)
        except KeyError:
            raise ConfigError(
                f"unknown argument group {group!r}; the groups are {', '.join(_GROUPS)}"
            ) from None
    return parser


def _known_keys(parser: Parser) -> set[str]:
    keys = set()
    for action in parser._actions:
        for option in action.option_strings:
            if option.startswith("--"):
                keys.add(option[2:])
        keys.add(action.dest)
    return keys


def parse_args(parser: Parser, args: Sequence[str] | None = None) -> Namespace:
    """Parse ``args`` (default: ``sys.argv``) and the ``--config`` file, rejecting unknown keys
    and invalid numbers.

    The numbers of the standard groups are checked once the command line has
    overridden the file: sizes, counts and frames must be positive (``>= 0``
    where 0 means "none", e.g. ``--init_random_frames``), ``--lr`` and
    ``--clip_norm`` > 0, ``--weight_decay``, ``--alpha`` and ``--beta`` >= 0,
    ``--gamma`` in [0, 1] and ``--tau`` in (0, 1]; NaN and infinities never
    pass. (``parser.parse_args`` alone checks neither keys nor numbers.)

    Raises:
        ConfigError: the config file is missing or holds a key no option knows
            (the message names the key, the file and the closest option), or
            a number breaks its rule (the message names the option, the
            value, where it was set and the rule).

    Example:
        >>> import tempfile
        >>> from rlbricks.trainers import make_parser, parse_args
        >>> with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        ...     _ = f.write("lr = 0.01\\nlearning_rate = 3\\n")
        >>> parse_args(make_parser("optim"), [f"--config={f.name}"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        rlbricks.trainers._errors.ConfigError: unknown key 'learning_rate' in config file ...
        >>> parse_args(make_parser("optim"), ["--lr=-1"])
        Traceback (most recent call last):
        ...
        rlbricks.trainers._errors.ConfigError: --lr=-1.0 (on the command line) is invalid: lr must be > 0 (the optimiser's step size, e.g. 3e-4)
    """
    argv = list(sys.argv[1:] if args is None else args)
    pre = configargparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    path: str | None = known.config
    items: Any = {}
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path} does not exist; check the --config path")
        with open(path) as stream:
            items = parser._config_file_parser.parse(stream)  # type: ignore[attr-defined]
        valid = _known_keys(parser)
        for key in items:
            if key not in valid:
                close = difflib.get_close_matches(key, sorted(valid), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"unknown key {key!r} in config file {path}{hint}; the keys are the long "
                    "options of the parser without '--' (see --help)"
                )
    parsed = parser.parse_args(argv)
    _check_numbers(parser, parsed, argv, path, items)
    return parsed


def make_logger(
    kind: str, exp_name: str, log_dir: str | os.PathLike[str] = "runs"
) -> Logger | None:
    """The logger ``--logger`` names: ``"csv"``, ``"tensorboard"`` or ``"none"`` (None).

    Raises:
        ConfigError: an unknown kind.

    Example:
        >>> from rlbricks.trainers import make_logger
        >>> make_logger("csv", "doc", "/tmp/rlbricks-doc-runs")
        CSVLogger(exp_name='doc', log_dir='/tmp/rlbricks-doc-runs/doc')
    """
    if kind == "csv":
        return CSVLogger(exp_name, log_dir)
    if kind == "tensorboard":
        return TensorboardLogger(exp_name, log_dir)
    if kind == "none":
        return None
    raise ConfigError(f"unknown logger {kind!r}; use 'csv', 'tensorboard' or 'none'")
