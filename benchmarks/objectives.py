"""Value estimators: rlbricks' parallel scans beside a raw loop, torchrl and rlox.

Data: ``B=64`` environments x ``T=1000`` steps, float32 on CPU, one thread,
laid out as collectors write it (``[B, T, 1]``, time at dim -2).  Episodes end
with probability 1% per step; ``next_state_value`` is the next step's value
inside a row (so every implementation below sees the same problem), and
``done == terminated`` because rlox has no separate truncation flag.

* ``raw loop`` -- the textbook backward recursion, one torch op per time step
  on ``[B, 1]`` slices: the obvious implementation with no framework.
* ``rlbricks`` -- ``rlbricks.objectives.value.functional``: each recursion as a
  parallel scan over time (``ceil(log2 T)`` vectorised steps).
* ``torchrl`` -- ``torchrl.objectives.value.functional`` when installed; both
  the loop and the ``vec_`` variants are timed and the faster one is reported.
* ``rlox`` -- rlox's Rust kernels when installed: ``compute_gae_batched_f32``
  (one call for the whole batch) and ``compute_vtrace`` (one trajectory per
  call, so a loop over the 64 rows).  The timing includes the zero-copy
  torch <-> numpy views and the bool -> float32 cast of ``done`` a torch
  pipeline needs.

Every implementation's output is checked against rlbricks' (allclose) before
timing.  Each repeat times every case once (interleaved), best of
``--repeat``; the table goes to ``benchmarks/results/objectives.md``.
"""

from __future__ import annotations

import argparse
import platform
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlbricks.objectives.value import functional as F

RESULTS = Path(__file__).parent / "results"
GAMMA, LMBDA = 0.99, 0.95
ESTIMATORS = ["GAE", "TD(lambda)", "V-trace"]

Data = dict[str, torch.Tensor]


def make_data(batch: int, steps: int) -> Data:
    g = torch.Generator().manual_seed(0)
    shape = (batch, steps, 1)
    value = torch.randn(shape, generator=g)
    bootstrap = torch.randn(batch, 1, 1, generator=g)
    done = torch.rand(shape, generator=g) < 0.01
    return {
        "value": value,
        "next_value": torch.cat([value[:, 1:], bootstrap], 1),
        "reward": torch.randn(shape, generator=g),
        "done": done,
        "terminated": done.clone(),
        "log_pi": 0.3 * torch.randn(shape, generator=g),
        "log_mu": 0.3 * torch.randn(shape, generator=g),
    }


# --------------------------------------------------------------------------- #
# the raw loops
# --------------------------------------------------------------------------- #


def raw_gae(d: Data) -> tuple[torch.Tensor, torch.Tensor]:
    alive = (~d["terminated"]).float()
    cont = (~d["done"]).float()
    delta = d["reward"] + GAMMA * alive * d["next_value"] - d["value"]
    advantage = torch.empty_like(delta)
    following = torch.zeros_like(delta[:, 0])
    for t in range(delta.shape[1] - 1, -1, -1):
        following = delta[:, t] + GAMMA * LMBDA * cont[:, t] * following
        advantage[:, t] = following
    return advantage, advantage + d["value"]


def raw_td_lambda(d: Data) -> torch.Tensor:
    bootstrap = (~d["terminated"]).float() * d["next_value"]
    cont = (~d["done"]).float()
    reward = d["reward"]
    returns = torch.empty_like(reward)
    steps = reward.shape[1]
    following = bootstrap[:, -1]
    for t in range(steps - 1, -1, -1):
        c = cont[:, t] if t < steps - 1 else torch.zeros_like(following)
        mix = bootstrap[:, t] + LMBDA * c * (following - bootstrap[:, t])
        following = reward[:, t] + GAMMA * mix
        returns[:, t] = following
    return returns


def raw_vtrace(d: Data) -> tuple[torch.Tensor, torch.Tensor]:
    ratio = (d["log_pi"] - d["log_mu"]).exp()
    rho = ratio.clamp_max(1.0)
    alive = (~d["terminated"]).float()
    cont = (~d["done"]).float()
    value, next_value, reward = d["value"], d["next_value"], d["reward"]
    delta = rho * (reward + GAMMA * alive * next_value - value)
    correction = torch.empty_like(delta)
    following = torch.zeros_like(delta[:, 0])
    for t in range(delta.shape[1] - 1, -1, -1):
        following = delta[:, t] + GAMMA * cont[:, t] * rho[:, t] * following
        correction[:, t] = following
    vs = correction + value
    later = torch.cat([vs[:, 1:], next_value[:, -1:]], 1)
    vs_next = torch.where(d["done"], next_value, later)
    return rho * (reward + GAMMA * alive * vs_next - value), vs


# --------------------------------------------------------------------------- #
# the implementations, as zero-argument calls
# --------------------------------------------------------------------------- #


def rlbricks_cases(d: Data) -> dict[str, Callable[[], Any]]:
    v, nv, r, done, term = d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    return {
        "GAE": lambda: F.generalized_advantage_estimate(GAMMA, LMBDA, v, nv, r, done, term),
        "TD(lambda)": lambda: F.td_lambda_return_estimate(GAMMA, LMBDA, nv, r, done, term),
        "V-trace": lambda: F.vtrace_advantage_estimate(
            GAMMA, d["log_pi"], d["log_mu"], v, nv, r, done, term
        ),
    }


def torchrl_cases(d: Data) -> tuple[str, dict[str, dict[str, Callable[[], Any]]]] | None:
    """Every torchrl variant per estimator: ``{estimator: {function name: call}}``."""
    try:
        import torchrl  # type: ignore[import-untyped]
        from torchrl.objectives.value import functional as T  # type: ignore[import-untyped]
    except ImportError:
        return None
    v, nv, r, done, term = d["value"], d["next_value"], d["reward"], d["done"], d["terminated"]
    cases: dict[str, dict[str, Callable[[], Any]]] = {
        "GAE": {
            "generalized_advantage_estimate": lambda: T.generalized_advantage_estimate(
                GAMMA, LMBDA, v, nv, r, done, term
            ),
            "vec_generalized_advantage_estimate": lambda: T.vec_generalized_advantage_estimate(
                GAMMA, LMBDA, v, nv, r, done, term
            ),
        },
        "TD(lambda)": {
            "td_lambda_return_estimate": lambda: T.td_lambda_return_estimate(
                GAMMA, LMBDA, nv, r, done, term
            ),
            "vec_td_lambda_return_estimate": lambda: T.vec_td_lambda_return_estimate(
                GAMMA, LMBDA, nv, r, done, term
            ),
        },
        "V-trace": {
            "vtrace_advantage_estimate": lambda: T.vtrace_advantage_estimate(
                GAMMA, d["log_pi"], d["log_mu"], v, nv, r, done, term
            ),
        },
    }
    return f"torchrl {torchrl.__version__}", cases


def rlox_cases(d: Data) -> tuple[str, dict[str, Callable[[], Any]]] | None:
    try:
        import rlox  # type: ignore[import-untyped]
    except ImportError:
        return None
    from importlib.metadata import version

    batch, steps, _ = d["reward"].shape
    reward = d["reward"].numpy().reshape(-1)
    value = d["value"].numpy().reshape(-1)
    last_value = d["next_value"][:, -1, 0].contiguous().numpy()
    log_rho = (d["log_pi"] - d["log_mu"]).reshape(batch, steps).numpy()
    rows_reward, rows_value = reward.reshape(batch, steps), value.reshape(batch, steps)
    done = d["done"]

    def gae() -> tuple[torch.Tensor, torch.Tensor]:
        flags = done.view(torch.uint8).to(torch.float32).numpy().reshape(-1)
        adv, ret = rlox.compute_gae_batched_f32(
            reward, value, flags, last_value, steps, GAMMA, LMBDA
        )
        return (
            torch.from_numpy(adv).view(batch, steps, 1),
            torch.from_numpy(ret).view(batch, steps, 1),
        )

    def vtrace() -> tuple[torch.Tensor, torch.Tensor]:
        flags = done.view(torch.uint8).to(torch.float32).numpy().reshape(batch, steps)
        outs = [
            rlox.compute_vtrace(
                log_rho[b], rows_reward[b], rows_value[b], flags[b], float(last_value[b]), GAMMA
            )
            for b in range(batch)
        ]
        vs = torch.stack([torch.from_numpy(o[0]) for o in outs]).view(batch, steps, 1)
        adv = torch.stack([torch.from_numpy(o[1]) for o in outs]).view(batch, steps, 1)
        return adv, vs

    return f"rlox {version('rlox')}", {"GAE": gae, "V-trace": vtrace}


# --------------------------------------------------------------------------- #
# checks and timing
# --------------------------------------------------------------------------- #


def check(name: str, ours: Any, theirs: Any) -> None:
    """Stop the benchmark if an implementation disagrees with rlbricks."""
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    for a, b in zip(ours, theirs):
        if not torch.allclose(a, b, atol=1e-4, rtol=1e-4):
            raise SystemExit(f"{name} disagrees with rlbricks: max |diff| {(a - b).abs().max()}")


def calibrate(fn: Callable[[], Any], min_time: float) -> int:
    """Calls per timed run so that one run lasts at least ``min_time`` seconds."""
    timer = timeit.Timer(fn)
    number = 1
    while timer.timeit(number) < min_time:
        number *= 2
    return number


def interleaved_times(
    cases: dict[str, Callable[[], Any]], repeat: int, min_time: float
) -> dict[str, float]:
    """Seconds per call of every case, best of ``repeat`` interleaved rounds."""
    numbers = {name: calibrate(fn, min_time) for name, fn in cases.items()}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(repeat):
        for name, fn in cases.items():
            seconds = timeit.Timer(fn).timeit(numbers[name]) / numbers[name]
            best[name] = min(best[name], seconds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="T, the time steps")
    parser.add_argument("--batch", type=int, default=64, help="B, the environments")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per timed run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    d = make_data(args.batch, args.steps)

    raw = {"GAE": lambda: raw_gae(d), "TD(lambda)": lambda: raw_td_lambda(d)}
    raw["V-trace"] = lambda: raw_vtrace(d)
    ours = rlbricks_cases(d)
    cases: dict[str, Callable[[], Any]] = {}
    for est in ESTIMATORS:
        check(f"raw loop {est}", ours[est](), raw[est]())
        cases[f"raw|{est}"] = raw[est]
        cases[f"rlbricks|{est}"] = ours[est]
    torchrl = torchrl_cases(d)
    if torchrl is None:
        print("torchrl is not installed: its column is skipped")
    else:
        for est, variants in torchrl[1].items():
            for fname, fn in variants.items():
                check(f"torchrl {fname}", ours[est](), fn())
                cases[f"torchrl|{est}|{fname}"] = fn
    rlox = rlox_cases(d)
    if rlox is None:
        print("rlox is not installed: its column is skipped")
    else:
        for est, fn in rlox[1].items():
            check(f"rlox {est}", ours[est](), fn())
            cases[f"rlox|{est}"] = fn

    times = interleaved_times(cases, args.repeat, args.min_time)

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:,.3f}"

    head = ["estimator", "raw loop (ms)", "rlbricks (ms)", "raw / rlbricks"]
    if torchrl is not None:
        head += [f"{torchrl[0]}, fastest variant (ms)", "torchrl / rlbricks"]
    if rlox is not None:
        head += [f"{rlox[0]} (ms)", "rlox / rlbricks"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ratios: dict[str, float] = {}
    for est in ESTIMATORS:
        mine, loop = times[f"rlbricks|{est}"], times[f"raw|{est}"]
        row = [est, ms(loop), ms(mine), f"{loop / mine:.1f}x"]
        if torchrl is not None:
            timed = {
                k.split("|")[2]: t for k, t in times.items() if k.startswith(f"torchrl|{est}|")
            }
            fname = min(timed, key=timed.__getitem__)
            ratios[est] = timed[fname] / mine
            row += [f"{ms(timed[fname])} (`{fname}`)", f"{ratios[est]:.1f}x"]
        if rlox is not None:
            key = f"rlox|{est}"
            if key in times:
                note = " (64 calls, one per row)" if est == "V-trace" else ""
                row += [f"{ms(times[key])}{note}", f"{times[key] / mine:.2f}x"]
            else:
                row += ["n/a (no TD(lambda) kernel)", "—"]
        lines.append("| " + " | ".join(row) + " |")
    env = (
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"1 thread, float32, B={args.batch} x T={args.steps}, gamma={GAMMA}, lambda={LMBDA}, "
        f"best of {args.repeat} interleaved runs"
    )
    notes = [
        "Ratios are the other implementation's time over rlbricks' (above 1: rlbricks is faster).",
        "Every implementation's output was checked against rlbricks' (allclose, 1e-4) first.",
    ]
    text = "\n".join(["# Value estimators", "", env, "", *lines, "", *notes, ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "objectives.md").write_text(text)


if __name__ == "__main__":
    main()
