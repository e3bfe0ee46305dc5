"""FlattenObservation and UnsqueezeTransform."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.specs import Bounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import EnvSpecs
from rlbricks.transforms import FlattenObservation
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError
from rlbricks.transforms import UnsqueezeTransform


def test_flatten_plain_golden() -> None:
    x = torch.arange(2 * 2 * 3 * 4).float().reshape(2, 2, 3, 4)
    td = TensorDict({"observation": x, "next": {"observation": x + 1}}, batch_size=[2])
    out = FlattenObservation(-2, -1)(td)
    assert out["observation"].shape == (2, 2, 12)
    assert torch.equal(out["observation"], x.reshape(2, 2, 12))
    assert torch.equal(out["next", "observation"], (x + 1).reshape(2, 2, 12))


def test_flatten_spec_with_bounds_and_env() -> None:
    specs = EnvSpecs.from_env(ContinuousActionEnv(batch_size=[2]))
    low = torch.arange(6).float().reshape(3, 2)
    specs.observation["grid"] = Bounded(low, low + 1, shape=(2, 3, 2))
    out = FlattenObservation(-2, -1, in_keys=["grid"]).transform_env_specs(specs)
    grid = out.observation["grid"]
    assert isinstance(grid, Bounded)
    assert grid.shape == (2, 6)
    assert grid.low[0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    env = TransformedEnv(
        NestedSpecEnv(batch_size=[2]),
        UnsqueezeTransform(-1, in_keys=[("data", "states")]),
    )
    env.append_transform(FlattenObservation(-2, -1, in_keys=[("data", "states")]))
    check_env_specs(env)
    assert env.observation_spec["data", "states"].shape == (2, 3)


def test_flatten_errors() -> None:
    with pytest.raises(ValueError, match="negative"):
        FlattenObservation(1, 2)
    with pytest.raises(ValueError, match="after"):
        FlattenObservation(-1, -2)
    with pytest.raises(TransformError, match="cannot flatten"):
        TransformedEnv(ContinuousActionEnv(), FlattenObservation(-3, -1))


def test_unsqueeze_plain_golden_and_out_keys() -> None:
    td = TensorDict({"observation": torch.arange(6.0).reshape(2, 3)}, batch_size=[2])
    out = UnsqueezeTransform(-2, out_keys=["obs"])(td)
    assert out["obs"].shape == (2, 1, 3)
    assert torch.equal(out["obs"][:, 0], out["observation"])
    with pytest.raises(ValueError, match="negative"):
        UnsqueezeTransform(0)


def test_unsqueeze_on_batched_env_with_action_inverse() -> None:
    env = TransformedEnv(
        SerialEnv(2, ContinuousActionEnv), UnsqueezeTransform(-1, in_keys_inv=["action"])
    )
    check_env_specs(env)
    assert env.observation_spec["observation"].shape == (2, 2, 1)
    assert env.action_spec.shape == (2, 2, 1)
    td = env.reset()
    td["action"] = torch.full((2, 2, 1), 0.5)
    out = env.step(td)
    assert out["next", "observation"][..., 0].tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert out["action"].shape == (2, 2, 1)


def test_unsqueeze_inverse_errors() -> None:
    with pytest.raises(TransformError, match="not an input"):
        TransformedEnv(ContinuousActionEnv(), UnsqueezeTransform(-1, in_keys_inv=["goal"]))
    with pytest.raises(TransformError, match="always read"):
        TransformedEnv(
            ContinuousActionEnv(),
            UnsqueezeTransform(-1, in_keys_inv=["action"], out_keys_inv=["act"]),
        )


def test_shape_transforms_have_no_state() -> None:
    assert dict(FlattenObservation(-2).state_dict()) == {}
    assert UnsqueezeTransform(-1).clone().dim == -1
    assert "first_dim=-2" in repr(FlattenObservation(-2))
