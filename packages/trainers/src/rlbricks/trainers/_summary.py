"""The end-of-run summary: ``summary.json`` and, with matplotlib, ``learning_curve.png``."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_summary"]

EVAL_KEY = "eval_reward"
REWARD_KEY = "reward"


def _series(history: dict[str, list[tuple[int, float]]], key: str) -> list[tuple[int, float]]:
    return list(history.get(key, []))


def write_summary(
    trainer: Any, run_dir: Path, eval_returns: Sequence[float] | None = None
) -> dict[str, Any]:
    """Write ``summary.json`` (frames, wall time, eval and best rewards) and the curve.

    With ``eval_returns`` (the returns of a final evaluation's episodes),
    ``eval_reward_mean``/``eval_reward_std`` describe them; without, the last
    periodic evaluation gives the mean and the std is None.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    evals = _series(trainer.history, EVAL_KEY)
    rewards = _series(trainer.history, REWARD_KEY)
    if eval_returns:
        mean: float | None = statistics.fmean(eval_returns)
        std: float | None = statistics.pstdev(eval_returns)
    else:
        mean = evals[-1][1] if evals else None
        std = None
    candidates = [v for _, v in evals] + ([mean] if mean is not None else [])
    # the learning curve: every periodic evaluation, then the final one at the last frame
    curve_points = [[int(f), float(v)] for f, v in evals]
    if eval_returns and mean is not None:
        frames = int(trainer.collected_frames)
        if curve_points and curve_points[-1][0] == frames:
            curve_points[-1] = [frames, mean]
        else:
            curve_points.append([frames, mean])
    summary = {
        "frames": trainer.collected_frames,
        "optim_steps": trainer.optim_steps,
        "wall_time_s": round(trainer.wall_time, 3),
        "cpu_time_s": round(trainer.cpu_time, 3),
        "eval_reward_mean": mean,
        "eval_reward_std": std,
        "eval_episodes": len(eval_returns) if eval_returns else None,
        "best_eval_reward": max(candidates) if candidates else None,
        "final_reward": rewards[-1][1] if rewards else None,
        "eval_returns": [float(r) for r in eval_returns] if eval_returns else None,
        "eval_curve": curve_points,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    curve = evals or rewards
    png = run_dir / "learning_curve.png"
    # a second call after the final evaluation has the same curve: keep the picture
    if curve and (trainer._plotted != curve or not png.exists()):
        _plot(curve, EVAL_KEY if evals else REWARD_KEY, png)
        trainer._plotted = list(curve)
    return summary


def _plot(curve: list[tuple[int, float]], label: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the [plot] extra is optional
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([f for f, _ in curve], [v for _, v in curve], label=label)
    ax.set_xlabel("frames")
    ax.set_ylabel(label)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
