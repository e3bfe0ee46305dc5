"""``GymWrapper`` / ``GymEnv``: specs, rollouts, pixels, frame skip, seeding, vector envs."""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np
import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import check_env_specs
from rlbricks.envs import step_mdp
from rlbricks.envs._gym import GymEnv
from rlbricks.envs._gym import GymWrapper
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import OneHot
from rlbricks.tensordict import TensorDict

gym: Any = pytest.importorskip("gymnasium")


def _has(module: str) -> bool:
    try:
        __import__(module)
    except Exception:
        return False
    return True


needs_pygame = pytest.mark.skipif(not _has("pygame"), reason="CartPole rendering needs pygame")
needs_mujoco = pytest.mark.skipif(not _has("mujoco"), reason="mujoco is not importable")


class DictInfoEnv(gym.Env):
    """Dict observations; ``info["count"]`` (int) only on steps, ``info["pos"]`` always."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Dict(
            {"x": gym.spaces.Box(-10.0, 10.0, (2,)), "k": gym.spaces.Discrete(5, start=1)}
        )
        self.action_space = gym.spaces.Discrete(2)
        self.count = 0

    def _obs(self) -> dict[str, Any]:
        return {"x": np.full(2, self.count, np.float32), "k": 1 + self.count % 5}

    def reset(self, *, seed: int | None = None, options: Any = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.count = 0
        return self._obs(), {"pos": np.array([0.5, -0.5])}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.count += 1
        info = {"count": self.count, "pos": np.array([1.0, 2.0])}
        return self._obs(), float(action), self.count >= 4, False, info


# ---------------------------------------------------------------------- #
# single envs
# ---------------------------------------------------------------------- #
def test_cartpole_rollout_and_specs() -> None:
    env = GymEnv("CartPole-v1")
    check_env_specs(env, steps=30, seed=0)
    assert isinstance(env.action_spec, OneHot)
    assert env.action_spec.shape == (2,)
    td = env.rollout(50)
    assert td["observation"].shape[-1] == 4
    assert td["next", "reward"].dtype == torch.float32
    assert td["next", "done"].shape == (td.batch_size[0], 1)
    env.close()


def test_pendulum_rollout_and_specs() -> None:
    env = GymEnv("Pendulum-v1")
    check_env_specs(env, steps=10, seed=0)
    assert isinstance(env.action_spec, Bounded)
    assert env.action_spec.shape == (1,)
    td = env.rollout(210, break_when_any_done=False)
    assert td.batch_size == (210,)
    assert td["next", "truncated"].any()
    assert not td["next", "terminated"].any()


@needs_mujoco
def test_half_cheetah_rollout_and_specs() -> None:
    env = GymEnv("HalfCheetah-v5")
    check_env_specs(env, steps=5, seed=0)
    td = env.rollout(20)
    assert td["next", "observation"].shape == (20, 17)
    assert td["next", "observation"].dtype == torch.float64  # the Box dtype is kept
    env.close()


def test_categorical_vs_one_hot_actions() -> None:
    cat = GymEnv("CartPole-v1", categorical_action_encoding=True)
    hot = GymEnv("CartPole-v1")
    assert isinstance(cat.action_spec, Categorical)
    assert cat.action_spec.shape == ()
    cat.set_seed(3)
    hot.set_seed(3)
    td_c, td_h = cat.reset(), hot.reset()
    for action in [0, 1, 1, 0, 1]:
        td_c = step_mdp(cat.step(td_c.set("action", torch.tensor(action))))
        onehot = hot.action_spec.to_one_hot(torch.tensor(action))  # type: ignore[attr-defined]
        td_h = step_mdp(hot.step(td_h.set("action", onehot)))
        assert torch.equal(td_c["observation"], td_h["observation"])


def test_seeding_reproducible() -> None:
    def run(seed: int) -> TensorDict:
        env = GymEnv("CartPole-v1")
        env.set_seed(seed)
        torch.manual_seed(0)
        return env.rollout(40, break_when_any_done=False)

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a["next", "observation"], b["next", "observation"])
    assert torch.equal(a["next", "done"], b["next", "done"])
    assert not torch.equal(a["observation"][0], c["observation"][0])


def test_frame_skip_matches_repeated_steps() -> None:
    env = GymEnv("CartPole-v1", frame_skip=3, categorical_action_encoding=True)
    env.set_seed(0)
    td = env.rollout(100, policy=lambda td: td.set("action", torch.tensor(1)))
    ref = gym.make("CartPole-v1")
    obs, _ = ref.reset(seed=0)
    rewards, observations, done = [], [], False
    while not done:
        total = 0.0
        for _ in range(3):
            obs, r, term, trunc, _ = ref.step(1)
            total += float(r)
            done = term or trunc
            if done:
                break
        rewards.append(total)
        observations.append(obs)
    assert td["next", "reward"].squeeze(-1).tolist() == rewards
    np.testing.assert_allclose(td["next", "observation"].numpy(), np.stack(observations))
    assert td["next", "reward"][:-1].eq(3).all()


def test_dict_observation_and_info_keys() -> None:
    env = GymWrapper(DictInfoEnv(), info_keys=("count", "pos", "missing"))
    spec = env.observation_spec
    assert set(spec.keys()) == {"x", "k", "count", "pos", "missing"}
    assert spec["count"].dtype == torch.int64
    assert spec["pos"].shape == (2,)
    assert spec["missing"].dtype == torch.float32
    check_env_specs(env, steps=6)
    td = env.rollout(4)
    assert td["count"].tolist() == [0, 1, 2, 3]  # absent on reset -> 0
    assert td["next", "count"].tolist() == [1, 2, 3, 4]
    assert td["k"].tolist() == [0, 1, 2, 3]  # Discrete(start=1) stored as index
    assert td["pos"][0].tolist() == [0.5, -0.5]
    assert td["next", "pos"][0].tolist() == [1.0, 2.0]
    assert td["next", "missing"].eq(0).all()


@needs_pygame
def test_pixels() -> None:
    env = GymEnv("CartPole-v1", from_pixels=True)
    td = env.rollout(3)
    assert td["pixels"].dtype == torch.uint8
    assert td["pixels"].shape == (3, 400, 600, 3)
    assert td["pixels"].float().std() > 0
    assert "observation" in td.keys()
    env.close()
    only = GymEnv("CartPole-v1", from_pixels=True, pixels_only=True)
    check_env_specs(only, steps=2, seed=0)
    assert set(only.observation_spec.keys()) == {"pixels"}
    only.close()


def test_pixels_need_rgb_array() -> None:
    with pytest.raises(EnvError, match="rgb_array"):
        GymWrapper(gym.make("CartPole-v1"), from_pixels=True)
    with pytest.raises(ValueError, match="from_pixels"):
        GymEnv("CartPole-v1", pixels_only=True)


def test_import_error_names_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(
        ImportError, match=r'GymEnv needs gymnasium: pip install "rlbricks-envs\[gym\]"'
    ):
        GymEnv("CartPole-v1")


# ---------------------------------------------------------------------- #
# vector envs
# ---------------------------------------------------------------------- #
def test_vector_autoreset_matches_reference_loop() -> None:
    """Each sub-env must replay a plain gymnasium loop: same seeds, same actions."""
    n, steps, seed = 3, 200, 7
    env = GymEnv("CartPole-v1", num_envs=n, categorical_action_encoding=True)
    env.set_seed(seed)
    torch.manual_seed(0)
    td = env.rollout(steps, break_when_any_done=False)
    env.close()
    assert td.batch_size == (n, steps)
    assert td["next", "done"].sum() >= 3 * n  # several episode boundaries per sub-env
    for i in range(n):
        ref = gym.make("CartPole-v1")
        obs, _ = ref.reset(seed=seed + i)  # gymnasium vector envs seed sub-env i with seed + i
        for t in range(steps):
            torch.testing.assert_close(td["observation"][i, t], torch.as_tensor(obs))
            obs, reward, term, trunc, _ = ref.step(int(td["action"][i, t]))
            torch.testing.assert_close(td["next", "observation"][i, t], torch.as_tensor(obs))
            assert td["next", "reward"][i, t, 0].item() == reward
            assert td["next", "terminated"][i, t, 0].item() == term
            assert td["next", "truncated"][i, t, 0].item() == trunc
            if term or trunc:
                obs, _ = ref.reset()


def test_vector_partial_reset_keeps_other_envs() -> None:
    env = GymEnv("CartPole-v1", num_envs=3, categorical_action_encoding=True)
    env.set_seed(0)
    root = step_mdp(env.rand_step(env.reset()))
    root.set("_reset", torch.tensor([[False], [True], [False]]))
    out = env.reset(root)
    assert "_reset" not in out.keys()
    assert torch.equal(out["observation"][[0, 2]], root["observation"][[0, 2]])
    assert not torch.equal(out["observation"][1], root["observation"][1])
    assert out["observation"][1].abs().max() <= 0.05  # CartPole starts within +-0.05
    nxt = env.step(env.rand_action(out))["next"]
    assert not nxt["done"].any()
    env.close()


def test_vector_specs_pixels_and_frame_skip() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, frame_skip=2)
    assert env.batch_size == (2,)
    assert env.action_spec.shape == (2, 2)
    check_env_specs(env, steps=20, seed=0)
    td = env.rollout(5)
    assert td["next", "reward"][:, :-1].eq(2).all()
    env.close()
    if _has("pygame"):
        env = GymEnv("CartPole-v1", num_envs=2, from_pixels=True)
        td = env.rollout(2)
        assert td["pixels"].shape == (2, 2, 400, 600, 3)
        assert td["pixels"].dtype == torch.uint8
        env.close()


def test_vector_info_keys() -> None:
    gym.register(id="rlbricks-test/DictInfo-v0", entry_point=DictInfoEnv)
    env = GymEnv("rlbricks-test/DictInfo-v0", num_envs=2, info_keys=("count",))
    check_env_specs(env, steps=6)
    td = env.rollout(4)
    assert td["next", "count"].tolist() == [[1, 2, 3, 4]] * 2
    env.close()


def test_async_smoke() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, vectorization_mode="async")
    try:
        check_env_specs(env, steps=30, seed=0)
        td = env.rollout(20, break_when_any_done=False)
        assert td.batch_size == (2, 20)
    finally:
        env.close()


class _SlowCartPole(gym.Wrapper):  # type: ignore[misc]
    """CartPole whose step sleeps ``pause`` seconds when its position is set to hang."""

    def __init__(self, env: Any, pause: float) -> None:
        super().__init__(env)
        self.pause = pause
        self.steps = 0

    def step(self, action: Any) -> Any:
        self.steps += 1
        if self.steps == 3:
            import time

            time.sleep(self.pause)
        return self.env.step(action)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_async_workers_that_hang_are_killed_and_named() -> None:
    from rlbricks.envs import EnvTimeoutError

    gym.register("rlbricks-test/SlowCartPole-v0",
                 entry_point=lambda **kw: _SlowCartPole(gym.make("CartPole-v1"), pause=3600.0))  # fmt: skip
    env = GymEnv("rlbricks-test/SlowCartPole-v0", num_envs=2, vectorization_mode="async",
                 timeout=1.0)  # fmt: skip
    assert env.env.timeout == 1.0
    pids = [p.pid for p in env.env.processes]
    env.reset()
    with pytest.raises(EnvTimeoutError, match=r"worker\(s\) 0 \(pid \d+\), 1 \(pid \d+\) timed "
                       r"out during 'step'.*timeout=1.0 s.*GymEnv\(\.\.\., timeout=\.\.\.\)") as err:  # fmt: skip
        env.rollout(5, break_when_any_done=False)
    assert err.value.phase == "step"
    assert err.value.elapsed is not None
    assert err.value.elapsed >= 1.0
    assert not any(_alive(pid) for pid in pids)  # killed and reaped
    env.close()


def test_async_default_timeout() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, vectorization_mode="async")
    try:
        assert env.env.timeout == 60.0
    finally:
        env.close()
    with pytest.raises(ValueError, match="timeout must be a positive"):
        GymEnv("CartPole-v1", num_envs=2, vectorization_mode="async", timeout=0)


def test_wrapping_an_autoresetting_vector_env_is_refused() -> None:
    venv = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    with pytest.raises(EnvError, match=r"AutoresetMode\.DISABLED"):
        GymWrapper(venv)
    venv.close()
    ok = gym.make_vec(
        "CartPole-v1",
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
    )
    with pytest.raises(ValueError, match="per sub-env"):
        GymWrapper(ok, frame_skip=2)
    check_env_specs(GymWrapper(ok), steps=10)
    ok.close()


def test_bad_vectorization_mode() -> None:
    with pytest.raises(ValueError, match="vectorization_mode"):
        GymEnv("CartPole-v1", num_envs=2, vectorization_mode="threads")


# ---------------------------------------------------------------------- #
# Atari
# ---------------------------------------------------------------------- #
def test_atari_pixels_smoke() -> None:
    pytest.importorskip("ale_py")
    try:
        env = GymEnv("ALE/Pong-v5", from_pixels=True, categorical_action_encoding=True)
    except Exception as err:  # ROMs missing or ALE unavailable
        pytest.skip(f"ALE/Pong-v5 unavailable: {err}")
    assert env.observation_spec["observation"].dtype == torch.uint8  # obs_type="rgb"
    assert env.observation_spec["pixels"].shape == (210, 160, 3)
    check_env_specs(env, steps=3, seed=0)
    env.close()
