"""ObservationNorm: hand-computed values, statistics from rollouts, specs, state_dict."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import Compose
from rlbricks.transforms import ObservationNorm
from rlbricks.transforms import RewardScaling
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError


def transitions() -> TensorDict:
    return TensorDict(
        {
            "observation": torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
            "next": {"observation": torch.tensor([[5.0, 6.0], [7.0, 8.0]])},
        },
        batch_size=[2],
    )


def test_affine_conventions_hand_computed() -> None:
    loc, scale = torch.tensor([1.0, -1.0]), torch.tensor([2.0, 0.5])
    out = ObservationNorm(loc, scale)(transitions())
    assert out["observation"].tolist() == [[3.0, 0.0], [7.0, 1.0]]
    assert out["next", "observation"].tolist() == [[11.0, 2.0], [15.0, 3.0]]
    out = ObservationNorm(loc, scale, standard_normal=True)(transitions())
    assert out["observation"].tolist() == [[0.0, 6.0], [1.0, 10.0]]
    assert out["next", "observation"].tolist() == [[2.0, 14.0], [3.0, 18.0]]


def test_out_keys_integer_inputs_and_missing_stats() -> None:
    td = TensorDict({"pixels": torch.tensor([0, 255], dtype=torch.uint8)})
    out = ObservationNorm(0.0, 1.0 / 255, in_keys=["pixels"], out_keys=["scaled"])(td)
    assert out["scaled"].dtype == torch.float32
    assert out["scaled"].tolist() == [0.0, 1.0]
    assert out["pixels"].dtype == torch.uint8  # the input is kept
    with pytest.raises(TransformError, match="init_stats"):
        ObservationNorm()(transitions())
    with pytest.raises(ValueError, match="both loc and scale"):
        ObservationNorm(loc=0.0)


def test_init_stats_matches_naive_mean_and_std() -> None:
    norm = ObservationNorm(standard_normal=True)
    env = TransformedEnv(CountingEnv(max_steps=4), norm)
    norm.init_stats(10)
    # rollouts stop at the end of each episode: root observations 0, 1, 2, 3, three times
    data = torch.tensor([0.0, 1.0, 2.0, 3.0] * 3)
    assert norm.loc is not None
    assert norm.scale is not None
    torch.testing.assert_close(norm.loc, data.mean().reshape(1))
    torch.testing.assert_close(norm.scale, data.std(unbiased=False).reshape(1))
    td = env.rollout(4)
    torch.testing.assert_close(td["observation"].mean(), torch.tensor(0.0))
    torch.testing.assert_close(td["observation"].std(unbiased=False), torch.tensor(1.0))


def test_init_stats_default_convention_standardises_too() -> None:
    norm = ObservationNorm()
    env = TransformedEnv(CountingEnv(max_steps=4), norm)
    norm.init_stats(4)
    td = env.rollout(4)
    torch.testing.assert_close(td["observation"].mean(), torch.tensor(0.0))
    torch.testing.assert_close(td["observation"].std(unbiased=False), torch.tensor(1.0))


def test_init_stats_on_a_batched_env_and_after_other_transforms() -> None:
    norm = ObservationNorm()
    env = TransformedEnv(
        ContinuousActionEnv(batch_size=[3]), Compose(RewardScaling(0.0, 2.0), norm)
    )
    torch.manual_seed(0)
    norm.init_stats(6, reduce_dim=(0, 1), cat_dim=1)
    assert norm.loc is not None
    assert norm.loc.shape == (2,)
    check_env_specs(env)
    with pytest.raises(TransformError, match="do not broadcast to"):
        norm.init_stats(6, reduce_dim=0, cat_dim=1)


def test_init_stats_errors() -> None:
    with pytest.raises(TransformError, match="attached"):
        ObservationNorm().init_stats(5)
    norm = ObservationNorm(in_keys=["observation", "other"])
    with pytest.raises(ValueError, match="key="):
        norm.init_stats(5)
    with pytest.raises(ValueError, match="num_iter"):
        ObservationNorm().init_stats(0)


def test_specs_and_check_env_specs() -> None:
    env = TransformedEnv(CountingEnv(max_steps=3, batch_size=[2]), ObservationNorm(1.0, 3.0))
    spec = env.observation_spec["observation"]
    assert isinstance(spec, Unbounded)
    assert spec.shape == (2, 1)
    check_env_specs(env)
    td = env.rollout(3)
    torch.testing.assert_close(td["next", "observation"], td["next", "observation"].round())
    assert td["next", "observation"][0, :, 0].tolist() == [4.0, 7.0, 10.0]
    reward_env = TransformedEnv(CountingEnv(), ObservationNorm(0.5, 2.0, in_keys=["reward"]))
    check_env_specs(reward_env)
    with pytest.raises(TransformError, match="not an output"):
        TransformedEnv(CountingEnv(), ObservationNorm(0.0, 1.0, in_keys=["nope"]))


def test_inside_serial_workers_equals_on_the_batch() -> None:
    inside = SerialEnv(
        2, lambda: TransformedEnv(CountingEnv(max_steps=3), ObservationNorm(1.0, 2.0))
    )
    outside = TransformedEnv(
        SerialEnv(2, lambda: CountingEnv(max_steps=3)), ObservationNorm(1.0, 2.0)
    )
    torch.manual_seed(0)
    a = inside.rollout(5, break_when_any_done=False)
    torch.manual_seed(0)
    b = outside.rollout(5, break_when_any_done=False)
    assert torch.equal(a["next", "observation"], b["next", "observation"])


def test_state_dict_round_trip_into_a_fresh_transform() -> None:
    norm = ObservationNorm(standard_normal=True)
    TransformedEnv(CountingEnv(max_steps=4), norm)
    norm.init_stats(8)
    state = norm.state_dict()
    assert sorted(state) == ["loc", "scale"]
    fresh = ObservationNorm(standard_normal=True)
    fresh.load_state_dict(state)
    assert fresh.initialized
    assert torch.equal(fresh(transitions())["observation"], norm(transitions())["observation"])
    env = TransformedEnv(CountingEnv(), ObservationNorm(standard_normal=True))
    env.load_state_dict({"transforms.0.loc": state["loc"], "transforms.0.scale": state["scale"]})
    assert env.transform[0].initialized


def test_clone_is_independent() -> None:
    norm = ObservationNorm(0.0, 1.0)
    copy = norm.clone()
    assert isinstance(copy, ObservationNorm)
    assert copy.loc is not None
    assert norm.loc is not None
    copy.loc.add_(5.0)
    assert norm.loc.item() == 0.0
    assert "uninitialized" in repr(ObservationNorm())
