"""PPO on CartPole-v1, the whole process: rlbricks' example against stable-baselines3.

Each run is a fresh Python process, timed from its start to its exit (imports,
env creation, training, the final 20-episode deterministic evaluation):

* rlbricks: ``examples/ppo/ppo.py --config examples/ppo/configs/cartpole.txt``
  (its own hyper-parameters; one torch thread, as the config sets);
* stable-baselines3 (when installed): ``PPO("MlpPolicy")`` with the
  rl-baselines3-zoo CartPole-v1 settings — 8 envs, n_steps 32, 20 epochs,
  batch 256, lr 1e-3 and clip range 0.2 both decayed linearly, gae_lambda 0.8,
  gamma 0.98, no entropy bonus, 100k frames — then ``evaluate_policy`` over 20
  deterministic episodes; run with one torch thread and with torch's default.

Writes ``benchmarks/results/ppo_cartpole_vs_sb3.md``.

Run:  python benchmarks/ppo_cartpole_vs_sb3.py [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "ppo_cartpole_vs_sb3.md"
CONFIG = "examples/ppo/configs/cartpole.txt"


def _sb3_child(seed: int, threads: int | None) -> None:
    """Train and evaluate SB3 PPO in this process; print one JSON line."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    def linear(start: float):  # SB3 schedules get the remaining progress, 1 -> 0
        return lambda remaining: remaining * start

    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        n_epochs=20,
        gae_lambda=0.8,
        gamma=0.98,
        ent_coef=0.0,
        learning_rate=linear(1e-3),
        clip_range=linear(0.2),
        seed=seed,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=100_000)
    train_s = time.perf_counter() - start
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 1000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    print(json.dumps({"eval_mean": float(mean), "eval_std": float(std), "train_s": train_s}))


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def run_rlbricks(seed: int, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as logdir:
        cmd = [
            sys.executable,
            "examples/ppo/ppo.py",
            f"--config={CONFIG}",
            f"--seed={seed}",
            f"--logdir={logdir}",
            "--no_progress_bar",
        ]
        wall, _ = _timed(cmd, env)
        summary = json.loads((Path(logdir) / "cartpole" / "summary.json").read_text())
    return {
        "wall_s": wall,
        "train_s": summary["wall_time_s"],
        "eval_mean": summary["eval_reward_mean"],
        "eval_std": summary["eval_reward_std"],
    }


def run_sb3(seed: int, threads: int | None, env: dict[str, str]) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--sb3-child", str(seed)]
    if threads is not None:
        cmd += ["--sb3-threads", str(threads)]
    wall, out = _timed(cmd, env)
    result = json.loads(out.strip().splitlines()[-1])
    return {"wall_s": wall, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sb3-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sb3-threads", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sb3_child is not None:
        _sb3_child(args.sb3_child, args.sb3_threads)
        return

    env = {**os.environ, "PYTHONHASHSEED": "0"}
    have_sb3 = importlib.util.find_spec("stable_baselines3") is not None
    runners: list[tuple[str, object]] = [
        ("rlbricks PPO (1 thread)", lambda s: run_rlbricks(s, env))
    ]
    if have_sb3:
        runners += [
            ("stable-baselines3 PPO (1 thread)", lambda s: run_sb3(s, 1, env)),
            ("stable-baselines3 PPO (torch default threads)", lambda s: run_sb3(s, None, env)),
        ]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _ in runners}
    for seed in args.seeds:  # interleave the runners so that machine drift hits all of them
        for name, run in runners:
            result = run(seed)  # type: ignore[operator]
            rows[name].append(result)
            print(f"seed {seed} {name}: {json.dumps(result)}", flush=True)

    ours = sum(r["wall_s"] for r in rows[runners[0][0]]) / len(args.seeds)
    lines = [
        "# PPO on CartPole-v1: the whole process, rlbricks vs stable-baselines3",
        "",
        f"{os.cpu_count()} CPU cores, seeds {args.seeds}; wall time from process start to exit "
        "(imports, training, 20-episode deterministic evaluation), mean over seeds.",
        "",
        "| run | eval return (20 episodes) | training s | process wall s | wall / rlbricks |",
        "|---|---|---|---|---|",
    ]
    for name, results in rows.items():
        wall = sum(r["wall_s"] for r in results) / len(results)
        train = sum(r["train_s"] for r in results) / len(results)
        evals = ", ".join(f"{r['eval_mean']:.1f} ± {r['eval_std']:.1f}" for r in results)
        lines.append(f"| {name} | {evals} | {train:.1f} | {wall:.1f} | {wall / ours:.2f} |")
    if not have_sb3:
        lines.append("| stable-baselines3 | not installed | — | — | — |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
