"""Rerun the CPU results of the examples and rewrite their tables in the README files.

Each run is the example's committed config, exactly as a user runs it (a
fresh process, seed 0 unless ``--seed``), timed from start to exit.  Its
``summary.json`` gives the row; its ``learning_curve.png`` is copied to
``examples/<algo>/results/<config>.png``.  Rows live between the
``<!-- results:start -->`` and ``<!-- results:end -->`` markers of
``examples/<algo>/README.md`` (rows of configs not rerun are kept) and of the
top-level ``README.md`` (one row per run).

Run:  python examples/results.py [--only ppo/cartpole dqn/cartpole] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
START, END = "<!-- results:start -->", "<!-- results:end -->"
HEADER = [
    "| config | env | frames | eval return (20 episodes) | target | wall time | learning curve |",
    "|---|---|---|---|---|---|---|",
]
TOP_HEADER = [
    "| example | env | frames | eval return (20 episodes) | target | wall time |",
    "|---|---|---|---|---|---|",
]


@dataclass(frozen=True)
class Run:
    """One reproducible CPU result: an example config and the return it must reach."""

    algo: str
    config: str
    target: float

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.config}"

    @property
    def config_path(self) -> Path:
        return EXAMPLES / self.algo / "configs" / f"{self.config}.txt"


#: the acceptance figures of the examples, reproduced on a CPU machine
RUNS = [
    Run("ppo", "cartpole", 475.0),
    Run("dqn", "cartpole", 475.0),
    Run("dqn", "rainbow_cartpole", 475.0),
    Run("sac", "pendulum", -200.0),
    Run("ddpg", "pendulum", -250.0),
    Run("impala", "cartpole", 450.0),
]


def _config_value(path: Path, key: str) -> str:
    match = re.search(rf"^{key}\s*[=:]\s*(.+)$", path.read_text(), re.MULTILINE)
    return match.group(1).strip() if match else "?"


def run_one(run: Run, seed: int, workdir: Path) -> dict[str, object]:
    """Run the example; return its summary plus the process wall time."""
    script = EXAMPLES / run.algo / f"{run.algo}.py"
    cmd = [
        sys.executable,
        str(script),
        f"--config={run.config_path}",
        f"--seed={seed}",
        f"--logdir={workdir}",
        f"--exp_name={run.config}",
        "--no_progress_bar",
    ]
    print(f"== {run.name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable")}
    done = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{run.name} failed (exit code {done.returncode})")
    summary = json.loads((workdir / run.config / "summary.json").read_text())
    curve = workdir / run.config / "learning_curve.png"
    if curve.exists():
        target = EXAMPLES / run.algo / "results" / f"{run.config}.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(curve, target)
    return {**summary, "process_wall_s": wall}


def _score(run: Run, summary: dict[str, object]) -> str:
    mean, std = summary["eval_reward_mean"], summary["eval_reward_std"]
    if mean is None:
        return "n/a"
    ok = "✓" if float(mean) >= run.target else "✗ (below target)"  # type: ignore[arg-type]
    return f"{mean:.1f} ± {std or 0.0:.1f} {ok}"


def _row(run: Run, summary: dict[str, object]) -> str:
    env = _config_value(run.config_path, "env_name")
    return (
        f"| `configs/{run.config}.txt` | {env} | {summary['frames']:,} | {_score(run, summary)} "
        f"| ≥ {run.target:g} | {summary['process_wall_s']:.0f} s "
        f"| [png](results/{run.config}.png) |"
    )


def _top_row(run: Run, summary: dict[str, object]) -> str:
    env = _config_value(run.config_path, "env_name")
    return (
        f"| [{run.algo}](examples/{run.algo}/README.md) `{run.config}` | {env} "
        f"| {summary['frames']:,} | {_score(run, summary)} | ≥ {run.target:g} "
        f"| {summary['process_wall_s']:.0f} s |"
    )


def rewrite(path: Path, rows: dict[str, str], header: list[str], key: re.Pattern[str]) -> None:
    """Replace the rows of ``path``'s results table whose key was rerun; keep the others.

    A row's key is the concatenation of ``key``'s groups on that row.
    """
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} block to rewrite")
    head, rest = text.split(START, 1)
    body, tail = rest.split(END, 1)
    kept: dict[str, str] = {}
    order: list[str] = []
    for line in body.strip().splitlines():
        match = key.search(line)
        if match and line not in header:
            name = "/".join(match.groups())
            kept[name] = line
            order.append(name)
    for name, row in rows.items():
        if name not in kept:
            order.append(name)
        kept[name] = row
    table = "\n".join([*header, *(kept[name] for name in order)])
    path.write_text(f"{head}{START}\n{table}\n{END}{tail}")
    print(f"rewrote {path.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="+", default=None, help="runs like ppo/cartpole")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    runs = [r for r in RUNS if args.only is None or r.name in args.only]
    unknown = set(args.only or ()) - {r.name for r in RUNS}
    if unknown:
        raise SystemExit(f"unknown runs {sorted(unknown)}; the runs are {[r.name for r in RUNS]}")
    results: dict[Run, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="rlbricks-results-") as tmp:
        for run in runs:
            results[run] = run_one(run, args.seed, Path(tmp) / run.algo)
    per_algo: dict[str, dict[str, str]] = {}
    for run, summary in results.items():
        per_algo.setdefault(run.algo, {})[f"configs/{run.config}.txt"] = _row(run, summary)
        print(_top_row(run, summary))
    for algo, rows in per_algo.items():
        rewrite(EXAMPLES / algo / "README.md", rows, HEADER, re.compile(r"`(configs/[^`]+)`"))
    top = {run.name: _top_row(run, s) for run, s in results.items()}
    rewrite(ROOT / "README.md", top, TOP_HEADER, re.compile(r"^\| \[(\w+)\]\([^)]*\) `(\w+)`"))


if __name__ == "__main__":
    main()
