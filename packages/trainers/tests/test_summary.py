"""summary.json and the learning curve written at the end of train()."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from _setup import build_dqn

from rlbricks.trainers import TrainerError


def test_summary_and_curve(tmp_path: Path) -> None:
    trainer = build_dqn(96, run_dir=tmp_path / "run")
    trainer.train()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    evals = [v for _, v in trainer.history["eval_reward"]]
    assert summary["frames"] == 96
    assert summary["optim_steps"] == 12
    assert summary["eval_reward_mean"] == evals[-1]
    assert summary["eval_reward_std"] is None
    assert summary["best_eval_reward"] == max(evals)
    assert summary["final_reward"] == trainer.history["reward"][-1][1]
    assert summary["wall_time_s"] > 0
    assert summary["cpu_time_s"] > 0
    assert summary["eval_returns"] is None
    assert summary["eval_curve"] == [[f, v] for f, v in trainer.history["eval_reward"]]
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 0


def test_no_run_dir_no_summary(tmp_path: Path) -> None:
    trainer = build_dqn(32)
    trainer.train()
    assert trainer.run_dir is None


def test_final_evaluation_goes_into_the_summary(tmp_path: Path) -> None:
    trainer = build_dqn(96, run_dir=tmp_path / "run")
    trainer.train()
    summary = trainer.write_summary([1.0, 3.0, 5.0, 7.0])
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == summary
    assert summary["eval_reward_mean"] == 4.0
    assert summary["eval_reward_std"] == statistics.pstdev([1.0, 3.0, 5.0, 7.0])
    assert summary["eval_episodes"] == 4
    periodic = [v for _, v in trainer.history["eval_reward"]]
    assert summary["best_eval_reward"] == max([*periodic, 4.0])
    assert summary["eval_returns"] == [1.0, 3.0, 5.0, 7.0]
    # the curve ends with the final evaluation at the last frame (replacing a periodic
    # evaluation at that same frame)
    periodic_curve = [[f, v] for f, v in trainer.history["eval_reward"] if f < 96]
    assert summary["eval_curve"] == [*periodic_curve, [96, 4.0]]


def test_write_summary_without_run_dir_names_the_fix() -> None:
    trainer = build_dqn(32)
    with pytest.raises(TrainerError, match="run_dir="):
        trainer.write_summary([1.0])
