"""The results harness (``examples/results.py``, ``examples/results_stats.py``).

Statistics against naive references, the table generation from JSON files, and
a guard that the committed tables are exactly what the committed JSON gives
(the README shows nothing the harness did not measure).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import shutil
import statistics
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


stats = _load("results_stats")
harness = _load("results")


@pytest.fixture(autouse=True)
def _numpy_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    """rliable's bootstrap takes seconds per interval: the tests use the numpy one
    (the same method), and one test checks that the two agree."""
    monkeypatch.setattr(stats, "USE_RLIABLE", False)


def _naive_iqm(scores: list[float]) -> float:
    """Mean of the middle: drop floor(n/4) of the lowest and of the highest."""
    ordered = sorted(scores)
    k = len(ordered) // 4
    return statistics.fmean(ordered[k : len(ordered) - k])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 10, 13])
def test_iqm_matches_the_naive_trimmed_mean(n: int) -> None:
    rng = np.random.default_rng(n)
    scores = rng.normal(100, 50, size=n).tolist()
    assert stats.iqm(scores) == pytest.approx(_naive_iqm(scores))


def test_iqm_ignores_one_outlier_of_five() -> None:
    assert stats.iqm([500, 500, 500, 500, -1e6]) == 500.0


def test_iqm_refuses_no_score() -> None:
    with pytest.raises(ValueError, match="no scores"):
        stats.iqm([])


def test_numpy_bootstrap_brackets_the_iqm_and_is_repeatable() -> None:
    scores = np.array([376.0, 419.0, 500.0, 500.0, 500.0])
    low, high = stats._numpy_bootstrap_ci(scores, 2000, 0)
    assert low <= stats.iqm(scores) <= high
    assert scores.min() <= low <= high <= scores.max()
    assert (low, high) == stats._numpy_bootstrap_ci(scores, 2000, 0)


def test_ci_is_degenerate_for_equal_scores_and_one_seed() -> None:
    low, high, _ = stats.iqm_ci([500.0] * 5)
    assert (low, high) == (500.0, 500.0)
    assert stats.iqm_ci([3.0])[:2] == (3.0, 3.0)


def test_rliable_and_numpy_intervals_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rliable")
    monkeypatch.setattr(stats, "USE_RLIABLE", True)
    scores = np.random.default_rng(0).normal(-150, 40, size=10)
    low, high, method = stats.iqm_ci(scores, reps=2000)
    assert "rliable" in method
    n_low, n_high = stats._numpy_bootstrap_ci(scores, 20000, 1)
    width = n_high - n_low
    assert low == pytest.approx(n_low, abs=0.15 * width)
    assert high == pytest.approx(n_high, abs=0.15 * width)


def test_summarise_every_seed_criterion() -> None:
    s = stats.summarise([500, 500, 480, 500, 476], 475.0)
    assert s["passed"]
    assert s["seeds_reaching_target"] == 5
    s = stats.summarise([500, 500, 470, 500, 500], 475.0)
    assert not s["passed"]
    assert s["seeds_reaching_target"] == 4
    assert s["fraction_reaching_target"] == 0.8
    assert s["min"] == 470
    assert s["max"] == 500
    assert s["std"] == pytest.approx(statistics.stdev([500, 500, 470, 500, 500]))


def test_summarise_mean_and_floor_criterion() -> None:
    assert stats.summarise([-150, -160, -300, -140, -120], -200.0, floor=-400.0)["passed"]
    # the mean is fine, one seed falls below the floor
    assert not stats.summarise([-100, -100, -100, -100, -450], -200.0, floor=-400.0)["passed"]
    # no seed below the floor, the mean misses the target
    assert not stats.summarise([-250, -250, -250, -250, -250], -200.0, floor=-400.0)["passed"]


def test_seed_ranges_and_parse_seeds_round_trip() -> None:
    for seeds in ([0], [0, 1, 2, 3, 4], [0, 2, 3, 7, 8, 9], list(range(10))):
        text = stats.seed_ranges(seeds)
        assert harness.parse_seeds(text) == seeds
    assert stats.seed_ranges([4, 0, 1, 2]) == "0-2,4"
    assert harness.parse_seeds("3,0-1") == [0, 1, 3]


@pytest.mark.parametrize("text", ["", "5-2", "x"])
def test_parse_seeds_refuses_bad_text(text: str) -> None:
    import argparse

    with pytest.raises((argparse.ArgumentTypeError, ValueError)):
        harness.parse_seeds(text)


def test_common_curve_lines_up_asynchronous_seeds() -> None:
    a = [[0, 0.0], [100, 10.0], [200, 20.0]]
    b = [[50, 5.0], [150, 15.0], [250, 25.0]]
    frames, values = stats.common_curve([a, b])
    assert frames.tolist() == [50, 100, 150, 200]
    # both curves are the line y = x / 10
    np.testing.assert_allclose(values, np.stack([frames / 10, frames / 10]))


def _fake_result(run: Any, per_threads: dict[str, list[float]]) -> dict[str, Any]:
    per_setting = {
        threads: [
            {
                "seed": seed,
                "eval_return": score,
                "eval_std": 0.0,
                "eval_returns": [score] * 20,
                "eval_curve": [[0, score / 2], [1000, score]],
                "frames": 1000,
                "train_wall_s": 1.0,
                "train_cpu_s": 1.0 + seed,
                "process_wall_s": 2.0 + seed,
            }
            for seed, score in enumerate(scores)
        ]
        for threads, scores in per_threads.items()
    }
    return harness.build_result(run, None, per_setting)


def test_build_result_keeps_other_thread_settings() -> None:
    run = harness.Run("ppo", "cartpole", 475.0)
    first = _fake_result(run, {"1": [500.0] * 5})
    both = harness.build_result(run, first, {"2": first["settings"]["1"]["per_seed"][:3]})
    assert sorted(both["settings"]) == ["1", "2"]
    assert both["settings"]["1"] == first["settings"]["1"]
    assert both["settings"]["2"]["seeds"] == [0, 1, 2]
    setting = both["settings"]["1"]
    for key in ("commit", "versions", "machine", "date"):
        assert key in setting
    assert setting["machine"]["cores"] >= 1
    assert both["criterion"] == "every seed ≥ 475"


def test_tables_come_from_the_json_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples" / "ppo" / "results").mkdir(parents=True)
    (tmp_path / "examples" / "ppo" / "configs").mkdir(parents=True)
    (tmp_path / "examples" / "ppo" / "configs" / "cartpole.txt").write_text(
        "env_name = CartPole-v1\n"
    )
    block = f"intro\n{harness.START}\nstale row\n{harness.END}\nafter\n"
    (tmp_path / "README.md").write_text(block)
    (tmp_path / "examples" / "ppo" / "README.md").write_text(block)
    monkeypatch.setattr(harness, "ROOT", tmp_path)
    monkeypatch.setattr(harness, "EXAMPLES", tmp_path / "examples")
    run = harness.Run("ppo", "cartpole", 475.0)
    result = _fake_result(run, {"1": [500.0, 500.0, 480.0, 500.0, 490.0], "2": [500.0] * 5})
    run.json_path.write_text(json.dumps(result))
    missing = harness.Run("ppo", "pendulum", -200.0, floor=-400.0)  # no JSON: no row
    monkeypatch.setattr(harness, "RUNS", [run, missing])
    harness.report(harness.RUNS)
    top = (tmp_path / "README.md").read_text()
    assert "stale row" not in top
    assert top.startswith("intro\n")
    assert top.endswith("after\n")
    row = next(line for line in top.splitlines() if line.startswith("| [ppo]"))
    assert "494.0 ± 8.9" in row  # mean and sample std of the five seeds
    assert "| 480.0 |" in row
    assert "5/5 ✓" in row
    assert "500.0 ± 0.0 (500.0), 5 seeds" in row
    assert "pendulum" not in top
    example = (tmp_path / "examples" / "ppo" / "README.md").read_text()
    rows = [line for line in example.splitlines() if line.startswith("| `configs/")]
    assert len(rows) == 2  # one per thread setting
    assert (tmp_path / "examples" / "ppo" / "results" / "cartpole.png").exists() == (
        importlib.util.find_spec("matplotlib") is not None
    )


def test_committed_tables_match_the_committed_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README and example tables are what ``results.py --report`` makes of the JSON files."""
    fake_examples = tmp_path / "examples"
    for algo in {run.algo for run in harness.RUNS}:
        shutil.copytree(EXAMPLES / algo / "configs", fake_examples / algo / "configs")
        shutil.copyfile(EXAMPLES / algo / "README.md", fake_examples / algo / "README.md")
        if (EXAMPLES / algo / "results").is_dir():
            (fake_examples / algo / "results").mkdir()
            for path in (EXAMPLES / algo / "results").glob("*.json"):
                shutil.copyfile(path, fake_examples / algo / "results" / path.name)
    shutil.copyfile(ROOT / "README.md", tmp_path / "README.md")
    monkeypatch.setattr(harness, "ROOT", tmp_path)
    monkeypatch.setattr(harness, "EXAMPLES", fake_examples)
    monkeypatch.setattr(stats, "plot_config", lambda result, path: False)
    harness.report(harness.RUNS)
    pairs = [(ROOT / "README.md", tmp_path / "README.md")] + [
        (EXAMPLES / algo / "README.md", fake_examples / algo / "README.md")
        for algo in {run.algo for run in harness.RUNS}
    ]
    for committed, regenerated in pairs:
        assert committed.read_text() == regenerated.read_text(), (
            f"{committed.relative_to(ROOT)} differs from what the committed JSON gives: "
            "run `python examples/results.py --report`"
        )


def test_committed_results_cover_every_quick_config() -> None:
    """Every quick config has a JSON with at least its default seed count, consistent inside."""
    for run in harness.RUNS:
        assert run.json_path.exists(), f"{run.name}: no {run.json_path.relative_to(ROOT)}"
        result = json.loads(run.json_path.read_text())
        setting = result["settings"]["1"]
        assert len(setting["seeds"]) >= run.seeds
        scores = [r["eval_return"] for r in setting["per_seed"]]
        assert setting["summary"]["mean"] == pytest.approx(statistics.fmean(scores))
        assert setting["summary"]["min"] == min(scores)
        assert all(len(r["eval_returns"]) == 20 for r in setting["per_seed"])
        assert all(
            a[0] < b[0] for r in setting["per_seed"] for a, b in itertools.pairwise(r["eval_curve"])
        )
