"""Actions are checked against the action spec: shape and dtype always, values by default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

from rlbricks.envs import ActionError
from rlbricks.envs import EnvBase
from rlbricks.envs import EnvError
from rlbricks.envs import GymEnv
from rlbricks.envs import ParallelEnv
from rlbricks.envs import SerialEnv
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.specs import Binary
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import MultiCategorical
from rlbricks.specs import MultiOneHot
from rlbricks.specs import OneHot
from rlbricks.specs import TensorSpec
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


def step_with(env: EnvBase, action: Any) -> TensorDict:
    td = env.reset()
    td["action"] = action
    return env.step(td)


class SpecEnv(EnvBase):
    """An env with any action spec: the reward is the sum of the action (as float)."""

    def __init__(self, spec: TensorSpec[Any], batch_size: Any = ()) -> None:
        super().__init__(batch_size=batch_size)
        bs = self.batch_size
        self.observation_spec = Unbounded(shape=(*bs, 1))
        self.action_spec = spec
        self.steps = 0

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        return TensorDict({"observation": torch.zeros(*self.batch_size, 1)}, self.batch_size)

    def _step(self, tensordict: TensorDict) -> TensorDict:
        self.steps += 1
        action = tensordict.get("action")
        if isinstance(action, TensorDict):
            total = sum(
                v.float().sum() for v in action.values(include_nested=True, leaves_only=True)
            )
        else:
            total = action.float().sum()
        reward = torch.full((*self.batch_size, 1), float(total))
        return TensorDict(
            {"observation": torch.zeros(*self.batch_size, 1), "reward": reward}, self.batch_size
        )

    def _set_seed(self, seed: int) -> None:
        pass


# --------------------------------------------------------------------------- #
# the cases of the issue
# --------------------------------------------------------------------------- #
def test_action_error_is_an_env_error_and_a_value_error() -> None:
    assert issubclass(ActionError, EnvError)
    assert issubclass(ActionError, ValueError)


def test_categorical_refuses_an_index_out_of_range() -> None:
    env = CountingEnv()  # Categorical(2), shape [1]
    with pytest.raises(ActionError) as info:
        step_with(env, torch.tensor([7]))
    message = str(info.value)
    assert "CountingEnv.step" in message
    assert "'action'" in message
    assert "Categorical(shape=[1], dtype=torch.int64" in message
    assert "n=2" in message
    assert "1 of 1 values not in [0, 2)" in message
    assert "first at index (0,): 7" in message
    assert "validate_actions=False" in message
    assert int(env.count) == 0  # refused before the env stepped


def test_categorical_refuses_a_float_action() -> None:
    env = CountingEnv()
    with pytest.raises(ActionError, match=r"dtype torch\.float32.*integer dtype \(or bool\)"):
        step_with(env, torch.tensor([0.5]))
    env.validate_actions = False  # a dtype is always checked
    with pytest.raises(ActionError, match="integer indices"):
        step_with(env, torch.tensor([1.0]))


def test_a_wrong_shape_is_refused_even_without_value_checks() -> None:
    for validate in (True, False):
        env = CountingEnv()
        env.validate_actions = validate
        with pytest.raises(ActionError) as info:
            step_with(env, torch.tensor([1, 0, 1]))  # [3] where the spec says [1]
        message = str(info.value)
        assert "has shape [3]" in message
        assert "expects shape [1]" in message
        assert "(shape and dtype are always checked)" in message
    with pytest.raises(ActionError, match=r"has shape \[\]"):  # the trailing 1 is not added
        step_with(CountingEnv(), torch.tensor(1))
    batched = CountingEnv(batch_size=[4])
    with pytest.raises(ActionError, match=r"batch_size \[4\] followed by the action's own dims"):
        step_with(batched, torch.zeros(4, dtype=torch.int64))


def test_continuous_refuses_values_outside_the_bounds() -> None:
    env = ContinuousActionEnv()  # Bounded [-1, 1], shape [2]
    with pytest.raises(ActionError) as info:
        step_with(env, torch.tensor([0.5, 5.0]))
    message = str(info.value)
    assert "Bounded(shape=[2], dtype=torch.float32" in message
    assert "low=-1.0, high=1.0" in message
    assert "1 of 2 values not in [-1.0, 1.0]" in message
    assert "first at index (1,): 5.0" in message
    assert "clamp" in message
    assert env.position.tolist() == [0.0, 0.0]
    step_with(env, torch.tensor([1.0, -1.0]))  # the bounds themselves are in


def test_nan_is_refused() -> None:
    env = ContinuousActionEnv()
    with pytest.raises(ActionError, match=r"1 NaN.*first at index \(0,\): nan.*produced NaN"):
        step_with(env, torch.tensor([float("nan"), 0.0]))
    batched = ContinuousActionEnv(batch_size=[40])  # large: the torch reduction
    action = torch.zeros(40, 2)
    action[17, 1] = float("nan")
    with pytest.raises(ActionError, match=r"first at index \(17, 1\): nan"):
        step_with(batched, action)


# --------------------------------------------------------------------------- #
# the opt-out
# --------------------------------------------------------------------------- #
def test_validate_actions_false_skips_the_value_checks() -> None:
    env = CountingEnv(batch_size=[2])
    assert env.validate_actions
    env.validate_actions = False
    td = step_with(env, torch.tensor([[7], [1]]))
    assert td["next", "reward"].squeeze(-1).tolist() == [7.0, 1.0]
    continuous = ContinuousActionEnv()
    continuous.validate_actions = False
    assert step_with(continuous, torch.tensor([5.0, 0.0]))["next", "observation"].tolist() == [
        5.0,
        0.0,
    ]
    with pytest.raises(ActionError, match="shape"):
        step_with(continuous, torch.zeros(3))


def test_validate_actions_is_a_keyword_of_env_base() -> None:
    env = SpecEnv(Categorical(2))
    assert env.validate_actions
    quiet = SpecEnv.__new__(SpecEnv)
    EnvBase.__init__(quiet, validate_actions=False)
    assert not quiet.validate_actions


def test_a_refused_action_can_be_followed_by_a_good_one() -> None:
    env = CountingEnv(max_steps=3)
    with pytest.raises(ActionError):
        step_with(env, torch.tensor([2]))
    td = env.rollout(3, policy=lambda td: td.set("action", torch.ones(1, dtype=torch.int64)))
    assert td["next", "reward"].squeeze(-1).tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------- #
# what each spec accepts
# --------------------------------------------------------------------------- #
SPECS = {
    "categorical": Categorical(3, shape=(2,)),
    "categorical-bool": Categorical(2, dtype=torch.bool),
    "one-hot": OneHot(3, shape=(2, 3)),
    "multi-categorical": MultiCategorical([2, 5]),
    "multi-one-hot": MultiOneHot([2, 3]),
    "binary": Binary(4),
    "bounded": Bounded(-2.0, 3.0, shape=(3,)),
    "bounded-per-entry": Bounded(torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 5.0])),
    "bounded-int": Bounded(0, 4, shape=(2,), dtype=torch.int64),
    "bounded-large": Bounded(-1.0, 1.0, shape=(8, 6)),
    "bounded-large-per-entry": Bounded(torch.zeros(6), torch.arange(1.0, 7.0), shape=(8, 6)),
    "unbounded": Unbounded(shape=(2,)),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_random_actions_of_every_spec_pass(name: str) -> None:
    spec = SPECS[name]
    env = SpecEnv(spec)
    for _ in range(20):
        step_with(env, spec.rand())
    assert env.steps == 20


BAD_VALUES = [
    ("categorical", torch.tensor([0, 3]), r"values not in \[0, 3\).*index \(1,\): 3"),
    ("categorical", torch.tensor([-1, 0]), r"index \(0,\): -1"),
    ("one-hot", torch.tensor([[1, 0, 0], [1, 1, 0]]), r"1 of 2 rows do not hold exactly one 1"),
    ("one-hot", torch.tensor([[0.0, 0.7, 0.0], [1.0, 0.0, 0.0]]), r"not 0 or 1.*0\.7"),
    ("one-hot", torch.zeros(2, 3, dtype=torch.bool), r"2 of 2 rows"),
    ("multi-categorical", torch.tensor([1, 5]), r"nvec=\[2, 5\].*index \(1,\): 5"),
    ("multi-one-hot", torch.tensor([1, 1, 0, 0, 1]), r"MultiOneHot"),
    ("multi-one-hot", torch.tensor([1, 0, 2, 0, 1]), r"not 0 or 1"),
    ("binary", torch.tensor([0, 1, 2, 0], dtype=torch.int8), r"not 0 or 1.*index \(2,\): 2"),
    ("bounded", torch.tensor([0.0, 3.5, -2.0]), r"not in \[-2\.0, 3\.0\].*index \(1,\): 3\.5"),
    ("bounded-per-entry", torch.tensor([0.5, -0.5]), r"index \(1,\): -0\.5, not in \[0\.0, 5\.0\]"),
    ("bounded-int", torch.tensor([0, 5]), r"index \(1,\): 5"),
    (
        "bounded-large",
        torch.full((8, 6), 0.5).index_put_((torch.tensor(3),), torch.tensor(1.5)),
        r"6 of 48.*index \(3, 0\)",
    ),
    (
        "bounded-large-per-entry",
        torch.full((8, 6), 0.5).index_put_((torch.tensor(2), torch.tensor(0)), torch.tensor(1.5)),
        r"index \(2, 0\): 1\.5, not in \[0\.0, 1\.0\]",
    ),
]


@pytest.mark.parametrize(("name", "action", "match"), BAD_VALUES)
def test_values_outside_each_spec_are_refused(name: str, action: torch.Tensor, match: str) -> None:
    env = SpecEnv(SPECS[name])
    with pytest.raises(ActionError, match=match):
        step_with(env, action)
    assert env.steps == 0
    env.validate_actions = False
    step_with(env, action)
    assert env.steps == 1


DTYPES = [
    ("categorical", torch.tensor([0, 2], dtype=torch.int32), True),
    ("categorical", torch.tensor([0, 2], dtype=torch.uint8), True),
    ("categorical", torch.tensor([True, False]), True),
    ("categorical", torch.tensor([0.0, 2.0]), False),
    ("categorical-bool", torch.tensor(1), True),
    ("one-hot", torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), True),
    ("one-hot", torch.tensor([[0, 1, 0], [1, 0, 0]]), True),
    ("binary", torch.tensor([True, False, True, True]), True),
    ("bounded", torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), True),
    ("bounded", torch.tensor([0.0, 1.0, 2.0], dtype=torch.bfloat16), True),
    ("bounded", torch.tensor([0, 1, 2]), False),
    ("bounded-int", torch.tensor([0.0, 1.0]), False),
    ("bounded-int", torch.tensor([0, 1], dtype=torch.int16), True),
    ("unbounded", torch.tensor([1, 2]), False),
    ("unbounded", torch.tensor([float("nan"), float("inf")]), True),  # NaN is in Unbounded
]


@pytest.mark.parametrize(("name", "action", "accepted"), DTYPES)
def test_dtypes_are_checked_by_kind(name: str, action: torch.Tensor, accepted: bool) -> None:
    env = SpecEnv(SPECS[name])
    env.validate_actions = False  # the dtype check does not depend on it
    if accepted:
        step_with(env, action)
    else:
        with pytest.raises(ActionError, match="dtype"):
            step_with(env, action)


def test_rounding_at_a_floating_bound_is_tolerated() -> None:
    # a squashed sample ``mid + half * tanh(z)`` (TanhNormal) with tanh(z) = -1 lands one
    # ulp below low = 0.1 in float32: the env sees the bound, the check lets it through
    spec = Bounded(0.1, 0.3, shape=(2,))
    low, high = spec.low, spec.high
    saturated = (high + low) / 2 - (high - low) / 2
    assert bool((saturated < low).all())
    env = SpecEnv(spec)
    step_with(env, saturated)
    above = torch.nextafter(high, torch.full_like(high, 1.0))
    step_with(env, above)
    with pytest.raises(ActionError, match=r"not in \[0\.1, 0\.3\]"):
        step_with(env, high + 1e-4)  # a real excess: far beyond rounding
    with pytest.raises(ActionError):
        step_with(SpecEnv(Bounded(0, 4, shape=(1,), dtype=torch.int64)), torch.tensor([5]))
    half_precision = torch.tensor([0.3, 0.3], dtype=torch.float16)  # 0.2998 or 0.3001
    step_with(env, half_precision)


def test_a_categorical_of_one_action_refuses_true() -> None:
    env = SpecEnv(Categorical(1, shape=(2,)))
    step_with(env, torch.tensor([False, False]))
    with pytest.raises(ActionError, match=r"index \(1,\): 1"):
        step_with(env, torch.tensor([False, True]))


def test_masks_are_read_at_every_step() -> None:
    spec = Categorical(3)
    env = SpecEnv(spec)
    step_with(env, torch.tensor(1))
    spec.update_mask(torch.tensor([True, False, True]))
    with pytest.raises(ActionError, match=r"mask forbids.*action 1.*action_spec\.mask"):
        step_with(env, torch.tensor(1))
    step_with(env, torch.tensor(2))
    spec.update_mask(None)
    step_with(env, torch.tensor(1))
    one_hot = OneHot(3, mask=torch.tensor([False, True, True]))
    with pytest.raises(ActionError, match="mask"):
        step_with(SpecEnv(one_hot), torch.tensor([True, False, False]))
    multi = MultiCategorical([2, 2], mask=torch.tensor([True, True, False, True]))
    with pytest.raises(ActionError, match="mask"):
        step_with(SpecEnv(multi), torch.tensor([1, 0]))
    step_with(SpecEnv(multi), torch.tensor([1, 1]))


def test_a_new_action_spec_gets_a_new_check() -> None:
    env = SpecEnv(Categorical(2))
    step_with(env, torch.tensor(1))
    env.action_spec = Categorical(5)
    step_with(env, torch.tensor(4))
    env.action_spec = Bounded(-1.0, 1.0, shape=(1,))
    with pytest.raises(ActionError, match="shape"):
        step_with(env, torch.tensor(4))


def test_composite_action_specs_check_every_leaf() -> None:
    spec = Composite(
        move=Bounded(-1.0, 1.0, shape=(2, 2)),
        tool={"pick": Categorical(3, shape=(2,))},
        shape=(2,),
    )
    env = SpecEnv(spec, batch_size=[2])
    step_with(env, spec.rand())
    bad = spec.rand()
    bad["tool", "pick"] = torch.tensor([0, 3])
    with pytest.raises(ActionError, match=r"\('action', 'tool', 'pick'\).*index \(1,\): 3"):
        step_with(env, bad)
    with pytest.raises(ActionError, match=r"no entry \('action', 'move'\)"):
        step_with(env, bad.exclude("move"))
    with pytest.raises(ActionError, match="write a TensorDict"):
        step_with(env, torch.zeros(2, 1))
    env.validate_actions = False
    step_with(env, bad)


def test_no_action_key_is_left_to_the_env() -> None:
    env = CountingEnv()
    with pytest.raises(KeyError):
        env.step(env.reset())


def test_check_action_can_be_called_directly() -> None:
    env = NestedSpecEnv()  # Unbounded [1]: any float value
    td = env.reset().set("action", torch.tensor([1e9]))
    env.check_action(td)
    env.check_action(td, values=True)
    with pytest.raises(ActionError):
        env.check_action(td.set("action", torch.tensor([1, 2])))


# --------------------------------------------------------------------------- #
# gymnasium: EnvBase.step and the fast rollout loop
# --------------------------------------------------------------------------- #
@pytest.fixture
def cartpole() -> Iterator[GymEnv]:
    pytest.importorskip("gymnasium")
    env = GymEnv("CartPole-v1", categorical_action_encoding=True)
    env.set_seed(0)
    yield env
    env.close()


def test_gym_step_refuses_a_bad_discrete_action(cartpole: GymEnv) -> None:
    with pytest.raises(ActionError, match=r"GymEnv\.step.*\[0, 2\).*index \(\): 2"):
        step_with(cartpole, torch.tensor(2))
    with pytest.raises(ActionError, match=r"has shape \[1\].*expects shape \[\]"):
        step_with(cartpole, torch.tensor([1]))
    one_hot = GymEnv("CartPole-v1", num_envs=2)
    with pytest.raises(ActionError, match="rows do not hold exactly one 1"):
        step_with(one_hot, torch.tensor([[True, True], [False, True]]))
    one_hot.close()


@pytest.mark.parametrize("num_envs", [None, 3])
def test_the_gym_fast_path_checks_every_action(num_envs: int | None) -> None:
    pytest.importorskip("gymnasium")
    env = GymEnv("Pendulum-v1", num_envs=num_envs)  # Bounded [-2, 2], shape [*batch, 1]
    env.set_seed(0)
    calls = []

    def policy(td: TensorDict) -> TensorDict:
        calls.append(1)
        action = env.action_spec.rand()
        if len(calls) == 4:
            action = action + 10.0  # the fourth action is outside
        return td.set("action", action)

    root = env.reset()
    with pytest.raises(ActionError, match=r"not in \[-2\.0, 2\.0\]"):
        env.policy_rollout(root, policy, 10, False)
    assert len(calls) == 4
    env.validate_actions = False  # Pendulum clips the action itself
    calls.clear()
    result = env.policy_rollout(env.reset(), policy, 10, False)
    assert result is not None
    assert len(calls) == 10

    def wrong_shape(td: TensorDict) -> TensorDict:
        return td.set("action", torch.zeros(*env.batch_size, 2))

    with pytest.raises(ActionError, match="shape"):
        env.rollout(5, wrong_shape)
    env.close()


def test_the_gym_fast_path_refuses_a_float_index(cartpole: GymEnv) -> None:
    with pytest.raises(ActionError, match="integer"):
        cartpole.rollout(5, lambda td: td.set("action", torch.tensor(0.7)))


def test_gym_env_takes_validate_actions() -> None:
    pytest.importorskip("gymnasium")
    env = GymEnv("Pendulum-v1", validate_actions=False)
    assert not env.validate_actions
    step_with(env, torch.tensor([5.0]))  # gymnasium's Pendulum clips it
    env.close()


# --------------------------------------------------------------------------- #
# batched envs: checked once, at their level
# --------------------------------------------------------------------------- #
def test_serial_env_checks_the_batched_action() -> None:
    env = SerialEnv(3, CountingEnv)
    with pytest.raises(ActionError, match=r"SerialEnv\.step.*index \(2, 0\): 2"):
        step_with(env, torch.tensor([[0], [1], [2]]))
    with pytest.raises(ActionError, match=r"expects shape \[3, 1\]"):
        step_with(env, torch.tensor([0, 1, 1]))
    env.validate_actions = False
    td = step_with(env, torch.tensor([[0], [1], [2]]))
    assert td["next", "reward"].squeeze(-1).tolist() == [0.0, 1.0, 2.0]
    env.close()


def test_parallel_env_refuses_before_the_workers_see_the_action() -> None:
    with ParallelEnv(2, ContinuousActionEnv, mp_start_method="fork") as env:
        with pytest.raises(ActionError, match=r"ParallelEnv\.step.*index \(1, 0\): 3\.0"):
            step_with(env, torch.tensor([[0.5, 0.5], [3.0, 0.0]]))
        with pytest.raises(ActionError, match="shape"):
            step_with(env, torch.zeros(2))  # would broadcast into the shared buffer
        assert not env.is_closed  # nothing reached the workers: the env goes on
        td = step_with(env, torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
        assert td["next", "observation"].tolist() == [[0.5, 0.5], [1.0, 0.0]]
        env.validate_actions = False
        td = step_with(env, torch.tensor([[0.5, 0.5], [3.0, 0.0]]))
        assert td["next", "observation"].tolist() == [[0.5, 0.5], [3.0, 0.0]]
