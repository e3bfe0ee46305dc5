"""The random-action rollout of gymnasium envs gives what the generic loop gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import GymEnv
from rlbricks.envs import GymWrapper
from rlbricks.envs._gym_rollout import random_rollout
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close


def _replay(actions: torch.Tensor, time_dim: int) -> Callable[[TensorDict], TensorDict]:
    """A policy writing the recorded actions one step after the other."""
    steps = iter(actions.unbind(time_dim))

    def policy(td: TensorDict) -> TensorDict:
        td.set("action", next(steps).clone())
        return td

    return policy


def _fast_then_generic(
    make: Callable[[], GymWrapper], steps: int, break_when_any_done: bool, seed: int = 3
) -> tuple[TensorDict, TensorDict]:
    fast_env, generic_env = make(), make()
    try:
        fast_env.set_seed(seed)
        out = random_rollout(fast_env, fast_env.reset(), steps, break_when_any_done)
        assert out is not None  # the fast loop ran: it is what is compared
        fast = out
        generic_env.set_seed(seed)
        policy = _replay(fast["action"], len(fast_env.batch_size))
        generic = generic_env.rollout(steps, policy, break_when_any_done=break_when_any_done)
    finally:
        fast_env.close()
        generic_env.close()
    return fast, generic


def _check_same(fast: TensorDict, generic: TensorDict) -> None:
    assert list(fast.keys(include_nested=True)) == list(generic.keys(include_nested=True))
    assert_close(fast, generic, rtol=0, atol=0)
    for key in fast.keys(include_nested=True, leaves_only=True):
        assert fast.get(key).is_contiguous(), key


CASES: dict[str, Callable[[], GymWrapper]] = {
    "cartpole-one-hot": lambda: GymEnv("CartPole-v1"),
    "cartpole-categorical": lambda: GymEnv("CartPole-v1", categorical_action_encoding=True),
    "pendulum": lambda: GymEnv("Pendulum-v1"),
    "cartpole-vector": lambda: GymEnv("CartPole-v1", num_envs=4),
    "cartpole-vector-categorical": lambda: GymEnv(
        "CartPole-v1", num_envs=3, categorical_action_encoding=True
    ),
    "pendulum-vector": lambda: GymEnv("Pendulum-v1", num_envs=2),
    "cartpole-short-episodes": lambda: GymEnv("CartPole-v1", max_episode_steps=7),
    "cartpole-vector-short-episodes": lambda: GymEnv(
        "CartPole-v1", num_envs=3, max_episode_steps=5
    ),
    "cartpole-vector-disabled-short-episodes": lambda: GymWrapper(
        gym.make_vec(
            "CartPole-v1",
            num_envs=3,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED, "copy": False},
            max_episode_steps=5,
        )
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("break_when_any_done", [False, True])
def test_random_rollout_matches_the_generic_loop(case: str, break_when_any_done: bool) -> None:
    fast, generic = _fast_then_generic(CASES[case], 120, break_when_any_done)
    _check_same(fast, generic)
    done = fast["next", "done"]
    if not break_when_any_done and "short" in case:
        assert int(done.sum()) >= 2  # resets happened inside the rollout


def test_random_rollout_matches_the_generic_loop_async() -> None:
    fast, generic = _fast_then_generic(
        lambda: GymEnv("CartPole-v1", num_envs=2, vectorization_mode="async", max_episode_steps=6),
        40,
        False,
    )
    _check_same(fast, generic)


def test_random_rollout_with_a_shifted_discrete_space() -> None:
    class Shifted(gym.Env[np.ndarray, int]):
        """Action in {-1, 0, 1}; the observation is the sum of actions; ends after 4 steps."""

        observation_space = gym.spaces.Box(-10.0, 10.0, (1,), dtype=np.float32)
        action_space = gym.spaces.Discrete(3, start=-1)

        def reset(self, *, seed: Any = None, options: Any = None) -> tuple[np.ndarray, dict]:
            super().reset(seed=seed)
            self.x, self.t = 0.0, 0
            return np.array([self.x], dtype=np.float32), {}

        def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
            assert action in (-1, 0, 1)
            self.x += action
            self.t += 1
            return np.array([self.x], dtype=np.float32), float(action), self.t == 4, False, {}

    fast, generic = _fast_then_generic(lambda: GymWrapper(Shifted()), 30, False)
    _check_same(fast, generic)
    index = fast["action"].long().argmax(-1) - 1
    assert torch.equal(fast["next", "reward"].squeeze(-1), index.float())


def test_random_rollout_declines_what_it_does_not_cover() -> None:
    env = GymEnv("CartPole-v1")
    try:
        root = env.reset()
        root.set("extra", torch.zeros(()))  # a root key the generic loop must carry
        assert random_rollout(env, root, 5, False) is None
        out = env.rollout(5, auto_reset=False, tensordict=root, break_when_any_done=False)
        assert "extra" in out.keys()
        assert out.batch_size == (5,)
        env.action_spec.update_mask(torch.tensor([True, False]))  # type: ignore[attr-defined]
        assert random_rollout(env, env.reset(), 5, False) is None
    finally:
        env.close()

    class Custom(GymEnv):
        def _step(self, tensordict: TensorDict) -> TensorDict:
            out = super()._step(tensordict)
            out.set("reward", out.get("reward") * 2)
            return out

    custom = Custom("CartPole-v1")
    try:
        custom.set_seed(0)
        assert random_rollout(custom, custom.reset(), 5, False) is None
        rewards = custom.rollout(5, break_when_any_done=False)["next", "reward"]
        assert torch.equal(rewards, torch.full((5, 1), 2.0))  # the override ran
    finally:
        custom.close()


def test_random_rollout_on_a_closed_env_raises() -> None:
    env = GymEnv("CartPole-v1")
    root = env.reset()
    env.close()
    with pytest.raises(EnvError, match="closed"):
        env.rollout(3, auto_reset=False, tensordict=root)
