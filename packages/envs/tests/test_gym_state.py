"""GymWrapper.state_dict: a gymnasium env's whole state as data, restored into a fresh env."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import EnvStateWarning
from rlbricks.envs import GymEnv
from rlbricks.envs import GymWrapper
from rlbricks.tensordict import TensorDict

gym = pytest.importorskip("gymnasium")

DATA = (np.ndarray, int, float, str, bool, type(None))


def assert_plain_data(tree: Any, where: str = "state") -> None:
    """Only what a checkpoint stores without pickle: arrays, numbers, strings, containers."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            assert isinstance(key, str), f"{where}: key {key!r}"
            assert_plain_data(value, f"{where}.{key}")
    elif isinstance(tree, (list, tuple)):
        for i, value in enumerate(tree):
            assert_plain_data(value, f"{where}[{i}]")
    else:
        assert isinstance(tree, DATA), f"{where}: {type(tree).__name__}"
        if isinstance(tree, np.ndarray):
            assert not tree.dtype.hasobject, where


def play(env: GymWrapper, root: TensorDict, steps: int, seed: int) -> tuple[list[Any], TensorDict]:
    """``steps`` random steps (actions from a torch generator seeded with ``seed``)."""
    torch.manual_seed(seed)
    out = []
    for _ in range(steps):
        td, root = env.step_and_maybe_reset(env.rand_action(root))
        out.append(td.clone())
    return out, root


def assert_same(a: list[TensorDict], b: list[TensorDict]) -> None:
    for i, (x, y) in enumerate(zip(a, b)):
        for key in ("observation", "reward", "terminated", "truncated"):
            assert torch.equal(x["next", key], y["next", key]), f"step {i}: {key}"


@pytest.mark.parametrize("num_envs", [None, 4])
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_a_fresh_env_continues_the_saved_episodes_exactly(
    env_id: str, num_envs: int | None
) -> None:
    env = GymEnv(env_id, num_envs=num_envs)
    env.set_seed(0)
    _, root = play(env, env.reset(), 150, seed=1)  # Pendulum: mid-episode, 50 steps from truncation
    state = env.state_dict()
    assert state["exact"] is True
    assert_plain_data(state)

    fresh = GymEnv(env_id, num_envs=num_envs)
    fresh.set_seed(123)  # another seed and another episode: all overwritten by the state
    fresh.reset()
    fresh.load_state_dict(state)
    expected, _ = play(env, root.clone(), 300, seed=2)
    got, _ = play(fresh, root.clone(), 300, seed=2)
    assert_same(expected, got)
    assert any(bool(td["next", "done"].any()) for td in got)  # episodes ended and restarted


def test_a_state_saved_with_resets_pending_restores_them() -> None:
    # same-step autoreset: gymnasium already started the new episodes of finished sub-envs
    env = GymEnv("CartPole-v1", num_envs=3)
    env.set_seed(0)
    torch.manual_seed(0)
    td = env.reset()
    while True:
        td = env.step(env.rand_action(td))
        if bool(td["next", "done"].any()):
            break
        td = env.maybe_reset(td["next"].clone())
    state = env.state_dict()
    assert state["pending_mask"] is not None
    fresh = GymEnv("CartPole-v1", num_envs=3)
    fresh.load_state_dict(state)
    root = td["next"].clone()
    a, _ = play(env, env.maybe_reset(root.clone()), 50, seed=3)
    b, _ = play(fresh, fresh.maybe_reset(root.clone()), 50, seed=3)
    assert_same(a, b)


class Cloud:
    """An object the state cannot hold as data."""


def test_state_that_is_not_data_is_named_and_warned_about() -> None:
    base = gym.make("CartPole-v1")
    base.unwrapped.cloud = Cloud()
    env = GymWrapper(base)
    state = env.state_dict()
    assert state["exact"] is False
    assert state["gym"]["unsaved"] == ["CartPoleEnv.cloud (Cloud)"]
    other = gym.make("CartPole-v1")
    with pytest.warns(EnvStateWarning, match=r"without CartPoleEnv\.cloud \(Cloud\)"):
        GymWrapper(other).load_state_dict(state)


def test_process_backed_vector_envs_are_not_exact() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, vectorization_mode="async")
    try:
        state = env.state_dict()
    finally:
        env.close()
    assert state["exact"] is False
    assert "worker processes" in state["gym"]["unsaved"][0]


def test_an_env_built_differently_is_refused() -> None:
    state = GymEnv("CartPole-v1").state_dict()
    with pytest.raises(EnvError, match=r"wrappers are .*build the env the same way"):
        GymWrapper(gym.make("CartPole-v1", disable_env_checker=True)).load_state_dict(state)
    with pytest.raises(EnvError, match="vector env of 3 sub-envs from one of 2"):
        GymEnv("CartPole-v1", num_envs=3).load_state_dict(
            GymEnv("CartPole-v1", num_envs=2).state_dict()
        )


@pytest.mark.parametrize("num_envs", [None, 2])
def test_mujoco_envs_continue_exactly(
    num_envs: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MjData: every array field (derived quantities included) and the time are saved
    pytest.importorskip("mujoco")
    monkeypatch.setenv("MUJOCO_GL", "disable")
    env = GymEnv("HalfCheetah-v5", num_envs=num_envs)
    env.set_seed(0)
    _, root = play(env, env.reset(), 30, seed=1)
    state = env.state_dict()
    assert state["exact"] is True, state["gym"]["unsaved"]
    assert_plain_data(state)
    fresh = GymEnv("HalfCheetah-v5", num_envs=num_envs)
    fresh.set_seed(5)
    fresh.reset()
    fresh.load_state_dict(state)
    expected, _ = play(env, root.clone(), 40, seed=2)
    got, _ = play(fresh, root.clone(), 40, seed=2)
    assert_same(expected, got)
