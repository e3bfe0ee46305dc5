"""ClipTransform: golden values, bounds intersected with the specs, inverse on actions."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Bounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import ClipTransform
from rlbricks.transforms import EnvSpecs
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError


def test_plain_golden_values_and_open_sides() -> None:
    x = torch.tensor([[-3.0, 0.25], [4.0, -0.125]])
    td = TensorDict({"observation": x, "next": {"observation": x * 2}}, batch_size=[2])
    out = ClipTransform(-1.0, 1.0)(td)
    assert out["observation"].tolist() == [[-1.0, 0.25], [1.0, -0.125]]
    assert out["next", "observation"].tolist() == [[-1.0, 0.5], [1.0, -0.25]]
    low_only = ClipTransform(low=0.0)(TensorDict({"observation": x.clone()}, batch_size=[2]))
    assert low_only["observation"].tolist() == [[0.0, 0.25], [4.0, 0.0]]


def test_per_dim_bounds_as_tensors() -> None:
    t = ClipTransform(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 0.0]))
    out = t(TensorDict({"observation": torch.tensor([2.0, 2.0])}))
    assert out["observation"].tolist() == [1.0, 0.0]


def test_env_specs_are_intersected() -> None:
    env = TransformedEnv(ContinuousActionEnv(max_steps=4), ClipTransform(-1.5, 1.5))
    check_env_specs(env)
    td = env.rollout(4, policy=lambda x: x.set("action", torch.ones(2)))
    assert td["next", "observation"][:, 0].tolist() == [1.0, 1.5, 1.5, 1.5]
    specs = EnvSpecs.from_env(ContinuousActionEnv())
    specs.observation["observation"] = Bounded(0.0, 5.0, shape=(2,))
    out = ClipTransform(-1.0, 2.0).transform_env_specs(specs).observation["observation"]
    assert isinstance(out, Bounded)
    assert out.low.tolist() == [0.0, 0.0]
    assert out.high.tolist() == [2.0, 2.0]


def test_action_inverse() -> None:
    env = TransformedEnv(
        ContinuousActionEnv(), ClipTransform(-0.25, 0.25, in_keys=[], in_keys_inv=["action"])
    )
    assert env.action_spec.high.tolist() == [0.25, 0.25]  # type: ignore[attr-defined]
    check_env_specs(env)
    td = env.step(env.reset().set("action", torch.tensor([1.0, -0.1])))
    assert torch.allclose(td["next", "observation"], torch.tensor([0.25, -0.1]))


def test_errors_and_state_dict_round_trip() -> None:
    with pytest.raises(ValueError, match="give low"):
        ClipTransform()
    with pytest.raises(ValueError, match="above"):
        ClipTransform(1.0, 0.0)
    with pytest.raises(TransformError, match="floating"):
        TransformedEnv(CountingEnv(), ClipTransform(0.0, 1.0, in_keys=[], in_keys_inv=["action"]))
    with pytest.raises(TransformError, match="not an input"):
        TransformedEnv(CountingEnv(), ClipTransform(0.0, 1.0, in_keys_inv=["goal"]))
    a, b = ClipTransform(-2.0, 3.0), ClipTransform(0.0, 1.0)
    b.load_state_dict(a.state_dict())
    assert (b.low.item(), b.high.item()) == (-2.0, 3.0)
    out = b(TensorDict({"observation": torch.tensor([5.0])}))
    assert out["observation"].item() == 3.0
