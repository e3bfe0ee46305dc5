"""IMPALA (Espeholt et al., 2018): actors on Ray, one learner, V-trace off-policy corrections.

Several Ray actors (a ``RayCollector`` in async mode) each run a copy of the
policy on their own envs and send back fixed-length rollouts as soon as they
are done; meanwhile the learner (this process) optimises on the rollouts it
has received. A rollout may therefore come from weights that are one or more
updates old: V-trace reweights it with the truncated importance ratio
``pi(a|s) / mu(a|s)`` between the learner's policy ``pi`` and the behaviour
policy ``mu`` that picked the actions (its ``sample_log_prob`` is stored in the
rollout). In algorithm-box order:

1. actor-critic models (the ``ppo_models`` recipe: a categorical or Gaussian
   policy and a state-value network, no shared weights);
2. loss: ``A2CLoss`` (policy gradient + baseline + entropy) whose advantage and
   value target come from the ``VTrace`` estimator (rho-bar and c-bar clips);
3. collector: ``RayCollector(sync=False)``, ``--num_collectors`` actors of
   ``--num_envs`` sub-envs each, on a local Ray instance or a cluster
   (``--ray_address``);
4. the loop at the end of ``main``: one (or ``--optim_steps_per_batch``)
   optimiser step on each received rollout, whole, then the new weights go to
   the object store and each actor loads them before its next rollout.

Run:  python examples/impala/impala.py --config examples/impala/configs/cartpole.txt
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import torch

from rlbricks.collectors import RayCollector
from rlbricks.modules.recipes import ppo_models
from rlbricks.objectives import A2CLoss
from rlbricks.trainers import LinearSchedule
from rlbricks.trainers import LogReward
from rlbricks.trainers import evaluate_and_report
from rlbricks.trainers import make_env
from rlbricks.trainers import make_on_policy_trainer
from rlbricks.trainers import make_optimizer
from rlbricks.trainers import make_parser
from rlbricks.trainers import make_recorder
from rlbricks.trainers import make_run
from rlbricks.trainers import parse_args
from rlbricks.trainers import seed_everything


def build_parser() -> Any:
    parser = make_parser(
        "env", "collector", "loss", "optim", "logger", "trainer", description=__doc__
    )
    group = parser.add_argument_group("impala")
    group.add_argument("--num_collectors", type=int, default=2,
                       help="Ray actors; each runs --num_envs sub-envs")  # fmt: skip
    group.add_argument("--collector_cpus", type=float, default=1.0,
                       help="CPUs Ray reserves for each actor")  # fmt: skip
    group.add_argument("--ray_address", default=None,
                       help="join this Ray cluster ('auto', 'ray://host:10001'); "
                            "default: start a local instance")  # fmt: skip
    group.add_argument("--ray_num_cpus", type=int, default=2,
                       help="CPUs of the local Ray instance (ignored with --ray_address)")  # fmt: skip
    group.add_argument("--max_restarts", type=int, default=2,
                       help="restarts allowed per actor after a crash (e.g. killed for memory)")  # fmt: skip
    group.add_argument("--num_cells", type=int, nargs="+", default=[64, 64],
                       help="hidden layers of the policy and value MLPs")  # fmt: skip
    group.add_argument("--rho_thresh", type=float, default=1.0, help="V-trace rho-bar")
    group.add_argument("--c_thresh", type=float, default=1.0, help="V-trace c-bar")
    group.add_argument("--entropy_coef", type=float, default=0.01)
    group.add_argument("--critic_coef", type=float, default=0.5)
    group.add_argument("--anneal_lr", action="store_true",
                       help="decay the learning rate linearly to 0 over the run")  # fmt: skip
    group.add_argument("--threads", type=int, default=1, help="torch threads of the learner")
    parser.set_defaults(logger="tensorboard", exp_name="impala")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(build_parser(), argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)

    # --- env: each Ray actor builds its own from this factory; the learner needs only
    # the specs (and an env of its own for evaluation)
    make_actor_env = functools.partial(make_env, args)
    eval_env = make_env(args, eval=True)

    # --- models: policy pi and baseline V, as separate MLPs
    actor, critic = ppo_models(eval_env, num_cells=args.num_cells)

    # --- loss: policy gradient rho_t * (r_t + gamma * v_{t+1} - V(s_t)) * grad log pi(a_t|s_t),
    # baseline regression towards the V-trace target v_t, entropy bonus
    loss = A2CLoss(
        actor,
        critic,
        entropy_coef=args.entropy_coef,
        critic_coef=args.critic_coef,
        loss_critic_type=args.loss_function,
    )
    loss.make_value_estimator(
        "vtrace", gamma=args.gamma, rho_thresh=args.rho_thresh, c_thresh=args.c_thresh
    )

    # --- collector: asynchronous actors on Ray; each yielded batch is one actor's
    # rollout of --frames_per_batch frames, shaped [num_envs, T]
    if args.ray_address is not None:
        ray_init_config = {"address": args.ray_address}
    else:
        # "local": a new instance on this machine, even if a cluster runs here already
        ray_init_config = {
            "address": "local",
            "num_cpus": args.ray_num_cpus,
            "include_dashboard": False,
        }
    collector = RayCollector(
        make_actor_env,
        actor,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.total_frames,
        sync=False,
        num_collectors=args.num_collectors,
        ray_init_config=ray_init_config,
        remote_config={"num_cpus": args.collector_cpus},
        max_restarts=args.max_restarts,  # a dead actor is restarted with the latest weights
    )
    collector.set_seed(args.seed)

    # --- trainer: the learner; counts frames, logs, evaluates around each rollout
    logger, run_dir = make_run(args, "impala")
    optimizer = make_optimizer(args, loss.parameters())
    trainer = make_on_policy_trainer(
        args, collector, loss, optimizer, logger, run_dir,
        epochs=args.optim_steps_per_batch,
        minibatch_size=None,  # the whole [num_envs, T] rollout: V-trace runs along time
    )  # fmt: skip
    if args.anneal_lr:  # the paper decays the learning rate linearly to 0
        LinearSchedule(optimizer, "lr", 0.0, args.total_frames).register(trainer)
    LogReward().register(trainer)
    recorder = make_recorder(args, eval_env, actor)
    recorder.register(trainer)

    # --- the IMPALA learner loop (what trainer.train() runs)
    try:
        for rollout in trainer.collect():  # from whichever actor finished first
            for _ in range(args.optim_steps_per_batch):
                trainer.update(rollout)  # V-trace targets inside the loss, one Adam step
            trainer.update_collector_weights()  # to the object store, for the actors
        summary = evaluate_and_report(trainer, recorder, args.eval_episodes)
    finally:
        collector.shutdown()  # kills the actors, and stops Ray when the collector started it
        eval_env.close()
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
