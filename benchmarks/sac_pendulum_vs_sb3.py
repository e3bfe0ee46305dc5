"""SAC on Pendulum-v1: rlbricks' example against stable-baselines3 with the same settings.

For each seed (``--seeds``, default 0 1 2), interleaved, one fresh process
each, one torch thread each (``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``):

* rlbricks: ``examples/sac/sac.py --config examples/sac/configs/pendulum.txt``
  with ``--record_interval=1000000`` (no periodic evaluation) and
  ``--logger=none``; the training time comes from its ``summary.json``;
* stable-baselines3: ``SAC("MlpPolicy")`` built in a child process of this
  script (``--child``) from the same config, ``model.learn`` timed with
  ``time.process_time`` and ``time.perf_counter``, then ``evaluate_policy``
  over the same number of deterministic episodes on an env seeded seed + 1000.

As in ``ppo_cartpole_vs_sb3.py`` (both run on ``benchmarks/_vs_sb3.py``), the
config is read at run time and every key or option the mapping does not know
stops the script.

Mapping (rlbricks key -> stable-baselines3):

* ``env_name`` -> ``make_vec_env(env_name, n_envs=1)`` (``num_envs`` must be 1);
  ``total_frames`` -> ``learn(total_timesteps)``;
* ``frames_per_batch`` -> ``train_freq=(frames_per_batch, "step")``;
  ``optim_steps_per_batch`` -> ``gradient_steps``;
* ``init_random_frames`` -> uniformly random actions for the first
  ``init_random_frames`` steps, training from the first batch on (see the
  warm-up note below; ``learning_starts=0``);
* ``buffer_size`` -> ``buffer_size``; ``batch_size`` -> ``batch_size``
  (uniform sampling in both); ``gamma`` -> ``gamma``; ``tau`` -> ``tau``
  (a soft update after every gradient step in both: ``target_update_interval=1``);
* ``lr`` -> ``learning_rate`` (constant; Adam with torch's defaults in both);
* ``num_cells`` -> ``net_arch`` of the actor and of each of the two critics,
  ``activation_fn=nn.ReLU`` (the ``sac_models`` recipe; torch's default init in both);
* ``alpha_init`` -> ``ent_coef="auto_<alpha_init>"`` (``fixed_alpha``:
  ``ent_coef=alpha_init``); ``target_entropy`` (``auto``: minus the action
  dimension) -> ``target_entropy`` minus the sum over action dims of
  log(half-width of the action box): the same target in SB3's units (see the
  action-units note below; -1 - log 2 = -1.693 on Pendulum);
* ``eval_episodes`` -> ``evaluate_policy(n_eval_episodes)``.

Remaining differences (copied into the table's notes):

* Random streams differ: the same seed gives different trajectories in the two libraries.
* Update order within one gradient step: SB3 steps the temperature, then the
  critics, then the actor against the critics it has just updated (three
  Adams); rlbricks sums the three losses and takes one Adam step over all
  parameters, so the actor's gradient uses the critics from before this step.
  Both use the temperature from before the step in the critic target and the actor loss.
* Critic loss scale: SB3 minimises 0.5 x the sum of the critics' MSE,
  rlbricks the sum; Adam's steps do not depend on a constant loss factor (up to its eps).
* Action units: SB3's actor and critics work in [-1, 1] and actions are
  rescaled to the env's box outside the networks; rlbricks' TanhNormal draws
  in the env's box ([-2, 2] on Pendulum), so its critics read actions twice
  as large and its log-probabilities are lower by the sum of log(half-width)
  (log 2). The SB3 target entropy is shifted by that amount, so that both
  temperatures aim at the same policy entropy.
* Policy scale: rlbricks maps the network's output through
  softplus(x + log(e - 1)) + 1e-4 (1 at x = 0); SB3 uses exp(log std) with
  log std clamped to [-20, 2].
* Warm-up: SB3 ties its random actions and the start of training to one
  argument, ``learning_starts`` (no training before it), while rlbricks trains
  from the first batch, random actions included. The benchmark passes
  ``learning_starts=0`` and overrides SB3's ``_sample_action`` (3 lines) to
  draw the first ``init_random_frames`` actions uniformly: both then take
  the same number of gradient steps on the same kind of data.
* SB3's log-probability adds 1e-6 inside log(1 - tanh^2); rlbricks clamps to
  the float eps. Numerically negligible.
* Final evaluation: rlbricks plays its episodes on ``eval_envs`` sub-envs
  (each at most ``record_frames`` steps, which must not cut an episode),
  SB3 on one env; both deterministic (the squashed mean), seeded seed + 1000.
* SB3 wraps the env in its ``Monitor`` (episode statistics) and records
  training statistics in its logger (no output with ``verbose=0``); rlbricks
  logs the batch reward with ``LogReward`` (no output with ``--logger=none``).

Writes ``benchmarks/results/sac_pendulum_vs_sb3.md``; with ``--frames`` (a
smoke run) the table goes to stdout only, unless ``--out`` names a file.

Run:  python benchmarks/sac_pendulum_vs_sb3.py [--seeds 0 1 2] [--frames 3000]
"""

from __future__ import annotations

import math
from argparse import Namespace
from pathlib import Path
from typing import Any

# the harness shared by the *_vs_sb3 benchmarks (this folder is on sys.path)
from _vs_sb3 import FIXED_COMMON
from _vs_sb3 import OURS_ONLY
from _vs_sb3 import Comparison
from _vs_sb3 import KeyPlan
from _vs_sb3 import Row
from _vs_sb3 import Spec
from _vs_sb3 import doc_notes
from _vs_sb3 import fmt
from _vs_sb3 import run_rows

PLAN = KeyPlan(
    mapped=frozenset(
        {
            "env_name",
            "frames_per_batch",
            "total_frames",
            "init_random_frames",
            "optim_steps_per_batch",
            "buffer_size",
            "batch_size",
            "gamma",
            "tau",
            "lr",
            "num_cells",
            "alpha_init",
            "fixed_alpha",
            "target_entropy",
            "eval_episodes",
        }
    ),
    ours_only=OURS_ONLY,
    fixed={
        **FIXED_COMMON,
        "num_envs": 1,
        "categorical_action_encoding": False,  # discrete actions only
        "prb": False,  # not read by the SAC example
        "alpha": 0.6,  # prioritized replay only
        "beta": 0.4,  # prioritized replay only
        "buffer_scratch_dir": None,  # not read by the SAC example
        "clip_norm": None,  # SB3's SAC does not clip gradients
    },
)


def sac_spec(args: Namespace) -> tuple[Spec, list[Row]]:
    """The SB3 SAC settings for the example's arguments, and the settings table."""
    import gymnasium as gym
    import numpy as np

    space = gym.make(args.env_name).action_space
    if not isinstance(space, gym.spaces.Box) or not np.isfinite([space.low, space.high]).all():
        raise SystemExit(f"{args.env_name}: SAC against SB3 needs a bounded Box action space")
    shift = float(np.log((space.high - space.low) / 2.0).sum())
    dims = math.prod(space.shape)
    if args.target_entropy == "auto":
        ours_target, ours_text = -float(dims), f"auto = -{dims} (minus the action dimension)"
    else:
        ours_target = float(args.target_entropy)
        ours_text = fmt(args.target_entropy)
    sb3_target = ours_target - shift
    alpha = float(args.alpha_init)
    ent_coef: Any = alpha if args.fixed_alpha else f"auto_{alpha}"
    fpb, osp, total = args.frames_per_batch, args.optim_steps_per_batch, args.total_frames
    spec: Spec = {
        "env_id": args.env_name,
        "n_envs": 1,
        "total_frames": total,
        "eval_episodes": args.eval_episodes,
        "random_frames": args.init_random_frames,
        "kwargs": {
            "learning_rate": args.lr,
            "buffer_size": args.buffer_size,
            "learning_starts": 0,
            "batch_size": args.batch_size,
            "tau": args.tau,
            "gamma": args.gamma,
            "train_freq": [fpb, "step"],
            "gradient_steps": osp,
            "ent_coef": ent_coef,
            "target_entropy": sb3_target,
            "target_update_interval": 1,
        },
        "net_arch": list(args.num_cells),
        "updates_per_n_update": 1,  # SB3 counts gradient steps in _n_updates
    }
    cells = fmt(list(args.num_cells))
    batches = math.ceil(total / fpb)
    lows, highs = set(space.low.ravel().tolist()), set(space.high.ravel().tolist())
    box = "the env's box"
    if len(lows) == len(highs) == 1:
        box = f"[{lows.pop():g}, {highs.pop():g}]"
        box += f" in each of {dims} dims" if dims > 1 else ""
    temperature = "fixed" if args.fixed_alpha else "learned"
    rows: list[Row] = [
        ("env", f"env_name = {args.env_name}, one env", f"make_vec_env({args.env_name!r}, n_envs=1)"),
        ("frames", f"total_frames = {total}", f"learn(total_timesteps={total})"),
        ("batches", f"frames_per_batch = {fpb}, then optim_steps_per_batch = {osp} gradient steps",
         f"train_freq = ({fpb}, 'step'), gradient_steps = {osp}"),
        ("warm-up", f"init_random_frames = {args.init_random_frames} uniform random actions; "
         "training from the first batch",
         f"learning_starts = 0; the first {args.init_random_frames} actions uniform random "
         "(override of _sample_action)"),
        ("gradient steps in all", f"{batches * osp}", f"{batches * osp}"),
        ("replay", f"buffer_size = {args.buffer_size}, batch_size = {args.batch_size}, uniform",
         f"buffer_size = {args.buffer_size}, batch_size = {args.batch_size}, uniform"),
        ("discount, targets", f"gamma = {fmt(args.gamma)}, tau = {fmt(args.tau)} after each step",
         f"gamma = {fmt(args.gamma)}, tau = {fmt(args.tau)}, target_update_interval = 1"),
        ("optimiser", f"lr = {fmt(args.lr)}, one Adam (torch defaults) over actor, critics, "
         "log alpha", f"learning_rate = {fmt(args.lr)}, one Adam (torch defaults) each for "
         "actor, critics, log ent_coef"),
        ("temperature", f"alpha_init = {fmt(alpha)}, {temperature}", f"ent_coef = {ent_coef!r}"),
        ("target entropy", f"target_entropy = {ours_text}, for actions in {box}",
         f"target_entropy = {sb3_target:.4f} = {ours_target:g} - {shift:.4f}: the same target for "
         "actions in [-1, 1]"),
        ("network", f"sac_models: num_cells = {cells}, ReLU; TanhNormal actor (loc, softplus "
         "scale), two Q nets; torch's default init",
         f"MlpPolicy, net_arch = {cells}, activation_fn = ReLU; squashed Gaussian (mean, "
         "clamped log std), n_critics = 2; torch's default init"),
        ("critic loss", "sum over the critics of the MSE (loss_function = l2)",
         "0.5 x sum over the critics of the MSE"),
        *run_rows(args),
    ]  # fmt: skip
    return spec, rows


def make_sac(spec: Spec, env: Any) -> Any:
    """The SB3 SAC of ``spec`` on the vector env ``env`` (in the child process)."""
    from stable_baselines3 import SAC
    from torch import nn

    random_frames = int(spec["random_frames"])

    class WarmupSAC(SAC):
        """SAC whose random warm-up lasts ``random_frames`` steps while training starts at once."""

        def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1):
            # SB3 draws random actions while num_timesteps < learning_starts (0 here): give it
            # the warm-up length instead, as rlbricks' init_random_frames
            return super()._sample_action(random_frames, action_noise, n_envs)

    kwargs = dict(spec["kwargs"])
    kwargs["train_freq"] = tuple(kwargs["train_freq"])
    return WarmupSAC(
        "MlpPolicy",
        env,
        policy_kwargs={"net_arch": spec["net_arch"], "activation_fn": nn.ReLU},
        seed=spec["seed"],
        device="cpu",
        verbose=0,
        **kwargs,
    )


COMPARISON = Comparison(
    name="sac_pendulum_vs_sb3",
    title="SAC on Pendulum-v1: rlbricks vs stable-baselines3, same settings",
    script=Path(__file__).resolve(),
    example="examples/sac/sac.py",
    config="examples/sac/configs/pendulum.txt",
    plan=PLAN,
    sb3_spec=sac_spec,
    make_model=make_sac,
    notes=doc_notes(__doc__),
)


if __name__ == "__main__":
    COMPARISON.main()
