"""A tiny deterministic DQN run shared by the tests (and the resume subprocess)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlbricks.collectors import SyncDataCollector
from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import EGreedyModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules.recipes import dqn_model
from rlbricks.objectives import DQNLoss
from rlbricks.objectives import HardUpdate
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.trainers import ExplorationAnnealHook
from rlbricks.trainers import LogReward
from rlbricks.trainers import Recorder
from rlbricks.trainers import ReplayBufferTrainer
from rlbricks.trainers import TargetNetUpdaterHook
from rlbricks.trainers import Trainer

FRAMES_PER_BATCH = 16


def build_dqn(total_frames: int, seed: int = 0, **trainer_kwargs: Any) -> Trainer:
    """A DQN trainer on CountingEnv with prioritized replay, hard target updates and e-greedy."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the trainer checkpoints the global state
    random.seed(seed)
    env = CountingEnv(max_steps=5)
    actor = dqn_model(env, num_cells=(8,))
    explore = EGreedyModule(env.action_spec, 1.0, 0.05, annealing_num_steps=200)
    policy = TensorDictSequential(actor, explore)
    loss = DQNLoss(actor)
    loss.make_value_estimator(gamma=0.9)
    collector = SyncDataCollector(
        env, policy, frames_per_batch=FRAMES_PER_BATCH, total_frames=total_frames,
        reset_at_each_iter=True,
    )  # fmt: skip
    buffer = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(1000), batch_size=8
    )
    kwargs: dict[str, Any] = {
        "optim_steps_per_batch": 2, "clip_norm": 1.0, "progress_bar": False, "log_interval": 32,
    }  # fmt: skip
    kwargs.update(trainer_kwargs)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-2)
    trainer = Trainer(collector, total_frames, loss, optim, **kwargs)
    ReplayBufferTrainer(buffer).register(trainer)
    TargetNetUpdaterHook(HardUpdate(loss, value_network_update_interval=5)).register(trainer)
    ExplorationAnnealHook(explore).register(trainer)
    LogReward().register(trainer)
    Recorder(CountingEnv(max_steps=5), actor, record_interval=3, max_steps=10).register(trainer)
    return trainer


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every tensor of the loss (networks and target networks)."""
    return {k: v.detach().clone() for k, v in trainer.loss_module.state_dict().items()}


def main(argv: list[str]) -> None:
    """``<checkpoint> <total_frames> <out.pt>``: load, finish training, save the weights."""
    ckpt, total, out = argv
    trainer = build_dqn(int(total), seed=123)  # a different seed: the checkpoint must win
    trainer.load_state(Path(ckpt))
    trainer.train()
    torch.save(weights(trainer), out)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
