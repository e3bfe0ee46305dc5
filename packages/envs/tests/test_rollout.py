"""rollout: time dim last, stopping or resetting on done, policies."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import rollout
from rlbricks.envs import step_mdp
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.tensordict import TensorDict


@pytest.mark.parametrize("batch_size", [(), (2,), (2, 3)])
def test_time_dim_is_last(batch_size: tuple[int, ...]):
    td = CountingEnv(max_steps=10, batch_size=batch_size).rollout(4)
    assert td.batch_size == (*batch_size, 4)
    assert td["next", "observation"].shape == (*batch_size, 4, 1)
    assert td["next", "reward"].shape == (*batch_size, 4, 1)
    obs = td["next", "observation"].reshape(-1, 4)
    assert obs.tolist() == [[1.0, 2.0, 3.0, 4.0]] * obs.shape[0]


def test_consecutive_steps_are_chained():
    td = ContinuousActionEnv(max_steps=20, batch_size=[2]).rollout(6)
    assert torch.equal(td["observation"][:, 1:], td["next", "observation"][:, :-1])


def test_break_when_any_done_stops_at_first_done():
    env = CountingEnv(max_steps=3, batch_size=[2])
    td = env.rollout(10)
    assert td.batch_size == (2, 3)
    assert td["next", "done"][:, -1].all()
    assert not td["next", "done"][:, :-1].any()


def test_break_when_any_done_with_staggered_sub_envs():
    env = CountingEnv(max_steps=3, batch_size=[2])
    root = env.reset()
    root = step_mdp(env.step(env.rand_action(root)))
    root.set("_reset", torch.tensor([[True], [False]]))
    root = env.reset(root)  # counts 0 and 1
    td = rollout(env, 10, auto_reset=False, tensordict=root)
    assert td.batch_size == (2, 2)
    assert td["next", "done"][:, -1].squeeze(-1).tolist() == [False, True]


def test_no_break_resets_finished_sub_envs():
    env = CountingEnv(max_steps=2, batch_size=[2])
    td = env.rollout(5, break_when_any_done=False)
    assert td.batch_size == (2, 5)
    assert td["observation"][0, :, 0].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert td["next", "observation"][0, :, 0].tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
    assert td["next", "done"][0, :, 0].tolist() == [False, True, False, True, False]


def test_no_break_unbatched():
    td = CountingEnv(max_steps=2).rollout(4, break_when_any_done=False)
    assert td["observation"][:, 0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_policy_is_used():
    env = CountingEnv(max_steps=10, batch_size=[3])
    calls = []

    def policy(td: TensorDict) -> TensorDict:
        calls.append(td["observation"].clone())
        return td.set("action", torch.ones(3, 1, dtype=torch.long))

    td = env.rollout(4, policy=policy)
    assert len(calls) == 4
    assert td["next", "reward"].eq(1.0).all()
    assert td["action"].eq(1).all()


def test_random_actions_are_in_spec():
    env = ContinuousActionEnv(batch_size=[5])
    td = env.rollout(3)
    for t in range(3):
        env.action_spec.assert_is_in(td["action"][:, t])


def test_auto_reset_false_needs_tensordict():
    with pytest.raises(EnvError, match="tensordict="):
        CountingEnv().rollout(3, auto_reset=False)


def test_auto_reset_false_continues_from_tensordict():
    env = CountingEnv(max_steps=10)
    first = env.rollout(3)
    root = step_mdp(first[-1])
    td = env.rollout(2, auto_reset=False, tensordict=root)
    assert td["observation"][:, 0].tolist() == [3.0, 4.0]


def test_auto_reset_uses_tensordict_as_reset_input():
    env = CountingEnv(max_steps=10, batch_size=[2])
    root = step_mdp(env.rollout(3)[:, -1])
    root.set("_reset", torch.tensor([[False], [True]]))
    td = env.rollout(1, tensordict=root)
    assert td["observation"][:, 0, 0].tolist() == [3.0, 0.0]


@pytest.mark.parametrize("max_steps", [0, -2])
def test_max_steps_must_be_positive(max_steps: int):
    with pytest.raises(ValueError, match=f"got {max_steps}"):
        CountingEnv().rollout(max_steps)


def test_free_function_equals_method():
    a = rollout(CountingEnv(max_steps=3), 5)
    b = CountingEnv(max_steps=3).rollout(5)
    assert a.batch_size == b.batch_size
    assert torch.equal(a["next", "observation"], b["next", "observation"])


def test_nested_env_rollout():
    td = NestedSpecEnv(max_steps=3, batch_size=[2]).rollout(10)
    assert td.batch_size == (2, 3)
    assert td["next", "data", "states"].shape == (2, 3, 3)
    assert td["next", "truncated"][:, -1].all()


# --------------------------------------------------------------------------- #
# the public fast path: EnvBase.policy_rollout
# --------------------------------------------------------------------------- #
def _ones(td: TensorDict) -> TensorDict:
    return td.set("action", torch.ones(*td.batch_size, 1, dtype=torch.long))


def test_the_base_policy_rollout_declines():
    env = CountingEnv(max_steps=3, batch_size=[2])
    assert env.policy_rollout(env.reset(), _ones, 4, False) is None
    assert env.policy_rollout(env.reset(), _ones, 4, True) is None


class _ByHand(CountingEnv):
    """Overrides the fast path with the generic loop, counting its calls."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls: list[tuple[int, bool]] = []

    def policy_rollout(self, tensordict, policy, max_steps, break_when_any_done):
        self.calls.append((max_steps, break_when_any_done))
        if break_when_any_done:
            return None
        steps = []
        for _ in range(max_steps):
            step, tensordict = self.step_and_maybe_reset(policy(tensordict))
            steps.append(step)
        return torch.stack(steps, len(self.batch_size)), tensordict


@pytest.mark.parametrize("break_when_any_done", [False, True])
def test_rollout_uses_an_env_override_of_policy_rollout(break_when_any_done: bool):
    env = _ByHand(max_steps=2, batch_size=[2])
    td = env.rollout(5, _ones, break_when_any_done=break_when_any_done)
    assert env.calls == [(5, break_when_any_done)]
    generic = CountingEnv(max_steps=2, batch_size=[2])
    expected = generic.rollout(5, _ones, break_when_any_done=break_when_any_done)
    assert td.batch_size == expected.batch_size
    assert torch.equal(td["next", "observation"], expected["next", "observation"])
    assert torch.equal(td["next", "done"], expected["next", "done"])


def test_rollout_without_a_policy_does_not_ask_policy_rollout():
    env = _ByHand(max_steps=2)
    env.rollout(3)
    assert env.calls == []
