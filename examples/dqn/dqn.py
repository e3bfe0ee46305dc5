"""DQN (Mnih et al., 2015) with each Rainbow add-on (Hessel et al., 2018) switched on from the config.

For each batch of ``frames_per_batch`` frames that the Q-network collects
(epsilon-greedy, or exploring through its own weight noise with ``--noisy``),
the transitions (n-step ones with ``--n_steps > 1``) go into a replay buffer
(prioritized with ``--prb``). Then, ``optim_steps_per_batch`` times: sample a
minibatch, regress Q(s, a) on the target network's bootstrapped target (Double
DQN with ``--double_dqn``; the C51 cross-entropy with ``--distributional``),
step the optimiser, write the new priorities back, update the target network
(Polyak averaging, or a copy every ``--hard_update_interval`` steps) and draw
new weight noise. The Q-network comes from the recipe, with a dueling head
under ``--dueling``. Every ``record_interval`` batches the greedy policy is
evaluated on a separate env; at the end, over ``--eval_episodes`` episodes.

Run:  python examples/dqn/dqn.py --config examples/dqn/configs/cartpole.txt
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from rlbricks.collectors import SyncDataCollector
from rlbricks.modules import EGreedyModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules import reset_noise
from rlbricks.modules.recipes import dqn_model
from rlbricks.objectives import DistributionalDQNLoss
from rlbricks.objectives import DQNLoss
from rlbricks.objectives import HardUpdate
from rlbricks.objectives import LossModule
from rlbricks.objectives import SoftUpdate
from rlbricks.objectives import TargetNetUpdater
from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import Storage
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.trainers import LinearSchedule
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
from rlbricks.transforms import Compose
from rlbricks.transforms import ExcludeTransform
from rlbricks.transforms import MultiStepTransform

SWITCH = argparse.BooleanOptionalAction  # --dueling / --no-dueling, "dueling = true" in a config


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "env", "collector", "replay", "loss", "optim", "logger", "trainer", description=__doc__
    )
    group = parser.add_argument_group("dqn")
    group.add_argument("--num_cells", type=int, nargs="+", default=[64, 64],
                       help="hidden layers of the Q-network's MLP")  # fmt: skip
    group.add_argument("--threads", type=int, default=1, help="torch threads")
    # epsilon-greedy exploration (not used with --noisy)
    group.add_argument("--eps_init", type=float, default=1.0, help="initial epsilon")
    group.add_argument("--eps_end", type=float, default=0.05, help="final epsilon")
    group.add_argument("--annealing_frames", type=int, default=10_000,
                       help="frames over which epsilon decays linearly")  # fmt: skip
    # the Rainbow add-ons (prioritized replay is the replay group's --prb, --alpha, --beta)
    group.add_argument("--double_dqn", action=SWITCH, default=False,
                       help="Double DQN targets (van Hasselt et al., 2016)")  # fmt: skip
    group.add_argument("--dueling", action=SWITCH, default=False,
                       help="dueling value/advantage head (Wang et al., 2016)")  # fmt: skip
    group.add_argument("--n_steps", type=int, default=1,
                       help="n-step returns (Sutton, 1988); 1: one-step transitions")  # fmt: skip
    group.add_argument("--noisy", action=SWITCH, default=False,
                       help="NoisyNet layers instead of epsilon-greedy (Fortunato et al., 2018)")  # fmt: skip
    group.add_argument("--distributional", type=int, default=0,
                       help="atoms of a C51 return distribution (Bellemare et al., 2017); 0: off")  # fmt: skip
    group.add_argument("--v_min", type=float, default=-10.0, help="lowest C51 atom")
    group.add_argument("--v_max", type=float, default=10.0, help="highest C51 atom")
    group.add_argument("--anneal_lr", action=SWITCH, default=False,
                       help="decay the learning rate linearly to 0 over the run")  # fmt: skip
    parser.set_defaults(logger="tensorboard", exp_name="dqn")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(build_parser(), argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = torch.device(args.device)

    # environments: the collector's (no-op starts, reward clipping) and the evaluation one
    env = make_env(args)
    eval_env = make_env(args, eval=True)

    # Q-network from the recipe: an MLP (after a ConvNet for pixels), dueling / noisy / C51
    actor = dqn_model(
        env,
        num_cells=args.num_cells,
        dueling=args.dueling,
        noisy=args.noisy,
        distributional=args.distributional or None,
        v_min=args.v_min,
        v_max=args.v_max,
        device=device,
    )
    # exploration: epsilon-greedy, unless the noisy layers explore by themselves
    policy: nn.Module = actor
    if not args.noisy:
        explore = EGreedyModule(
            env.action_spec, args.eps_init, args.eps_end, annealing_num_steps=args.annealing_frames
        )
        policy = TensorDictSequential(actor, explore)

    # loss, with the one-step gamma: n-step transitions carry "steps_to_next_obs" = k,
    # and the losses bootstrap them with gamma ** k
    loss: LossModule
    if args.distributional:
        loss = DistributionalDQNLoss(actor, gamma=args.gamma, double_dqn=args.double_dqn)
    else:
        loss = DQNLoss(actor, loss_function=args.loss_function, double_dqn=args.double_dqn)
        loss.make_value_estimator(gamma=args.gamma)
    updater: TargetNetUpdater
    if args.hard_update_interval:
        updater = HardUpdate(loss, value_network_update_interval=args.hard_update_interval)
    else:
        updater = SoftUpdate(loss, tau=args.tau)

    # collector; each batch drops the Q-values the policy wrote (the loss recomputes them,
    # and the random first batches have none) and, with n_steps > 1, becomes n-step
    # transitions (time is the batch's last dim)
    postproc = Compose(ExcludeTransform(*(k for k in actor.out_keys if k != "action")))
    if args.n_steps > 1:
        postproc.append(MultiStepTransform(args.n_steps, args.gamma))
    collector = SyncDataCollector(
        env,
        policy,
        frames_per_batch=args.frames_per_batch,
        total_frames=args.total_frames,
        init_random_frames=args.init_random_frames,
        device=args.collection_devices,
        postproc=postproc,
    )

    # replay buffer: uniform, or prioritized by the loss's "td_error" (Schaul et al., 2016);
    # --buffer_scratch_dir memory-maps it on disk (a relative path is taken in the run folder)
    logger, run_dir = make_run(args, "dqn")
    storage: Storage
    if args.buffer_scratch_dir:
        storage = LazyMemmapStorage(args.buffer_size, scratch_dir=run_dir / args.buffer_scratch_dir)
    else:
        storage = LazyTensorStorage(args.buffer_size)
    buffer: TensorDictReplayBuffer
    if args.prb:
        buffer = TensorDictPrioritizedReplayBuffer(
            alpha=args.alpha, beta=args.beta, storage=storage, batch_size=args.batch_size
        )
    else:
        buffer = TensorDictReplayBuffer(storage=storage, batch_size=args.batch_size)

    # trainer: counts frames, logs, evaluates and checkpoints around each batch; its
    # observers log the training reward and epsilon and anneal epsilon and the lr
    optimizer = make_optimizer(args, loss.parameters())
    trainer = make_off_policy_trainer(
        args, collector, loss, optimizer, buffer, logger, run_dir,
        target_updater=updater,
        exploration=() if args.noisy else explore,
    )  # fmt: skip
    if not args.noisy:
        trainer.register_op("pre_steps_log", lambda batch: {"epsilon": float(explore.eps)})
    if args.anneal_lr:  # the greedy policy settles instead of moving until the last update
        LinearSchedule(optimizer, "lr", 0.0, args.total_frames).register(trainer)
    # the one-step reward of the collected frames (n-step batches keep it as "original_reward")
    reward_key = ("next", "original_reward" if args.n_steps > 1 else "reward")
    LogReward(reward_key=reward_key).register(trainer)
    recorder = make_recorder(args, eval_env, actor)  # greedy; noisy layers use their means
    recorder.register(trainer)

    # the DQN loop (what trainer.train() runs)
    for batch in trainer.collect():
        trainer.extend_buffer(batch)
        for _ in range(args.optim_steps_per_batch):
            sample = trainer.sample()  # uniform, or by priority with importance weights
            trainer.optimizer_step(trainer.compute_loss(sample))  # TD (or C51) loss
            trainer.write_priorities(sample)  # |TD error| of the sample (--prb)
            trainer.update_targets()  # Polyak averaging or a periodic copy
            if args.noisy:
                reset_noise(loss)  # new weight noise, online and target networks
        trainer.anneal_exploration()  # epsilon decays with the frames collected
        trainer.update_collector_weights()

    summary = evaluate_and_report(trainer, recorder, args.eval_episodes)
    collector.shutdown()
    env.close()
    eval_env.close()
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
