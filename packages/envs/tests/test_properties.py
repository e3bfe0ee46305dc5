"""Property tests of envs: rollout invariants for any batch shape, episode length and seed.

Every rollout (with auto-resets inside it) must give:
* the shape ``[*batch, T]``;
* ``done == terminated | truncated`` at the root and under ``"next"``;
* every entry inside its spec (``step_spec``);
* continuity: the root of step t+1 is the ``"next"`` of step t, except for
  sub-envs that finished at t, whose root is a fresh episode's first step.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.envs import EnvBase
from rlbricks.envs import step_spec
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.tensordict import TensorDict

SETTINGS = settings(max_examples=40, deadline=None)
ENVS = {"counting": CountingEnv, "continuous": ContinuousActionEnv, "nested": NestedSpecEnv}
BATCHES = st.sampled_from([(), (1,), (3,), (2, 2)])


def leaves(td: TensorDict) -> list[Any]:
    return list(td.keys(include_nested=True, leaves_only=True))


def check_rollout(env: EnvBase, td: TensorDict, steps: int) -> None:
    batch = tuple(env.batch_size)
    assert tuple(td.batch_size) == (*batch, steps)
    for where in ((), ("next",)):
        done = td.get((*where, "done"))
        either = td.get((*where, "terminated")) | td.get((*where, "truncated"))
        assert torch.equal(done, either), f"{where}: done != terminated | truncated"
    spec = step_spec(env)
    for t in range(steps):
        step = td[(..., t)] if batch else td[t]
        for key in leaves(step):
            if key in spec.keys(include_nested=True, leaves_only=True):
                assert spec[key].is_in(step.get(key)), f"step {t}: {key} outside its spec"
    # continuity between consecutive steps
    obs_keys = [k for k in env.observation_spec.keys(include_nested=True, leaves_only=True)]
    for t in range(steps - 1):
        now = td[(..., t)] if batch else td[t]
        after = td[(..., t + 1)] if batch else td[t + 1]
        finished = now.get(("next", "done")).reshape(batch)
        for key in obs_keys:
            nxt = now.get(("next", *((key,) if isinstance(key, str) else key)))
            root = after.get(key)
            keep = ~finished.reshape(finished.shape + (1,) * (nxt.dim() - finished.dim()))
            assert torch.equal(torch.where(keep, nxt, root), root), f"step {t}: {key} jumps"
        assert not after.get("done").reshape(batch)[finished].any(), "a reset root says done"


@SETTINGS
@given(
    kind=st.sampled_from(sorted(ENVS)),
    batch=BATCHES,
    max_steps=st.integers(1, 6),
    steps=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_rollouts_keep_their_invariants(
    kind: str, batch: tuple[int, ...], max_steps: int, steps: int, seed: int
) -> None:
    env = ENVS[kind](max_steps=max_steps, batch_size=batch)
    env.set_seed(seed)
    torch.manual_seed(seed)
    td = env.rollout(steps, break_when_any_done=False)
    check_rollout(env, td, steps)


@SETTINGS
@given(batch=BATCHES, max_steps=st.integers(1, 6), steps=st.integers(1, 12))
def test_break_when_any_done_stops_at_the_first_end(
    batch: tuple[int, ...], max_steps: int, steps: int
) -> None:
    env = CountingEnv(max_steps=max_steps, batch_size=batch)
    td = env.rollout(steps)
    assert td.batch_size[-1] == min(steps, max_steps)
    done = td.get(("next", "done"))
    assert bool(done[..., -1, :].any()) == (steps >= max_steps)
    assert not done[..., :-1, :].any()


@settings(max_examples=10, deadline=None)
@given(
    num_envs=st.sampled_from([None, 1, 3]),
    steps=st.integers(1, 60),
    seed=st.integers(0, 2**16),
    env_id=st.sampled_from(["CartPole-v1", "Pendulum-v1", "MountainCar-v0"]),
)
def test_gymnasium_rollouts_keep_their_invariants(
    num_envs: int | None, steps: int, seed: int, env_id: str
) -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    env = GymEnv(env_id, num_envs=num_envs, max_episode_steps=20)
    try:
        env.set_seed(seed)
        torch.manual_seed(seed)
        td = env.rollout(steps, break_when_any_done=False)
        check_rollout(env, td, steps)
        if steps >= 21:  # every episode lasts at most 20 steps
            assert bool(td.get(("next", "done")).any())
    finally:
        env.close()
