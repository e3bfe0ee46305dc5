"""step_mdp: the output of env.step becomes the input of the next step."""

from __future__ import annotations

import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import step_mdp
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.tensordict import TensorDict


def stepped() -> TensorDict:
    flag = torch.zeros(2, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": torch.zeros(2, 3),
            "action": torch.ones(2, 1),
            "reward": torch.full((2, 1), 7.0),
            "hidden": torch.full((2, 4), 5.0),
            "done": flag,
            "terminated": flag,
            "truncated": flag,
            "next": {
                "observation": torch.ones(2, 3),
                "reward": torch.ones(2, 1),
                "done": ~flag,
                "terminated": ~flag,
                "truncated": flag,
            },
        },
        batch_size=[2],
    )


def test_default_moves_next_to_root():
    td = stepped()
    out = step_mdp(td)
    assert sorted(out.keys()) == ["done", "hidden", "observation", "terminated", "truncated"]
    assert torch.equal(out["observation"], torch.ones(2, 3))
    assert out["done"].all()
    assert out.batch_size == (2,)
    assert "next" in td  # the input is untouched


def test_no_copy():
    td = stepped()
    out = step_mdp(td)
    assert out["observation"].data_ptr() == td["next", "observation"].data_ptr()
    assert out["hidden"].data_ptr() == td["hidden"].data_ptr()


def test_keep_other_false_drops_root_only_keys():
    out = step_mdp(stepped(), keep_other=False)
    assert sorted(out.keys()) == ["done", "observation", "terminated", "truncated"]


def test_exclude_action_false_keeps_action():
    out = step_mdp(stepped(), exclude_action=False)
    assert torch.equal(out["action"], torch.ones(2, 1))


def test_exclude_action_false_without_keep_other_has_no_action():
    out = step_mdp(stepped(), exclude_action=False, keep_other=False)
    assert "action" not in out


def test_exclude_reward_false_takes_reward_from_next():
    out = step_mdp(stepped(), exclude_reward=False)
    assert torch.equal(out["reward"], torch.ones(2, 1))


def test_exclude_reward_false_keeps_root_reward_when_next_has_none():
    td = stepped()
    del td["next", "reward"]
    out = step_mdp(td, exclude_reward=False)
    assert torch.equal(out["reward"], torch.full((2, 1), 7.0))
    assert "reward" not in step_mdp(td)


def test_exclude_done_drops_all_flags_from_both_levels():
    out = step_mdp(stepped(), exclude_done=True)
    assert sorted(out.keys()) == ["hidden", "observation"]


def test_nested_keys_move():
    env = NestedSpecEnv(batch_size=[2])
    td = env.rand_step()
    out = step_mdp(td)
    assert torch.equal(out["data", "states"], td["next", "data", "states"])
    assert torch.equal(out["data", "step"], torch.ones(2, 1))


def test_without_next_raises_and_lists_keys():
    with pytest.raises(EnvError, match=r"no 'next' entry.*observation"):
        step_mdp(TensorDict({"observation": torch.zeros(1)}))


def test_next_tensor_raises():
    with pytest.raises(EnvError, match="'next' holds a tensor"):
        step_mdp(TensorDict({"next": torch.zeros(1)}))


def test_chained_with_env():
    env = CountingEnv(max_steps=10)
    td = env.reset()
    for expected in (1.0, 2.0, 3.0):
        td = step_mdp(env.step(env.rand_action(td)))
        assert td["observation"].item() == expected
