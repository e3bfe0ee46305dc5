"""The results harness: run example configs over many seeds and publish only what it measured.

For every config of ``RUNS`` (or those named by ``--only``), each seed is a fresh
process running the example exactly as a user would::

    python examples/<algo>/<algo>.py --config=examples/<algo>/configs/<config>.txt \\
        --seed=<seed> --threads=<threads>

Seeds run in parallel up to the machine's core count (a run counts its torch
threads times the cores it needs: IMPALA's Ray actors need two).  Per config,
``examples/<algo>/results/<config>.json`` receives: env, frames, target and
criterion, and per torch-thread setting the seeds, each seed's final evaluation
(20 deterministic episodes: their returns, mean and std), its learning curve
(frames, evaluation return), its training and whole-process wall times, and the
aggregate over seeds — mean, std, min, max, IQM with a 95 % bootstrap CI
(``results_stats.py``), how many seeds reach the target and whether the
config's criterion holds — plus the commit, package versions and machine.
``<config>.png`` shows the mean curve over seeds with a min-max band.

The tables between ``<!-- results:start -->`` and ``<!-- results:end -->`` of
``examples/<algo>/README.md`` and of the top-level ``README.md`` are generated
from the JSON files only (``--report`` rebuilds them and the figures without
running anything).  A config without a JSON file has no row.

Run::

    python examples/results.py                                  # every config, 5 seeds, 1 thread
    python examples/results.py --only ppo/cartpole --seeds 0-9
    python examples/results.py --threads 1 2                    # both thread settings
    python examples/results.py --only ppo/cartpole --flags --ppo_epochs=20   # try, write nothing
    python examples/results.py --report                         # tables and figures from the JSON
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: one harness at a time
    fcntl = None  # type: ignore[assignment]

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_stats as stats  # the harness's own module, beside it

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
START, END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Run:
    """An example config, the return it must reach and how it passes.

    ``floor`` None: every seed must reach ``target``; otherwise the mean over
    seeds must reach ``target`` and no seed may fall below ``floor``.
    """

    algo: str
    config: str
    target: float
    floor: float | None = None
    seeds: int = 5
    cores: int = 1

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.config}"

    @property
    def config_path(self) -> Path:
        return EXAMPLES / self.algo / "configs" / f"{self.config}.txt"

    @property
    def json_path(self) -> Path:
        return EXAMPLES / self.algo / "results" / f"{self.config}.json"

    @property
    def criterion(self) -> str:
        return stats.criterion_text(self.target, self.floor)


#: the quick CPU configs and the figures they must reach (issue "Results users can trust")
RUNS = [
    Run("ppo", "cartpole", 475.0, seeds=10),
    Run("dqn", "cartpole", 475.0),
    Run("dqn", "rainbow_cartpole", 475.0),
    Run("sac", "pendulum", -200.0, floor=-400.0),
    Run("ddpg", "pendulum", -250.0, floor=-400.0),
    Run("impala", "cartpole", 450.0, cores=2),
]


# --------------------------------------------------------------------------- #
# Running
# --------------------------------------------------------------------------- #
@dataclass
class Job:
    run: Run
    seed: int
    threads: int
    workdir: Path
    flags: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def cost(self) -> int:
        return self.run.cores * self.threads

    def command(self) -> list[str]:
        return [
            sys.executable,
            str(EXAMPLES / self.run.algo / f"{self.run.algo}.py"),
            f"--config={self.run.config_path}",
            f"--seed={self.seed}",
            f"--threads={self.threads}",
            f"--logdir={self.workdir}",
            f"--exp_name={self.run.config}",
            "--no_progress_bar",
            *self.flags,
        ]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "log.txt", "wb")  # noqa: SIM115 (closed with the process)
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(self.threads),
            # idle OpenMP threads sleep instead of spinning: on a shared machine a spinning
            # 2-thread run burns several times its CPU time (no effect on the arithmetic)
            "OMP_WAIT_POLICY": "PASSIVE",
            "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable"),
        }
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def result(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.started
        assert self.proc is not None
        if self.proc.returncode:
            tail = (self.workdir / "log.txt").read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"{self.run.name} seed {self.seed} ({self.threads} threads) failed with exit "
                f"code {self.proc.returncode}:\n{tail}"
            )
        summary = json.loads((self.workdir / self.run.config / "summary.json").read_text())
        return {
            "seed": self.seed,
            "eval_return": summary["eval_reward_mean"],
            "eval_std": summary["eval_reward_std"],
            "eval_returns": summary.get("eval_returns"),
            "eval_curve": summary.get("eval_curve", []),
            "frames": summary["frames"],
            "train_wall_s": summary["wall_time_s"],
            "train_cpu_s": summary.get("cpu_time_s"),
            "process_wall_s": round(wall, 2),
        }


def run_jobs(jobs: list[Job], capacity: int, on_done: Any) -> list[str]:
    """Run ``jobs`` with at most ``capacity`` cores busy; call ``on_done(job, result)``.

    Returns the error messages of the jobs that failed (the others still run).
    """
    pending = list(jobs)
    running: list[Job] = []
    errors: list[str] = []
    while pending or running:
        busy = sum(j.cost for j in running)
        while pending and (not running or busy + pending[0].cost <= capacity):
            job = pending.pop(0)
            job.start()
            running.append(job)
            busy += job.cost
            print(f"started {job.run.name} seed {job.seed} threads {job.threads}", flush=True)
        time.sleep(0.5)
        for job in [j for j in running if j.proc is not None and j.proc.poll() is not None]:
            running.remove(job)
            try:
                result = job.result()
            except (RuntimeError, OSError, KeyError, ValueError) as err:
                errors.append(str(err))
                print(f"FAILED: {err}", flush=True)
                continue
            on_done(job, result)  # recorded before it is reported
            print(
                f"done {job.run.name} seed {job.seed} threads {job.threads}: "
                f"{result['eval_return']:.1f} in {result['process_wall_s']:.0f} s",
                flush=True,
            )
    return errors


# --------------------------------------------------------------------------- #
# Provenance
# --------------------------------------------------------------------------- #
def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def provenance(run: Run) -> dict[str, Any]:
    """Commit (and whether the code the run depends on differs from it), versions, machine."""
    changed = _git(
        "status",
        "--porcelain",
        "--",
        "packages",
        f"examples/{run.algo}/{run.algo}.py",
        f"examples/{run.algo}/configs",
    )
    versions = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name and (
            name.startswith("rlbricks")
            or name.lower() in {"torch", "numpy", "gymnasium", "ray", "rliable"}
        ):
            versions[name] = dist.version
    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "code_differs_from_commit": bool(changed),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": dict(sorted(versions.items())),
        "machine": {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
    }


def _config_value(path: Path, key: str) -> str:
    match = re.search(rf"^{key}\s*[=:]\s*(.+)$", path.read_text(), re.MULTILINE)
    return match.group(1).strip() if match else "?"


# --------------------------------------------------------------------------- #
# JSON
# --------------------------------------------------------------------------- #
def load_result(run: Run) -> dict[str, Any] | None:
    return json.loads(run.json_path.read_text()) if run.json_path.exists() else None


def build_result(
    run: Run,
    old: dict[str, Any] | None,
    per_setting: dict[str, list[dict[str, Any]]],
    origin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The config's JSON: the thread settings just run replace their old entries.

    ``origin`` is the :func:`provenance` taken when the harness started (the
    code the seeds ran); None takes it now.
    """
    origin = provenance(run) if origin is None else origin
    settings = dict(old["settings"]) if old else {}
    for threads, per_seed in per_setting.items():
        per_seed = sorted(per_seed, key=lambda r: r["seed"])
        settings[threads] = {
            "threads": int(threads),
            "seeds": [r["seed"] for r in per_seed],
            "summary": stats.summarise([r["eval_return"] for r in per_seed], run.target, run.floor),
            "per_seed": per_seed,
            **origin,
        }
    return {
        "name": run.name,
        "config": str(run.config_path.relative_to(ROOT)),
        "command": (
            f"python examples/{run.algo}/{run.algo}.py "
            f"--config={run.config_path.relative_to(ROOT)} --seed=SEED --threads=THREADS"
        ),
        "env": _config_value(run.config_path, "env_name"),
        "frames": max(r["frames"] for s in settings.values() for r in s["per_seed"]),
        "target": run.target,
        "floor": run.floor,
        "criterion": run.criterion,
        "eval_episodes": 20,
        "score": "mean return of the final evaluation's deterministic episodes, one per seed",
        "settings": dict(sorted(settings.items())),
    }


def save_merged(
    run: Run, per_setting: dict[str, list[dict[str, Any]]], origin: dict[str, Any]
) -> None:
    """Merge ``per_setting`` into the config's JSON file and write it atomically.

    A lock file serialises harnesses that run other thread settings of the
    same config at the same time (read, merge and write happen under it).
    """
    path = run.json_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        merged = build_result(run, load_result(run), per_setting, origin)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(merged, indent=1) + "\n")
        os.replace(tmp, path)


# --------------------------------------------------------------------------- #
# Tables
# --------------------------------------------------------------------------- #
EXAMPLE_HEADER = [
    "| config | env | frames | torch threads | seeds | eval return, mean ± std | min "
    "| IQM [95% CI] | seeds ≥ target | criterion | training CPU time per seed | curves |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
TOP_HEADER = [
    "| example | env | frames | seeds | eval return, mean ± std | min | IQM [95% CI] "
    "| seeds ≥ target | criterion | with 2 torch threads: mean ± std (min) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def example_rows(run: Run, result: dict[str, Any]) -> list[str]:
    rows = []
    for threads, setting in result["settings"].items():
        s = setting["summary"]
        rows.append(
            f"| `configs/{run.config}.txt` | {result['env']} | {result['frames']:,} | {threads} "
            f"| {s['n']} ({stats.seed_ranges(setting['seeds'])}) | {stats.fmt_score(s)} "
            f"| {s['min']:.1f} | {stats.fmt_iqm(s)} | {stats.fmt_reached(s)} "
            f"| {result['criterion']} | {stats.median_cpu(setting):.0f} s "
            f"| [png](results/{run.config}.png) |"
        )
    return rows


def top_row(run: Run, result: dict[str, Any]) -> str | None:
    settings = result["settings"]
    main = settings.get("1") or next(iter(settings.values()))
    s = main["summary"]
    other = settings.get("2")
    two = "not run"
    if other is not None and other is not main:
        o = other["summary"]
        two = f"{stats.fmt_score(o)} ({o['min']:.1f}), {o['n']} seeds"
    return (
        f"| [{run.algo}](examples/{run.algo}/README.md) `{run.config}` | {result['env']} "
        f"| {result['frames']:,} | {s['n']} | {stats.fmt_score(s)} | {s['min']:.1f} "
        f"| {stats.fmt_iqm(s)} | {stats.fmt_reached(s)} | {result['criterion']} | {two} |"
    )


def replace_block(path: Path, rows: list[str], header: list[str]) -> None:
    """Replace everything between the results markers of ``path`` by ``header`` + ``rows``."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} block to rewrite")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    table = "\n".join([*header, *rows]) if rows else "*No result yet.*"
    path.write_text(f"{head}{START}\n{table}\n{END}{tail}")


def report(runs: list[Run]) -> None:
    """Rewrite every results table and figure from the JSON files (nothing is run)."""
    results = {run: load_result(run) for run in runs}
    per_algo: dict[str, list[str]] = {}
    for run in runs:
        per_algo.setdefault(run.algo, [])
        result = results[run]
        if result is None:
            continue
        per_algo[run.algo] += example_rows(run, result)
        stats.plot_config(result, run.json_path.with_suffix(".png"))
    for algo, rows in per_algo.items():
        replace_block(EXAMPLES / algo / "README.md", rows, EXAMPLE_HEADER)
    top = [row for run in runs if (r := results[run]) and (row := top_row(run, r))]
    replace_block(ROOT / "README.md", top, TOP_HEADER)
    for run in runs:
        result = results[run]
        if result is not None:
            for threads, setting in result["settings"].items():
                print(stats.summary_line(run.name, threads, setting, run.criterion))


# --------------------------------------------------------------------------- #
# Command line
# --------------------------------------------------------------------------- #
def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` -> [0..4]; ``"0,3,7"``; ``"0-2,5"``."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = (int(x) for x in part.split("-", 1))
            if high < low:
                raise argparse.ArgumentTypeError(f"seed range {part!r} runs backwards")
            seeds.extend(range(low, high + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seed in {text!r}")
    return sorted(set(seeds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [r.name for r in RUNS]
    parser.add_argument("--only", nargs="+", choices=names, default=None, metavar="ALGO/CONFIG")
    parser.add_argument(
        "--seeds", type=parse_seeds, default=None, help="e.g. 0-9 or 0,2,5 (default: per config)"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="cores to fill (default: all)"
    )
    parser.add_argument("--report", action="store_true", help="tables and figures from the JSON")
    parser.add_argument(
        "--flags",
        nargs=argparse.REMAINDER,
        default=[],
        help="extra flags for the example (a trial: prints the summary, writes nothing)",
    )
    args = parser.parse_args(argv)
    runs = [r for r in RUNS if args.only is None or r.name in args.only]
    if args.report:
        report(RUNS)
        return 0

    trial = bool(args.flags)
    collected: dict[Run, dict[str, list[dict[str, Any]]]] = {r: {} for r in runs}
    origins = {run: provenance(run) for run in runs}  # the code as the seeds start
    if not trial and any(o["code_differs_from_commit"] for o in origins.values()):
        print(
            "warning: the code these runs depend on differs from the commit; the JSON "
            "will say so (code_differs_from_commit). Commit first for reproducible results.",
            file=sys.stderr,
        )

    def on_done(job: Job, result: dict[str, Any]) -> None:
        collected[job.run].setdefault(str(job.threads), []).append(result)
        if not trial:  # keep every finished seed, even if the harness is interrupted later
            save_merged(job.run, collected[job.run], origins[job.run])

    with tempfile.TemporaryDirectory(prefix="rlbricks-results-") as tmp:
        jobs = [
            Job(
                run,
                seed,
                threads,
                Path(tmp) / f"{run.algo}-{run.config}-t{threads}-s{seed}",
                tuple(args.flags),
            )
            for threads in args.threads
            for run in runs
            for seed in (args.seeds if args.seeds is not None else range(run.seeds))
        ]
        errors = run_jobs(jobs, args.jobs, on_done)

    if trial:
        print(f"trial with {shlex.join(args.flags)} (nothing written):")
        for run, per_setting in collected.items():
            for threads, per_seed in per_setting.items():
                result = build_result(run, None, {threads: per_seed})
                print(stats.summary_line(run.name, threads, result["settings"][threads], "trial"))
    else:
        report(RUNS)
    for err in errors:
        print(f"FAILED: {err.splitlines()[0]}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
