"""The on- and off-policy trainers: their steps, their equivalence with the hook loop, checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch

from rlbricks.collectors import SyncDataCollector
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import EGreedyModule
from rlbricks.modules import TensorDictSequential
from rlbricks.modules.recipes import dqn_model
from rlbricks.modules.recipes import ppo_models
from rlbricks.objectives import ClipPPOLoss
from rlbricks.objectives import DQNLoss
from rlbricks.objectives import HardUpdate
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.tensordict import TensorDict
from rlbricks.trainers import OBSERVER_STAGES
from rlbricks.trainers import STAGES
from rlbricks.trainers import AdvantageHook
from rlbricks.trainers import ConfigError
from rlbricks.trainers import ExplorationAnnealHook
from rlbricks.trainers import OffPolicyConfig
from rlbricks.trainers import OffPolicyTrainer
from rlbricks.trainers import OnPolicyConfig
from rlbricks.trainers import OnPolicyTrainer
from rlbricks.trainers import ReplayBufferTrainer
from rlbricks.trainers import TargetNetUpdaterHook
from rlbricks.trainers import Trainer
from rlbricks.trainers import TrainerConfig
from rlbricks.trainers import TrainerError
from rlbricks.trainers import UpdateWeights

FRAMES_PER_BATCH = 32


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.state_dict().values()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# --------------------------------------------------------------------------- #
# on-policy
# --------------------------------------------------------------------------- #
def _ppo(seed: int) -> tuple[SyncDataCollector, ClipPPOLoss, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    env = ContinuousActionEnv(batch_size=[2])
    actor, critic = ppo_models(env, num_cells=(8,))
    loss = ClipPPOLoss(actor, critic, normalize_advantage=True)
    loss.make_value_estimator("gae", gamma=0.9, lmbda=0.8)
    collector = SyncDataCollector(env, actor, frames_per_batch=FRAMES_PER_BATCH)
    return collector, loss, torch.optim.Adam(loss.parameters(), lr=1e-2)


def _on_config(**kwargs: Any) -> OnPolicyConfig:
    base: dict[str, Any] = {
        "total_frames": 3 * FRAMES_PER_BATCH,
        "epochs": 3,
        "minibatch_size": 8,
        "clip_norm": 0.5,
        "progress_bar": False,
    }
    return OnPolicyConfig(**{**base, **kwargs})


def test_on_policy_trainer_takes_exactly_the_steps_of_the_hook_loop() -> None:
    # the same seed through the generic Trainer with AdvantageHook + a without-replacement
    # buffer, and through OnPolicyTrainer: the same parameters, bit for bit
    collector, loss, optimizer = _ppo(0)
    buffer = TensorDictReplayBuffer(
        storage=LazyTensorStorage(FRAMES_PER_BATCH),
        sampler=SamplerWithoutReplacement(),
        batch_size=8,
    )
    legacy = Trainer(collector, 3 * FRAMES_PER_BATCH, loss, optimizer,
                     optim_steps_per_batch=3 * 4, clip_norm=0.5, progress_bar=False)  # fmt: skip
    AdvantageHook(loss.value_estimator).register(legacy)
    ReplayBufferTrainer(buffer).register(legacy)
    legacy.train()
    expected = _params(loss)

    collector, loss, optimizer = _ppo(0)
    trainer = OnPolicyTrainer(
        collector, loss, optimizer, _on_config(), value_estimator=loss.value_estimator
    )
    trainer.train()
    assert trainer.optim_steps == legacy.optim_steps == 36
    assert _same(_params(loss), expected)


def test_the_loop_written_out_with_collect_equals_train() -> None:
    collector, loss, optimizer = _ppo(1)
    trainer = OnPolicyTrainer(
        collector, loss, optimizer, _on_config(), value_estimator=loss.value_estimator
    )
    trainer.train()
    expected, logged = _params(loss), dict(trainer.latest)

    collector, loss, optimizer = _ppo(1)
    trainer = OnPolicyTrainer(
        collector, loss, optimizer, _on_config(), value_estimator=loss.value_estimator
    )
    for batch in trainer.collect():
        batch = trainer.compute_advantages(batch)
        for _ in range(trainer.epochs):
            for minibatch in trainer.minibatches(batch):
                trainer.update(minibatch)
        trainer.update_collector_weights()
    assert _same(_params(loss), expected)
    assert trainer.latest == logged  # the loss scalars are averaged and logged the same way
    assert {"loss_objective", "loss_critic", "grad_norm"} <= set(logged)


def test_minibatches_serve_every_row_once_per_epoch() -> None:
    trainer = OnPolicyTrainer([], torch.nn.Linear(1, 1), None, _on_config(minibatch_size=4))
    batch = TensorDict({"x": torch.arange(10.0).reshape(2, 5)}, [2, 5])
    epoch = list(trainer.minibatches(batch))
    assert [len(mb) for mb in epoch] == [4, 4, 2]
    assert sorted(torch.cat([mb["x"] for mb in epoch]).tolist()) == [float(i) for i in range(10)]
    whole = OnPolicyTrainer([], torch.nn.Linear(1, 1), None, _on_config(minibatch_size=None))
    (only,) = list(whole.minibatches(batch))
    assert only is batch  # the collected [envs, time] shape, untouched


def test_a_subclass_overrides_one_step_and_train_uses_it() -> None:
    seen: list[int] = []

    class Counting(OnPolicyTrainer):
        def update(self, minibatch: TensorDict) -> dict[str, float]:
            seen.append(minibatch.numel())
            return super().update(minibatch)

    collector, loss, optimizer = _ppo(2)
    Counting(collector, loss, optimizer, _on_config(total_frames=FRAMES_PER_BATCH)).train()
    assert seen == [8] * 12  # 3 epochs x 4 minibatches of the one batch


def test_without_estimator_the_batch_goes_to_the_loss_as_collected() -> None:
    collector, loss, optimizer = _ppo(3)
    trainer = OnPolicyTrainer(collector, loss, optimizer, _on_config())
    batch = TensorDict({"x": torch.ones(2, 3)}, [2, 3])
    assert trainer.compute_advantages(batch) is batch


# --------------------------------------------------------------------------- #
# off-policy
# --------------------------------------------------------------------------- #
def _dqn(seed: int, prioritized: bool, gym: bool = False) -> tuple[Any, ...]:
    torch.manual_seed(seed)
    if gym:  # a gymnasium env saves its whole state: a resumed run collects the same frames
        from rlbricks.envs import GymEnv

        env = GymEnv("CartPole-v1", num_envs=2, categorical_action_encoding=True)
        env.set_seed(seed)
    else:
        env = CountingEnv(batch_size=[2], max_steps=6)
    actor = dqn_model(env, num_cells=(8,))
    explore = EGreedyModule(env.action_spec, 1.0, 0.1, annealing_num_steps=64)
    loss = DQNLoss(actor)
    loss.make_value_estimator(gamma=0.9)
    collector = SyncDataCollector(
        env, TensorDictSequential(actor, explore), frames_per_batch=FRAMES_PER_BATCH
    )
    storage = LazyTensorStorage(1000)
    buffer: TensorDictReplayBuffer
    if prioritized:
        buffer = TensorDictPrioritizedReplayBuffer(alpha=0.6, beta=0.4, storage=storage)
    else:
        buffer = TensorDictReplayBuffer(storage=storage)
    optimizer = torch.optim.Adam(loss.parameters(), lr=1e-2)
    return (
        collector,
        loss,
        optimizer,
        buffer,
        HardUpdate(loss, value_network_update_interval=3),
        explore,
    )


def _off_config(**kwargs: Any) -> OffPolicyConfig:
    base: dict[str, Any] = {
        "total_frames": 4 * FRAMES_PER_BATCH,
        "batch_size": 8,
        "updates_per_batch": 5,
        "clip_norm": 10.0,
        "progress_bar": False,
    }
    return OffPolicyConfig(**{**base, **kwargs})


@pytest.mark.parametrize("prioritized", [False, True])
def test_off_policy_trainer_takes_exactly_the_steps_of_the_hook_loop(prioritized: bool) -> None:
    collector, loss, optimizer, buffer, updater, explore = _dqn(0, prioritized)
    legacy = Trainer(collector, 4 * FRAMES_PER_BATCH, loss, optimizer,
                     optim_steps_per_batch=5, clip_norm=10.0, progress_bar=False)  # fmt: skip
    ReplayBufferTrainer(buffer, 8).register(legacy)
    TargetNetUpdaterHook(updater).register(legacy)
    ExplorationAnnealHook(explore).register(legacy)
    UpdateWeights(collector).register(legacy)
    legacy.train()
    expected, eps = _params(loss), float(explore.eps)

    collector, loss, optimizer, buffer, updater, explore = _dqn(0, prioritized)
    trainer = OffPolicyTrainer(
        collector, loss, optimizer, buffer, _off_config(), target_updater=updater,
        exploration=explore,
    )  # fmt: skip
    trainer.train()
    assert trainer.optim_steps == legacy.optim_steps == 20
    assert _same(_params(loss), expected)
    assert float(explore.eps) == eps
    assert len(buffer) == 4 * FRAMES_PER_BATCH


def test_learning_starts_and_zero_updates() -> None:
    collector, loss, optimizer, buffer, _, _ = _dqn(1, False)
    trainer = OffPolicyTrainer(
        collector, loss, optimizer, buffer, _off_config(learning_starts=3 * FRAMES_PER_BATCH)
    )
    steps: list[int] = []
    for batch in trainer.collect():
        trainer.train_on_batch(batch)
        steps.append(trainer.optim_steps)
    assert steps == [0, 0, 5, 10]  # updates start once 96 frames were collected

    collector, loss, optimizer, buffer, _, _ = _dqn(1, False)
    idle = OffPolicyTrainer(collector, loss, optimizer, buffer, _off_config(updates_per_batch=0))
    idle.train()
    assert idle.optim_steps == 0
    assert len(buffer) == 4 * FRAMES_PER_BATCH


def test_off_policy_checkpoint_resumes_exactly(tmp_path: Path) -> None:
    pytest.importorskip("gymnasium")
    # uninterrupted: 4 batches
    collector, loss, optimizer, buffer, updater, explore = _dqn(2, True, gym=True)
    full = OffPolicyTrainer(collector, loss, optimizer, buffer, _off_config(),
                            target_updater=updater, exploration=explore)  # fmt: skip
    full.train()
    expected = _params(loss)

    # interrupted after 2 batches (a checkpoint each batch), then resumed in a fresh build
    ckpt = tmp_path / "ckpt"
    collector, loss, optimizer, buffer, updater, explore = _dqn(2, True, gym=True)
    first = OffPolicyTrainer(
        collector, loss, optimizer, buffer,
        _off_config(save_trainer_file=ckpt, save_trainer_interval=FRAMES_PER_BATCH),
        target_updater=updater, exploration=explore,
    )  # fmt: skip
    for i, batch in enumerate(first.collect()):
        first.train_on_batch(batch)
        if i == 1:
            break
    assert "root" in first.collector.state_dict()  # the env's state goes into checkpoints
    collector, loss, optimizer, buffer, updater, explore = _dqn(99, True, gym=True)
    resumed = OffPolicyTrainer(
        collector, loss, optimizer, buffer, _off_config(resume=ckpt),
        target_updater=updater, exploration=explore,
    )  # fmt: skip
    resumed.train()
    assert resumed.collected_frames == 4 * FRAMES_PER_BATCH
    assert len(buffer) == 4 * FRAMES_PER_BATCH  # the dumped rows came back
    assert updater.counter == full.target_updater.counter
    assert _same(_params(loss), expected)


# --------------------------------------------------------------------------- #
# hooks observe, never reorder
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("stage", [s for s in STAGES if s not in OBSERVER_STAGES])
def test_algorithm_stages_are_refused_with_the_method_to_override(stage: str) -> None:
    on = OnPolicyTrainer([], torch.nn.Linear(1, 1), None, _on_config())
    off = OffPolicyTrainer([], torch.nn.Linear(1, 1), None, None, _off_config())
    for trainer in (on, off):
        with pytest.raises(TrainerError, match=r"override \w+\(\)"):
            trainer.register_op(stage, lambda *args: None)


def test_observer_hooks_run_after_each_update_and_each_batch() -> None:
    collector, loss, optimizer = _ppo(4)
    trainer = OnPolicyTrainer(collector, loss, optimizer, _on_config(epochs=1))
    calls: list[str] = []
    trainer.register_op("post_optim", lambda: calls.append("update"))
    trainer.register_op("pre_steps_log", lambda batch: calls.append("log") or {})
    trainer.register_op("post_steps", lambda: calls.append("batch"))
    trainer.train()
    assert calls == (["update"] * 4 + ["log", "batch"]) * 3


def test_the_replay_and_exploration_hooks_point_to_the_trainer_arguments() -> None:
    off = OffPolicyTrainer([], torch.nn.Linear(1, 1), None, None, _off_config())
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(4))
    with pytest.raises(TrainerError, match="extend_buffer"):
        ReplayBufferTrainer(buffer).register(off)
    explore = EGreedyModule(CountingEnv().action_spec, 1.0, 0.1)
    with pytest.raises(TrainerError, match="exploration="):
        ExplorationAnnealHook(explore).register(off)


def test_weights_go_to_the_collector_every_interval() -> None:
    class Collector(list):
        synced = 0

        def update_policy_weights_(self) -> None:
            self.synced += 1

    data = Collector(TensorDict({"x": torch.ones(4)}, [4]) for _ in range(6))
    trainer = OnPolicyTrainer(data, torch.nn.Linear(1, 1), None,
                              _on_config(total_frames=24, update_weights_interval=2))  # fmt: skip
    trainer.compute_loss = lambda td: TensorDict({}, [])  # type: ignore[method-assign]
    trainer.update = lambda mb: {}  # type: ignore[method-assign]
    trainer.train()
    assert data.synced == 3


# --------------------------------------------------------------------------- #
# settings
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (TrainerConfig, "total_frames", 0),
        (TrainerConfig, "clip_norm", -1.0),
        (OnPolicyConfig, "epochs", 0),
        (OnPolicyConfig, "minibatch_size", 0),
        (OffPolicyConfig, "batch_size", 0),
        (OffPolicyConfig, "updates_per_batch", -1),
        (OffPolicyConfig, "learning_starts", 1.5),
    ],
)
def test_settings_reject_bad_values_naming_the_field(cls: type, field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{field}") as err:
        cls(total_frames=10, **{field: value}) if field != "total_frames" else cls(total_frames=0)
    assert isinstance(err.value, ValueError)


def test_settings_from_args_read_the_groups_and_refuse_unknown_overrides() -> None:
    args = argparse.Namespace(
        total_frames=640, clip_norm=1.0, clip_grad_value=True, no_progress_bar=True,
        batch_size=32, optim_steps_per_batch=7, log_interval=10, device="cpu",
    )  # fmt: skip
    config = OffPolicyConfig.from_args(args, learning_starts=64)
    assert (config.total_frames, config.clip_norm, config.clip_grad_norm) == (640, 1.0, False)
    assert (config.batch_size, config.updates_per_batch, config.learning_starts) == (32, 7, 64)
    assert not config.progress_bar
    with pytest.raises(ConfigError, match="no field epochs"):
        OffPolicyConfig.from_args(args, epochs=3)
    with pytest.raises(TrainerError, match="needs an OnPolicyConfig"):
        OnPolicyTrainer([], torch.nn.Linear(1, 1), None, config)  # type: ignore[arg-type]
