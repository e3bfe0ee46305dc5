"""Collector throughput: rlbricks beside a plain gymnasium + torch loop and torchrl.

CartPole-v1 with a 2-layer, 64-unit MLP policy that takes the argmax of its
outputs, frames counted per sub-env step:

* one env: ``SyncDataCollector(GymEnv("CartPole-v1"), policy)`` vs a plain
  loop ``obs → net → argmax → env.step`` (the limit);
* 8-env sync vector, one process: ``GymEnv(num_envs=8)`` vs the plain loop on
  ``gymnasium.make_vec(..., vectorization_mode="sync")`` with its own autoreset;
* ``MultiSyncDataCollector`` with 2 worker processes of one env each, beside
  the plain one-env loop (reported: on 2 cores it competes with itself).

torchrl's ``SyncDataCollector`` (with a ``tensordict.nn.TensorDictModule``
around the same network) is timed when torchrl is installed; on 8 envs it
steps the same in-process gymnasium ``SyncVectorEnv`` through its
``GymWrapper`` (autoreset disabled, the mode torchrl prefers), since torchrl's
``GymEnv(num_envs=8)`` would run an ``AsyncVectorEnv`` of 8 worker processes.
Each repeat times every runner of a case one after the other (interleaved)
and the best time of each is kept. The table goes to
``benchmarks/results/collectors.md``.
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
from torch import nn

RESULTS = Path(__file__).parent / "results"


class ArgmaxPolicy(nn.Module):
    """The benchmark's policy: a 2x64 tanh MLP and the argmax of its 2 outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(4, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2)
        )

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return self.net(observation).argmax(-1)


def frames_per_second(runs: list[Callable[[], int]], repeat: int) -> list[float]:
    """Best of ``repeat`` interleaved calls of each run (which returns its frame count)."""
    for run in runs:
        run()  # warm up
    best = [float("inf")] * len(runs)
    frames = [0] * len(runs)
    for _ in range(repeat):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            frames[i] = run()
            best[i] = min(best[i], time.perf_counter() - start)
    return [f / b for f, b in zip(frames, best)]


def plain_single(policy: ArgmaxPolicy, frames: int) -> Callable[[], int]:
    env = gym.make("CartPole-v1")
    state = {"obs": env.reset(seed=0)[0]}

    def run() -> int:
        obs = state["obs"]
        with torch.no_grad():
            for _ in range(frames):
                action = policy(torch.from_numpy(obs)).item()
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    obs, _ = env.reset()
        state["obs"] = obs
        return frames

    return run


def plain_vector(policy: ArgmaxPolicy, num_envs: int, frames: int) -> Callable[[], int]:
    venv = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync")
    state = {"obs": venv.reset(seed=0)[0]}
    steps = frames // num_envs

    def run() -> int:
        obs = state["obs"]
        with torch.no_grad():
            for _ in range(steps):
                obs, *_ = venv.step(policy(torch.from_numpy(obs)).numpy())
        state["obs"] = obs
        return steps * num_envs

    return run


def collector_run(collector: Any) -> Callable[[], int]:
    def run() -> int:
        batch = collector.next()
        return int(batch.numel())

    return run


def _cartpole(num_envs: int | None = None) -> Any:
    from rlbricks.envs import GymEnv

    return GymEnv("CartPole-v1", num_envs=num_envs, categorical_action_encoding=True)


def rlbricks_collectors(policy: ArgmaxPolicy, frames: int) -> dict[str, Any]:
    from rlbricks.collectors import SyncDataCollector
    from rlbricks.modules import TensorDictModule

    module = TensorDictModule(policy, in_keys=["observation"], out_keys=["action"])
    out = {
        "single": SyncDataCollector(_cartpole(), module, frames_per_batch=frames),
        "vector": SyncDataCollector(_cartpole(8), module, frames_per_batch=frames),
    }
    try:
        from rlbricks.collectors import MultiSyncDataCollector
    except ImportError:
        return out
    out["multi"] = MultiSyncDataCollector([_cartpole, _cartpole], module, frames_per_batch=frames)
    return out


def torchrl_collectors(policy: ArgmaxPolicy, frames: int) -> tuple[str, dict[str, Any]] | None:
    try:
        import torchrl
        from tensordict.nn import TensorDictModule
        from torchrl.envs import GymEnv
        from torchrl.envs import GymWrapper
    except ImportError:
        return None
    try:  # torchrl >= 0.12 names it Collector
        from torchrl.collectors import Collector as SyncDataCollector
    except ImportError:
        from torchrl.collectors import SyncDataCollector
    module = TensorDictModule(policy, in_keys=["observation"], out_keys=["action"])

    def make(num_envs: int | None) -> Any:
        if num_envs is None:
            env = GymEnv("CartPole-v1", categorical_action_encoding=True)
        else:  # in this process: GymEnv(num_envs=n) would start n worker processes
            venv = gym.make_vec(
                "CartPole-v1",
                num_envs=num_envs,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
            )
            env = GymWrapper(venv, categorical_action_encoding=True)
        return SyncDataCollector(env, module, frames_per_batch=frames, total_frames=-1)

    collectors = {"single": make(None), "vector": make(8)}
    return f"torchrl {torchrl.__version__}", collectors


def torchrl_run(collector: Any) -> Callable[[], int]:
    iterator = iter(collector)

    def run() -> int:
        return int(next(iterator).numel())

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000, help="frames per batch")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    policy = ArgmaxPolicy()
    ours = rlbricks_collectors(policy, args.frames)
    incumbent = torchrl_collectors(policy, args.frames)
    if incumbent is None:
        print("torchrl is not installed: its column is skipped")
    cases = {
        "single": ("CartPole-v1, 1 env", plain_single(policy, args.frames)),
        "vector": ("CartPole-v1, 8-env sync vector", plain_vector(policy, 8, args.frames)),
        "multi": ("MultiSync, 2 workers x 1 env (vs the 1-env loop)", None),
    }
    head = ["case", "plain loop (frames/s)", "rlbricks (frames/s)", "rlbricks / plain"]
    if incumbent is not None:
        head += [f"{incumbent[0]} (frames/s)", f"{incumbent[0].split()[0]} / plain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, (label, plain) in cases.items():
        if name not in ours:
            continue
        if plain is None:
            plain = cases["single"][1]
        runs = [plain, collector_run(ours[name])]
        has_theirs = incumbent is not None and name in incumbent[1]
        if has_theirs:
            runs.append(torchrl_run(incumbent[1][name]))  # type: ignore[index]
        rates = frames_per_second(runs, args.repeat)
        row = [label, f"{rates[0]:,.0f}", f"{rates[1]:,.0f}", f"{rates[1] / rates[0]:.2f}"]
        if incumbent is not None:
            row += [f"{rates[2]:,.0f}", f"{rates[2] / rates[0]:.2f}"] if has_theirs else ["—", "—"]
        lines.append("| " + " | ".join(row) + " |")
    for collector in ours.values():
        collector.shutdown()
    if incumbent is not None:
        for collector in incumbent[1].values():
            collector.shutdown()
    header = (
        f"torch {torch.__version__}, gymnasium {gym.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}, one torch thread, "
        f"{args.frames} frames per batch, best of {args.repeat} interleaved runs"
    )
    notes = []
    if incumbent is not None:
        notes = [
            "",
            "torchrl's 8-env row: `GymWrapper(gymnasium.make_vec(..., vectorization_mode="
            '"sync"))`, in this process like the other columns (autoreset DISABLED, '
            "torchrl's preferred mode; rlbricks uses SAME_STEP). torchrl's "
            "`GymEnv(num_envs=8)` would run 8 worker processes (gymnasium's AsyncVectorEnv).",
        ]
    text = "\n".join(["# Collectors", "", header, "", *lines, *notes, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "collectors.md").write_text(text)


if __name__ == "__main__":
    main()
