"""summary.json and the learning curve written at the end of train()."""

from __future__ import annotations

import json
from pathlib import Path

from _setup import build_dqn


def test_summary_and_curve(tmp_path: Path) -> None:
    trainer = build_dqn(96, run_dir=tmp_path / "run")
    trainer.train()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    evals = [v for _, v in trainer.history["eval_reward"]]
    assert summary["frames"] == 96
    assert summary["optim_steps"] == 12
    assert summary["final_eval_reward"] == evals[-1]
    assert summary["best_eval_reward"] == max(evals)
    assert summary["final_reward"] == trainer.history["reward"][-1][1]
    assert summary["wall_time"] > 0
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 0


def test_no_run_dir_no_summary(tmp_path: Path) -> None:
    trainer = build_dqn(32)
    trainer.train()
    assert trainer.run_dir is None
