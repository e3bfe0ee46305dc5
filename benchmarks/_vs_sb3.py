"""The harness shared by the ``*_vs_sb3.py`` benchmarks.

An rlbricks example and stable-baselines3 on the same settings: the example's
config is read through the example's own parser, every key is mapped to an SB3
argument, declared rlbricks-only or pinned to one value (anything else stops
the benchmark), then ours and SB3 run interleaved seed by seed, each a fresh
process with one torch thread, and the table (settings side by side, per-seed
runs, the CPU-per-frame ratio with its spread over seeds) is written to
``benchmarks/results/<name>.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from argparse import Namespace
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

#: one row of the settings table: (setting, rlbricks, stable-baselines3)
Row = tuple[str, str, str]
#: what the SB3 child gets: JSON-able settings, built by the parent from the config
Spec = dict[str, Any]


def read_config(path: Path) -> dict[str, str]:
    """The ``key = value`` lines of a config file (``#`` starts a comment), values as text.

    Only the keys matter here (to check that each one is mapped); the values
    are read by the example's own parser (:func:`example_args`).
    """
    keys: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"{path}:{number}: expected a 'key = value' line, got {line!r}")
        keys[key.strip()] = value.strip()
    return keys


def example_args(example: str, config: str, overrides: Sequence[str]) -> Namespace:
    """The example's arguments for ``config`` and ``overrides``, parsed by its own parser."""
    spec = importlib.util.spec_from_file_location(f"_bench_{Path(example).stem}", ROOT / example)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {example}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from rlbricks.trainers import parse_args

    return parse_args(module.build_parser(), [f"--config={ROOT / config}", *overrides])


@dataclasses.dataclass(frozen=True)
class KeyPlan:
    """What a benchmark does with each option of an example.

    Attributes:
        mapped: options translated to a stable-baselines3 argument.
        ours_only: options with no effect on training (logging, evaluation
            schedule, run folder, threads) or set by the benchmark itself.
        fixed: options supported at one value only: features SB3 lacks and
            options the example does not read.
    """

    mapped: frozenset[str]
    ours_only: frozenset[str]
    fixed: Mapping[str, Any]

    def check(self, args: Namespace, file_keys: Sequence[str], config: str) -> None:
        """Stop the script on a key or option this plan does not know, or a fixed one changed."""
        known = self.mapped | self.ours_only | set(self.fixed)
        where = Path(sys.argv[0]).name
        unknown = sorted(k for k in file_keys if k not in known)
        if unknown:
            raise SystemExit(
                f"{config}: {', '.join(unknown)}: no stable-baselines3 mapping in {where}; "
                "map each new key (or declare it rlbricks-only) before comparing"
            )
        unknown = sorted(k for k in vars(args) if k not in known)
        if unknown:
            raise SystemExit(
                f"the example has options {where} does not know: {', '.join(unknown)}; "
                "map them (or declare them rlbricks-only) before comparing"
            )
        for key, value in self.fixed.items():
            if getattr(args, key) != value:
                raise SystemExit(
                    f"{key} = {getattr(args, key)!r} ({config}): {where} compares only "
                    f"{key} = {value!r} (no stable-baselines3 equivalent, or not read by the example)"
                )


def check_eval_cap(args: Namespace) -> None:
    """rlbricks caps evaluation episodes at ``record_frames`` steps, SB3 does not: it must not bind."""
    import gymnasium as gym

    limit = gym.spec(args.env_name).max_episode_steps
    if limit is None or args.record_frames < limit:
        raise SystemExit(
            f"record_frames = {args.record_frames} may cut evaluation episodes of {args.env_name} "
            f"(time limit {limit}); SB3's evaluate_policy plays them to the end"
        )


def _run(cmd: list[str], env: Mapping[str, str]) -> tuple[float, str]:
    """Run ``cmd`` from the repo root; its wall time from start to exit, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(env), cwd=ROOT, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def _record(
    frames: int, updates: int, cpu: float, wall: float, process: float, mean: float, std: float
) -> dict[str, float]:
    return {
        "frames": frames,
        "updates": updates,
        "train_cpu_s": cpu,
        "train_wall_s": wall,
        "cpu_s_per_1k_frames": 1000.0 * cpu / frames,
        "frames_per_s": frames / wall,
        "process_wall_s": process,
        "return_mean": mean,
        "return_std": std,
    }


def ours_overrides(seed: int, frames: int | None) -> list[str]:
    """The flags the benchmark adds to the example's config."""
    out = [
        f"--seed={seed}",
        "--threads=1",
        "--logger=none",
        "--record_interval=1000000",
        "--exp_name=bench",
        "--no_progress_bar",
    ]
    return out + ([f"--total_frames={frames}"] if frames else [])


def run_ours(
    example: str, config: str, seed: int, frames: int | None, env: Mapping[str, str]
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as logdir:
        cmd = [sys.executable, example, f"--config={config}", f"--logdir={logdir}"]
        process, _ = _run(cmd + ours_overrides(seed, frames), env)
        summary = json.loads((Path(logdir) / "bench" / "summary.json").read_text())
    return _record(
        summary["frames"],
        summary["optim_steps"],
        summary["cpu_time_s"],
        summary["wall_time_s"],
        process,
        summary["eval_reward_mean"],
        summary["eval_reward_std"],
    )


def run_sb3(script: Path, spec: Spec, seed: int, env: Mapping[str, str]) -> dict[str, float]:
    cmd = [sys.executable, str(script), "--child", json.dumps({**spec, "seed": seed})]
    process, out = _run(cmd, env)
    result = json.loads(out.strip().splitlines()[-1])
    return _record(**result, process=process)


def child_main(spec_text: str, make_model: Callable[[Spec, Any], Any]) -> None:
    """The SB3 side, in its own process: train, time ``learn``, evaluate; print one JSON line."""
    import torch

    torch.set_num_threads(1)
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    spec = json.loads(spec_text)
    env = make_vec_env(spec["env_id"], n_envs=spec["n_envs"], seed=spec["seed"])
    model = make_model(spec, env)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    model.learn(total_timesteps=spec["total_frames"])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    eval_env = make_vec_env(spec["env_id"], n_envs=1, seed=spec["seed"] + 1000)
    mean, std = evaluate_policy(
        model, eval_env, n_eval_episodes=spec["eval_episodes"], deterministic=True
    )
    result = {
        "frames": int(model.num_timesteps),
        "updates": int(model._n_updates * spec["updates_per_n_update"]),
        "cpu": cpu,
        "wall": wall,
        "mean": float(mean),
        "std": float(std),
    }
    print(json.dumps(result))


# --------------------------------------------------------------------------- #
# the table
# --------------------------------------------------------------------------- #
def _range(values: Sequence[float], fmt: str) -> str:
    mid = statistics.median(values)
    if len(values) == 1:
        return format(mid, fmt)
    return f"{format(mid, fmt)} ({format(min(values), fmt)} to {format(max(values), fmt)})"


def _mean_std(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f} (one seed)"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def doc_notes(doc: str | None) -> list[str]:
    """The bullets under "Remaining differences" of a docstring, one string each."""
    notes: list[str] = []
    inside = False
    for line in (doc or "").splitlines():
        if line.startswith("Remaining differences"):
            inside = True
        elif inside and line.startswith("* "):
            notes.append(line[2:].strip())
        elif inside and line.startswith("  ") and notes:
            notes[-1] += " " + line.strip()
        elif inside and line.strip():
            break
    return notes


def _versions() -> str:
    names = ("torch", "stable-baselines3", "gymnasium")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found) + f", Python {platform.python_version()}, {platform.machine()}"


def render(
    title: str,
    smoke: int | None,
    seeds: Sequence[int],
    settings: Sequence[Row],
    runs: Mapping[str, Sequence[dict[str, float]]],
    notes: Sequence[str],
) -> str:
    ours, theirs = runs["rlbricks"], runs["stable-baselines3"]
    head = f"# {title}" + (f" (SMOKE RUN: {smoke} frames, not a result)" if smoke else "")
    lines = [
        head,
        "",
        f"{os.cpu_count()} CPU cores shared with other work; {_versions()}. Seeds {list(seeds)}, "
        "each library in a fresh process per seed, interleaved (rlbricks then SB3 for each "
        "seed), one torch thread. The ratio basis is the CPU time of the training loop "
        "(`time.process_time` around it); absolute wall times on this shared machine are noisy.",
        "",
        "## Settings",
        "",
        "| setting | rlbricks | stable-baselines3 |",
        "|---|---|---|",
        *(f"| {name} | {a} | {b} |" for name, a, b in settings),
        "",
        "## Per seed",
        "",
        "| seed | library | frames | gradient steps | training CPU s | training wall s "
        "| CPU s / 1000 frames | frames/s (wall) | process wall s | final return (episodes) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, seed in enumerate(seeds):
        for name, records in runs.items():
            r = records[i]
            lines.append(
                f"| {seed} | {name} | {r['frames']:,} | {r['updates']:,} | {r['train_cpu_s']:.2f} "
                f"| {r['train_wall_s']:.2f} | {r['cpu_s_per_1k_frames']:.3f} "
                f"| {r['frames_per_s']:,.0f} | {r['process_wall_s']:.1f} "
                f"| {r['return_mean']:.1f} ± {r['return_std']:.1f} |"
            )
    ratios = [a["cpu_s_per_1k_frames"] / b["cpu_s_per_1k_frames"] for a, b in zip(ours, theirs)]
    speeds = [1.0 / r for r in ratios]
    cpu = {name: [r["cpu_s_per_1k_frames"] for r in records] for name, records in runs.items()}
    lines += [
        "",
        "## Summary",
        "",
        "Median over seeds, (min to max) in brackets; a ratio pairs the two runs of one seed.",
        "",
        "| measure | rlbricks | stable-baselines3 |",
        "|---|---|---|",
        f"| training CPU s / 1000 frames | {_range(cpu['rlbricks'], '.3f')} "
        f"| {_range(cpu['stable-baselines3'], '.3f')} |",
        f"| CPU per frame, rlbricks / SB3 | {_range(ratios, '.2f')} | 1 |",
        f"| speed (SB3 CPU / rlbricks CPU per frame) | {_range(speeds, '.2f')} x | 1 x |",
        f"| final return, mean ± std over seeds | "
        f"{_mean_std([r['return_mean'] for r in ours])} "
        f"| {_mean_std([r['return_mean'] for r in theirs])} |",
        f"| whole-process wall s (start to exit) | "
        f"{_range([r['process_wall_s'] for r in ours], '.1f')} "
        f"| {_range([r['process_wall_s'] for r in theirs], '.1f')} |",
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in notes),
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- #
# the driver
# --------------------------------------------------------------------------- #
@dataclasses.dataclass(frozen=True)
class Comparison:
    """One rlbricks example against stable-baselines3.

    Attributes:
        name: the results file's stem.
        title: the table's title.
        script: the benchmark script (run again with ``--child`` for SB3).
        example: the example script, relative to the repo root.
        config: its config file, relative to the repo root.
        plan: what to do with each option of the example.
        sb3_spec: the SB3 settings and the settings table from the example's arguments.
        make_model: builds the SB3 model in the child from the settings and the vector env.
        notes: the remaining differences.
    """

    name: str
    title: str
    script: Path
    example: str
    config: str
    plan: KeyPlan
    sb3_spec: Callable[[Namespace], tuple[Spec, list[Row]]]
    make_model: Callable[[Spec, Any], Any]
    notes: Sequence[str]

    def main(self, argv: Sequence[str] | None = None) -> None:
        parser = argparse.ArgumentParser(description=self.title)
        parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        parser.add_argument("--frames", type=int, default=None,
                            help="override total_frames (a smoke run: table to stdout only)")  # fmt: skip
        parser.add_argument("--out", type=Path, default=None,
                            help=f"write the table here (default without --frames: "
                                 f"benchmarks/results/{self.name}.md)")  # fmt: skip
        parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
        args = parser.parse_args(argv)
        if args.child is not None:
            child_main(args.child, self.make_model)
            return
        if importlib.util.find_spec("stable_baselines3") is None:
            print("stable-baselines3 is not installed: nothing to compare, no table written")
            return

        file_keys = list(read_config(ROOT / self.config))
        ours_args = example_args(self.example, self.config, ours_overrides(0, args.frames))
        self.plan.check(ours_args, file_keys, self.config)
        check_eval_cap(ours_args)
        spec, settings = self.sb3_spec(ours_args)

        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env["PYTHONHASHSEED"] = "0"
        runs: dict[str, list[dict[str, float]]] = {"rlbricks": [], "stable-baselines3": []}
        for seed in args.seeds:
            for name in runs:
                if name == "rlbricks":
                    result = run_ours(self.example, self.config, seed, args.frames, env)
                else:
                    result = run_sb3(self.script, spec, seed, env)
                runs[name].append(result)
                shown = {k: round(v, 3) for k, v in result.items()}
                print(f"seed {seed} {name}: {json.dumps(shown)}", flush=True)

        text = render(self.title, args.frames, args.seeds, settings, runs, self.notes)
        print(text)
        out = args.out if args.out is not None or args.frames else RESULTS / f"{self.name}.md"
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            print(f"written: {out}")


def fmt(value: Any) -> str:
    """A config value as the table shows it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


#: options every compared example leaves to rlbricks alone: logging, evaluation
#: schedule, run folder, threads and seed (set by the benchmark for both libraries)
OURS_ONLY = frozenset(
    {
        "config",
        "seed",  # set by the benchmark, the same for both
        "threads",  # set to 1 by the benchmark
        "logger",
        "exp_name",
        "logdir",
        "log_interval",
        "record_interval",
        "record_frames",  # checked: it must not cut an evaluation episode
        "eval_envs",
        "no_progress_bar",
        "save_trainer_interval",  # only with save_trainer_file
        "image_size",  # only with pixels
        "frame_stack",  # only with pixels
    }
)

#: options both comparisons support at one value only (no SB3 equivalent, or
#: not read by the examples compared); each benchmark adds its own
FIXED_COMMON: dict[str, object] = {
    "env_task": "",
    "env_library": "gym",
    "env_workers": 1,
    "frame_skip": 1,
    "max_frames_per_traj": None,
    "pixels": False,
    "noop_max": 0,
    "reward_clip": False,
    "reward_scaling": None,
    "reset_at_each_iter": False,
    "device": "cpu",
    "collection_devices": "cpu",
    "loss_function": "l2",
    "hard_update_interval": None,  # soft updates in the examples compared
    "value_estimator": "td0",
    "optimizer": "adam",
    "weight_decay": 0.0,
    "clip_grad_value": False,
    "save_trainer_file": None,
    "resume": None,
}


def run_rows(args: Namespace) -> list[Row]:
    """The settings rows every comparison shares: threads, logging, the final evaluation."""
    return [
        ("threads", "--threads=1, OMP_NUM_THREADS=1", "torch.set_num_threads(1), OMP_NUM_THREADS=1"),
        ("periodic evaluation, logging", "none (--record_interval=1000000), --logger=none",
         "none, verbose = 0"),
        ("final evaluation", f"eval_episodes = {args.eval_episodes} deterministic, on "
         f"eval_envs = {args.eval_envs} sub-envs, seeded seed + 1000",
         f"evaluate_policy(n_eval_episodes={args.eval_episodes}, deterministic=True), "
         "1 env seeded seed + 1000"),
    ]  # fmt: skip
