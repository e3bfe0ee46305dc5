"""Soak: do long runs of the multi-process pools leak memory or file descriptors?

Two runs of ``--frames`` frames each (1,000,000 by default) on CartPole-v1
with random actions:

* ``MultiSyncDataCollector`` with 2 worker processes of one env each
  (batches of 1,000 frames);
* ``ParallelEnv(2)`` stepped by a ``SyncDataCollector`` in this process
  (batches of 1,000 frames).

Every ``--every`` seconds (10 by default) the resident set size (RSS) and the
number of open file descriptors of the parent and of every child process are
sampled from ``/proc``. The table gives, per run, the first and last samples,
the growth between the sample taken after the first 10 % of the frames (the
warm-up: allocator pools, lazily built buffers) and the last one, and the
largest value seen; the goal is under 20 MB of growth and no fd growth. The
samples go to ``benchmarks/results/soak.json`` and the table to
``benchmarks/results/soak.md``. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlbricks.collectors import MultiSyncDataCollector
from rlbricks.collectors import SyncDataCollector
from rlbricks.envs import GymEnv
from rlbricks.envs import ParallelEnv

RESULTS = Path(__file__).parent / "results"
PAGE = os.sysconf("SC_PAGE_SIZE")
Progress = Callable[..., None]  # progress(frames, last=False)


def make_env() -> GymEnv:
    return GymEnv("CartPole-v1", categorical_action_encoding=True)


def children(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def is_worker(pid: int) -> bool:
    """Not multiprocessing's resource tracker (one per program, it outlives every pool)."""
    try:
        return b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def rss_mb(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * PAGE / 2**20


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def sample(frames: int, start: float) -> dict[str, Any]:
    me = os.getpid()
    kids = [k for k in children(me) if is_worker(k)]
    return {
        "t": round(time.monotonic() - start, 1),
        "frames": frames,
        "parent_rss_mb": round(rss_mb(me), 1),
        "children_rss_mb": round(sum(rss_mb(k) for k in kids), 1),
        "parent_fds": open_fds(me),
        "children_fds": sum(open_fds(k) for k in kids),
        "children": len(kids),
    }


def soak(name: str, run: Callable[[Progress], None], every: float) -> dict[str, Any]:
    """Run ``run(progress)`` while a thread samples the processes every ``every`` seconds."""
    samples: list[dict[str, Any]] = []
    frames = [0]
    stop = threading.Event()
    start = time.monotonic()

    def sampler() -> None:
        while not stop.wait(every):
            samples.append(sample(frames[0], start))

    def progress(n: int, last: bool = False) -> None:
        if frames[0] == 0:  # the pool is up: the first sample of the running processes
            samples.append(sample(n, start))
        frames[0] = n
        if last:  # before the shutdown: the last sample of the running pool
            stop.set()
            thread.join()
            samples.append(sample(n, start))

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    cpu = time.process_time()
    run(progress)
    after = sample(frames[0], start)  # after shutdown: no child may be left
    print(f"{name}: {frames[0]:,} frames in {after['t']:.0f} s, {len(samples)} samples")
    return {
        "name": name,
        "frames": frames[0],
        "wall_s": after["t"],
        "parent_cpu_s": round(time.process_time() - cpu, 1),
        "samples": samples,
        "after_shutdown": after,
    }


def drain(collector: Any, progress: Progress) -> None:
    """Iterate ``collector`` to its end, reporting the frames; the last report before shutdown."""
    try:
        for _ in collector:
            progress(collector.frames)
        progress(collector.frames, True)
    finally:
        collector.shutdown()


def multisync(total: int) -> Callable[[Progress], None]:
    def run(progress: Progress) -> None:
        drain(
            MultiSyncDataCollector(
                [make_env, make_env], policy=None, frames_per_batch=1000, total_frames=total
            ),
            progress,
        )

    return run


def parallel_env(total: int) -> Callable[[Progress], None]:
    def run(progress: Progress) -> None:
        env = ParallelEnv(2, make_env)
        try:
            drain(SyncDataCollector(env, frames_per_batch=1000, total_frames=total), progress)
        finally:
            env.close()

    return run


def growth(samples: list[dict[str, Any]], key: str, frames: int) -> tuple[float, float, float]:
    """(value after the warm-up, last value, largest value) of ``key``."""
    warm = next((s for s in samples if s["frames"] >= frames // 10), samples[0])
    return warm[key], samples[-1][key], max(s[key] for s in samples)


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "# Soak: memory and file descriptors over long runs",
        "",
        f"torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores; CartPole-v1, random actions, "
        "batches of 1,000 frames; samples every few seconds from /proc. Growth is measured "
        "from the sample after the first 10 % of the frames (warm-up) to the last sample.",
        "",
        "| run | frames | wall (s) | process | RSS after warm-up (MB) | RSS last (MB) "
        "| RSS growth (MB) | RSS max (MB) | fds after warm-up | fds last | fd growth "
        "| children left after shutdown |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        for who in ("parent", "children"):
            w, last, top = growth(run["samples"], f"{who}_rss_mb", run["frames"])
            fw, flast, _ = growth(run["samples"], f"{who}_fds", run["frames"])
            lines.append(
                f"| {run['name']} | {run['frames']:,} | {run['wall_s']:.0f} | {who} | "
                f"{w:.1f} | {last:.1f} | {last - w:+.1f} | {top:.1f} | {fw} | {flast} | "
                f"{flast - fw:+d} | {run['after_shutdown']['children']} |"
            )
    lines += [
        "",
        "Goal: under 20 MB of RSS growth and no fd growth after the warm-up. The children's "
        "figures are summed over the worker processes; every sample is taken while the pool "
        "runs, and the last column counts the worker processes still alive after its shutdown "
        "(multiprocessing's resource tracker, which outlives every pool, is not counted).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--no-write", action="store_true", help="print, write nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = [
        soak("MultiSyncDataCollector, 2 workers", multisync(args.frames), args.every),
        soak("ParallelEnv(2) + SyncDataCollector", parallel_env(args.frames), args.every),
    ]
    text = table(runs)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "soak.json").write_text(json.dumps(runs, indent=1) + "\n")
        (RESULTS / "soak.md").write_text(text)


if __name__ == "__main__":
    main()
