"""check_env_specs and step_spec."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import EnvError
from rlbricks.envs import check_env_specs
from rlbricks.envs import step_spec
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.specs import Bounded
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict

FAKES = [CountingEnv, NestedSpecEnv, ContinuousActionEnv]


@pytest.mark.parametrize("env_cls", FAKES)
@pytest.mark.parametrize("batch_size", [(), (3,)])
def test_fakes_pass(env_cls: Any, batch_size: tuple[int, ...]):
    env = env_cls(max_steps=2, batch_size=batch_size)
    check_env_specs(env)
    check_env_specs(env, steps=5, seed=1)
    assert env.seed == 1


def test_step_spec_layout():
    spec = step_spec(ContinuousActionEnv(batch_size=[2]))
    assert spec.shape == (2,)
    assert sorted(spec.keys()) == [
        "action",
        "done",
        "next",
        "observation",
        "terminated",
        "truncated",
    ]
    assert sorted(spec["next"].keys()) == [
        "done",
        "observation",
        "reward",
        "terminated",
        "truncated",
    ]
    assert isinstance(spec["action"], Bounded)


def test_step_spec_includes_state_spec_at_root_only():
    env = CountingEnv()
    env.state_spec = Composite(hidden=Unbounded(shape=(4,)))
    spec = step_spec(env)
    assert "hidden" in spec
    assert "hidden" not in spec["next"]


class BadEnv(EnvBase):
    """Breaks its specs in chosen ways."""

    def __init__(self, *, out_of_bounds: bool, missing: bool, extra: bool) -> None:
        super().__init__()
        self.out_of_bounds, self.missing, self.extra = out_of_bounds, missing, extra
        self.observation_spec = Composite(
            observation=Bounded(-1.0, 1.0, shape=(2,)), velocity=Unbounded(shape=(1,))
        )
        self.action_spec = Unbounded(shape=(1,))

    def _obs(self) -> TensorDict:
        value = 5.0 if self.out_of_bounds else 0.5
        td = TensorDict({"observation": torch.full((2,), value)})
        if not self.missing:
            td.set("velocity", torch.zeros(1))
        if self.extra:
            td.set("secret", torch.zeros(3))
        return td

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        return self._obs()

    def _step(self, tensordict: TensorDict) -> TensorDict:
        return self._obs().set("reward", torch.zeros(1))

    def _set_seed(self, seed: int) -> None:
        pass


def test_good_version_of_bad_env_passes():
    check_env_specs(BadEnv(out_of_bounds=False, missing=False, extra=False))


def test_out_of_bounds_reported_with_range():
    with pytest.raises(EnvError) as info:
        check_env_specs(BadEnv(out_of_bounds=True, missing=False, extra=False))
    msg = str(info.value)
    assert msg.startswith("BadEnv does not match its specs")
    assert "out of range" in msg
    assert "observation" in msg
    assert "5" in msg


def test_missing_key_reported():
    with pytest.raises(EnvError, match="velocity"):
        check_env_specs(BadEnv(out_of_bounds=False, missing=True, extra=False))


def test_extra_key_reported():
    with pytest.raises(EnvError, match=r"not declared in any spec: \[.*secret"):
        check_env_specs(BadEnv(out_of_bounds=False, missing=False, extra=True))


def test_all_problems_reported_at_once():
    with pytest.raises(EnvError) as info:
        check_env_specs(BadEnv(out_of_bounds=True, missing=True, extra=True))
    msg = str(info.value)
    assert "out of range" in msg
    assert "velocity" in msg
    assert "secret" in msg
    # the same problem at every step is reported once
    assert msg.count("not declared") == 1
    assert msg.count("step ") == 1


def test_wrong_dtype_reported():
    class Float64Env(CountingEnv):
        def _step(self, tensordict: TensorDict) -> TensorDict:
            return super()._step(tensordict).set("observation", self.count.double())

    with pytest.raises(EnvError, match="observation"):
        check_env_specs(Float64Env())


def test_env_exceptions_propagate():
    from rlbricks.envs.testing import CrashingEnv

    with pytest.raises(RuntimeError, match="planned crash"):
        check_env_specs(CrashingEnv(crash_after=1))
