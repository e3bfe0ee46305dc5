"""Replay-buffer benchmarks: rlbricks beside a raw gather and torchrl.

Data: 100k rows of 6 keys (observation [8], action [2], reward [1], done [1] bool,
terminated [1] bool, next observation [8]); batches of 256.

* ``raw gather`` — ``idx = torch.randint(N, (256,)); {k: v[idx] for k, v in data.items()}``
  on a flat dict of preallocated tensors: the limit for uniform sampling here.
* ``rlbricks`` — ``ReplayBuffer(storage=LazyTensorStorage(N))``, prioritized with
  ``TensorDictPrioritizedReplayBuffer`` (sample + update of the sampled priorities).
* ``torchrl`` — the same buffers from ``torchrl.data`` when torchrl is installed.

Throughputs are batches (or rows) per second, best of several runs; the table goes
to ``benchmarks/results/replay.md``.
"""

from __future__ import annotations

import argparse
import platform
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import rlbricks.replay as rr
from rlbricks.tensordict import TensorDict

RESULTS = Path(__file__).parent / "results"
N = 100_000
BATCH = 256
EXTEND = 1000


def make_data(n: int) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    return {
        "observation": torch.randn(n, 8, generator=g),
        "action": torch.randn(n, 2, generator=g),
        "reward": torch.randn(n, 1, generator=g),
        "done": torch.zeros(n, 1, dtype=torch.bool),
        "terminated": torch.zeros(n, 1, dtype=torch.bool),
        "next": {"observation": torch.randn(n, 8, generator=g)},
    }


def flat(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    out["next_observation"] = data["next"]["observation"]
    return out


def calibrate(fn: Callable[[], Any], min_time: float) -> int:
    """Calls per timed run so that one run lasts at least ``min_time`` seconds."""
    timer = timeit.Timer(fn)
    number = 1
    while timer.timeit(number) < min_time:
        number *= 2
    return number


def interleaved_rates(
    cases: dict[str, Callable[[], Any]], repeat: int, min_time: float
) -> dict[str, float]:
    """Calls per second of every case, best of ``repeat`` rounds.

    Each round times every case once, so slow drifts of the machine (frequency,
    memory pressure) hit all cases alike instead of whichever ran last.
    """
    numbers = {name: calibrate(fn, min_time) for name, fn in cases.items()}
    best = dict.fromkeys(cases, 0.0)
    for _ in range(repeat):
        for name, fn in cases.items():
            seconds = timeit.Timer(fn).timeit(numbers[name])
            best[name] = max(best[name], numbers[name] / seconds)
    return best


def rlbricks_cases(data: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    uniform = rr.ReplayBuffer(storage=rr.LazyTensorStorage(N), batch_size=BATCH)
    uniform.extend(data)
    prio = rr.TensorDictPrioritizedReplayBuffer(
        alpha=0.6, beta=0.4, storage=rr.LazyTensorStorage(N), batch_size=BATCH
    )
    prio.extend(data)
    errors = torch.rand(BATCH)

    def prioritized() -> None:
        sample = prio.sample()
        sample.set("td_error", errors)
        prio.update_tensordict_priority(sample)

    chunk = TensorDict(make_data(EXTEND), batch_size=[EXTEND])
    writer = rr.ReplayBuffer(storage=rr.LazyTensorStorage(N), batch_size=BATCH)
    return {
        "uniform sample": uniform.sample,
        "prioritized sample + update": prioritized,
        "extend 1000 rows": lambda: writer.extend(chunk),
    }


def torchrl_cases(data: dict[str, Any]) -> tuple[str, dict[str, Callable[[], Any]]] | None:
    try:
        import tensordict
        import torchrl
        from torchrl.data import LazyTensorStorage
        from torchrl.data import ReplayBuffer
        from torchrl.data import TensorDictPrioritizedReplayBuffer
    except ImportError:
        return None
    td = tensordict.TensorDict(data, batch_size=[N])
    uniform = ReplayBuffer(storage=LazyTensorStorage(N), batch_size=BATCH)
    uniform.extend(td)
    chunk = tensordict.TensorDict(make_data(EXTEND), batch_size=[EXTEND])
    writer = ReplayBuffer(storage=LazyTensorStorage(N), batch_size=BATCH)
    cases: dict[str, Callable[[], Any]] = {
        "uniform sample": uniform.sample,
        "extend 1000 rows": lambda: writer.extend(chunk),
    }
    try:  # torchrl's priority trees are a compiled extension that may not load
        prio = TensorDictPrioritizedReplayBuffer(
            alpha=0.6, beta=0.4, storage=LazyTensorStorage(N), batch_size=BATCH
        )
        prio.extend(td)
    except RuntimeError as err:
        print(f"torchrl prioritized buffer unavailable: {err}")
    else:
        errors = torch.rand(BATCH)

        def prioritized() -> None:
            sample = prio.sample()
            sample.set("td_error", errors)
            prio.update_tensordict_priority(sample)

        cases["prioritized sample + update"] = prioritized
    return f"torchrl {torchrl.__version__}", cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per timed run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    data = make_data(N)
    raw = flat(data)

    def raw_gather() -> dict[str, torch.Tensor]:
        idx = torch.randint(N, (BATCH,))
        return {k: v[idx] for k, v in raw.items()}

    cases: dict[str, Callable[[], Any]] = {"raw gather": raw_gather}
    cases.update({f"rlbricks|{k}": f for k, f in rlbricks_cases(data).items()})
    incumbent = torchrl_cases(data)
    label = "torchrl"
    if incumbent is not None:
        label, theirs_cases = incumbent
        cases.update({f"theirs|{k}": f for k, f in theirs_cases.items()})
    else:
        print("torchrl is not installed: its column is skipped")
    rates = interleaved_rates(cases, args.repeat, args.min_time)
    raw_rate = rates["raw gather"]
    ours = {k.split("|", 1)[1]: v for k, v in rates.items() if k.startswith("rlbricks|")}
    theirs: dict[str, float] | None = None
    if incumbent is not None:
        theirs = {k.split("|", 1)[1]: v for k, v in rates.items() if k.startswith("theirs|")}

    unit = {"uniform sample": "batches/s", "prioritized sample + update": "batches/s",
            "extend 1000 rows": "rows/s"}  # fmt: skip
    scale = {"extend 1000 rows": EXTEND}
    head = ["case", "unit", "raw gather", "rlbricks", "rlbricks / raw"]
    if theirs is not None:
        head += [label, "rlbricks / torchrl"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case, rate in ours.items():
        k = scale.get(case, 1)
        raw_cell = f"{raw_rate:,.0f}" if case == "uniform sample" else "—"
        ratio_raw = f"{rate / raw_rate:.2f}" if case == "uniform sample" else "—"
        row = [case, unit[case], raw_cell, f"{rate * k:,.0f}", ratio_raw]
        if theirs is not None and case in theirs:
            row += [f"{theirs[case] * k:,.0f}", f"{rate / theirs[case]:.2f}"]
        elif theirs is not None:
            row += ["n/a (compiled extension does not load)", "—"]
        lines.append("| " + " | ".join(row) + " |")
    prio_vs_uniform = ours["prioritized sample + update"] / ours["uniform sample"]
    env = (
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"1 thread, {N:,} rows x 6 keys, batch {BATCH}, best of {args.repeat} runs"
    )
    text = "\n".join(
        [
            "# Replay buffer",
            "",
            env,
            "",
            *lines,
            "",
            f"Prioritized sample + update runs at {prio_vs_uniform:.2f} of the uniform sample rate.",
            "",
        ]
    )
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "replay.md").write_text(text)


if __name__ == "__main__":
    main()
