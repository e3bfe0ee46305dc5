"""SerialEnv: batched specs, partial resets, seeding, equality with the sub-envs."""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import check_env_specs
from rlbricks.envs._serial import SerialEnv
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close


def parity_policy(td: TensorDict) -> TensorDict:
    """A deterministic policy: action = observation is even."""
    return td.set("action", (td["observation"] % 2 == 0).long())


@pytest.mark.parametrize("env_cls", [CountingEnv, NestedSpecEnv, ContinuousActionEnv])
def test_check_env_specs(env_cls: type) -> None:
    env = SerialEnv(3, env_cls)
    check_env_specs(env, steps=8, seed=0)
    assert env.batch_size == (3,)


@pytest.mark.parametrize("env_cls", [CountingEnv, NestedSpecEnv, ContinuousActionEnv])
def test_specs_are_expanded_sub_env_specs(env_cls: type) -> None:
    env = SerialEnv(4, env_cls)
    sub = env_cls()
    assert env.observation_spec == sub.observation_spec.expand(4)
    assert env.action_spec == sub.action_spec.expand(4, *sub.action_spec.shape)
    assert env.reward_spec == sub.reward_spec.expand(4, *sub.reward_spec.shape)
    assert env.done_spec == sub.done_spec.expand(4)


def test_nested_observation_shapes() -> None:
    env = SerialEnv(2, NestedSpecEnv)
    td = env.rollout(3)
    assert td["next", "data", "states"].shape == (2, 3, 3)
    assert td["next", "data", "step"][:, :, 0].tolist() == [[1.0, 2.0, 3.0]] * 2


def test_partial_reset_only_resets_masked_sub_envs() -> None:
    env = SerialEnv(3, CountingEnv, create_env_kwargs={"max_steps": 10})
    td = env.reset()
    for _ in range(3):
        td = env.step(env.rand_action(td))
        td = td["next"].exclude("reward")
    assert td["observation"][:, 0].tolist() == [3.0, 3.0, 3.0]
    td.set("_reset", torch.tensor([[False], [True], [False]]))
    out = env.reset(td)
    assert "_reset" not in out
    assert out["observation"][:, 0].tolist() == [3.0, 0.0, 3.0]
    assert env.sub_env_attr("count") == [torch.tensor([3]), torch.tensor([0]), torch.tensor([3])]
    nxt = env.step(env.rand_action(out))["next"]
    assert nxt["observation"][:, 0].tolist() == [4.0, 1.0, 4.0]


def test_partial_reset_with_empty_mask_keeps_everything() -> None:
    env = SerialEnv(2, CountingEnv)
    td = env.step(env.rand_action(env.reset()))["next"].exclude("reward")
    td.set("_reset", torch.zeros(2, 1, dtype=torch.bool))
    out = env.reset(td)
    assert out["observation"][:, 0].tolist() == [1.0, 1.0]


def test_rollout_equals_sub_env_rollouts() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (2, 3, 5)]
    env = SerialEnv(3, fns)
    batched = env.rollout(9, parity_policy, break_when_any_done=False)
    assert batched.batch_size == (3, 9)
    for i, fn in enumerate(fns):
        single = fn().rollout(9, parity_policy, break_when_any_done=False)
        assert_close(batched[i], single)


def test_rollout_equals_sub_env_rollouts_continuous() -> None:
    env = SerialEnv(2, ContinuousActionEnv, create_env_kwargs={"max_steps": 3})
    torch.manual_seed(0)
    batched = env.rollout(7, break_when_any_done=False)
    for i in range(2):
        sub = ContinuousActionEnv(max_steps=3)
        actions = batched["action"][i]

        def replay(td: TensorDict, _it: list[int] = [0], _a: torch.Tensor = actions) -> TensorDict:
            td.set("action", _a[_it[0]])
            _it[0] += 1
            return td

        single = sub.rollout(7, replay, break_when_any_done=False)
        assert_close(batched[i], single)


def test_kwargs_per_sub_env() -> None:
    env = SerialEnv(2, CountingEnv, create_env_kwargs=[{"max_steps": 2}, {"max_steps": 4}])
    assert env.sub_env_attr("max_steps") == [2, 4]


def test_set_seed_gives_seed_plus_index() -> None:
    env = SerialEnv(3, CountingEnv)
    assert env.set_seed(5) == 8
    assert env.sub_env_attr("seed") == [5, 6, 7]
    assert [e.seed for e in env.envs] == [5, 6, 7]


def test_close_closes_every_sub_env() -> None:
    env = SerialEnv(2, CountingEnv)
    env.close()
    env.close()
    assert env.is_closed
    assert all(e.is_closed for e in env.envs)
    with pytest.raises(EnvError, match="closed"):
        env.reset()


def test_context_manager_closes() -> None:
    with SerialEnv(2, CountingEnv) as env:
        env.rollout(2)
    assert env.is_closed


def test_batched_sub_env_is_rejected() -> None:
    with pytest.raises(EnvError, match=r"batch_size \(2,\).*unbatched"):
        SerialEnv(2, CountingEnv, create_env_kwargs={"batch_size": [2]})


def test_not_an_env_is_rejected() -> None:
    with pytest.raises(EnvError, match="not an EnvBase"):
        SerialEnv(2, dict)


@pytest.mark.parametrize(
    ("num_workers", "fn", "kwargs", "match"),
    [
        (0, CountingEnv, None, "at least 1"),
        (3, [CountingEnv, CountingEnv], None, "2 callables for num_workers=3"),
        (2, CountingEnv, [{}, {}, {}], "3 dicts for num_workers=2"),
    ],
)
def test_bad_arguments(num_workers: int, fn: object, kwargs: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SerialEnv(num_workers, fn, create_env_kwargs=kwargs)  # type: ignore[arg-type]


def test_step_without_action_names_the_key() -> None:
    env = SerialEnv(2, CountingEnv)
    with pytest.raises(KeyError, match="action"):
        env.step(env.reset())


def test_repr() -> None:
    assert (
        repr(SerialEnv(2, CountingEnv)) == "SerialEnv(num_workers=2, env=CountingEnv, device=cpu)"
    )
