"""PPO (Schulman et al., 2017): clipped policy optimisation with GAE, on any gymnasium or dm_control env.

The loop at the end of ``main`` is the algorithm: for each batch of
``frames_per_batch`` frames collected by the current policy (on ``num_envs``
sub-envs or ``env_workers`` processes), GAE (``gamma``, ``lmbda``) over the
whole batch, then ``ppo_epochs`` passes, each over a new permutation of the
batch's rows cut into minibatches of ``mini_batch_size``, one Adam step on the
clipped surrogate + value loss + entropy bonus per minibatch; then the
collector gets the new weights. The trainer's ``collect()`` does the
bookkeeping around each batch: frame counts, logging, the deterministic
evaluation every ``record_interval`` batches, checkpoints and the lr schedule.

At the end, ``eval_episodes`` deterministic episodes give the final score
written to ``summary.json`` in the run folder.

Run:  python examples/ppo/ppo.py --config examples/ppo/configs/cartpole.txt
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

import torch

from rlbricks.collectors import SyncDataCollector
from rlbricks.modules.recipes import ppo_models
from rlbricks.objectives import ClipPPOLoss
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


def build_parser() -> ArgumentParser:
    """The standard groups plus PPO's own options."""
    parser = make_parser(
        "env", "collector", "loss", "optim", "logger", "trainer", description=__doc__
    )
    group = parser.add_argument_group("ppo")
    group.add_argument("--ppo_epochs", type=int, default=10, help="passes over each batch")
    group.add_argument("--mini_batch_size", type=int, default=64, help="rows per optimiser step")
    group.add_argument("--clip_epsilon", type=float, default=0.2, help="the clip range")
    group.add_argument("--lmbda", type=float, default=0.95, help="GAE lambda")
    group.add_argument("--entropy_coef", type=float, default=0.0)
    group.add_argument("--critic_coef", type=float, default=0.5)
    group.add_argument("--loss_critic_type", default="l2", choices=["l2", "smooth_l1"])
    group.add_argument("--normalize_advantage", action="store_true")
    group.add_argument("--anneal_lr", action="store_true", help="decay the lr linearly to 0")
    group.add_argument("--num_cells", type=int, nargs="+", default=[64, 64], help="hidden layers")
    group.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.set_defaults(logger="tensorboard", exp_name="ppo", lr=3e-4, gamma=0.99, clip_norm=0.5)
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate, write ``summary.json``; return the summary."""
    args = parse_args(build_parser(), argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)

    # env: the collector's (num_envs sub-envs per worker) and a separate one for evaluation
    env = make_env(args)
    eval_env = make_env(args, eval=True)

    # models: a stochastic actor and a state-value critic, shaped by the env's specs
    actor, critic = ppo_models(env, num_cells=args.num_cells, device=args.device)

    # loss: clipped surrogate + critic + entropy; GAE for the advantages
    loss = ClipPPOLoss(
        actor,
        critic,
        clip_epsilon=args.clip_epsilon,
        entropy_bonus=args.entropy_coef > 0,
        entropy_coef=args.entropy_coef,
        critic_coef=args.critic_coef,
        loss_critic_type=args.loss_critic_type,
        normalize_advantage=args.normalize_advantage,
    )
    loss.make_value_estimator("gae", gamma=args.gamma, lmbda=args.lmbda)

    # collector: batches of whole-env steps from the current policy
    collector = SyncDataCollector(
        env,
        actor,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.total_frames,
        device=args.collection_devices,
    )

    # trainer: counts frames, logs, evaluates and checkpoints around each batch
    logger, run_dir = make_run(args, "ppo")
    optimizer = make_optimizer(args, loss.parameters())
    trainer = make_on_policy_trainer(
        args, collector, loss, optimizer, logger, run_dir,
        value_estimator=loss.value_estimator,
        epochs=args.ppo_epochs,
        minibatch_size=args.mini_batch_size,
    )  # fmt: skip
    LogReward().register(trainer)
    if args.anneal_lr:
        LinearSchedule(optimizer, "lr", 0.0, args.total_frames).register(trainer)
    recorder = make_recorder(args, eval_env, actor)
    recorder.register(trainer)

    # the PPO loop (what trainer.train() runs)
    for batch in trainer.collect():
        batch = trainer.compute_advantages(batch)  # GAE, no gradients
        for _epoch in range(args.ppo_epochs):
            for minibatch in trainer.minibatches(batch):  # a new permutation each epoch
                trainer.update(minibatch)  # loss, backward, clip, Adam step
        trainer.update_collector_weights()

    summary = evaluate_and_report(trainer, recorder, args.eval_episodes)
    collector.shutdown()
    env.close()
    eval_env.close()
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
