"""SAC (Haarnoja et al., 2018, arXiv:1801.01290 and arXiv:1812.05905): soft actor-critic.

Algorithm box, in the order of this script:

1. Read the config (``--config`` file, flags override it) and seed everything.
2. Build the training env and a separate evaluation env.
3. Models (``sac_models`` recipe): a squashed-Gaussian actor ``pi(a|s)``
   (``TanhNormal`` inside the action box) and two independent critics
   ``Q1(s, a)``, ``Q2(s, a)``.
4. Loss (``SACLoss``): each critic regresses on the soft target
   ``r + gamma * (1 - terminated) * (min_i Q'_i(s', a') - alpha * log pi(a'|s'))``
   with ``a' ~ pi(.|s')`` and target copies ``Q'_i`` (clipped double-Q); the
   actor minimises ``alpha * log pi(a|s) - min_i Q_i(s, a)`` through the
   reparameterised sample; the temperature ``alpha`` is learned so that the
   policy's entropy tracks the target ``-|A|`` (automatic entropy tuning,
   arXiv:1812.05905). ``SoftUpdate`` moves the target critics by Polyak
   averaging (``--tau``) after every optimiser step.
5. Collector: ``--init_random_frames`` uniformly random actions fill the buffer
   first, then the actor samples its actions (its own exploration).
6. Replay buffer: every frame goes into a uniform ``TensorDictReplayBuffer``.
7. The loop at the end of ``main``: store each collected batch, then
   ``--optim_steps_per_batch`` updates, each on ``--batch_size`` transitions
   sampled from the buffer (one Adam step on the three losses, then the
   soft update of the target critics). The trainer's ``collect()`` does the
   bookkeeping around each batch: frame counts, logging, a deterministic
   evaluation (the mode of the policy) every ``--record_interval`` batches,
   checkpoints. A final ``--eval_episodes``-episode evaluation is written to
   ``summary.json``.

Run:  python examples/sac/sac.py --config examples/sac/configs/pendulum.txt
"""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

import torch

from rlbricks.collectors import SyncDataCollector
from rlbricks.modules.recipes import sac_models
from rlbricks.objectives import SACLoss
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


def build_parser() -> ArgumentParser:
    parser = make_parser(
        "env", "collector", "replay", "loss", "optim", "logger", "trainer", description=__doc__
    )
    group = parser.add_argument_group("sac")
    group.add_argument("--num_cells", type=int, nargs="+", default=[256, 256],
                       help="hidden layers of the actor and of each critic")  # fmt: skip
    group.add_argument("--alpha_init", type=float, default=1.0, help="initial temperature")
    group.add_argument("--fixed_alpha", action="store_true",
                       help="keep alpha at --alpha_init (no entropy tuning)")  # fmt: skip
    group.add_argument("--target_entropy", default="auto",
                       help="entropy target of the temperature ('auto': -|A|)")  # fmt: skip
    group.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.set_defaults(logger="tensorboard", exp_name="sac")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(build_parser(), argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)

    # -- environments -----------------------------------------------------------
    env = make_env(args)
    eval_env = make_env(args, eval=True)

    # -- models: squashed-Gaussian actor and two critics ------------------------
    actor, qvalue_1, qvalue_2 = sac_models(
        env, num_cells=args.num_cells, num_qvalue_nets=2, device=args.device
    )

    # -- loss: clipped double-Q soft critics, actor, learned temperature --------
    target_entropy = (
        args.target_entropy if args.target_entropy == "auto" else float(args.target_entropy)
    )
    loss = SACLoss(
        actor,
        [qvalue_1, qvalue_2],
        num_qvalue_nets=2,
        alpha_init=args.alpha_init,
        fixed_alpha=args.fixed_alpha,
        target_entropy=target_entropy,
        loss_function=args.loss_function,
    )
    loss.make_value_estimator(args.value_estimator, gamma=args.gamma)
    target_updater = SoftUpdate(loss, tau=args.tau)
    # one Adam over actor, critics and log_alpha: every loss term moves only its own part
    optimizer = make_optimizer(args, loss.parameters())

    # -- collector and replay buffer --------------------------------------------
    # the stored frames drop the policy's "loc" and "scale": the loss recomputes them, and
    # the random warm-up frames have none (every row of the buffer has the same keys)
    collector = SyncDataCollector(
        env,
        actor,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.total_frames,
        init_random_frames=args.init_random_frames,
        device=args.collection_devices,
        postproc=ExcludeTransform(*(key for key in actor.out_keys if key != "action")),
    )
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(args.buffer_size))

    # -- trainer: counts frames, logs, evaluates and checkpoints around each batch
    logger, run_dir = make_run(args, "sac")
    trainer = make_off_policy_trainer(
        args, collector, loss, optimizer, buffer, logger, run_dir, target_updater=target_updater
    )
    LogReward().register(trainer)
    recorder = make_recorder(args, eval_env, actor)  # deterministic: the mode of the policy
    recorder.register(trainer)

    # -- the SAC loop (what trainer.train() runs) -------------------------------
    for batch in trainer.collect():
        trainer.extend_buffer(batch)
        for _ in range(args.optim_steps_per_batch):
            sample = trainer.sample()  # --batch_size transitions, uniformly
            trainer.optimizer_step(trainer.compute_loss(sample))  # critics, actor, alpha
            trainer.update_targets()  # Polyak averaging of the target critics
        trainer.update_collector_weights()

    summary = evaluate_and_report(trainer, recorder, args.eval_episodes)
    collector.shutdown()
    env.close()
    eval_env.close()
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
