"""TransformedEnv: specs, step/reset routing, partial resets, batched and parallel base envs."""

from __future__ import annotations

import functools
import sys
from typing import Any

import pytest
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import ParallelEnv
from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close
from rlbricks.transforms import CatTensors
from rlbricks.transforms import ClipTransform
from rlbricks.transforms import Compose
from rlbricks.transforms import InitTracker
from rlbricks.transforms import RenameTransform
from rlbricks.transforms import RewardScaling
from rlbricks.transforms import RewardSum
from rlbricks.transforms import StepCounter
from rlbricks.transforms import Transform
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError
from rlbricks.transforms import UnsqueezeTransform

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="fork start method")


def bookkeeping() -> Compose:
    return Compose(StepCounter(max_steps=3), RewardSum(), InitTracker(), RewardScaling(1.0, 2.0))


def parity_policy(td: TensorDict) -> TensorDict:
    return td.set("action", (td["observation"] % 2 == 0).long())


class GoalEnv(EnvBase):
    """Starts at the ``"goal"`` state input given to reset (0 without one)."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded(shape=(1,)))
        self.action_spec = Unbounded(shape=(1,))
        self.reward_spec = Unbounded(shape=(1,))
        self.state_spec = Composite(goal=Unbounded(shape=(1,)))
        self.actions: list[torch.Tensor] = []

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        goal = None if tensordict is None else tensordict.get("goal", None)
        self.pos = torch.zeros(1) if goal is None else goal.clone()
        return TensorDict({"observation": self.pos.clone()})

    def _step(self, tensordict: TensorDict) -> TensorDict:
        self.actions.append(tensordict["action"].clone())
        self.pos = self.pos + tensordict["action"]
        return TensorDict({"observation": self.pos.clone(), "reward": -self.pos.abs()})

    def _set_seed(self, seed: int) -> None:
        pass


def test_batch_size_device_and_specs_come_from_the_base() -> None:
    base = NestedSpecEnv(batch_size=[2])
    env = TransformedEnv(base, CatTensors([("data", "states"), ("data", "step")], "obs"))
    assert env.batch_size == base.batch_size
    assert env.device == base.device
    assert env.observation_spec["obs"].shape == (2, 4)
    assert env.action_spec == base.action_spec
    check_env_specs(env)
    assert env.rollout(3)["next", "obs"].shape == (2, 3, 4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TransformedEnv(CountingEnv(max_steps=4), bookkeeping()),
        lambda: TransformedEnv(CountingEnv(max_steps=2, batch_size=[3]), bookkeeping()),
        lambda: TransformedEnv(SerialEnv(2, CountingEnv), bookkeeping()),
        lambda: TransformedEnv(
            ContinuousActionEnv(batch_size=[2]), Compose(ClipTransform(-0.5, 0.5), InitTracker())
        ),
        lambda: TransformedEnv(TransformedEnv(CountingEnv(), StepCounter()), RewardSum()),
    ],
)
def test_check_env_specs_passes(make: Any) -> None:
    check_env_specs(make(), steps=8)


def test_append_and_insert_rebuild_the_specs() -> None:
    env = TransformedEnv(CountingEnv())
    assert env.append_transform(RewardSum()) is env
    env.insert_transform(0, RenameTransform("observation", "count"))
    assert sorted(env.observation_spec.keys()) == ["count", "episode_reward"]
    check_env_specs(env)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="EnvBase"):
        TransformedEnv("CartPole")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Transform"):
        TransformedEnv(CountingEnv(), lambda td: td)  # type: ignore[arg-type]
    t = StepCounter()
    TransformedEnv(CountingEnv(), t)
    with pytest.raises(TransformError, match="clone"):
        TransformedEnv(CountingEnv(), t)
    compose = Compose()
    TransformedEnv(CountingEnv(), compose)
    with pytest.raises(TransformError, match="clone"):
        TransformedEnv(CountingEnv(), compose)


def test_wrong_in_keys_are_reported_at_construction() -> None:
    with pytest.raises(TransformError, match="not an output of the env"):
        TransformedEnv(CountingEnv(), RewardScaling(0.0, 1.0, in_keys=["rewrd"]))


def test_inverse_reaches_the_base_env_and_leaves_the_user_input_alone() -> None:
    base = ContinuousActionEnv()
    env = TransformedEnv(base, ClipTransform(-0.5, 0.5, in_keys=[], in_keys_inv=["action"]))
    td = env.reset()
    td["action"] = torch.tensor([3.0, -0.25])
    out = env.step(td)
    assert out is td
    assert td["action"].tolist() == [3.0, -0.25]  # the user's action is kept
    assert td["next", "observation"].tolist() == [0.5, -0.25]  # the env got the clipped one


def test_inverse_of_an_unsqueezed_action() -> None:
    env = TransformedEnv(
        ContinuousActionEnv(batch_size=[3]),
        UnsqueezeTransform(-1, in_keys=[], in_keys_inv=["action"]),
    )
    assert env.action_spec.shape == (3, 2, 1)
    td = env.rollout(2)
    assert td["action"].shape == (3, 2, 2, 1)
    assert td["next", "observation"].shape == (3, 2, 2)
    check_env_specs(env)


def test_state_inputs_reach_the_base_reset_through_the_inverse() -> None:
    env = TransformedEnv(
        GoalEnv(), RenameTransform([], [], in_keys_inv=["goal"], out_keys_inv=["target"])
    )
    assert list(env.state_spec.keys()) == ["target"]
    td = env.reset(TensorDict({"target": torch.tensor([4.0])}))
    assert td["observation"].item() == 4.0
    assert env.reset()["observation"].item() == 0.0


def test_serial_partial_resets_match_single_envs() -> None:
    max_steps = (2, 3, 5)
    fns = [functools.partial(CountingEnv, max_steps=m) for m in max_steps]
    env = TransformedEnv(SerialEnv(3, fns), bookkeeping())
    td = env.rollout(9, parity_policy, break_when_any_done=False)
    for i, m in enumerate(max_steps):
        single = TransformedEnv(CountingEnv(max_steps=m), bookkeeping())
        ref = single.rollout(9, parity_policy, break_when_any_done=False)
        assert_close(td[i], ref)
    # the counters restart with each episode: StepCounter truncates at 3 at the latest
    assert td["next", "step_count"][2].squeeze(-1).tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 3]
    assert td["next", "step_count"][0].squeeze(-1).tolist() == [1, 2, 1, 2, 1, 2, 1, 2, 1]


def naive_counting_rollout(max_steps: int, truncate: int, steps: int) -> dict[str, list[Any]]:
    """The bookkeeping transforms by hand, one plain Python step after another."""
    count = obs = 0
    episode_return = 0.0
    out: dict[str, list[Any]] = {
        "step_count": [],
        "episode_reward": [],
        "reward": [],
        "is_init": [],
    }
    init = True
    for _ in range(steps):
        action = int(obs % 2 == 0)
        out["is_init"].append(init)
        obs, count = obs + 1, count + 1
        episode_return += action
        out["step_count"].append(count)
        out["episode_reward"].append(episode_return)
        out["reward"].append(action * 2.0 + 1.0)
        init = False
        if obs >= max_steps or count >= truncate:
            count = obs = 0
            episode_return = 0.0
            init = True
    return out


def test_bookkeeping_against_a_naive_loop() -> None:
    env = TransformedEnv(CountingEnv(max_steps=5), bookkeeping())
    td = env.rollout(11, parity_policy, break_when_any_done=False)
    ref = naive_counting_rollout(5, 3, 11)
    assert td["next", "step_count"].squeeze(-1).tolist() == ref["step_count"]
    assert td["next", "episode_reward"].squeeze(-1).tolist() == ref["episode_reward"]
    assert td["next", "reward"].squeeze(-1).tolist() == ref["reward"]
    assert td["is_init"].squeeze(-1).tolist() == ref["is_init"]


@POSIX
def test_transforms_in_workers_equal_transforms_on_the_batch() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (2, 4)]
    outside = TransformedEnv(ParallelEnv(2, fns, mp_start_method="fork"), bookkeeping())
    inside = ParallelEnv(
        2,
        [lambda m=m: TransformedEnv(CountingEnv(max_steps=m), bookkeeping()) for m in (2, 4)],
        mp_start_method="fork",
    )
    serial = TransformedEnv(SerialEnv(2, fns), bookkeeping())
    try:
        a = outside.rollout(9, parity_policy, break_when_any_done=False)
        b = inside.rollout(9, parity_policy, break_when_any_done=False)
        c = serial.rollout(9, parity_policy, break_when_any_done=False)
        assert_close(a, b)
        assert_close(a, c)
        assert inside.observation_spec == outside.observation_spec
        check_env_specs(inside)
    finally:
        outside.close()
        inside.close()
    assert outside.base_env.is_closed


def test_spawned_workers_receive_pickled_transforms() -> None:
    make = functools.partial(
        TransformedEnv, CountingEnv(max_steps=2), Compose(StepCounter(), RewardSum())
    )
    with ParallelEnv(2, make) as env:
        td = env.rollout(3, break_when_any_done=False)
    assert td["next", "step_count"][:, :, 0].tolist() == [[1, 2, 1], [1, 2, 1]]


def test_step_and_maybe_reset_unbatched_keeps_transform_outputs() -> None:
    env = TransformedEnv(CountingEnv(max_steps=2), Compose(StepCounter(), InitTracker()))
    td = env.reset()
    for expected in ([1, False], [2, False]):
        td = env.rand_action(td)
        td, root = env.step_and_maybe_reset(td)
        assert [td["next", "step_count"].item(), td["next", "is_init"].item()] == expected
        td = root
    assert td["step_count"].item() == 0
    assert td["is_init"].item()


def test_seed_close_state_dict_and_attribute_forwarding() -> None:
    base = SerialEnv(2, CountingEnv)
    env = TransformedEnv(base, RewardScaling(0.0, 3.0))
    assert env.set_seed(5) == 7
    assert env.sub_env_attr("seed") == [5, 6]
    assert env.num_workers == 2  # forwarded to the base env
    with pytest.raises(AttributeError):
        env.no_such_attribute
    other = TransformedEnv(CountingEnv(), RewardScaling(0.0, 1.0))
    other.load_state_dict(env.state_dict())
    assert other.transform[0].scale.item() == 3.0  # type: ignore[union-attr]
    env.close()
    assert base.is_closed
    assert env.is_closed
    assert "transforms=[RewardScaling]" in repr(env)


def test_state_dict_carries_the_base_env_state() -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    env = TransformedEnv(GymEnv("CartPole-v1"), RewardScaling(0.0, 3.0))
    env.set_seed(0)
    root = env.reset()
    state = env.state_dict()
    assert state["exact"] is True
    assert state["base_env"]["exact"] is True
    other = TransformedEnv(GymEnv("CartPole-v1"), RewardScaling(0.0, 1.0))
    other.load_state_dict(state)
    assert other.transform[0].scale.item() == 3.0  # type: ignore[union-attr]
    torch.manual_seed(0)
    expected = env.rollout(20, auto_reset=False, tensordict=root.clone())
    torch.manual_seed(0)
    got = other.rollout(20, auto_reset=False, tensordict=root.clone())
    assert torch.equal(got["next", "observation"], expected["next", "observation"])
    assert torch.equal(got["next", "reward"], expected["next", "reward"])


def test_gym_vector_env_with_partial_resets() -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    env = TransformedEnv(
        GymEnv("CartPole-v1", num_envs=2), Compose(StepCounter(max_steps=4), RewardSum())
    )
    try:
        env.set_seed(0)
        check_env_specs(env)
        td = env.rollout(10, break_when_any_done=False)
    finally:
        env.close()
    count = td["next", "step_count"]
    # CartPole pays 1 per step, so the episode return equals the step count
    assert torch.equal(td["next", "episode_reward"], count.float())
    done = td["next", "done"]
    assert bool((count <= 4).all())
    assert bool(done[count == 4].all())
    # after a done the count restarts at 1, otherwise it grows by 1
    nxt, prev, prev_done = count[:, 1:], count[:, :-1], done[:, :-1]
    assert torch.equal(nxt, torch.where(prev_done, torch.ones_like(prev), prev + 1))


class Recorder(Transform):
    """Records the reset masks it sees and writes its own per-sub-env counter of resets."""

    def __init__(self) -> None:
        super().__init__()
        self.masks: list[torch.Tensor | None] = []

    def _reset(self, tensordict: TensorDict | None, tensordict_reset: TensorDict) -> TensorDict:
        self.masks.append(self.reset_mask(tensordict, tensordict_reset.batch_size))
        return tensordict_reset


def test_transforms_see_the_partial_reset_mask() -> None:
    recorder = Recorder()
    env = TransformedEnv(
        SerialEnv(2, [functools.partial(CountingEnv, max_steps=m) for m in (1, 3)]), recorder
    )
    env.rollout(3, break_when_any_done=False)
    assert recorder.masks[0] is None  # the first reset starts every sub-env
    flags = [m.squeeze(-1).tolist() for m in recorder.masks[1:] if m is not None]
    assert flags == [[True, False], [True, False], [True, True]]
