"""The fakes of rlbricks.envs.testing behave as documented."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

from rlbricks.envs import check_env_specs
from rlbricks.envs import step_mdp
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import CrashingEnv
from rlbricks.envs.testing import HangingEnv
from rlbricks.envs.testing import NestedSpecEnv

FAKES = [CountingEnv, NestedSpecEnv, ContinuousActionEnv]


@pytest.mark.parametrize("env_cls", FAKES)
@pytest.mark.parametrize("max_steps", [0, -1])
def test_max_steps_must_be_positive(env_cls: Any, max_steps: int):
    with pytest.raises(ValueError, match="max_steps must be positive"):
        env_cls(max_steps=max_steps)


@pytest.mark.parametrize("env_cls", FAKES)
@pytest.mark.parametrize("batch_size", [(), (2,), (2, 2)])
def test_episode_length_and_shapes(env_cls: Any, batch_size: tuple[int, ...]):
    env = env_cls(max_steps=3, batch_size=batch_size)
    td = env.rollout(10)
    assert td.batch_size == (*batch_size, 3)
    assert td["next", "done"][..., -1, :].all()
    assert not td["next", "done"][..., :-1, :].any()
    assert td.device == torch.device("cpu")


def test_counting_env_terminates_and_echoes_action():
    env = CountingEnv(max_steps=2)
    td = env.reset()
    td.set("action", torch.tensor([1]))
    td = env.step(td)
    assert td["next", "observation"].tolist() == [1.0]
    assert td["next", "reward"].tolist() == [1.0]
    td = step_mdp(td).set("action", torch.tensor([0]))
    td = env.step(td)
    assert td["next", "reward"].tolist() == [0.0]
    assert td["next", "terminated"].item()
    assert not td["next", "truncated"].item()


def test_nested_env_truncates_and_sums_action():
    env = NestedSpecEnv(max_steps=1)
    td = env.reset().set("action", torch.tensor([2.5]))
    nxt = env.step(td)["next"]
    assert nxt["data", "states"].tolist() == [1.0, 1.0, 1.0]
    assert nxt["data", "step"].tolist() == [1.0]
    assert nxt["reward"].tolist() == [2.5]
    assert nxt["truncated"].item()
    assert not nxt["terminated"].item()


def test_continuous_env_moves_point():
    env = ContinuousActionEnv(max_steps=5)
    td = env.reset()
    for _ in range(2):
        td = step_mdp(env.step(td.set("action", torch.tensor([0.6, 0.8]))))
    assert torch.allclose(td["observation"], torch.tensor([1.2, 1.6]))
    nxt = env.step(td.set("action", torch.tensor([0.0, 0.0])))["next"]
    assert torch.allclose(nxt["reward"], torch.tensor([-2.0]))
    assert not nxt["done"].item()


def test_crashing_env_crashes_after_n_steps():
    env = CrashingEnv(crash_after=2, batch_size=[2])
    env.rand_step()
    env.rand_step()
    with pytest.raises(RuntimeError, match="planned crash after 2 steps"):
        env.rand_step()


def test_crashing_env_is_a_counting_env():
    env = CrashingEnv(crash_after=10, max_steps=3)
    assert isinstance(env, CountingEnv)
    assert env.rollout(10).batch_size == (3,)


def test_hanging_env_hangs_once_after_n_steps():
    env = HangingEnv(hang_after=2, hang_for=0.3, max_steps=3)
    assert isinstance(env, CountingEnv)
    times = []
    td = env.reset()
    for _ in range(4):  # the episode ends at step 3, the step count goes on
        start = time.monotonic()
        td = env.step_and_maybe_reset(env.rand_action(td))[1]
        times.append(time.monotonic() - start)
    assert env.steps_done == 4
    assert times[2] >= 0.3
    assert max(times[:2] + times[3:]) < 0.3


@pytest.mark.parametrize("env_cls", FAKES)
def test_set_seed_recorded(env_cls: Any):
    env = env_cls(batch_size=[2])
    assert env.seed is None
    assert env.set_seed(3) == 5
    assert env.seed == 3


@pytest.mark.parametrize("env_cls", FAKES)
def test_deterministic(env_cls: Any):
    torch.manual_seed(0)
    a = env_cls(batch_size=[2]).rollout(4)
    torch.manual_seed(0)
    b = env_cls(batch_size=[2]).rollout(4)
    assert (a == b).all()


@pytest.mark.parametrize("env_cls", FAKES)
def test_specs_checked(env_cls: Any):
    check_env_specs(env_cls(max_steps=2, batch_size=[3]), steps=6)


def col(*values: bool) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool).unsqueeze(-1)


def test_partial_reset_nested_and_continuous():
    env = NestedSpecEnv(max_steps=10, batch_size=[2])
    root = env.reset()
    root = env.step(env.rand_action(root))["next"].exclude("reward")
    root.set("_reset", col(False, True))
    out = env.reset(root)
    assert out["data", "states"].tolist() == [[1.0] * 3, [0.0] * 3]
    cenv = ContinuousActionEnv(batch_size=[2])
    root = cenv.reset()
    root.set("action", torch.ones(2, 2))
    root = cenv.step(root)["next"].exclude("reward")
    root.set("_reset", col(True, False))
    assert cenv.reset(root)["observation"].tolist() == [[0.0, 0.0], [1.0, 1.0]]
