"""Vector envs in gymnasium's same-step autoreset mode, and their DISABLED twins."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import GymEnv
from rlbricks.envs import GymWrapper
from rlbricks.envs import check_env_specs
from rlbricks.envs import step_mdp
from rlbricks.envs._gym_rollout import random_rollout
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close

MODES = gym.vector.AutoresetMode


def _wrapped(mode: Any, vectorization: str = "sync", **kwargs: Any) -> GymWrapper:
    venv = gym.make_vec(
        "CartPole-v1",
        num_envs=3,
        vectorization_mode=vectorization,
        vector_kwargs={"autoreset_mode": mode, "copy": False},
        max_episode_steps=4,
    )
    return GymWrapper(venv, categorical_action_encoding=True, **kwargs)


def _policy_rollout(env: GymWrapper, actions: torch.Tensor) -> TensorDict:
    steps = iter(actions.unbind(1))

    def policy(td: TensorDict) -> TensorDict:
        return td.set("action", next(steps).clone())

    env.set_seed(11)
    return env.rollout(actions.shape[1], policy, break_when_any_done=False)


@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_same_step_and_disabled_give_the_same_trajectories(vectorization: str) -> None:
    actions = torch.randint(0, 2, (3, 14), generator=torch.Generator().manual_seed(0))
    same, disabled = _wrapped(MODES.SAME_STEP, vectorization), _wrapped(MODES.DISABLED)
    try:
        a = _policy_rollout(same, actions)
        b = _policy_rollout(disabled, actions)
        assert int(a["next", "truncated"].sum()) == 9  # every sub-env cut at 4, 8 and 12 steps
        assert_close(a, b, rtol=0, atol=0)
        for env in (same, disabled):  # the random-action fast path agrees too
            env.set_seed(3)
            torch.manual_seed(5)
            fast = random_rollout(env, env.reset(), 14, False)
            assert fast is not None
            if env is same:
                reference = fast
        assert_close(fast, reference, rtol=0, atol=0)
    finally:
        same.close()
        disabled.close()


def test_gym_env_picks_same_step_for_array_observations_only() -> None:
    env = GymEnv("CartPole-v1", num_envs=2)
    assert env.env.metadata["autoreset_mode"] == MODES.SAME_STEP
    check_env_specs(env, steps=30)
    env.close()
    pixels = GymEnv("CartPole-v1", num_envs=2, from_pixels=True, pixels_only=True)
    assert pixels.env.metadata["autoreset_mode"] == MODES.DISABLED
    pixels.close()


def test_dict_observations_fall_back_to_disabled() -> None:
    class DictObs(gym.Env[dict, int]):
        observation_space = gym.spaces.Dict({"x": gym.spaces.Box(-1.0, 1.0, (2,))})
        action_space = gym.spaces.Discrete(2)

        def reset(self, *, seed: Any = None, options: Any = None) -> tuple[dict, dict]:
            super().reset(seed=seed)
            return {"x": np.zeros(2, dtype=np.float32)}, {}

        def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
            return {"x": np.ones(2, dtype=np.float32)}, 1.0, True, False, {}

    gym.register("RlbricksDictObs-v0", entry_point=DictObs)
    try:
        env = GymEnv("RlbricksDictObs-v0", num_envs=2)
        assert env.env.metadata["autoreset_mode"] == MODES.DISABLED
        td = env.rollout(3, break_when_any_done=False)
        assert td["next", "x"].sum().item() == 12.0  # the final observations: all ones
        assert td["x"].sum().item() == 0.0  # every step starts a new episode
        env.close()
    finally:
        gym.registry.pop("RlbricksDictObs-v0")
    venv = gym.vector.SyncVectorEnv([DictObs, DictObs], autoreset_mode=MODES.SAME_STEP)
    with pytest.raises(EnvError, match="DISABLED"):
        GymWrapper(venv)
    venv.close()


def test_stepping_finished_sub_envs_without_a_reset_raises() -> None:
    env = _wrapped(MODES.SAME_STEP)
    try:
        td = env.reset()
        for _ in range(4):  # the 4th step truncates every sub-env
            td = step_mdp(env.step(td.set("action", torch.zeros(3, dtype=torch.int64))))
        assert bool(td["done"].all())
        with pytest.raises(EnvError, match=r"sub-envs \[0, 1, 2\] finished"):
            env.step(td.set("action", torch.zeros(3, dtype=torch.int64)))
        root = env.maybe_reset(td)
        assert not bool(root["done"].any())
        env.step(root.set("action", torch.zeros(3, dtype=torch.int64)))  # fine again
    finally:
        env.close()


def test_partial_resets_with_pending_sub_envs() -> None:
    env = _wrapped(MODES.SAME_STEP)
    try:
        env.set_seed(0)
        td = env.reset()
        for _ in range(4):
            td = step_mdp(env.step(td.set("action", torch.ones(3, dtype=torch.int64))))
        # all three were reset by gymnasium; a mask that leaves one out is refused
        with pytest.raises(EnvError, match="include them"):
            env.reset(td.set("_reset", torch.tensor([[True], [False], [True]])))
        root = env.reset(td.set("_reset", torch.ones(3, 1, dtype=torch.bool)))
        assert bool((root["observation"].abs() < 0.06).all())  # first observations
        # a mask naming a sub-env that is not pending resets it for real
        td = step_mdp(env.step(root.set("action", torch.ones(3, dtype=torch.int64))))
        before = td["observation"].clone()
        out = env.reset(td.set("_reset", torch.tensor([[False], [True], [False]])))
        assert torch.equal(out["observation"][0], before[0])
        assert not torch.equal(out["observation"][1], before[1])
        assert torch.equal(out["observation"][2], before[2])
    finally:
        env.close()


def test_a_full_reset_forgets_pending_sub_envs() -> None:
    env = _wrapped(MODES.SAME_STEP)
    try:
        td = env.reset()
        for _ in range(4):
            td = step_mdp(env.step(td.set("action", torch.ones(3, dtype=torch.int64))))
        td = env.reset()
        env.step(td.set("action", torch.ones(3, dtype=torch.int64)))  # no error
    finally:
        env.close()
