"""RewardScaling, RewardClipping, RewardSum: golden values, env specs, state round-trips."""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Bounded
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import RewardClipping
from rlbricks.transforms import RewardScaling
from rlbricks.transforms import RewardSum
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError


def rewards(*values: float) -> TensorDict:
    return TensorDict(
        {"next": {"reward": torch.tensor(values).unsqueeze(-1)}}, batch_size=[len(values)]
    )


def ones_policy(td: TensorDict) -> TensorDict:
    return td.set("action", torch.ones(*td.batch_size, 1, dtype=torch.long))


# ---------------------------------------------------------------------------- #
# RewardScaling
# ---------------------------------------------------------------------------- #
def test_scaling_golden_values() -> None:
    out = RewardScaling(loc=0.5, scale=-2.0)(rewards(1.0, -3.0, 0.0))
    assert out["next", "reward"].squeeze(-1).tolist() == [-1.5, 6.5, 0.5]
    out = RewardScaling(loc=1.0, scale=4.0, standard_normal=True)(rewards(1.0, 9.0))
    assert out["next", "reward"].squeeze(-1).tolist() == [0.0, 2.0]


def test_scaling_with_tensor_parameters_broadcasts() -> None:
    td = TensorDict({"next": {"reward": torch.ones(2, 2)}}, batch_size=[2])
    out = RewardScaling(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 3.0]))(td)
    assert out["next", "reward"].tolist() == [[2.0, 4.0], [2.0, 4.0]]


def test_scaling_on_env_and_bounded_specs() -> None:
    env = TransformedEnv(CountingEnv(max_steps=3), RewardScaling(loc=1.0, scale=3.0))
    check_env_specs(env)
    td = env.rollout(3, ones_policy)
    assert td["next", "reward"].squeeze(-1).tolist() == [4.0, 4.0, 4.0]
    spec = RewardScaling(1.0, -2.0)._map_spec(Bounded(0.0, 1.0, shape=(1,)))
    assert isinstance(spec, Bounded)
    assert spec.low.tolist() == [-1.0]
    assert spec.high.tolist() == [1.0]


def test_scaling_errors_and_state_dict_round_trip() -> None:
    with pytest.raises(ValueError, match="non-zero"):
        RewardScaling(0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        RewardScaling(float("nan"), 1.0)
    with pytest.raises(TransformError, match="cannot scale"):
        RewardScaling(0.0, 2.0)._map_spec(Unbounded(shape=(1,), dtype=torch.int64))
    a, b = RewardScaling(2.0, 5.0), RewardScaling(0.0, 1.0)
    b.load_state_dict(a.state_dict())
    assert (b.loc.item(), b.scale.item()) == (2.0, 5.0)
    assert b(rewards(1.0))["next", "reward"].item() == 7.0


# ---------------------------------------------------------------------------- #
# RewardClipping
# ---------------------------------------------------------------------------- #
def test_clipping_golden_values_and_open_sides() -> None:
    out = RewardClipping(-1.0, 2.0)(rewards(-5.0, 0.5, 7.0))
    assert out["next", "reward"].squeeze(-1).tolist() == [-1.0, 0.5, 2.0]
    out = RewardClipping(clamp_max=0.0)(rewards(-5.0, 7.0))
    assert out["next", "reward"].squeeze(-1).tolist() == [-5.0, 0.0]
    spec = RewardClipping(clamp_min=0.0).transform_reward_spec(Unbounded(shape=(1,)))
    assert spec.low.item() == 0.0
    assert spec.high.item() == float("inf")


def test_clipping_on_env() -> None:
    env = TransformedEnv(ContinuousActionEnv(max_steps=5), RewardClipping(-1.5, 0.0))
    check_env_specs(env)
    td = env.rollout(5, policy=lambda x: x.set("action", torch.ones(2)))
    distance = torch.arange(1, 6).float() * 2**0.5
    assert torch.allclose(td["next", "reward"].squeeze(-1), (-distance).clamp(min=-1.5))
    assert env.reward_spec.low.item() == -1.5  # type: ignore[attr-defined]


def test_clipping_errors() -> None:
    with pytest.raises(ValueError, match="give clamp_min"):
        RewardClipping()
    with pytest.raises(ValueError, match="above"):
        RewardClipping(2.0, 1.0)


# ---------------------------------------------------------------------------- #
# RewardSum
# ---------------------------------------------------------------------------- #
def naive_returns(reward: list[float], done: list[bool]) -> tuple[list[float], list[float]]:
    before, after, acc = [], [], 0.0
    for r, d in zip(reward, done):
        before.append(acc)
        acc += r
        after.append(acc)
        if d:
            acc = 0.0
    return before, after


def test_sum_over_trajectories_against_a_naive_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    reward = torch.randn(3, 12, 1, generator=gen)
    done = torch.rand(3, 12, 1, generator=gen) < 0.3
    td = TensorDict({"next": {"reward": reward, "done": done}}, batch_size=[3, 12])
    out = RewardSum()(td)
    for b in range(3):
        before, after = naive_returns(reward[b, :, 0].tolist(), done[b, :, 0].tolist())
        assert torch.allclose(out["episode_reward"][b, :, 0], torch.tensor(before))
        assert torch.allclose(out["next", "episode_reward"][b, :, 0], torch.tensor(after))


def test_sum_on_transitions_uses_the_root_value() -> None:
    td = TensorDict(
        {"episode_reward": torch.tensor([[1.0], [5.0]]), "next": {"reward": torch.ones(2, 1)}},
        batch_size=[2],
    )
    assert RewardSum()(td)["next", "episode_reward"].squeeze(-1).tolist() == [2.0, 6.0]
    with pytest.raises(ValueError, match="without batch dims"):
        RewardSum()(TensorDict({"next": {"reward": torch.ones(1)}}))
    with pytest.raises(KeyError, match="next"):
        RewardSum()(TensorDict({"reward": torch.ones(1)}))


def test_sum_on_env_with_partial_resets() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (2, 3)]
    env = TransformedEnv(SerialEnv(2, fns), RewardSum())
    check_env_specs(env)
    assert "episode_reward" in env.observation_spec
    assert "episode_reward" in env.state_spec
    td = env.rollout(7, ones_policy, break_when_any_done=False)
    assert td["next", "episode_reward"][0].squeeze(-1).tolist() == [1, 2, 1, 2, 1, 2, 1]
    assert td["next", "episode_reward"][1].squeeze(-1).tolist() == [1, 2, 3, 1, 2, 3, 1]
    assert td["episode_reward"][1].squeeze(-1).tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_sum_of_several_entries_and_errors() -> None:
    t = RewardSum(in_keys=["reward", "observation"], out_keys=["ret", "obs_sum"])
    env = TransformedEnv(CountingEnv(max_steps=3), t)
    check_env_specs(env)
    td = env.rollout(3, ones_policy)
    assert td["next", "obs_sum"].squeeze(-1).tolist() == [1.0, 3.0, 6.0]
    with pytest.raises(ValueError, match="out_keys"):
        RewardSum(in_keys=["observation"])
    with pytest.raises(TransformError, match="not an output"):
        TransformedEnv(CountingEnv(), RewardSum(in_keys=["bonus"], out_keys=["b"]))
    with pytest.raises(TransformError, match="TransformedEnv"):
        RewardSum()._reset(None, TensorDict({}))


def test_sum_state_dict_round_trip() -> None:
    # the running sums live in the data: the transform itself has no state to lose
    t = RewardSum()
    assert dict(t.state_dict()) == {}
    t.load_state_dict(RewardSum().state_dict())
    td = rewards(1.0, 2.0)
    with pytest.raises(KeyError, match="episode ends"):
        t(td)
    td["next", "done"] = torch.zeros(2, 1, dtype=torch.bool)
    assert t(td)["next", "episode_reward"].squeeze(-1).tolist() == [1.0, 3.0]
