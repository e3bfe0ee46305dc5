"""TensorDict micro-benchmarks: rlbricks beside plain dicts of tensors and `tensordict`.

Every op runs on the same data: a TensorDict of batch size [1000] holding
``observation`` [1000, 8], ``action`` [1000, 2] and a nested ``next`` with
``observation``, ``reward`` [1000, 1] and ``done`` [1000, 1] (bool).

* ``raw dict`` is the same work done on nested Python dicts of tensors with no
  framework: the floor on this machine.
* ``tensordict`` is the incumbent package (pytorch/tensordict), timed when it
  is installed in the bench venv.

The table (per-call microseconds, best of several runs) is printed and written
to ``benchmarks/results/tensordict_ops.md``.

Run: ``python3 noxw.py -s bench`` (or ``python benchmarks/tensordict_ops.py``).
"""

from __future__ import annotations

import argparse
import math
import platform
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import rlbricks.tensordict as rtd

RESULTS = Path(__file__).parent / "results"
N = 1000


def make_source() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    return {
        "observation": torch.randn(N, 8, generator=g),
        "action": torch.randn(N, 2, generator=g),
        "next": {
            "observation": torch.randn(N, 8, generator=g),
            "reward": torch.randn(N, 1, generator=g),
            "done": torch.zeros(N, 1, dtype=torch.bool),
        },
    }


# --------------------------------------------------------------------------- #
# the no-framework floor: nested dicts of tensors
# --------------------------------------------------------------------------- #
def _raw_map(d: dict[str, Any], fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
    return {k: _raw_map(v, fn) if isinstance(v, dict) else fn(v) for k, v in d.items()}


def _raw_setrow(dst: dict[str, Any], i: int, src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict):
            _raw_setrow(dst[k], i, v)
        else:
            dst[k][i] = v


def raw_ops(src: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    d = _raw_map(src, lambda x: x.clone())
    obs, idx = torch.randn(N, 8), torch.randint(0, N, (256,))
    row = _raw_map(d, lambda x: x[6].clone())
    many = [_raw_map(d, lambda x: x.clone()) for _ in range(10)]

    def create() -> Any:
        o, a, n = src["observation"], src["action"], src["next"]
        return {"observation": o, "action": a, "next": {"observation": n["observation"],
                "reward": n["reward"], "done": n["done"]}}  # fmt: skip

    def stack() -> Any:
        def rec(ds: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                k: rec([x[k] for x in ds])
                if isinstance(v, dict)
                else torch.stack([x[k] for x in ds])
                for k, v in ds[0].items()
            }

        return rec(many)

    def exclude() -> Any:
        out = {k: v for k, v in d.items() if k != "action"}
        out["next"] = {k: v for k, v in d["next"].items() if k != "done"}
        return out

    def setitem() -> None:
        d["observation"] = obs

    return {
        "create nested": create,
        "get nested key": lambda: d["next"]["reward"],
        "set": setitem,
        "index int": lambda: _raw_map(d, lambda x: x[5]),
        "slice": lambda: _raw_map(d, lambda x: x[10:100]),
        "gather 256 rows": lambda: _raw_map(d, lambda x: x[idx]),
        "setitem one row": lambda: _raw_setrow(d, 5, row),
        "clone": lambda: _raw_map(d, lambda x: x.clone()),
        "stack 10": stack,
        "apply": lambda: _raw_map(d, lambda x: x * 2),
        "exclude": exclude,
    }


# --------------------------------------------------------------------------- #
# TensorDict implementations (same code for rlbricks and tensordict)
# --------------------------------------------------------------------------- #
def td_ops(cls: Any, src: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    td = cls(_raw_map(src, lambda x: x.clone()), batch_size=[N])
    obs, idx = torch.randn(N, 8), torch.randint(0, N, (256,))
    row = td[6].clone()
    many = [td.clone() for _ in range(10)]

    def setitem() -> None:
        td["observation"] = obs

    def setrow() -> None:
        td[5] = row

    return {
        "create nested": lambda: cls(src, batch_size=[N]),
        "get nested key": lambda: td["next", "reward"],
        "set": setitem,
        "index int": lambda: td[5],
        "slice": lambda: td[10:100],
        "gather 256 rows": lambda: td[idx],
        "setitem one row": setrow,
        "clone": lambda: td.clone(),
        "stack 10": lambda: torch.stack(many),
        "apply": lambda: td.apply(lambda x: x * 2),
        "exclude": lambda: td.exclude("action", ("next", "done")),
    }


def best_us(fn: Callable[[], Any], repeat: int, min_time: float) -> float:
    timer = timeit.Timer(fn)
    number = 1
    while True:  # calibrate: enough calls for min_time seconds
        if timer.timeit(number) >= min_time:
            break
        number *= 2
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.05, help="seconds per timed run")
    args = parser.parse_args()
    torch.set_num_threads(1)

    src = make_source()
    columns: dict[str, dict[str, Callable[[], Any]]] = {
        "raw dict": raw_ops(src),
        "rlbricks": td_ops(rtd.TensorDict, src),
    }
    try:
        import tensordict

        columns[f"tensordict {tensordict.__version__}"] = td_ops(tensordict.TensorDict, src)
        incumbent: str | None = f"tensordict {tensordict.__version__}"
    except ImportError:
        incumbent = None
        print("tensordict is not installed: its column is skipped")

    results = {
        name: {op: best_us(fn, args.repeat, args.min_time) for op, fn in ops.items()}
        for name, ops in columns.items()
    }
    ops = list(columns["rlbricks"])
    head = ["op", *(f"{c} (µs)" for c in columns), "rlbricks / raw"]
    if incumbent:
        head.append(f"speed-up vs {incumbent.split()[0]}")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    speedups = []
    for op in ops:
        ours = results["rlbricks"][op]
        row = [
            op,
            *(f"{results[c][op]:.2f}" for c in columns),
            f"{ours / results['raw dict'][op]:.2f}",
        ]
        if incumbent:
            s = results[incumbent][op] / ours
            speedups.append(s)
            row.append(f"{s:.2f}x")
        lines.append("| " + " | ".join(row) + " |")
    footer = []
    if speedups:
        geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        footer.append(
            f"Geometric mean speed-up vs {incumbent}: **{geo:.2f}x** "
            f"(slowest op: {min(speedups):.2f}x)."
        )
    env = (
        f"torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, 1 thread, best of {args.repeat} runs"
    )
    text = "\n".join(["# TensorDict ops", "", env, "", *lines, "", *footer, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tensordict_ops.md").write_text(text)


if __name__ == "__main__":
    main()
