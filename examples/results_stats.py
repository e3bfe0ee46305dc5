"""Statistics, curves and tables of the results harness (``examples/results.py``).

Scores are final evaluation returns, one per seed (the mean of the seed's 20
deterministic evaluation episodes).  Aggregates follow Agarwal et al. (2021),
*Deep Reinforcement Learning at the Edge of the Statistical Precipice*
(NeurIPS): the interquartile mean (IQM, the 25 % trimmed mean) with a 95 %
percentile bootstrap confidence interval over seeds, computed with the
``rliable`` package when it is installed and with the same resampling in
numpy otherwise.

Everything here reads the harness's JSON files only, so tables and figures can
be rebuilt without rerunning anything (``python examples/results.py --report``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: bootstrap replications of the confidence intervals
BOOTSTRAP_REPS = 5000
#: the bootstrap's seed: the same scores always give the same interval
BOOTSTRAP_SEED = 0
#: compute the intervals with rliable when it imports (False: numpy, the same method, faster)
USE_RLIABLE = True


def iqm(scores: Sequence[float]) -> float:
    """The interquartile mean: the mean of the scores left after cutting 25 % from each end.

    The number cut from each end is ``floor(0.25 * n)``, as ``scipy.stats.trim_mean``
    (and so ``rliable.metrics.aggregate_iqm``) does.
    """
    values = np.sort(np.asarray(scores, dtype=np.float64))
    if values.size == 0:
        raise ValueError("iqm: no scores")
    cut = math.floor(0.25 * values.size)
    return float(values[cut : values.size - cut].mean())


def _numpy_bootstrap_ci(scores: np.ndarray, reps: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    samples = np.sort(scores[rng.integers(0, scores.size, size=(reps, scores.size))], axis=1)
    cut = math.floor(0.25 * scores.size)
    stats = samples[:, cut : scores.size - cut].mean(axis=1)  # the IQM of every resample
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)


def iqm_ci(
    scores: Sequence[float], reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float, str]:
    """The 95 % percentile-bootstrap confidence interval of the IQM over seeds.

    Returns ``(low, high, method)``; ``method`` names the implementation used.
    One score gives the degenerate interval ``(score, score)``.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("iqm_ci: no scores")
    if values.size == 1:
        return float(values[0]), float(values[0]), "one seed: no interval"
    if not USE_RLIABLE:
        low, high = _numpy_bootstrap_ci(values, reps, seed)
        return low, high, f"numpy percentile bootstrap over seeds, {reps} reps"
    try:
        from rliable import library
        from rliable import metrics
    except Exception as err:  # missing, or broken by its dependencies (arch with pandas 3)
        low, high = _numpy_bootstrap_ci(values, reps, seed)
        why = "not installed" if isinstance(err, ImportError) else f"unusable: {err}"
        return low, high, f"numpy percentile bootstrap over seeds, {reps} reps (rliable {why})"
    with warnings.catch_warnings():  # arch's notice about its random_state argument
        warnings.simplefilter("ignore", FutureWarning)
        _, intervals = library.get_interval_estimates(
            {"run": values[:, None]},
            lambda x: np.array([metrics.aggregate_iqm(x)]),
            reps=reps,
            random_state=np.random.RandomState(seed),
        )
    low, high = intervals["run"][:, 0]
    return float(low), float(high), f"rliable stratified bootstrap (percentile), {reps} reps"


def summarise(scores: Sequence[float], target: float, floor: float | None = None) -> dict[str, Any]:
    """Mean, sample std, min, max, IQM with its CI, and how many seeds reach ``target``.

    ``passed``: with ``floor`` None, every seed reaches ``target``; with a
    ``floor``, the mean reaches ``target`` and no seed is below ``floor``.
    """
    values = [float(s) for s in scores]
    low, high, method = iqm_ci(values)
    arr = np.asarray(values)
    reached = int((arr >= target).sum())
    mean = float(arr.mean())
    passed = reached == len(values) if floor is None else mean >= target and arr.min() >= floor
    return {
        "n": len(values),
        "mean": mean,
        "std": float(arr.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(arr.min()),
        "max": float(arr.max()),
        "iqm": iqm(values),
        "iqm_ci95": [low, high],
        "ci_method": method,
        "seeds_reaching_target": reached,
        "fraction_reaching_target": reached / len(values),
        "passed": bool(passed),
    }


def seed_ranges(seeds: Sequence[int]) -> str:
    """``[0, 1, 2, 4]`` -> ``"0-2,4"``."""
    out: list[str] = []
    ordered = sorted(seeds)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def criterion_text(target: float, floor: float | None) -> str:
    """How a config passes, in words."""
    if floor is None:
        return f"every seed ≥ {target:g}"
    return f"mean ≥ {target:g}, no seed < {floor:g}"


def summary_line(name: str, threads: str, setting: dict[str, Any], criterion: str) -> str:
    """One line per config and thread setting: the figures a closing note quotes."""
    s = setting["summary"]
    low, high = s["iqm_ci95"]
    verdict = "PASS" if s["passed"] else "FAIL"
    return (
        f"{name} threads={threads} seeds={seed_ranges(setting['seeds'])}: "
        f"mean {s['mean']:.1f} ± {s['std']:.1f}, min {s['min']:.1f}, "
        f"IQM {s['iqm']:.1f} [{low:.1f}, {high:.1f}], "
        f"{s['seeds_reaching_target']}/{s['n']} seeds ≥ target; {criterion}: {verdict}"
    )


def common_curve(curves: list[list[list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """Seeds' ``[frames, return]`` curves on one frame grid (linear interpolation).

    Returns ``(frames, values)`` with ``values`` of shape ``[seeds, points]``;
    the grid is the union of the seeds' frames within the range all seeds cover,
    so asynchronous runs (whose evaluations fall at different frames) line up.
    """
    usable = [np.asarray(c, dtype=np.float64) for c in curves if len(c) > 0]
    if not usable:
        return np.zeros(0), np.zeros((0, 0))
    start = max(c[0, 0] for c in usable)
    stop = min(c[-1, 0] for c in usable)
    grid = np.unique(np.concatenate([c[:, 0] for c in usable]))
    grid = grid[(grid >= start) & (grid <= stop)]
    values = np.stack([np.interp(grid, c[:, 0], c[:, 1]) for c in usable])
    return grid, values


def plot_config(result: dict[str, Any], path: Path) -> bool:
    """The learning curves of one config: per thread setting, the mean over seeds with a
    min-max band, and the target line.  Returns False (and writes nothing) without matplotlib.

    Uses matplotlib's object API only (no pyplot, no backend switch).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red"]
    for i, (threads, setting) in enumerate(sorted(result["settings"].items())):
        frames, values = common_curve([r["eval_curve"] for r in setting["per_seed"]])
        if frames.size == 0:
            continue
        colour = colours[i % len(colours)]
        n = values.shape[0]
        label = f"{threads} thread{'s' if threads != '1' else ''}: mean of {n} seeds"
        ax.plot(frames, values.mean(0), color=colour, label=label, linewidth=2)
        ax.fill_between(
            frames,
            values.min(0),
            values.max(0),
            color=colour,
            alpha=0.2,
            label="min-max over seeds",
        )
    ax.axhline(
        result["target"],
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"target {result['target']:g} ({result['criterion']})",
    )
    ax.set_xlabel("frames collected")
    ax.set_ylabel("evaluation return (deterministic policy)")
    ax.set_title(f"{result['name']} on {result['env']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return True


def fmt_score(s: dict[str, Any]) -> str:
    """``mean ± std``."""
    return f"{s['mean']:.1f} ± {s['std']:.1f}"


def fmt_iqm(s: dict[str, Any]) -> str:
    """``IQM [low, high]``."""
    low, high = s["iqm_ci95"]
    return f"{s['iqm']:.1f} [{low:.1f}, {high:.1f}]"


def fmt_reached(s: dict[str, Any]) -> str:
    """``k/n ✓`` (✗ when the config's criterion fails)."""
    return f"{s['seeds_reaching_target']}/{s['n']} {'✓' if s['passed'] else '✗'}"


def median_cpu(setting: dict[str, Any]) -> float:
    """The median over a setting's seeds of the CPU time spent in training (every thread).

    CPU time, unlike wall time, hardly moves when other work shares the machine.
    """
    return float(np.median([r["train_cpu_s"] for r in setting["per_seed"]]))
