"""The per-step fast paths give what the generic conversions give."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import GymEnv
from rlbricks.envs import GymWrapper
from rlbricks.envs import space_to_spec
from rlbricks.envs import step_mdp
from rlbricks.envs._base import _any
from rlbricks.envs._base import _merge_partial
from rlbricks.envs._gym_spaces import action_converter
from rlbricks.envs._gym_spaces import box_converter
from rlbricks.envs._gym_spaces import tensor_to_space_value
from rlbricks.envs._rollout import _action_draws
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import OneHot
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


@pytest.mark.parametrize("start", [0, 3])
@pytest.mark.parametrize(
    "value",
    [
        torch.tensor([False, False, True]),
        torch.tensor([False, False, False]),  # argmax of no hot entry: 0
        torch.tensor([0.0, 1.0, 0.0]),
        torch.tensor([0.2, 0.9, 0.0]),  # cast to long first, as the generic path does
        torch.tensor([0, 0, 1], dtype=torch.int32),
        torch.tensor([[True, False, False], [False, False, True]]),
        torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.bfloat16),
        torch.tensor([0.0, 1.0, 0.0], requires_grad=True),
    ],
)
def test_action_converter_one_hot_matches_generic(value: torch.Tensor, start: int) -> None:
    space = gym.spaces.Discrete(3, start=start)
    spec = space_to_spec(space)
    fast = action_converter(space, spec)
    assert fast is not None
    expected = tensor_to_space_value(value, space, spec)
    got = fast(value)
    assert type(got) is type(expected)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("start", [0, -2])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_action_converter_categorical_scalar_matches_generic(
    start: int, dtype: torch.dtype
) -> None:
    space = gym.spaces.Discrete(4, start=start)
    spec = space_to_spec(space, categorical_action_encoding=True)
    fast = action_converter(space, spec)
    assert fast is not None
    for index in (0, 1):
        value = torch.tensor(index, dtype=dtype)
        expected = tensor_to_space_value(value, space, spec)
        got = fast(value)
        assert type(got) is type(expected)
        assert got == expected


@pytest.mark.parametrize("start", [0, -2])
def test_action_converter_categorical_does_not_alias(start: int) -> None:
    space = gym.spaces.Discrete(4, start=start)
    spec = space_to_spec(space, categorical_action_encoding=True)
    fast = action_converter(space, spec)
    assert fast is not None
    assert fast(torch.tensor(2)) == 2 + start
    index = torch.tensor([1, 3])
    out = fast(index)
    np.testing.assert_array_equal(out, tensor_to_space_value(index, space, spec))
    index[0] = 0
    assert out[0] == 1 + start  # a copy, not a view of the tensor


def test_converters_only_for_their_spaces() -> None:
    box = gym.spaces.Box(-1, 1, (2,))
    assert action_converter(box, space_to_spec(box)) is None
    assert box_converter(gym.spaces.Discrete(3)) is None


def test_box_converter_copies_when_needed() -> None:
    space = gym.spaces.Box(-1, 1, (3,), dtype=np.float32)
    array = np.zeros(3, dtype=np.float32)
    shared = box_converter(space)(array)  # type: ignore[misc]
    copied = box_converter(space, copy=True)(array)  # type: ignore[misc]
    array[0] = 1.0
    assert shared[0] == 1.0
    assert copied[0] == 0.0
    readonly = np.arange(3, dtype=np.float32)
    readonly.flags.writeable = False
    assert box_converter(space)(readonly).tolist() == [0.0, 1.0, 2.0]  # type: ignore[misc]
    reversed_ = np.arange(3, dtype=np.float32)[::-1]
    assert box_converter(space)(reversed_).tolist() == [2.0, 1.0, 0.0]  # type: ignore[misc]
    as_double = box_converter(space)(np.arange(3, dtype=np.float64))  # type: ignore[misc]
    assert as_double.dtype == torch.float32


def test_vector_env_without_copy_does_not_alias_observations() -> None:
    venv = gym.make_vec(
        "CartPole-v1",
        num_envs=2,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED, "copy": False},
    )
    env = GymWrapper(venv)
    try:
        _ = env.set_seed(0)
        first = env.reset()["observation"]
        kept = first.clone()
        second = env.rand_step(env.reset())["next", "observation"]
        env.rand_step(env.reset())
        assert torch.equal(first, kept)  # the next reset did not write into it
        assert first.data_ptr() != second.data_ptr()
    finally:
        env.close()


class _DictObs(gym.Env[dict, int]):
    """A Dict observation counting the steps."""

    observation_space = gym.spaces.Dict(
        {"count": gym.spaces.Box(0.0, 100.0, (1,), dtype=np.float32)}
    )
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: Any = None, options: Any = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self.t = 0
        return {"count": np.zeros(1, dtype=np.float32)}, {}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        self.t += 1
        return {"count": np.full(1, self.t, dtype=np.float32)}, 0.0, False, False, {}


def test_vector_env_without_copy_does_not_alias_dict_observations() -> None:
    venv = gym.vector.SyncVectorEnv(
        [_DictObs, _DictObs], copy=False, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )
    env = GymWrapper(venv)
    try:
        out = env.rollout(3)
        assert out["next", "count"].squeeze(-1).tolist() == [[1, 2, 3], [1, 2, 3]]
        assert out["count"].squeeze(-1).tolist() == [[0, 1, 2], [0, 1, 2]]
    finally:
        env.close()


def test_gym_env_builds_vector_envs_without_copies() -> None:
    env = GymEnv("CartPole-v1", num_envs=2)
    try:
        assert env.env.copy is False  # the wrapper copies into its tensors itself
    finally:
        env.close()


def test_single_env_flags_are_fresh_and_consistent() -> None:
    env = GymEnv("CartPole-v1")
    _ = env.set_seed(0)
    td = env.rollout(60, break_when_any_done=False)
    nxt = td["next"]
    assert nxt["done"].shape == (60, 1)
    assert nxt["reward"].dtype == torch.float32
    assert torch.equal(nxt["done"], nxt["terminated"] | nxt["truncated"])
    assert bool(nxt["done"].any())
    step = env.rand_step()
    step["next", "terminated"].fill_(True)  # writing one flag leaves the others alone
    assert not bool(step["next", "done"])
    assert not bool(step["next", "truncated"])
    env.close()


def test_merge_partial_fast_and_generic_paths_agree() -> None:
    mask = torch.tensor([[True], [False]])
    previous = TensorDict(
        {"obs": torch.zeros(2, 3), "done": torch.ones(2, 1, dtype=torch.bool), "_reset": mask},
        batch_size=[2],
    )
    reset = TensorDict(
        {
            "obs": torch.ones(2, 3),
            "done": torch.zeros(2, 1, dtype=torch.bool),
            "new": torch.ones(2),
        },
        batch_size=[2],
    )
    fast = _merge_partial(previous, reset)
    nested = previous.clone()
    nested.set(("sub", "x"), torch.zeros(2))  # a nested entry takes the generic path
    generic = _merge_partial(nested, reset)
    for out in (fast, generic):
        assert "_reset" not in out.keys()
        assert out["obs"].tolist() == [[1.0] * 3, [0.0] * 3]
        assert out["done"].squeeze(-1).tolist() == [False, True]
        assert out["new"].tolist() == [1.0, 1.0]
    assert "sub" in generic.keys()


@pytest.mark.parametrize("n", [3, 300])  # eye lookup and scatter
@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.int64])
def test_one_hot_rand_paths(n: int, dtype: torch.dtype) -> None:
    spec = OneHot(n, shape=(4, n), dtype=dtype)
    x = spec.rand((5,))
    assert x.shape == (5, 4, n)
    assert x.dtype == dtype
    assert spec.is_in(x[0])
    assert bool((x.long().sum(-1) == 1).all())
    y = spec.rand()
    y.zero_()  # a fresh tensor: the cached rows are untouched
    assert spec.is_in(spec.rand())
    masked = OneHot(n, mask=torch.arange(n) == 1, dtype=dtype)
    assert masked.rand((6,)).long().argmax(-1).tolist() == [1] * 6
    assert Categorical(n).to_one_hot(torch.tensor(1)).tolist() == OneHot(n).to_one_hot(1).tolist()


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("categorical", [False, True])
def test_rollout_random_actions_match_per_step_draws(
    num_envs: int | None, categorical: bool
) -> None:
    env = GymEnv("CartPole-v1", num_envs=num_envs, categorical_action_encoding=categorical)
    try:
        _ = env.set_seed(0)
        torch.manual_seed(7)
        steps = 300  # more than one chunk of draws
        actions = env.rollout(steps, break_when_any_done=False)["action"]
        torch.manual_seed(7)
        expected = torch.stack([env.action_spec.rand() for _ in range(steps)], len(env.batch_size))
        assert actions.shape == expected.shape
        assert actions.dtype == expected.dtype
        assert torch.equal(actions, expected)  # same distribution, and on the CPU the same values
    finally:
        env.close()


class _MaskAfter(EnvBase):
    """Categorical actions; from step ``at`` on, only action 2 is allowed."""

    def __init__(self, at: int, one_hot: bool) -> None:
        super().__init__()
        self.at = at
        self.observation_spec = Composite(observation=Unbounded(shape=(1,)))
        self.action_spec = OneHot(4) if one_hot else Categorical(4)
        self.t = 0

    def _reset(self, td: TensorDict | None) -> TensorDict:
        return TensorDict({"observation": torch.zeros(1)})

    def _step(self, td: TensorDict) -> TensorDict:
        self.t += 1
        if self.t == self.at:
            self.action_spec.update_mask(torch.arange(4) == 2)  # type: ignore[attr-defined]
        return TensorDict({"observation": torch.zeros(1), "reward": torch.zeros(1)})

    def _set_seed(self, seed: int) -> None:
        torch.manual_seed(seed)


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("at", [1, 5, 260])
def test_rollout_random_actions_follow_a_mask_set_mid_rollout(one_hot: bool, at: int) -> None:
    env = _MaskAfter(at, one_hot)
    actions = env.rollout(300, break_when_any_done=False)["action"]
    index = actions.long().argmax(-1) if one_hot else actions
    assert index.shape == (300,)
    assert bool((index[at:] == 2).all())  # every step after the mask was set
    if at > 50:  # before it, all four actions are drawn
        assert set(index[:at].tolist()) == {0, 1, 2, 3}


def test_action_draws_chunks() -> None:
    assert _action_draws(Bounded(-1.0, 1.0, shape=(2,)), 10) is None
    draws = _action_draws(Categorical(3, shape=(2,)), 600)
    assert draws is not None
    got = list(draws)
    assert len(got) == 600
    assert all(a is not None and a.shape == (2,) for a in got)
    big = _action_draws(OneHot(1 << 17), 3)  # a large spec: one action per draw
    assert big is not None
    assert [a.shape for a in big if a is not None] == [(1 << 17,)] * 3  # type: ignore[union-attr]
    spec = Categorical(3)
    masked = _action_draws(spec, 4)
    assert masked is not None
    assert next(masked) is not None
    spec.update_mask(torch.tensor([True, False, False]))
    assert list(masked) == [None, None, None]  # the caller draws with the mask


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (torch.tensor([True]), True),
        (torch.tensor([[False]]), False),
        (torch.zeros(8, 1, dtype=torch.bool), False),
        (torch.tensor([[False], [True], [False]]), True),
        (torch.zeros(4, 3, dtype=torch.bool)[:, 1:], False),  # not contiguous
        (torch.eye(4, dtype=torch.bool)[:, 1:], True),
        (torch.zeros(100, dtype=torch.bool).index_fill(0, torch.tensor([99]), True), True),
        (torch.tensor([0, 2], dtype=torch.uint8), True),  # not bool: the torch path
    ],
)
def test_any_done(flags: torch.Tensor, expected: bool) -> None:
    assert _any(flags) is expected


class _ArrayFlags(gym.Env):  # type: ignore[type-arg]
    """A gymnasium env returning the reward and flags as 1-element arrays."""

    observation_space = gym.spaces.Box(-1, 1, (2,), dtype=np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: object = None) -> tuple[object, dict]:  # type: ignore[type-arg]
        super().reset(seed=seed)
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: object) -> tuple[object, object, object, object, dict]:  # type: ignore[type-arg]
        done = np.array([action == 1])
        return np.ones(2, dtype=np.float32), np.array([2.0]), done, np.array([False]), {}


def test_single_env_array_reward_and_flags_keep_their_shape() -> None:
    env = GymWrapper(_ArrayFlags())
    td = env.reset()
    td["action"] = torch.tensor([False, True])
    nxt = env.step(td)["next"]
    assert nxt["reward"].tolist() == [2.0]
    assert nxt["terminated"].tolist() == [True]
    assert nxt["truncated"].tolist() == [False]
    assert nxt["done"].tolist() == [True]
    td["action"] = torch.tensor([True, False])
    nxt = env.step(td)["next"]
    assert nxt["done"].tolist() == [False]


@pytest.mark.parametrize("mode", ["sync", "async", "disabled"])
def test_vector_maybe_reset_matches_the_generic_path(mode: str) -> None:
    def make() -> GymWrapper:
        if mode == "disabled":
            venv = gym.make_vec(
                "CartPole-v1",
                num_envs=3,
                vectorization_mode="sync",
                vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED, "copy": False},
                max_episode_steps=4,
            )
            return GymWrapper(venv)
        return GymEnv("CartPole-v1", num_envs=3, vectorization_mode=mode, max_episode_steps=4)

    envs = [make() for _ in range(2)]
    try:
        roots = []
        for env in envs:
            env.set_seed(5)
            roots.append(env.reset())
        for t in range(9):  # crosses two episode ends of every sub-env
            action = envs[0].action_spec.rand()
            stepped = [
                env.step(root.set("action", action.clone())) for env, root in zip(envs, roots)
            ]
            mdp = [step_mdp(td) for td in stepped]
            mdp[0].set("user", torch.full((3, 1), float(t)))  # other root keys are carried
            mdp[1].set("user", torch.full((3, 1), float(t)))
            lean = envs[0].maybe_reset(mdp[0])
            generic = EnvBase.maybe_reset(envs[1], mdp[1])
            assert list(lean.keys()) == list(generic.keys())
            for key in generic.keys():
                assert torch.equal(lean[key], generic[key]), (t, key)
            roots = [lean, generic]
    finally:
        for env in envs:
            env.close()


def test_vector_maybe_reset_keeps_the_values_of_sub_envs_not_reset() -> None:
    env = GymEnv("CartPole-v1", num_envs=2)
    try:
        root = env.reset()
        root["observation"] = torch.tensor([[9.0, 9.0, 9.0, 9.0], [7.0, 7.0, 7.0, 7.0]])
        root["done"] = torch.tensor([[False], [True]])
        out = env.maybe_reset(root)
        assert out["observation"][0].tolist() == [9.0] * 4  # not reset: kept as given
        assert bool((out["observation"][1].abs() < 0.06).all())  # CartPole's reset range
        assert root["observation"][1].tolist() == [7.0] * 4  # the input is left as it is
    finally:
        env.close()
