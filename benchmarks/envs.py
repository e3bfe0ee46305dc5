"""Environment step throughput: rlbricks beside the raw gymnasium loop and torchrl.

Cases (random actions, steps counted per sub-env):

* CartPole-v1, one env: ``GymEnv.rollout`` vs a plain ``env.step`` loop.
* CartPole-v1, 8-env sync vector, one process: ``GymEnv(num_envs=8)`` vs
  ``gymnasium.make_vec(..., vectorization_mode="sync")``.
* HalfCheetah-v5, 2 processes: ``ParallelEnv(2, GymEnv)`` vs gymnasium's ``AsyncVectorEnv(2)``.

``env.rollout(n)`` without a policy takes the random-action fast path of
gymnasium envs (no TensorDict per step). The "policy" rows pass
``policy=env.rand_action`` instead: the same random actions drawn through a
TensorDict policy, i.e. the generic per-step loop that collectors run.

The raw gymnasium loop is the limit on this machine; torchrl's ``GymEnv`` /
``ParallelEnv`` are timed when torchrl is installed. torchrl's 8-env rows wrap
the same in-process gymnasium ``SyncVectorEnv`` in its ``GymWrapper`` (with
``autoreset_mode=DISABLED``, the mode torchrl prefers): torchrl's
``GymEnv(num_envs=8)`` would build an ``AsyncVectorEnv``, i.e. 8 worker
processes, which is not the work the other columns do. Each repeat times every
runner of a case one after the other (interleaved), and the best time of each
is kept, so that a slow spell of the machine hits all of them alike. The
table goes to ``benchmarks/results/envs.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

RESULTS = Path(__file__).parent / "results"


def steps_per_second(
    runs: list[Callable[[int], Any]], steps: int, repeat: int, per_call: int
) -> list[float]:
    """Best of ``repeat`` interleaved runs of each ``run(steps)``; ``per_call`` steps per step."""
    for run in runs:
        run(min(steps, 50))  # warm up
    best = [float("inf")] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run(steps)
            best[i] = min(best[i], time.perf_counter() - start)
    return [steps * per_call / b for b in best]


def raw_single(env_id: str) -> Callable[[int], None]:
    env = gym.make(env_id)
    env.reset(seed=0)
    env.action_space.seed(0)

    def run(n: int) -> None:
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()

    return run


def raw_vector(env_id: str, num_envs: int, mode: str) -> Callable[[int], None]:
    if mode == "async":
        venv: Any = gym.vector.AsyncVectorEnv([lambda: gym.make(env_id)] * num_envs)
    else:
        venv = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync")
    venv.reset(seed=0)
    venv.action_space.seed(0)

    def run(n: int) -> None:
        for _ in range(n):
            venv.step(venv.action_space.sample())

    return run


def rollout_runner(env: Any, with_policy: bool = False) -> Callable[[int], None]:
    policy = env.rand_action if with_policy else None

    def run(n: int) -> None:
        env.rollout(n, policy, break_when_any_done=False)

    return run


def rlbricks_envs() -> dict[str, Any]:
    from rlbricks.envs import GymEnv
    from rlbricks.envs import ParallelEnv

    return {
        "single": GymEnv("CartPole-v1"),
        "vector": GymEnv("CartPole-v1", num_envs=8),
        "single-policy": GymEnv("CartPole-v1"),
        "vector-policy": GymEnv("CartPole-v1", num_envs=8),
        "parallel": ParallelEnv(2, _halfcheetah_rlbricks),
    }


def _halfcheetah_rlbricks() -> Any:
    from rlbricks.envs import GymEnv

    return GymEnv("HalfCheetah-v5")


def _halfcheetah_torchrl() -> Any:
    from torchrl.envs import GymEnv

    return GymEnv("HalfCheetah-v5")


def torchrl_sync_vector(num_envs: int, **kwargs: Any) -> Any:
    """torchrl's ``GymWrapper`` around an in-process gymnasium ``SyncVectorEnv`` of CartPoles.

    torchrl's ``GymEnv(num_envs=n)`` runs gymnasium's ``AsyncVectorEnv`` (n
    worker processes); wrapping a sync vector env keeps the work in this
    process, like the raw loop and rlbricks' ``GymEnv(num_envs=n)``. Its
    autoreset is disabled: torchrl then resets finished sub-envs itself
    (``reset_mask``), its preferred mode for gymnasium >= 1.1.
    """
    from torchrl.envs import GymWrapper

    venv = gym.make_vec(
        "CartPole-v1",
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
    )
    return GymWrapper(venv, **kwargs)


def torchrl_envs() -> tuple[str, dict[str, Any]] | None:
    try:
        import torchrl
        from torchrl.envs import GymEnv
        from torchrl.envs import ParallelEnv
    except ImportError:
        return None
    envs = {
        "single": GymEnv("CartPole-v1"),
        "vector": torchrl_sync_vector(8),
        "single-policy": GymEnv("CartPole-v1"),
        "vector-policy": torchrl_sync_vector(8),
        "parallel": ParallelEnv(2, _halfcheetah_torchrl),
    }
    return f"torchrl {torchrl.__version__}", envs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cases = {
        "single": ("CartPole-v1, 1 env", raw_single("CartPole-v1"), 1),
        "vector": ("CartPole-v1, 8-env sync vector", raw_vector("CartPole-v1", 8, "sync"), 8),
        "single-policy": ("CartPole-v1, 1 env, policy", raw_single("CartPole-v1"), 1),
        "vector-policy": (
            "CartPole-v1, 8-env sync vector, policy",
            raw_vector("CartPole-v1", 8, "sync"),
            8,
        ),
        "parallel": (
            "HalfCheetah-v5, 2 processes",
            raw_vector("HalfCheetah-v5", 2, "async"),
            2,
        ),
    }
    ours = rlbricks_envs()
    incumbent = torchrl_envs()
    if incumbent is None:
        print("torchrl is not installed: its column is skipped")
    steps = {
        "single": args.steps,
        "vector": args.steps // 4,
        "single-policy": args.steps,
        "vector-policy": args.steps // 4,
        "parallel": args.steps // 4,
    }
    head = ["case", "raw gymnasium (steps/s)", "rlbricks (steps/s)", "rlbricks / raw"]
    if incumbent is not None:
        head += [f"{incumbent[0]} (steps/s)", f"{incumbent[0].split()[0]} / raw"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, (label, raw, per_call) in cases.items():
        with_policy = name.endswith("-policy")
        runs = [raw, rollout_runner(ours[name], with_policy)]
        if incumbent is not None:
            runs.append(rollout_runner(incumbent[1][name], with_policy))
        rates = steps_per_second(runs, steps[name], args.repeat, per_call)
        raw_rate, our_rate = rates[:2]
        row = [label, f"{raw_rate:,.0f}", f"{our_rate:,.0f}", f"{our_rate / raw_rate:.2f}"]
        if incumbent is not None:
            row += [f"{rates[2]:,.0f}", f"{rates[2] / raw_rate:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    for env in ours.values():
        env.close()
    if incumbent is not None:
        for env in incumbent[1].values():
            env.close()
    header = (
        f"torch {torch.__version__}, gymnasium {gym.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}, random actions, best of "
        f"{args.repeat} interleaved runs"
    )
    notes = []
    if incumbent is not None:
        notes = [
            "",
            "torchrl's 8-env rows: `GymWrapper(gymnasium.make_vec(..., vectorization_mode="
            '"sync"))`, in this process like the other columns (autoreset DISABLED, '
            "torchrl's preferred mode; rlbricks uses SAME_STEP). torchrl's "
            "`GymEnv(num_envs=8)` would run 8 worker processes (gymnasium's AsyncVectorEnv).",
        ]
    text = "\n".join(["# Environments", "", header, "", *lines, *notes, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "envs.md").write_text(text)


if __name__ == "__main__":
    main()
