"""EnvBase: spec setters, done filling, reset/step, seeding, lifecycle."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch

from rlbricks.envs import EnvBase
from rlbricks.envs import EnvError
from rlbricks.envs import done_spec_for
from rlbricks.envs import step_mdp
from rlbricks.envs import step_spec
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.specs import Bounded
from rlbricks.specs import Categorical
from rlbricks.specs import Composite
from rlbricks.specs import Unbounded
from rlbricks.tensordict import TensorDict


class FlagEnv(EnvBase):
    """``_step`` returns exactly the done flags it is given (batch [3])."""

    def __init__(self, flags: dict[str, torch.Tensor]) -> None:
        super().__init__(batch_size=[3])
        self.flags = flags
        self.observation_spec = Unbounded(shape=(3, 1))
        self.action_spec = Unbounded(shape=(3, 1))

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        return TensorDict({"observation": torch.zeros(3, 1)}, batch_size=[3])

    def _step(self, tensordict: TensorDict) -> TensorDict:
        out = TensorDict({"observation": torch.ones(3, 1), "reward": torch.zeros(3, 1)}, [3])
        for key, value in self.flags.items():
            out.set(key, value.clone())
        return out

    def _set_seed(self, seed: int) -> None:
        pass


def col(*values: bool) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.bool).unsqueeze(-1)


# --------------------------------------------------------------------------- #
# specs
# --------------------------------------------------------------------------- #
def test_leaf_observation_spec_is_wrapped_under_observation():
    env = FlagEnv({})
    assert isinstance(env.observation_spec, Composite)
    assert list(env.observation_spec.keys()) == ["observation"]
    assert env.observation_spec["observation"].shape == (3, 1)
    assert env.observation_spec.shape == (3,)
    assert env.full_observation_spec is env.observation_spec
    assert env.full_action_spec["action"] == env.action_spec


@pytest.mark.parametrize(
    ("name", "leaf"),
    [
        ("observation_spec", False),
        ("observation_spec", True),
        ("action_spec", True),
        ("reward_spec", True),
        ("done_spec", False),
        ("done_spec", True),
    ],
)
def test_spec_not_starting_with_batch_size_names_spec_and_shapes(name: str, leaf: bool):
    env = CountingEnv(batch_size=[3])
    spec: Any = Unbounded(shape=(4, 1))
    if name == "done_spec":
        spec = Categorical(2, shape=(4, 1), dtype=torch.bool)
    if not leaf:
        key = "done" if name == "done_spec" else "observation"
        spec = Composite({key: spec}, shape=(4,))
    with pytest.raises(EnvError) as info:
        setattr(env, name, spec)
    msg = str(info.value)
    assert f"CountingEnv.{name}" in msg
    assert "(3,)" in msg
    assert ("(4, 1)" if leaf else "(4,)") in msg


def test_state_spec_must_start_with_batch_size():
    env = CountingEnv(batch_size=[3])
    with pytest.raises(EnvError, match="state_spec"):
        env.state_spec = Composite(h=Unbounded(shape=(2,)))
    env.state_spec = Composite(h=Unbounded(shape=(3, 2)), shape=(3,))
    assert env.full_state_spec["h"].shape == (3, 2)


def test_missing_action_spec_raises_with_fix():
    env = FlagEnv.__new__(FlagEnv)
    EnvBase.__init__(env)
    with pytest.raises(EnvError, match="declares no action_spec"):
        env.action_spec


def test_default_reward_and_done_specs():
    env = FlagEnv.__new__(FlagEnv)
    EnvBase.__init__(env, batch_size=[2])
    assert env.reward_spec.shape == (2, 1)
    assert env.reward_spec.dtype == torch.float32
    assert sorted(env.done_spec.keys()) == ["done", "terminated", "truncated"]
    for key in ("done", "terminated", "truncated"):
        assert env.done_spec[key].shape == (2, 1)
        assert env.done_spec[key].dtype == torch.bool
    assert env.done_spec == done_spec_for(torch.Size([2]), "cpu")
    assert env.full_done_spec is env.done_spec
    assert env.full_reward_spec["reward"] == env.reward_spec
    assert env.full_reward_spec.shape == (2,)


def test_done_spec_leaf_goes_under_done_and_is_merged_with_defaults():
    env = CountingEnv(batch_size=[2])
    leaf = Categorical(2, shape=(2, 1), dtype=torch.bool)
    env.done_spec = leaf
    assert sorted(env.done_spec.keys()) == ["done", "terminated", "truncated"]
    assert env.done_spec["done"] == leaf


def test_done_spec_composite_merges_and_keeps_extra_keys():
    env = CountingEnv()
    env.done_spec = Composite(
        terminated=Categorical(2, shape=(1,), dtype=torch.bool),
        success=Categorical(2, shape=(1,), dtype=torch.bool),
    )
    assert sorted(env.done_spec.keys()) == ["done", "success", "terminated", "truncated"]


# --------------------------------------------------------------------------- #
# done filling
# --------------------------------------------------------------------------- #
TERM = col(True, False, False)
TRUNC = col(False, True, False)
DONE = TERM | TRUNC
GIVEN = {"done": DONE, "terminated": TERM, "truncated": TRUNC}
NONE = col(False, False, False)
# what the missing flags become, for each subset of flags given
EXPECTED: dict[tuple[str, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {
    (): (NONE, NONE, NONE),
    ("done",): (DONE, DONE, NONE),  # done alone means terminated
    ("terminated",): (TERM, TERM, NONE),
    ("truncated",): (TRUNC, NONE, TRUNC),
    ("done", "terminated"): (DONE, TERM, TRUNC),
    ("done", "truncated"): (DONE, TERM, TRUNC),
    ("terminated", "truncated"): (DONE, TERM, TRUNC),
    ("done", "terminated", "truncated"): (DONE, TERM, TRUNC),
}


@pytest.mark.parametrize(
    "given", [c for n in range(4) for c in itertools.combinations(GIVEN, n)], ids=str
)
def test_step_fills_missing_done_flags(given: tuple[str, ...]):
    env = FlagEnv({k: GIVEN[k] for k in given})
    nxt = env.rand_step()["next"]
    done, term, trunc = EXPECTED[given]
    assert torch.equal(nxt["done"], done)
    assert torch.equal(nxt["terminated"], term)
    assert torch.equal(nxt["truncated"], trunc)
    assert torch.equal(nxt["done"], nxt["terminated"] | nxt["truncated"])
    env.done_spec.assert_is_in(nxt.select("done", "terminated", "truncated"))


def test_reset_fills_done_flags_false():
    td = CountingEnv(batch_size=[2]).reset()
    for key in ("done", "terminated", "truncated"):
        assert td[key].dtype == torch.bool
        assert td[key].shape == (2, 1)
        assert not td[key].any()


# --------------------------------------------------------------------------- #
# reset / step
# --------------------------------------------------------------------------- #
def test_reset_and_step_shapes_and_values():
    env = CountingEnv(batch_size=[2])
    td = env.reset()
    assert td.batch_size == (2,)
    td.set("action", torch.ones(2, 1, dtype=torch.long))
    out = env.step(td)
    assert out is td
    assert out["next", "observation"].tolist() == [[1.0], [1.0]]
    assert out["next", "reward"].tolist() == [[1.0], [1.0]]
    assert out["observation"].tolist() == [[0.0], [0.0]]


def test_reset_wrong_batch_size_raises():
    class Wrong(CountingEnv):
        def _reset(self, tensordict: TensorDict | None) -> TensorDict:
            return TensorDict({"observation": torch.zeros(1)})

    with pytest.raises(EnvError, match=r"batch_size \(\), expected \(2,\)"):
        Wrong(batch_size=[2]).reset()


def test_partial_reset_only_resets_masked_sub_envs():
    env = CountingEnv(max_steps=10, batch_size=[3])
    td = env.rollout(2)[..., -1]
    root = step_mdp(td)
    assert root["observation"].squeeze(-1).tolist() == [2.0, 2.0, 2.0]
    root.set("_reset", col(True, False, True))
    out = env.reset(root)
    assert out["observation"].squeeze(-1).tolist() == [0.0, 2.0, 0.0]
    assert "_reset" not in out
    assert env.count.squeeze(-1).tolist() == [0, 2, 0]


def test_step_and_maybe_reset_resets_only_done_sub_envs():
    env = CountingEnv(max_steps=2, batch_size=[3])
    td = env.reset()
    td.set("action", torch.zeros(3, 1, dtype=torch.long))
    td = env.step(td)["next"].exclude("reward")
    td.set("_reset", col(True, False, False))
    td = env.reset(td)  # counts: 0, 1, 1
    td.set("action", torch.ones(3, 1, dtype=torch.long))
    stepped, root = env.step_and_maybe_reset(td)
    assert stepped["next", "observation"].squeeze(-1).tolist() == [1.0, 2.0, 2.0]
    assert stepped["next", "done"].squeeze(-1).tolist() == [False, True, True]
    assert root["observation"].squeeze(-1).tolist() == [1.0, 0.0, 0.0]
    assert not root["done"].any()
    assert "action" not in root
    assert "_reset" not in root


def test_step_and_maybe_reset_unbatched():
    env = CountingEnv(max_steps=1)
    stepped, root = env.step_and_maybe_reset(env.rand_action(env.reset()))
    assert stepped["next", "done"].item()
    assert root["observation"].item() == 0.0
    assert not root["done"].item()
    env = CountingEnv(max_steps=3)
    _, root = env.step_and_maybe_reset(env.rand_action(env.reset()))
    assert root["observation"].item() == 1.0


def test_rand_action_and_rand_step():
    env = ContinuousActionEnv(batch_size=[4])
    td = env.rand_action()
    assert td.batch_size == (4,)
    env.action_spec.assert_is_in(td["action"])
    out = env.rand_step()
    assert "next" in out
    assert out["action"].shape == (4, 2)
    out2 = env.rand_step(step_mdp(out))
    assert out2["next", "observation"].shape == (4, 2)


# --------------------------------------------------------------------------- #
# seeding, lifecycle, fake_tensordict
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(("batch_size", "offset"), [((), 1), ((3,), 3), ((2, 2), 4)])
def test_set_seed_returns_next_seed(batch_size: tuple[int, ...], offset: int):
    env = CountingEnv(batch_size=batch_size)
    assert env.set_seed(10) == 10 + offset
    assert env.seed == 10


def test_context_manager_closes_and_reset_after_close_raises():
    with CountingEnv(batch_size=[2]) as env:
        env.rollout(2)
        assert not env.is_closed
    assert env.is_closed
    assert repr(env) == "CountingEnv(batch_size=(2,), device=cpu)"
    env.close()  # idempotent
    with pytest.raises(EnvError, match="closed"):
        env.reset()


@pytest.mark.parametrize("env_cls", [CountingEnv, NestedSpecEnv, ContinuousActionEnv])
@pytest.mark.parametrize("batch_size", [(), (3,)])
def test_fake_tensordict_matches_step_spec(env_cls: type[EnvBase], batch_size: tuple[int, ...]):
    env = env_cls(batch_size=batch_size)  # type: ignore[call-arg]
    fake = env.fake_tensordict()
    spec = step_spec(env)
    assert fake.batch_size == batch_size
    spec.assert_is_in(fake)
    assert set(fake.keys(include_nested=True, leaves_only=True)) == set(
        spec.keys(include_nested=True, leaves_only=True)
    )
    rolled = env.rollout(1)[..., 0]
    assert set(rolled.keys(include_nested=True, leaves_only=True)) == set(
        fake.keys(include_nested=True, leaves_only=True)
    )


# --------------------------------------------------------------------------- #
# a subclass written as in the EnvBase docstring
# --------------------------------------------------------------------------- #
class Drift(EnvBase):
    def __init__(self, batch_size: Any = ()) -> None:
        super().__init__(batch_size=batch_size)
        bs = self.batch_size
        self.observation_spec = Composite(observation=Unbounded(shape=(*bs, 1)), shape=bs)
        self.action_spec = Bounded(-1.0, 1.0, shape=(*bs, 1))
        self.reward_spec = Unbounded(shape=(*bs, 1))

    def _reset(self, td: TensorDict | None) -> TensorDict:
        self.x = torch.zeros(*self.batch_size, 1)
        return TensorDict({"observation": self.x.clone()}, batch_size=self.batch_size)

    def _step(self, td: TensorDict) -> TensorDict:
        self.x = self.x + td["action"]
        return TensorDict(
            {
                "observation": self.x.clone(),
                "reward": -self.x.abs(),
                "terminated": self.x.abs() > 3,
            },
            batch_size=self.batch_size,
        )

    def _set_seed(self, seed: int) -> None:
        torch.manual_seed(seed)


@pytest.mark.parametrize("batch_size", [(), (2,)])
def test_docstring_style_subclass(batch_size: tuple[int, ...]):
    from rlbricks.envs import check_env_specs

    env = Drift(batch_size)
    policy = lambda td: td.set("action", torch.ones(*batch_size, 1))  # noqa: E731
    td = env.rollout(5, policy=policy)
    assert td.batch_size == (*batch_size, 4)
    assert td["next", "observation"][..., 0].reshape(-1, 4)[0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert td["next", "terminated"][..., -1, 0].all()
    assert not td["next", "truncated"].any()
    check_env_specs(env, seed=0)


def test_step_after_close_raises():
    env = CountingEnv()
    td = env.reset()
    env.close()
    with pytest.raises(EnvError, match="closed"):
        env.step(env.rand_action(td))


@pytest.mark.parametrize("batch_size", [(), (2,)])
def test_step_and_maybe_reset_carries_other_root_keys(batch_size):
    env = CountingEnv(max_steps=1, batch_size=batch_size)
    td = env.reset()
    td.set("hidden", torch.ones(*batch_size, 2))
    _, root = env.step_and_maybe_reset(env.rand_action(td))
    assert (root["hidden"] == 1).all()
    assert (root["observation"] == 0).all()  # every sub-env was done and reset


def test_step_keeps_next_entries_written_by_the_policy() -> None:
    env = CountingEnv(max_steps=5, batch_size=[2])

    def policy(td: TensorDict) -> TensorDict:
        memory = td.get("memory", torch.zeros(2, 1))
        td.set("memory", memory)  # every step holds the same keys
        td = env.rand_action(td)
        td.set(("next", "memory"), memory + 1)  # a recurrent policy's next state
        td.set(("next", "observation"), torch.full((2, 1), -7.0))  # the env's output wins
        return td

    out = env.rollout(4, policy, break_when_any_done=False)
    assert out["next", "memory"].squeeze(-1).tolist() == [[1, 2, 3, 4]] * 2
    assert out["memory"].squeeze(-1).tolist() == [[0, 1, 2, 3]] * 2  # carried by step_mdp
    assert bool((out["next", "observation"] >= 0).all())


def test_step_rejects_a_tensor_under_next() -> None:
    env = CountingEnv()
    td = env.rand_action(env.reset())
    td.set("next", torch.zeros(1))
    with pytest.raises(EnvError, match="not a TensorDict"):
        env.step(td)


def test_maybe_reset_resets_only_done_sub_envs_and_leaves_its_input() -> None:
    env = CountingEnv(max_steps=10, batch_size=[3])
    root = env.reset()
    root["observation"] = torch.tensor([[4.0], [5.0], [6.0]])
    assert env.maybe_reset(root) is root  # nothing done: nothing to do
    root["done"] = torch.tensor([[False], [True], [False]])
    out = env.maybe_reset(root)
    assert out["observation"].squeeze(-1).tolist() == [4.0, 0.0, 6.0]
    assert out["done"].squeeze(-1).tolist() == [False, False, False]
    assert "_reset" not in root.keys()
    assert "_reset" not in out.keys()
