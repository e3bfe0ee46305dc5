"""Smoke runs of every example config: each one trains for a few hundred frames end to end.

Every ``examples/<algo>/configs/*.txt`` is run as a user would run it, in a
fresh process, with flags that shorten it; the run must exit cleanly and
write a ``summary.json`` with the keys the READMEs promise.  Learning itself
is measured by ``nox -s results``, not here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"

#: flags every smoke run gets: a short run, one evaluation episode, CSV logs in a temp folder
COMMON = [
    "--eval_episodes=1",
    "--eval_envs=1",
    "--record_frames=50",
    "--record_interval=1",
    "--logger=csv",
    "--no_progress_bar",
]
#: per algorithm: the flags that make a config run in well under a minute
SHORT = {
    "ppo": ["--total_frames=512", "--frames_per_batch=256", "--ppo_epochs=1"],
    "dqn": [
        "--total_frames=300",
        "--init_random_frames=100",
        "--frames_per_batch=50",
        "--batch_size=32",
        "--buffer_size=1000",
    ],
    "ddpg": [
        "--total_frames=300",
        "--init_random_frames=100",
        "--frames_per_batch=50",
        "--batch_size=32",
    ],
    "sac": [
        "--total_frames=300",
        "--init_random_frames=100",
        "--frames_per_batch=50",
        "--batch_size=32",
    ],
    "impala": ["--total_frames=400", "--frames_per_batch=100"],
}
#: what a config needs beyond gymnasium's classic control
NEEDS = {"ALE/": "ale_py", "dm_control": "dm_control", "-v5": "mujoco", "ray": "ray"}


def _configs() -> list[Path]:
    return sorted(EXAMPLES.glob("*/configs/*.txt"))


def _missing_module(config: Path) -> str | None:
    text = config.read_text() + (" ray" if config.parts[-3] == "impala" else "")
    for marker, module in NEEDS.items():
        if marker in text and importlib.util.find_spec(module) is None:
            return module
    return None


def test_every_algorithm_has_an_example_with_configs() -> None:
    algos = {p.parts[-3] for p in _configs()}
    assert algos == set(SHORT), f"examples with configs: {sorted(algos)}"


@pytest.mark.parametrize("config", _configs(), ids=lambda p: f"{p.parts[-3]}-{p.stem}")
def test_config_runs_end_to_end(config: Path, tmp_path: Path) -> None:
    missing = _missing_module(config)
    if missing is not None:
        pytest.skip(f"{config.name} needs {missing}")
    algo = config.parts[-3]
    script = EXAMPLES / algo / f"{algo}.py"
    cmd = [
        sys.executable,
        str(script),
        f"--config={config}",
        f"--logdir={tmp_path}",
        "--exp_name=smoke",
        *COMMON,
        *SHORT[algo],
    ]
    env = {**os.environ, "MUJOCO_GL": "disable", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    summary = json.loads((tmp_path / "smoke" / "summary.json").read_text())
    for key in ("frames", "wall_time_s", "eval_reward_mean", "eval_reward_std", "best_eval_reward"):
        assert key in summary, f"summary.json lacks {key}: {summary}"
    assert summary["frames"] > 0
    assert summary["eval_reward_mean"] is not None
    assert "eval return:" in done.stdout
