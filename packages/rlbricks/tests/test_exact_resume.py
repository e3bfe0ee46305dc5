"""Exact resume of the examples: SIGKILL a run, resume it, get the uninterrupted run's checkpoint.

For DQN CartPole (one env, replay), PPO CartPole (a vector env of 8) and SAC
Pendulum (truncated episodes, replay), a short run of the committed config is
run once to the end; the same command with ``--resume`` is SIGKILLed at a
random moment after its first checkpoint, then started again and finishes.
The final checkpoints must match bitwise: parameters and optimiser state
(``tensors.pt``), counters, RNG states, logged history and the env's state
(``state.json``, except the wall and CPU times) and the replay buffer's files
(their sha256 in the manifest).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("gymnasium")

ROOT = Path(__file__).resolve().parents[3]
COMMON = [
    "--eval_episodes=2",
    "--eval_envs=1",
    "--logger=csv",
    "--no_progress_bar",
    "--threads=1",
]
CASES = {
    "dqn-cartpole": [
        "--total_frames=4096",
        "--init_random_frames=512",
        "--frames_per_batch=256",
        "--optim_steps_per_batch=16",
        "--buffer_size=4096",
        "--save_trainer_interval=768",
        "--record_interval=4",
    ],
    "ppo-cartpole": [
        "--total_frames=6144",
        "--ppo_epochs=2",
        "--save_trainer_interval=768",
        "--record_interval=4",
    ],
    "sac-pendulum": [
        "--total_frames=1600",
        "--init_random_frames=400",
        "--frames_per_batch=100",
        "--optim_steps_per_batch=8",
        "--batch_size=64",
        "--buffer_size=4096",
        "--save_trainer_interval=400",
        "--record_interval=4",
    ],
}
TIMES = ("wall_time", "cpu_time")


def command(case: str, run: Path, name: str) -> list[str]:
    algo, config = case.split("-")
    return [
        sys.executable,
        str(ROOT / "examples" / algo / f"{algo}.py"),
        f"--config={ROOT / 'examples' / algo / 'configs' / f'{config}.txt'}",
        *COMMON,
        *CASES[case],
        f"--logdir={run}",
        f"--exp_name={name}",
        f"--save_trainer_file={run / f'{name}.ckpt'}",
        f"--resume={run / f'{name}.ckpt'}",
    ]


def without_times(tree: Any) -> Any:
    """The checkpoint tree with the wall and CPU times blanked (they never repeat)."""
    if isinstance(tree, dict):
        return {k: without_times(v) for k, v in tree.items()}
    if isinstance(tree, list):
        if len(tree) == 2 and tree[0] in TIMES:
            return [tree[0], None]
        return [without_times(v) for v in tree]
    return tree


def checkpoint(folder: Path) -> tuple[Any, dict[str, torch.Tensor], dict[str, str]]:
    state = json.loads((folder / "state.json").read_text())
    tensors = torch.load(folder / "tensors.pt", weights_only=True)
    files = json.loads((folder / "manifest.json").read_text())["files"]
    dumps = {name: entry["sha256"] for name, entry in files.items() if name.startswith("dumps/")}
    return without_times(state), tensors, dumps


def frames_of(folder: Path) -> int:
    """The frames of the checkpoint in ``folder`` (0 while there is none, or mid-swap)."""
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError):
        return 0
    trainer = dict(state["__dict__"])["trainer"]
    return int(dict(trainer["__dict__"])["collected_frames"])


@pytest.mark.parametrize("case", list(CASES))
def test_a_killed_and_resumed_run_ends_bitwise_equal(case: str, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "disable"}
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    full = subprocess.run(command(case, tmp_path, "full"), timeout=600, check=False, **quiet)
    assert full.returncode == 0, full.stderr.decode()[-4000:]

    cmd = command(case, tmp_path, "run")
    ckpt = tmp_path / "run.ckpt"
    total = int(CASES[case][0].split("=")[1])
    interval = int(next(f for f in CASES[case] if "save_trainer_interval" in f).split("=")[1])
    # kill after a checkpoint chosen at random in the first half of the run, a moment later
    target = interval * random.randint(1, max(1, total // (2 * interval)))
    proc = subprocess.Popen(cmd, **quiet)
    deadline = time.monotonic() + 600
    while frames_of(ckpt) < target:
        assert proc.poll() is None, f"the run ended before frame {target}: {proc.returncode}"
        assert time.monotonic() < deadline, f"no checkpoint at frame {target} within 600 s"
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.1))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = frames_of(ckpt)
    assert 0 < killed_at < total, f"killed at frame {killed_at} of {total}"

    resumed = subprocess.run(cmd, timeout=600, check=False, **quiet)
    assert resumed.returncode == 0, resumed.stderr.decode()[-4000:]
    assert frames_of(ckpt) >= total

    state, tensors, dumps = checkpoint(tmp_path / "full.ckpt")
    state_r, tensors_r, dumps_r = checkpoint(ckpt)
    assert tensors.keys() == tensors_r.keys()
    differ = [k for k in tensors if not torch.equal(tensors[k], tensors_r[k])]
    assert not differ, f"{len(differ)} of {len(tensors)} tensors differ (resumed at {killed_at})"
    assert state_r == state, f"the checkpoint trees differ (resumed at {killed_at})"
    assert dumps_r == dumps, "the replay buffers' files differ"
