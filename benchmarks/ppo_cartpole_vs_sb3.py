"""PPO on CartPole-v1: rlbricks' example against stable-baselines3 with the same settings.

For each seed (``--seeds``, default 0 1 2), interleaved so that a slow spell of
the machine hits both libraries alike, one fresh process each, one torch
thread each (``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)``):

* rlbricks: ``examples/ppo/ppo.py --config examples/ppo/configs/cartpole.txt``
  with ``--record_interval=1000000`` (no periodic evaluation) and
  ``--logger=none``; the training time comes from its ``summary.json``
  (``cpu_time_s``, ``wall_time_s``: inside the training loop);
* stable-baselines3: ``PPO("MlpPolicy")`` built in a child process of this
  script (``--child``) from the same config, ``model.learn`` timed with
  ``time.process_time`` and ``time.perf_counter``, then ``evaluate_policy``
  over the same number of deterministic episodes on an env seeded seed + 1000.

The config is read at run time: every key of the file, and every option of
the example, is either mapped to a stable-baselines3 argument, declared
rlbricks-only (logging, evaluation schedule, run folder), or accepted at one
value only; anything else stops the script with a message, so a new key is
never silently ignored. Values come from the example's own parser (its
defaults for the keys the file leaves out).

Mapping (rlbricks key -> stable-baselines3):

* ``env_name``, ``num_envs`` -> ``make_vec_env(env_name, n_envs=num_envs)``;
* ``frames_per_batch`` -> ``n_steps = frames_per_batch / num_envs``;
  ``total_frames`` -> ``learn(total_timesteps)``;
* ``ppo_epochs`` -> ``n_epochs``; ``mini_batch_size`` -> ``batch_size``
  (``frames_per_batch`` must be a multiple of it: both then take
  ``ppo_epochs * frames_per_batch / mini_batch_size`` Adam steps per batch);
* ``lr`` -> ``learning_rate``; ``anneal_lr`` -> the schedule
  ``lr * (progress_remaining + frames_per_batch / total_frames)``, which gives
  the k-th batch ``lr * (1 - (k - 1) * frames_per_batch / total_frames)``:
  rlbricks' ``LinearSchedule`` to 0, which moves the lr after each batch;
* ``gamma`` -> ``gamma``; ``lmbda`` -> ``gae_lambda``; ``clip_epsilon`` ->
  ``clip_range`` (constant, ``clip_range_vf=None``); ``entropy_coef`` ->
  ``ent_coef``; ``critic_coef`` -> ``vf_coef`` (``loss_critic_type`` must be
  ``l2``: SB3's value loss is the MSE); ``normalize_advantage`` ->
  ``normalize_advantage`` (both per minibatch); ``clip_norm`` ->
  ``max_grad_norm`` (one global norm over actor and critic in both);
* ``num_cells`` -> ``net_arch`` (separate policy and value MLPs in both),
  ``activation_fn=nn.Tanh`` (the ``ppo_models`` recipe), ``ortho_init`` =
  the config's ``ortho_init`` (false when absent: the recipe keeps torch's
  default init); Adam with ``optimizer_kwargs={"eps": 1e-8}`` (torch's default,
  which rlbricks uses; SB3's PPO default is 1e-5);
* ``eval_episodes`` -> ``evaluate_policy(n_eval_episodes)``.

Remaining differences (copied into the table's notes):

* Random streams differ: the same seed gives different trajectories in the two libraries.
* rlbricks runs the critic once per batch, after collection, to compute GAE;
  SB3 runs it at every step during collection. The values are the same; the
  cost is each library's own and is part of its CPU time.
* Both bootstrap from the value of the last observation at a time-limit
  truncation: rlbricks through ``terminated`` in GAE, SB3 by adding
  ``gamma * V(terminal observation)`` to the reward.
* Advantage normalisation: SB3 divides by ``std + 1e-8``, rlbricks by ``max(std, 1e-8)``.
* With ``ortho_init = true``, SB3 uses gains sqrt(2) (hidden layers), 0.01
  (policy head) and 1 (value head); rlbricks' init must match for a fair run.
* Final evaluation: rlbricks plays its episodes on ``eval_envs`` sub-envs
  (each at most ``record_frames`` steps, which must not cut an episode),
  SB3 on one env; both deterministic (argmax), seeded seed + 1000.
* SB3 wraps each env in its ``Monitor`` (episode statistics) and records
  training statistics in its logger (no output with ``verbose=0``); rlbricks
  logs the batch reward with ``LogReward`` (no output with ``--logger=none``).

Writes ``benchmarks/results/ppo_cartpole_vs_sb3.md``; with ``--frames`` (a
smoke run) the table goes to stdout only, unless ``--out`` names a file.

Run:  python benchmarks/ppo_cartpole_vs_sb3.py [--seeds 0 1 2] [--frames 3000]

The harness (config check, runs, table) is ``benchmarks/_vs_sb3.py``, shared
with ``sac_pendulum_vs_sb3.py``.
"""

from __future__ import annotations

import math
from argparse import Namespace
from pathlib import Path
from typing import Any

from _vs_sb3 import FIXED_COMMON
from _vs_sb3 import OURS_ONLY
from _vs_sb3 import Comparison
from _vs_sb3 import KeyPlan
from _vs_sb3 import Row
from _vs_sb3 import Spec
from _vs_sb3 import doc_notes
from _vs_sb3 import fmt
from _vs_sb3 import run_rows

# --------------------------------------------------------------------------- #
# PPO on CartPole
# --------------------------------------------------------------------------- #
PLAN = KeyPlan(
    mapped=frozenset(
        {
            "env_name",
            "num_envs",
            "categorical_action_encoding",  # index or one-hot: the same Categorical policy
            "frames_per_batch",
            "total_frames",
            "gamma",
            "lmbda",
            "lr",
            "anneal_lr",
            "ppo_epochs",
            "mini_batch_size",
            "clip_epsilon",
            "entropy_coef",
            "critic_coef",
            "normalize_advantage",
            "clip_norm",
            "num_cells",
            "ortho_init",
            "eval_episodes",
        }
    ),
    ours_only=OURS_ONLY,
    fixed={
        **FIXED_COMMON,
        "init_random_frames": 0,  # not read by the PPO example
        "tau": 0.005,  # not read by the PPO example
        "optim_steps_per_batch": 1,  # the PPO example sets its own
        "loss_critic_type": "l2",
    },
)


def ppo_spec(args: Namespace) -> tuple[Spec, list[Row]]:
    """The SB3 PPO settings for the example's arguments, and the settings table."""
    fpb, n_envs, mbs = args.frames_per_batch, args.num_envs, args.mini_batch_size
    if fpb % n_envs:
        raise SystemExit(f"frames_per_batch {fpb} is not a multiple of num_envs {n_envs}")
    if fpb % mbs:
        raise SystemExit(
            f"frames_per_batch {fpb} is not a multiple of mini_batch_size {mbs}: rlbricks takes "
            f"{fpb // mbs} minibatches per epoch, SB3 {math.ceil(fpb / mbs)} (a smaller last one)"
        )
    ortho = bool(getattr(args, "ortho_init", False))
    clip = math.inf if args.clip_norm is None else float(args.clip_norm)
    steps = args.ppo_epochs * (fpb // mbs)
    spec: Spec = {
        "env_id": args.env_name,
        "n_envs": n_envs,
        "total_frames": args.total_frames,
        "eval_episodes": args.eval_episodes,
        "lr": args.lr,
        "anneal_lr": args.anneal_lr,
        "frames_per_batch": fpb,
        "kwargs": {
            "n_steps": fpb // n_envs,
            "batch_size": mbs,
            "n_epochs": args.ppo_epochs,
            "gamma": args.gamma,
            "gae_lambda": args.lmbda,
            "clip_range": args.clip_epsilon,
            "clip_range_vf": None,
            "ent_coef": args.entropy_coef,
            "vf_coef": args.critic_coef,
            "max_grad_norm": clip,
            "normalize_advantage": args.normalize_advantage,
        },
        "net_arch": list(args.num_cells),
        "ortho_init": ortho,
        "updates_per_n_update": fpb // mbs,  # SB3 counts epochs in _n_updates
    }
    lr = f"lr = {fmt(args.lr)}"
    if args.anneal_lr:
        ours_lr = f"{lr}, anneal_lr = true (linear to 0 over total_frames, set after each batch)"
        sb3_lr = (
            f"learning_rate = {fmt(args.lr)} x (progress_remaining + {fpb}/{args.total_frames}): "
            "the same values"
        )
    else:
        ours_lr, sb3_lr = f"{lr}, constant", f"learning_rate = {fmt(args.lr)}, constant"
    cells = fmt(list(args.num_cells))
    actions = "indices (Categorical)" if args.categorical_action_encoding else "one-hot"
    rows: list[Row] = [
        ("env", f"env_name = {args.env_name}, num_envs = {n_envs} (gymnasium sync vector env)",
         f"make_vec_env({args.env_name!r}, n_envs={n_envs}) (DummyVecEnv)"),
        ("frames", f"total_frames = {args.total_frames}",
         f"learn(total_timesteps={args.total_frames})"),
        ("frames per batch", f"frames_per_batch = {fpb}",
         f"n_steps = {fpb // n_envs} x {n_envs} envs"),
        ("epochs x minibatch", f"ppo_epochs = {args.ppo_epochs}, mini_batch_size = {mbs}",
         f"n_epochs = {args.ppo_epochs}, batch_size = {mbs}"),
        ("Adam steps per batch", str(steps), str(steps)),
        ("learning rate", ours_lr, sb3_lr),
        ("optimiser", "Adam (torch defaults: eps 1e-8), one over actor and critic",
         "Adam, optimizer_kwargs = {eps: 1e-8} (SB3's PPO default: 1e-5)"),
        ("discount, GAE", f"gamma = {fmt(args.gamma)}, lmbda = {fmt(args.lmbda)}",
         f"gamma = {fmt(args.gamma)}, gae_lambda = {fmt(args.lmbda)}"),
        ("clip range", f"clip_epsilon = {fmt(args.clip_epsilon)} (constant)",
         f"clip_range = {fmt(args.clip_epsilon)} (constant), clip_range_vf = None"),
        ("entropy bonus", f"entropy_coef = {fmt(args.entropy_coef)}",
         f"ent_coef = {fmt(args.entropy_coef)}"),
        ("value loss", f"critic_coef = {fmt(args.critic_coef)} x squared error (l2)",
         f"vf_coef = {fmt(args.critic_coef)} x MSE"),
        ("advantage normalisation", f"normalize_advantage = {fmt(args.normalize_advantage)}"
         " (per minibatch)", f"normalize_advantage = {fmt(args.normalize_advantage)}"
         " (per minibatch)"),
        ("gradient clipping", f"clip_norm = {fmt(args.clip_norm)} (global norm)",
         f"max_grad_norm = {fmt(args.clip_norm)}"),
        ("network", f"ppo_models: separate actor and critic MLPs num_cells = {cells}, Tanh, "
         + ("orthogonal init" if ortho else "torch's default init"),
         f"MlpPolicy, net_arch = {cells} (separate pi and vf), activation_fn = Tanh, "
         f"ortho_init = {fmt(ortho)}"),
        ("actions", actions, "Discrete (Categorical)"),
        *run_rows(args),
    ]  # fmt: skip
    return spec, rows


def make_ppo(spec: Spec, env: Any) -> Any:
    """The SB3 PPO of ``spec`` on the vector env ``env`` (in the child process)."""
    from stable_baselines3 import PPO
    from torch import nn

    lr = float(spec["lr"])
    learning_rate: Any = lr
    if spec["anneal_lr"]:
        # progress_remaining is 1 - k * frames_per_batch / total_frames at the k-th batch's update;
        # rlbricks' LinearSchedule moves the lr after each batch, one batch later
        step = spec["frames_per_batch"] / spec["total_frames"]

        def learning_rate(progress_remaining: float) -> float:
            return lr * min(1.0, progress_remaining + step)

    policy_kwargs = {
        "net_arch": spec["net_arch"],
        "activation_fn": nn.Tanh,
        "ortho_init": spec["ortho_init"],
        "optimizer_kwargs": {"eps": 1e-8},
    }
    return PPO(
        "MlpPolicy",
        env,
        learning_rate=learning_rate,
        policy_kwargs=policy_kwargs,
        seed=spec["seed"],
        device="cpu",
        verbose=0,
        **spec["kwargs"],
    )


COMPARISON = Comparison(
    name="ppo_cartpole_vs_sb3",
    title="PPO on CartPole-v1: rlbricks vs stable-baselines3, same settings",
    script=Path(__file__).resolve(),
    example="examples/ppo/ppo.py",
    config="examples/ppo/configs/cartpole.txt",
    plan=PLAN,
    sb3_spec=ppo_spec,
    make_model=make_ppo,
    notes=doc_notes(__doc__),
)


if __name__ == "__main__":
    COMPARISON.main()
