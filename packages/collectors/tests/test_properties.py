"""Property tests of collectors: frame accounting for any batch size, env count and total.

For ``frames_per_batch`` f, a batch of n sub-envs and ``total_frames`` t:
* a batch holds ``ceil(f / n) * n`` frames, laid out ``[n, ceil(f / n)]``;
* iteration yields ``ceil(t / batch frames)`` batches (``len(collector)``) and
  ``collector.frames`` counts every frame delivered;
* trajectory ids are consecutive per sub-env and a new id starts right after
  every ``done``;
* ``split_trajs`` keeps every frame exactly once.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.collectors import SyncDataCollector
from rlbricks.collectors import split_trajectories
from rlbricks.envs.testing import CountingEnv

SETTINGS = settings(max_examples=40, deadline=None)


@SETTINGS
@given(
    frames_per_batch=st.integers(1, 40),
    num_envs=st.integers(1, 4),
    total_frames=st.integers(1, 120),
    max_steps=st.integers(1, 7),
    init_random_frames=st.integers(0, 50),
)
def test_every_frame_is_counted_once(
    frames_per_batch: int, num_envs: int, total_frames: int, max_steps: int,
    init_random_frames: int,
) -> None:  # fmt: skip
    env = CountingEnv(max_steps=max_steps, batch_size=[num_envs])
    collector = SyncDataCollector(
        env,
        frames_per_batch=frames_per_batch,
        total_frames=total_frames,
        init_random_frames=init_random_frames,
    )
    steps = math.ceil(frames_per_batch / num_envs)
    assert collector.frames_per_batch == steps * num_envs
    batches = list(collector)
    assert len(batches) == len(collector) == math.ceil(total_frames / (steps * num_envs))
    assert collector.frames == sum(b.numel() for b in batches)
    assert collector.frames >= total_frames > collector.frames - steps * num_envs
    last_id = torch.full((num_envs,), -1)
    for batch in batches:
        assert tuple(batch.batch_size) == (num_envs, steps)
        ids = batch["collector", "traj_ids"]
        done = batch["next", "done"].squeeze(-1)
        # within a sub-env: the id grows by one right after a done, else stays
        expected = ids[:, :1].clone()
        for t in range(1, steps):
            assert bool((ids[:, t] >= ids[:, t - 1]).all())
            changed = ids[:, t] != ids[:, t - 1]
            assert torch.equal(changed, done[:, t - 1])
        assert bool((expected.squeeze(1) >= last_id).all())
        last_id = ids[:, -1]
    all_ids = torch.cat([b["collector", "traj_ids"].reshape(-1) for b in batches]).unique()
    per_env = [
        set(b["collector", "traj_ids"][i].tolist()) for b in batches for i in range(num_envs)
    ]
    assert len(all_ids) == len(set().union(*per_env))  # no id is shared by two sub-envs


@SETTINGS
@given(
    frames_per_batch=st.integers(1, 40),
    num_envs=st.integers(1, 4),
    max_steps=st.integers(1, 7),
)
def test_split_trajectories_keep_every_frame(
    frames_per_batch: int, num_envs: int, max_steps: int
) -> None:
    env = CountingEnv(max_steps=max_steps, batch_size=[num_envs])
    batch = SyncDataCollector(env, frames_per_batch=frames_per_batch).next()
    trajs = split_trajectories(batch)
    mask = trajs["collector", "mask"]
    assert int(mask.sum()) == batch.numel()
    kept = trajs["next", "observation"][mask].reshape(-1).sort().values
    assert torch.equal(kept, batch["next", "observation"].reshape(-1).sort().values)
