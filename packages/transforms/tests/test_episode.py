"""NoopResetEnv and FrameSkipTransform: extra env steps, checked against stepping by hand."""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import ParallelEnv
from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import CatFrames
from rlbricks.transforms import Compose
from rlbricks.transforms import FrameSkipTransform
from rlbricks.transforms import NoopResetEnv
from rlbricks.transforms import RewardScaling
from rlbricks.transforms import StepCounter
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError


def ones(td: TensorDict) -> TensorDict:
    return td.set("action", torch.ones((*td.batch_size, 1), dtype=torch.long))


# --------------------------------------------------------------------------- #
# NoopResetEnv
# --------------------------------------------------------------------------- #
def test_fixed_noops_step_the_env_with_action_zero() -> None:
    env = TransformedEnv(
        CountingEnv(max_steps=100), Compose(StepCounter(), NoopResetEnv(4, random=False))
    )
    td = env.reset()
    assert td["observation"].item() == 4.0
    assert td["step_count"].item() == 4  # the no-ops went through the earlier transform
    assert not td["done"].item()
    stepped = env.rollout(2, policy=ones)
    assert stepped["next", "observation"].squeeze(-1).tolist() == [5.0, 6.0]
    assert stepped["next", "reward"].squeeze(-1).tolist() == [1.0, 1.0]


def test_random_noops_are_seeded_and_in_range() -> None:
    def counts(seed: int | None) -> list[int]:
        env = TransformedEnv(CountingEnv(max_steps=100), NoopResetEnv(5, seed=seed))
        return [int(env.reset()["observation"].item()) for _ in range(40)]

    first = counts(3)
    assert first == counts(3)
    assert set(first) == {1, 2, 3, 4, 5}
    assert counts(None) != counts(None)  # OS entropy: 40 equal draws have odds 5**-40


def test_episode_ending_during_noops_gives_a_fresh_reset() -> None:
    env = TransformedEnv(CountingEnv(max_steps=2), NoopResetEnv(5, random=False))
    td = env.reset()
    assert td["observation"].item() == 0.0
    assert not td["done"].item()


def test_frames_seen_during_noops_fill_the_stack() -> None:
    env = TransformedEnv(
        CountingEnv(max_steps=100),
        Compose(CatFrames(3, -1, in_keys=["observation"]), NoopResetEnv(2, random=False)),
    )
    assert env.reset()["observation"].tolist() == [0.0, 1.0, 2.0]


def test_batched_full_resets_and_partial_reset_error() -> None:
    env = TransformedEnv(CountingEnv(max_steps=3, batch_size=[2]), NoopResetEnv(2, random=False))
    assert env.reset()["observation"].squeeze(-1).tolist() == [2.0, 2.0]
    td = env.reset()
    td["_reset"] = torch.tensor([[True], [False]])
    with pytest.raises(TransformError, match="inside each sub-env"):
        env.reset(td)


def test_check_env_specs_single_and_inside_sub_envs() -> None:
    check_env_specs(TransformedEnv(CountingEnv(max_steps=6), NoopResetEnv(3)))
    check_env_specs(TransformedEnv(ContinuousActionEnv(), NoopResetEnv(2)))
    serial = SerialEnv(2, lambda: TransformedEnv(CountingEnv(max_steps=4), NoopResetEnv(2, seed=0)))
    check_env_specs(serial)
    first = serial.reset()["observation"].squeeze(-1)
    assert first[0] == first[1]  # the same seed in both sub-envs: the same draws


def test_noop_reset_on_gym_one_hot_actions() -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    env = TransformedEnv(GymEnv("CartPole-v1"), NoopResetEnv(3, random=False))
    env.set_seed(0)
    check_env_specs(env)
    env.close()


def test_noop_errors_and_identity_on_data() -> None:
    with pytest.raises(ValueError, match="noops"):
        NoopResetEnv(0)
    td = TensorDict({"observation": torch.zeros(2)})
    assert NoopResetEnv()(td) is td
    orphan = NoopResetEnv()
    with pytest.raises(TransformError, match="attach it to an env"):
        orphan._reset(None, td)
    clone = NoopResetEnv(seed=1).clone()
    assert isinstance(clone, NoopResetEnv)
    assert clone.seed == 1
    assert repr(NoopResetEnv(7, random=False)) == "NoopResetEnv(noops=7, random=False)"


# --------------------------------------------------------------------------- #
# FrameSkipTransform
# --------------------------------------------------------------------------- #
def by_hand(max_steps: int, skip: int, steps: int) -> tuple[list[float], list[float], list[bool]]:
    """Step a CountingEnv with action 1, ``skip`` times per step, stopping at done."""
    env = CountingEnv(max_steps=max_steps)
    td = env.reset()
    obs, rewards, dones = [], [], []
    for _ in range(steps):
        total = 0.0
        for _ in range(skip):
            td = env.step(ones(td))
            total += td["next", "reward"].item()
            nxt = td["next"]
            td = td.exclude("next").update(nxt.exclude("reward"))
            if nxt["done"].item():
                break
        obs.append(nxt["observation"].item())
        rewards.append(total)
        dones.append(bool(nxt["done"].item()))
        if dones[-1]:
            td = env.reset()
    return obs, rewards, dones


@pytest.mark.parametrize(("max_steps", "skip"), [(5, 2), (7, 3), (4, 1), (3, 4)])
def test_frame_skip_matches_stepping_by_hand(max_steps: int, skip: int) -> None:
    env = TransformedEnv(CountingEnv(max_steps=max_steps), FrameSkipTransform(skip))
    td = env.rollout(6, policy=ones, break_when_any_done=False)
    obs, rewards, dones = by_hand(max_steps, skip, 6)
    assert td["next", "observation"].squeeze(-1).tolist() == obs
    assert td["next", "reward"].squeeze(-1).tolist() == rewards
    assert td["next", "done"].squeeze(-1).tolist() == dones


def test_frame_skip_sums_the_rewards_of_earlier_transforms() -> None:
    env = TransformedEnv(
        CountingEnv(max_steps=10), Compose(RewardScaling(0.5, 2.0), FrameSkipTransform(3))
    )
    td = env.rollout(2, policy=ones)
    assert td["next", "reward"].squeeze(-1).tolist() == [7.5, 7.5]
    check_env_specs(env)


def test_frame_skip_inside_workers_and_on_a_batch() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (4, 6)]
    batched = TransformedEnv(SerialEnv(2, fns), FrameSkipTransform(2))
    td = batched.rollout(4, policy=ones, break_when_any_done=False)
    check_env_specs(batched)
    # even max_steps: no repeat is ever cut, so the batch equals each env on its own
    for row, m in enumerate((4, 6)):
        obs, rewards, _ = by_hand(m, 2, 4)
        assert td["next", "observation"][row].squeeze(-1).tolist() == obs
        assert td["next", "reward"][row].squeeze(-1).tolist() == rewards
    inside = ParallelEnv(
        2,
        [
            lambda m=m: TransformedEnv(CountingEnv(max_steps=m), FrameSkipTransform(2))
            for m in (4, 6)
        ],
        mp_start_method="fork",
    )
    with inside:
        other = inside.rollout(4, policy=ones, break_when_any_done=False)
    assert torch.equal(other["next", "observation"], td["next", "observation"])
    assert torch.equal(other["next", "reward"], td["next", "reward"])


def test_frame_skip_on_a_batch_stops_when_any_sub_env_is_done() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (1, 5)]
    env = TransformedEnv(SerialEnv(2, fns), FrameSkipTransform(3))
    td = env.rollout(1, policy=ones)
    assert td["next", "observation"].squeeze(-1).tolist() == [[1.0], [1.0]]


def test_frame_skip_errors_and_identity_on_data() -> None:
    with pytest.raises(ValueError, match="frame_skip"):
        FrameSkipTransform(0)
    td = TensorDict({"next": {"reward": torch.ones(1)}})
    assert FrameSkipTransform(3)(td) is td
    assert repr(FrameSkipTransform(3)) == "FrameSkipTransform(frame_skip=3)"
