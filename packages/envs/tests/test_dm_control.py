"""DMControlEnv / DMControlWrapper on real dm_control tasks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "disable")
suite = pytest.importorskip("dm_control.suite")

from rlbricks.envs import EnvError  # noqa: E402
from rlbricks.envs import check_env_specs  # noqa: E402
from rlbricks.envs._dm_control import DMControlEnv  # noqa: E402
from rlbricks.envs._dm_control import DMControlWrapper  # noqa: E402
from rlbricks.specs import Bounded  # noqa: E402
from rlbricks.specs import Unbounded  # noqa: E402


def test_cheetah_run_specs_and_rollout():
    env = DMControlEnv("cheetah", "run")
    obs = env.observation_spec
    assert sorted(obs.keys()) == ["position", "velocity"]
    assert isinstance(obs["position"], Unbounded)
    assert obs["position"].shape == (8,)
    assert obs["velocity"].shape == (9,)
    assert obs["position"].dtype == torch.float32
    assert isinstance(env.action_spec, Bounded)
    assert env.action_spec.shape == (6,)
    assert env.action_spec.dtype == torch.float32
    assert env.reward_spec.shape == (1,)
    td = env.rollout(20)
    assert td.batch_size == (20,)
    assert td["next", "velocity"].shape == (20, 9)
    assert td["next", "reward"].dtype == torch.float32
    assert not td["next", "done"].any()
    check_env_specs(env)


def test_scalar_observations_become_vectors():
    env = DMControlEnv("walker", "stand")
    assert env.observation_spec["height"].shape == (1,)
    assert env.reset()["height"].shape == (1,)


def test_concat_observations():
    env = DMControlEnv("cheetah", "run", concat_observations=True)
    assert list(env.observation_spec.keys()) == ["observation"]
    assert env.observation_spec["observation"].shape == (17,)
    _ = env.set_seed(3)
    flat = env.reset()["observation"]
    split = DMControlEnv("cheetah", "run")
    _ = split.set_seed(3)
    root = split.reset()
    assert torch.equal(flat, torch.cat([root["position"], root["velocity"]]))
    check_env_specs(env)


def test_seeding_is_reproducible():
    env = DMControlEnv("cheetah", "run")
    assert env.set_seed(7) == 8
    a = env.reset()["position"]
    env.set_seed(7)
    b = env.reset()["position"]
    env.set_seed(8)
    c = env.reset()["position"]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    other = DMControlEnv("cheetah", "run", task_kwargs={"random": 7})
    assert torch.equal(other.reset()["position"], a)


def test_wrapper_seeding_reseeds_task_random_state():
    env = DMControlWrapper(suite.load("cartpole", "balance"))
    env.set_seed(1)
    a = env.reset()["position"]
    env.set_seed(1)
    assert torch.equal(env.reset()["position"], a)


def test_time_limit_truncates():
    env = DMControlEnv("cheetah", "run", task_kwargs={"time_limit": 0.05})
    td = env.rollout(20)
    assert td.batch_size == (5,)
    assert td["next", "truncated"].squeeze(-1).tolist() == [False] * 4 + [True]
    assert not td["next", "terminated"].any()
    assert td["next", "done"][-1].item()


def test_frame_skip_sums_rewards_and_stops_at_the_end():
    env = DMControlEnv("cheetah", "run", task_kwargs={"time_limit": 0.05}, frame_skip=2)
    td = env.rollout(20)
    assert td.batch_size == (3,)
    assert td["next", "truncated"][-1].item()
    with pytest.raises(ValueError, match="frame_skip"):
        DMControlEnv("cheetah", "run", frame_skip=0)


def test_discount_zero_at_last_step_terminates(monkeypatch: pytest.MonkeyPatch):
    dm_env = suite.load("cartpole", "balance")
    real_step = dm_env.step

    def step(action: Any) -> Any:
        ts = real_step(action)
        return ts._replace(step_type=ts.step_type.LAST, discount=0.0)

    monkeypatch.setattr(dm_env, "step", step)
    env = DMControlWrapper(dm_env)
    td = env.rollout(5)
    assert td.batch_size == (1,)
    assert td["next", "terminated"].item()
    assert not td["next", "truncated"].item()


def test_actions_reach_the_simulator():
    env = DMControlEnv("cartpole", "balance")
    env.set_seed(0)
    env.reset()
    push = env.rollout(5, policy=lambda td: td.set("action", torch.ones(1)))
    env.set_seed(0)
    pull = env.rollout(5, policy=lambda td: td.set("action", -torch.ones(1)))
    assert not torch.equal(push["next", "velocity"], pull["next", "velocity"])


def test_pixels_only_needs_from_pixels():
    with pytest.raises(ValueError, match="from_pixels"):
        DMControlEnv("cheetah", "run", pixels_only=True)


def test_close_and_repr():
    with DMControlEnv("cartpole", "balance") as env:
        assert repr(env).startswith("DMControlEnv(domain='cartpole', task='balance'")
    with pytest.raises(EnvError, match="closed"):
        env.reset()


def test_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    for name in list(sys.modules):
        if name == "dm_control" or name.startswith("dm_control."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "dm_control", None)
    with pytest.raises(
        ImportError,
        match=r'DMControlEnv needs dm_control: pip install "rlbricks-envs\[dm_control\]"',
    ):
        DMControlEnv("cheetah", "run")


PIXELS_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["MUJOCO_GL"] = "egl"
    import torch
    from rlbricks.envs import check_env_specs
    from rlbricks.envs._dm_control import DMControlEnv
    env = DMControlEnv("cartpole", "balance", from_pixels=True, pixels_only=True)
    assert list(env.observation_spec.keys()) == ["pixels"]
    td = env.rollout(3)
    assert td["next", "pixels"].shape == (3, 84, 84, 3), td["next", "pixels"].shape
    assert td["next", "pixels"].dtype == torch.uint8
    assert td["next", "pixels"].float().std() > 0
    check_env_specs(env)
    both = DMControlEnv("cartpole", "balance", from_pixels=True)
    assert sorted(both.observation_spec.keys()) == ["pixels", "position", "velocity"]
    print("OK")
    """
)


def _egl_available() -> bool:
    probe = (
        "import os; os.environ['MUJOCO_GL']='egl'; import mujoco.egl; mujoco.egl.GLContext(8, 8)"
    )
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


@pytest.mark.skipif(not _egl_available(), reason="no EGL: cannot render MuJoCo headless here")
def test_from_pixels():
    # MUJOCO_GL is read once per process, when dm_control is first imported: use a fresh one
    result = subprocess.run(
        [sys.executable, "-c", PIXELS_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")


def test_from_pixels_without_renderer_raises_clearly():
    if os.environ.get("MUJOCO_GL") != "disable":
        pytest.skip("rendering was enabled before dm_control was imported in this process")
    with pytest.raises(EnvError, match="MUJOCO_GL=egl"):
        DMControlEnv("cartpole", "balance", from_pixels=True)
