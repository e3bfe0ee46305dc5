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
from rlbricks.envs import step_mdp
from rlbricks.envs._gym_policy_rollout import policy_rollout
from rlbricks.envs._gym_rollout import random_rollout
from rlbricks.specs import Bounded
from rlbricks.specs import OneHot
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close
from rlbricks.tensordict import stack


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


def _generic_loop(
    env: GymWrapper,
    root: TensorDict,
    policy: Callable[[TensorDict], TensorDict],
    steps: int,
    break_when_any_done: bool,
) -> tuple[TensorDict, TensorDict]:
    """The step-by-step loop the array loop stands in for."""
    out = []
    td = root
    for _ in range(steps):
        td = policy(td)
        if break_when_any_done:
            td = env.step(td)
            out.append(td)
            if bool(td["next", "done"].any()):
                break
            td = step_mdp(td)
        else:
            td, td_next = env.step_and_maybe_reset(td)
            out.append(td)
            td = td_next
    return stack(out, len(env.batch_size)), td


def _recurrent_policy(env: GymWrapper, seed: int) -> Callable[[TensorDict], TensorDict]:
    """Random actions from a private generator, a counter carried through ("next", ...)."""
    gen = torch.Generator().manual_seed(seed)
    bs = env.batch_size

    def policy(td: TensorDict) -> TensorDict:
        count = td.get("count", torch.zeros(*bs, 1))
        td.set("count", count)
        td.set(("next", "count"), count + 1 - td["done"].float())
        td.set("seen_done", td["done"].clone())
        spec = env.action_spec
        if isinstance(spec, Bounded):
            action = spec.low + (spec.high - spec.low) * torch.rand(spec.shape, generator=gen)
        else:
            one_hot = isinstance(spec, OneHot)
            shape = spec.shape[: len(spec.shape) - 1] if one_hot else spec.shape
            index = torch.randint(0, spec.n, shape, generator=gen)
            action = spec.to_one_hot(index) if one_hot else index
        td.set("action", action)
        return td

    return policy


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("break_when_any_done", [False, True])
def test_policy_rollout_matches_the_generic_loop(case: str, break_when_any_done: bool) -> None:
    fast_env, generic_env = CASES[case](), CASES[case]()
    try:
        fast_env.set_seed(4)
        generic_env.set_seed(4)
        out = policy_rollout(
            fast_env, fast_env.reset(), _recurrent_policy(fast_env, 1), 40, break_when_any_done
        )
        assert out is not None  # the array loop ran: it is what is compared
        expected, expected_root = _generic_loop(
            generic_env,
            generic_env.reset(),
            _recurrent_policy(generic_env, 1),
            40,
            break_when_any_done,
        )
        fast, fast_root = out
        assert sorted(map(str, fast.keys(True))) == sorted(map(str, expected.keys(True)))
        assert_close(fast, expected, rtol=0, atol=0)
        for key in fast.keys(include_nested=True, leaves_only=True):
            assert fast.get(key).is_contiguous(), key
        if not break_when_any_done:
            assert sorted(fast_root.keys()) == sorted(expected_root.keys())
            for key in expected_root.keys():
                assert torch.equal(fast_root[key], expected_root[key]), key
            # the next rollout continues from the returned root as the generic one does
            again = policy_rollout(fast_env, fast_root, _recurrent_policy(fast_env, 2), 9, False)
            assert again is not None
            expected_again, _ = _generic_loop(
                generic_env, expected_root, _recurrent_policy(generic_env, 2), 9, False
            )
            assert_close(again[0], expected_again, rtol=0, atol=0)
    finally:
        fast_env.close()
        generic_env.close()


def test_policy_rollout_needs_an_action() -> None:
    env = GymEnv("CartPole-v1")
    try:
        with pytest.raises(EnvError, match="did not write 'action'"):
            policy_rollout(env, env.reset(), lambda td: td, 3, False)
    finally:
        env.close()
