"""TransformedEnv and action checks: shape/dtype against its own spec, values at the base env."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import ActionError
from rlbricks.envs import SerialEnv
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Bounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import ClipTransform
from rlbricks.transforms import DoubleToFloat
from rlbricks.transforms import StepCounter
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import UnsqueezeTransform


def step_with(env: TransformedEnv, action: torch.Tensor) -> TensorDict:
    td = env.reset()
    td["action"] = action
    return env.step(td)


def test_the_shape_is_checked_against_the_transformed_spec() -> None:
    env = TransformedEnv(
        ContinuousActionEnv(batch_size=[3]),
        UnsqueezeTransform(-1, in_keys=[], in_keys_inv=["action"]),
    )
    assert env.action_spec.shape == (3, 2, 1)
    with pytest.raises(ActionError, match=r"TransformedEnv\.step.*has shape \[3, 2\].*\[3, 2, 1\]"):
        step_with(env, torch.zeros(3, 2))  # the base env's shape, not the one the user sees
    step_with(env, torch.zeros(3, 2, 1))


def test_values_are_checked_where_they_reach_the_base_env() -> None:
    env = TransformedEnv(CountingEnv(max_steps=5), StepCounter())
    with pytest.raises(ActionError, match=r"CountingEnv\.step.*index \(0,\): 7"):
        step_with(env, torch.tensor([7]))
    with pytest.raises(ActionError, match=r"TransformedEnv\.step.*integer"):
        step_with(env, torch.tensor([0.5]))
    assert int(env.base_env.count) == 0


def test_a_clip_transform_still_clamps_actions_outside_its_box() -> None:
    env = TransformedEnv(
        ContinuousActionEnv(), ClipTransform(-0.5, 0.5, in_keys=[], in_keys_inv=["action"])
    )
    td = step_with(env, torch.tensor([3.0, -0.25]))
    assert td["next", "observation"].tolist() == [0.5, -0.25]
    with pytest.raises(ActionError, match="NaN"):  # NaN has no clamped value: the base refuses it
        step_with(env, torch.tensor([float("nan"), 0.0]))


class DoubleActionEnv(ContinuousActionEnv):
    """``ContinuousActionEnv`` with float64 actions (as dm_control's)."""

    def __init__(self) -> None:
        super().__init__()
        self.action_spec = Bounded(-1.0, 1.0, shape=(2,), dtype=torch.float64)

    def _step(self, tensordict: TensorDict) -> TensorDict:
        action = tensordict.get("action")
        assert action.dtype is torch.float64  # cast back by the transform's inverse
        return super()._step(tensordict.clone().set("action", action.float()))


def test_a_cast_action_is_checked_on_both_sides() -> None:
    env = TransformedEnv(DoubleActionEnv(), DoubleToFloat(in_keys=[], in_keys_inv=["action"]))
    assert env.action_spec.dtype is torch.float32
    step_with(env, torch.tensor([1.0, -1.0]))
    with pytest.raises(ActionError, match=r"DoubleActionEnv\.step.*index \(1,\): -3\.0"):
        step_with(env, torch.tensor([1.0, -3.0]))
    with pytest.raises(ActionError, match=r"TransformedEnv\.step.*floating"):
        step_with(env, torch.tensor([1, 0]))


def test_validate_actions_is_shared_with_the_base_env() -> None:
    base = SerialEnv(2, CountingEnv)
    env = TransformedEnv(base, StepCounter())
    assert env.validate_actions
    assert base.validate_actions
    env.validate_actions = False
    assert not base.validate_actions
    td = step_with(env, torch.tensor([[3], [1]]))
    assert td["next", "reward"].squeeze(-1).tolist() == [3.0, 1.0]
    with pytest.raises(ActionError, match="shape"):
        step_with(env, torch.tensor([3, 1]))
    base.validate_actions = True
    assert env.validate_actions
    quiet = CountingEnv()
    quiet.validate_actions = False
    assert not TransformedEnv(quiet).validate_actions  # the base env's setting is kept
    env.close()
