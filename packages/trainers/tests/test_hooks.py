"""Built-in hooks: replay, weight sync, scalars, target updates, exploration, sub-sampling."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import EGreedyModule
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.tensordict import TensorDict
from rlbricks.trainers import BatchSubSampler
from rlbricks.trainers import ClearCudaCache
from rlbricks.trainers import CountFramesLog
from rlbricks.trainers import ExplorationAnnealHook
from rlbricks.trainers import ReplayBufferTrainer
from rlbricks.trainers import Trainer
from rlbricks.trainers import TrainerError
from rlbricks.trainers import UpdateWeights


def trainer() -> Trainer:
    return Trainer([], 10, torch.nn.Linear(1, 1), None)  # type: ignore[arg-type]


def test_replay_hook_extends_samples_and_updates_priorities() -> None:
    torch.manual_seed(0)
    buffer = TensorDictPrioritizedReplayBuffer(
        alpha=1.0, beta=1.0, storage=LazyTensorStorage(20), batch_size=4
    )
    hook = ReplayBufferTrainer(buffer)
    t = trainer()
    hook.register(t)
    assert [len(t.hooks(s)) for s in ("batch_process", "process_optim_batch", "post_loss")] == [
        1
    ] * 3
    batch = TensorDict({"obs": torch.arange(6.0).reshape(2, 3, 1)}, batch_size=[2, 3])
    assert hook.extend(batch) is batch
    assert len(buffer) == 6
    sample = hook.sample(batch)
    assert sample.batch_size == torch.Size([4])
    assert "index" in sample
    # one row gets a large error (every copy of it: a sample may hold a row twice)
    sample["td_error"] = (sample["index"] == sample["index"][0]).float() * 100.0
    hook.update_priority(sample)
    draws = torch.cat([buffer.sample(64)["index"] for _ in range(4)])
    assert (draws == sample["index"][0]).float().mean() > 0.9


def test_plain_replay_hook_has_no_priority_stage() -> None:
    t = trainer()
    ReplayBufferTrainer(TensorDictReplayBuffer(storage=LazyTensorStorage(5))).register(t)
    assert t.hooks("post_loss") == []


def test_update_weights_every_n_batches() -> None:
    class Collector:
        calls = 0

        def update_policy_weights_(self) -> None:
            self.calls += 1

    collector = Collector()
    hook = UpdateWeights(collector, update_weights_interval=3)
    for _ in range(7):
        hook()
    assert collector.calls == 2
    with pytest.raises(TrainerError, match="interval must be >= 1"):
        UpdateWeights(collector, 0)


def test_count_frames_and_anneal_use_the_trainer() -> None:
    t = trainer()
    frames = CountFramesLog()
    frames.register(t)
    explore = EGreedyModule(CountingEnv().action_spec, 1.0, 0.0, annealing_num_steps=100)
    anneal = ExplorationAnnealHook(explore)
    anneal.register(t)
    t.collected_frames, t.frames_last_batch = 40, 20
    assert frames(TensorDict({}, [])) == {"n_frames": 40.0}
    anneal()
    assert float(explore.eps) == pytest.approx(0.8)
    with pytest.raises(TrainerError, match="at least one module"):
        ExplorationAnnealHook()


def test_batch_sub_sampler_draws_rows_of_the_batch() -> None:
    batch = TensorDict({"obs": torch.arange(12.0).reshape(3, 4)}, batch_size=[3, 4])
    torch.manual_seed(0)
    sub = BatchSubSampler(50)(batch)
    torch.manual_seed(0)
    expected = torch.arange(12.0)[torch.randint(12, (50,))]
    assert torch.equal(sub["obs"], expected)
    with pytest.raises(TrainerError, match="batch_size"):
        BatchSubSampler(0)


def test_clear_cuda_cache_counts(monkeypatch: Any) -> None:
    hook = ClearCudaCache(interval=2)
    t = trainer()
    hook.register(t)
    for _ in range(3):
        hook()
    assert t.hooks("post_optim") == [hook]
    assert hook.state_dict() == {"count": 3}


def test_a_hook_without_a_stage_must_register_itself() -> None:
    from rlbricks.trainers import TrainerHookBase

    class NoStage(TrainerHookBase):
        def __call__(self) -> None:
            pass

    with pytest.raises(NotImplementedError, match="stage"):
        NoStage().register(trainer())


def test_only_checkpointed_hooks_register_their_state() -> None:
    from rlbricks.trainers import ClearCudaCache
    from rlbricks.trainers import Recorder

    t = trainer()
    ClearCudaCache().register(t)
    assert "ClearCudaCache" not in t._modules
    assert Recorder.checkpointed
    assert Recorder.stage == "post_steps_log"
