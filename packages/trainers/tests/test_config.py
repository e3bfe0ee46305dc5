"""Config helpers: argument groups, config files, strict keys, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlbricks.trainers import ConfigError
from rlbricks.trainers import CSVLogger
from rlbricks.trainers import make_logger
from rlbricks.trainers import make_parser
from rlbricks.trainers import parse_args

ALL = ("env", "collector", "replay", "loss", "optim", "logger", "trainer")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.txt"
    path.write_text(text)
    return str(path)


def test_config_file_and_flag_overrides(tmp_path: Path) -> None:
    config = write(tmp_path, "lr = 0.01\ntotal_frames = 500\nprb = true\nenv_name = Pendulum-v1\n")
    args = parse_args(make_parser(*ALL), [f"--config={config}", "--lr=0.5"])
    assert args.lr == 0.5  # the flag wins
    assert args.total_frames == 500
    assert args.prb is True
    assert args.env_name == "Pendulum-v1"
    assert args.batch_size == 256
    assert args.clip_norm is None


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "lr = 0.01\nframes_per_batchh = 10\n")
    with pytest.raises(ConfigError, match=r"'frames_per_batchh'.*config\.txt.*'frames_per_batch'"):
        parse_args(make_parser(*ALL), [f"--config={config}"])


def test_key_of_a_group_not_added_is_unknown(tmp_path: Path) -> None:
    config = write(tmp_path, "buffer_size = 10\n")
    with pytest.raises(ConfigError, match="buffer_size"):
        parse_args(make_parser("optim"), [f"--config={config}"])


def test_missing_config_file_and_unknown_group(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        parse_args(make_parser("optim"), [f"--config={tmp_path / 'nope.txt'}"])
    with pytest.raises(ConfigError, match="the groups are env"):
        make_parser("optimiser")


def test_none_values_and_make_logger(tmp_path: Path) -> None:
    args = parse_args(make_parser(*ALL), ["--clip_norm=none", "--hard_update_interval=100"])
    assert args.clip_norm is None
    assert args.hard_update_interval == 100
    assert isinstance(make_logger("csv", "e", tmp_path), CSVLogger)
    assert make_logger("none", "e", tmp_path) is None
    with pytest.raises(ConfigError, match="unknown logger"):
        make_logger("wandb", "e", tmp_path)


@pytest.mark.parametrize(
    ("flag", "rule"),
    [
        ("--lr=-1", "> 0"),
        ("--lr=0", "> 0"),
        ("--lr=nan", "> 0"),
        ("--weight_decay=-0.01", ">= 0"),
        ("--clip_norm=0", "> 0"),
        ("--batch_size=0", ">= 1"),
        ("--buffer_size=-5", ">= 1"),
        ("--frames_per_batch=0", ">= 1"),
        ("--total_frames=-1", ">= 1"),
        ("--init_random_frames=-1", ">= 0"),
        ("--gamma=1.5", r"in \[0, 1\]"),
        ("--gamma=-0.1", r"in \[0, 1\]"),
        ("--tau=0", r"in \(0, 1\]"),
        ("--alpha=-1", ">= 0"),
        ("--num_envs=0", ">= 1"),
        ("--frame_skip=0", ">= 1"),
        ("--optim_steps_per_batch=-1", ">= 0"),
        ("--eval_episodes=0", ">= 1"),
    ],
)
def test_invalid_numbers_are_named_with_the_rule(flag: str, rule: str) -> None:
    name, value = flag[2:].split("=")
    with pytest.raises(
        ConfigError,
        match=rf"--{name}={value}.*\(on the command line\).*must be (finite and )?{rule}",
    ):
        parse_args(make_parser(*ALL), [flag])


def test_invalid_number_in_a_config_file_names_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, "lr = -1\n")
    with pytest.raises(ConfigError, match=r"--lr=-1(\.0)? \(from config file .*config\.txt\)"):
        parse_args(make_parser(*ALL), [f"--config={config}"])
    # the command line wins over the file, and its value is the one checked
    assert parse_args(make_parser(*ALL), [f"--config={config}", "--lr=0.1"]).lr == 0.1


def test_boundary_numbers_are_accepted() -> None:
    args = parse_args(
        make_parser(*ALL),
        ["--gamma=0", "--weight_decay=0", "--init_random_frames=0", "--tau=1", "--gamma=1"],
    )
    assert (args.gamma, args.weight_decay, args.tau) == (1.0, 0.0, 1.0)
