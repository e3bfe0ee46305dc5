"""DDPG (Lillicrap et al., 2016, arXiv:1509.02971): deep deterministic policy gradient.

Algorithm box, in the order of this script:

1. Read the config (``--config`` file, flags override it) and seed everything.
2. Build the training env and a separate evaluation env.
3. Models (``ddpg_models`` recipe): a deterministic actor ``mu(s)`` squashed into
   the action box by ``tanh`` and a critic ``Q(s, a)``.
4. Loss (``DDPGLoss``): the critic regresses on ``r + gamma * (1 - terminated) *
   Q'(s', mu'(s'))`` with target copies ``mu'`` and ``Q'`` of both networks (as
   in the paper); the actor maximises ``Q(s, mu(s))``. ``SoftUpdate`` moves the
   targets by Polyak averaging (``--tau``) after every optimiser step.
5. Exploration: Gaussian (``--exploration gaussian``, as in TD3 and SB3) or
   Ornstein-Uhlenbeck noise (``--exploration ou``, as in the paper) added to
   ``mu(s)``, its scale annealed from ``--noise_init`` to ``--noise_end``.
6. Collector: ``--init_random_frames`` uniformly random actions fill the buffer
   first, then the noisy actor acts, ``--frames_per_batch`` frames per batch.
7. Replay buffer: every frame goes into a uniform ``TensorDictReplayBuffer``.
8. The loop at the end of ``main``: store each batch, then
   ``--optim_steps_per_batch`` updates on ``--batch_size`` sampled transitions
   (one Adam step, then the soft update of the targets), then the noise
   schedule moves. The trainer's ``collect()`` does the bookkeeping around
   each batch: logging, a deterministic evaluation (noise off) every
   ``--record_interval`` batches, checkpoints. A final
   ``--eval_episodes``-episode evaluation is written to ``summary.json``.

Run:  python examples/ddpg/ddpg.py --config examples/ddpg/configs/pendulum.txt
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

import torch

from rlbricks.collectors import SyncDataCollector
from rlbricks.modules import AdditiveGaussianModule
from rlbricks.modules import OrnsteinUhlenbeckProcessModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules.recipes import ddpg_models
from rlbricks.objectives import DDPGLoss
from rlbricks.objectives import SoftUpdate
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.trainers import LogReward
from rlbricks.trainers import evaluate_and_report
from rlbricks.trainers import make_env
from rlbricks.trainers import make_off_policy_trainer
from rlbricks.trainers import make_optimizer
from rlbricks.trainers import make_parser
from rlbricks.trainers import make_recorder
from rlbricks.trainers import make_run
from rlbricks.trainers import parse_args
from rlbricks.trainers import seed_everything
from rlbricks.transforms import ExcludeTransform
from rlbricks.transforms import InitTracker
from rlbricks.transforms import TransformedEnv


def build_parser() -> ArgumentParser:
    parser = make_parser(
        "env", "collector", "replay", "loss", "optim", "logger", "trainer", description=__doc__
    )
    group = parser.add_argument_group("ddpg")
    group.add_argument("--num_cells", type=int, nargs="+", default=[400, 300],
                       help="hidden layers of the actor and the critic (paper: 400 300)")  # fmt: skip
    group.add_argument("--actor_lr", type=float, default=None,
                       help="learning rate of the actor (None: --lr; paper: 1e-4)")  # fmt: skip
    group.add_argument("--exploration", default="gaussian", choices=["gaussian", "ou"])
    group.add_argument("--noise_init", type=float, default=0.1,
                       help="noise scale at the start (Gaussian std, or OU factor)")  # fmt: skip
    group.add_argument("--noise_end", type=float, default=0.1,
                       help="noise scale after --annealing_frames frames")  # fmt: skip
    group.add_argument("--annealing_frames", type=int, default=1_000_000)
    group.add_argument("--ou_sigma", type=float, default=0.2, help="OU process sigma (paper)")
    group.add_argument("--ou_theta", type=float, default=0.15, help="OU process theta (paper)")
    group.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.set_defaults(logger="tensorboard", exp_name="ddpg")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(build_parser(), argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)

    # -- environments -----------------------------------------------------------
    env = make_env(args)
    if args.exploration == "ou":  # the OU noise restarts where "is_init" flags a new episode
        env = TransformedEnv(env, InitTracker())
    eval_env = make_env(args, eval=True)

    # -- models: deterministic actor mu(s) and critic Q(s, a) -------------------
    actor, critic = ddpg_models(env, num_cells=args.num_cells, device=args.device)
    noise: AdditiveGaussianModule | OrnsteinUhlenbeckProcessModule
    if args.exploration == "ou":
        noise = OrnsteinUhlenbeckProcessModule(
            env.action_spec,
            theta=args.ou_theta,
            sigma=args.ou_sigma,
            eps_init=args.noise_init,
            eps_end=args.noise_end,
            annealing_num_steps=args.annealing_frames,
        )
    else:
        noise = AdditiveGaussianModule(
            env.action_spec,
            sigma_init=args.noise_init,
            sigma_end=args.noise_end,
            annealing_num_steps=args.annealing_frames,
        )
    exploration_policy = TensorDictSequential(actor, noise)

    # -- loss: TD critic and deterministic policy gradient, with target copies ---
    loss = DDPGLoss(actor, critic, delay_actor=True, delay_value=True,
                    loss_function=args.loss_function)  # fmt: skip
    loss.make_value_estimator(args.value_estimator, gamma=args.gamma)
    target_updater = SoftUpdate(loss, tau=args.tau)
    optimizer = make_optimizer(
        args,
        [
            {"params": actor.parameters(), "lr": args.actor_lr or args.lr},
            {"params": critic.parameters()},
        ],
    )

    # -- collector and replay buffer --------------------------------------------
    # the stored frames drop the OU noise state (the random warm-up frames have none, and
    # every row of the buffer must have the same keys)
    collector = SyncDataCollector(
        env,
        exploration_policy,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.total_frames,
        init_random_frames=args.init_random_frames,
        device=args.collection_devices,
        postproc=ExcludeTransform(*(key for key in noise.out_keys if key != "action")),
    )
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(args.buffer_size))

    # -- trainer: counts frames, logs, evaluates and checkpoints around each batch
    logger, run_dir = make_run(args, "ddpg")
    trainer = make_off_policy_trainer(
        args, collector, loss, optimizer, buffer, logger, run_dir,
        target_updater=target_updater,
        exploration=noise,
    )  # fmt: skip
    LogReward().register(trainer)
    recorder = make_recorder(args, eval_env, actor)  # deterministic: no exploration noise
    recorder.register(trainer)

    # -- the DDPG loop (what trainer.train() runs) ------------------------------
    for batch in trainer.collect():
        trainer.extend_buffer(batch)
        for _ in range(args.optim_steps_per_batch):
            sample = trainer.sample()  # --batch_size transitions, uniformly
            trainer.optimizer_step(trainer.compute_loss(sample))  # TD critic, DPG actor
            trainer.update_targets()  # Polyak averaging of the target actor and critic
        trainer.anneal_exploration()  # the noise scale decays with the frames collected
        trainer.update_collector_weights()

    summary = evaluate_and_report(trainer, recorder, args.eval_episodes)
    collector.shutdown()
    env.close()
    eval_env.close()
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
