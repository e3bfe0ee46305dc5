"""CSV and TensorBoard loggers."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from _setup import build_dqn

from rlbricks.trainers import CSVLogger
from rlbricks.trainers import TensorboardLogger
from rlbricks.trainers import TrainerError


def test_csv_long_form_rows(tmp_path: Path) -> None:
    logger = CSVLogger("exp", tmp_path)
    logger.log_scalar("a", 1.0, step=1)
    logger.log_scalar("b", 2.5, step=2)
    logger.log_scalar("a", 3.0)
    logger.log_hparams({"lr": 0.1, "layers": (8, 8)})
    logger.close()
    rows = list(csv.DictReader(open(tmp_path / "exp" / "scalars.csv")))
    assert [(r["step"], r["name"], float(r["value"])) for r in rows] == [
        ("1", "a", 1.0), ("2", "b", 2.5), ("2", "a", 3.0),
    ]  # fmt: skip
    assert json.loads((tmp_path / "exp" / "hparams.json").read_text()) == {
        "lr": 0.1, "layers": [8, 8],
    }  # fmt: skip
    with pytest.raises(TrainerError, match="closed"):
        logger.log_scalar("a", 1.0)
    with pytest.raises(TrainerError, match="TensorboardLogger"):
        logger.log_histogram("h", torch.ones(2))


def test_csv_resume_drops_rows_after_the_checkpoint(tmp_path: Path) -> None:
    logger = CSVLogger("exp", tmp_path)
    logger.log_scalar("a", 1.0, step=1)
    state = logger.state_dict()
    logger.log_scalar("a", 2.0, step=2)
    logger.close()
    again = CSVLogger("exp", tmp_path)
    again.load_state_dict(state)
    again.log_scalar("a", 5.0, step=2)
    again.close()
    rows = list(csv.DictReader(open(again.path)))
    assert [(r["step"], r["value"]) for r in rows] == [("1", "1.0"), ("2", "5.0")]
    assert again.step == 2


def test_tensorboard_event_files_have_the_scalar_tags(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorboardLogger("tb", tmp_path)
    trainer = build_dqn(64, logger=logger, log_interval=16)
    trainer.train()
    logger.log_histogram("weights", torch.randn(20), step=64)
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss_value", "grad_norm", "reward", "eval_reward"} <= tags
    steps = [e.step for e in events.Scalars("reward")]
    assert steps == [16, 32, 48, 64]
    values = [e.value for e in events.Scalars("reward")]
    expected = [v for _, v in trainer.history["reward"]]
    assert values == pytest.approx(expected)
    assert "weights" in events.Tags()["histograms"]
    assert json.loads((tmp_path / "tb" / "summary.json").read_text())["frames"] == 64


def test_tensorboard_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"rlbricks-trainers\[tensorboard\]"):
        TensorboardLogger("tb", tmp_path)
