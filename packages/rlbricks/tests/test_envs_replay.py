"""Integration: env rollouts go into replay buffers and come back as valid steps."""

from __future__ import annotations

import torch

from rlbricks.envs import SerialEnv
from rlbricks.envs import step_spec
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import SliceSampler
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer


def test_rollout_steps_sampled_back_are_in_spec() -> None:
    env = NestedSpecEnv(max_steps=4, batch_size=[2])
    rollout = env.rollout(10, break_when_any_done=False)  # [2, 10]
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(100), batch_size=16)
    rb.extend(rollout.reshape(-1))
    sample = rb.sample()
    spec = step_spec(NestedSpecEnv(max_steps=4)).expand(16)
    assert spec.is_in(sample.exclude("index"))


def test_slices_of_collected_episodes_follow_the_counter() -> None:
    env = SerialEnv(1, lambda: CountingEnv(max_steps=6))
    rollout = env.rollout(30, break_when_any_done=False)[0]  # one sub-env, 30 steps
    rb = TensorDictReplayBuffer(
        storage=LazyTensorStorage(100), sampler=SliceSampler(slice_len=3), batch_size=12
    )
    rb.extend(rollout)
    slices = rb.sample().reshape(4, 3)
    obs = slices["next", "observation"].squeeze(-1)
    # within a slice the counter increases by one per step: no episode boundary crossed
    assert torch.equal(obs[:, 1:] - obs[:, :-1], torch.ones(4, 2))
    assert slices["next", "truncated"][:, -1].all()
    assert slices["next", "done"][:, -1].all()


def test_prioritized_buffer_updates_from_a_loss_like_key() -> None:
    env = CountingEnv(max_steps=5, batch_size=[4])
    data = env.rollout(5, break_when_any_done=False).reshape(-1)
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=1.0, beta=1.0, storage=LazyTensorStorage(64), batch_size=8
    )
    rb.extend(data)
    sample = rb.sample()
    sample["td_error"] = (sample["next", "observation"] - 3).abs().squeeze(-1)
    rb.update_tensordict_priority(sample)
    assert sample["_weight"].shape == (8,)
    assert (sample["_weight"] > 0).all()
    assert (sample["_weight"] <= 1).all()
