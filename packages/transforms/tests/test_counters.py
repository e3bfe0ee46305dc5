"""StepCounter and InitTracker: golden values, partial resets, truncation, plain data."""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.specs import Bounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import InitTracker
from rlbricks.transforms import StepCounter
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError


def naive_counts(done: list[bool], max_steps: int | None) -> tuple[list[int], list[bool]]:
    """Root step counts and the truncation flags StepCounter adds, step by step."""
    counts, truncs, count = [], [], 0
    for d in done:
        counts.append(count)
        count += 1
        trunc = max_steps is not None and count >= max_steps
        truncs.append(trunc)
        if d or trunc:
            count = 0
    return counts, truncs


# ---------------------------------------------------------------------------- #
# StepCounter
# ---------------------------------------------------------------------------- #
def naive_counts_on_data(
    done: list[bool], max_steps: int | None
) -> tuple[list[int], list[int], list[bool]]:
    """Recorded data: episodes end where the data says (done); counts reaching max_steps are
    flagged truncated."""
    root, nxt, trunc, count = [], [], [], 0
    for d in done:
        root.append(count)
        count += 1
        nxt.append(count)
        trunc.append(max_steps is not None and count >= max_steps)
        if d:
            count = 0
    return root, nxt, trunc


@pytest.mark.parametrize("max_steps", [None, 3])
def test_counts_over_trajectories_against_a_naive_loop(max_steps: int | None) -> None:
    gen = torch.Generator().manual_seed(1)
    done = torch.rand(2, 15, 1, generator=gen) < 0.2
    td = TensorDict(
        {"next": {"done": done.clone(), "truncated": torch.zeros_like(done)}}, batch_size=[2, 15]
    )
    out = StepCounter(max_steps)(td)
    for b in range(2):
        flags = done[b, :, 0].tolist()
        root, nxt, trunc = naive_counts_on_data(flags, max_steps)
        assert out["step_count"][b, :, 0].tolist() == root
        assert out["next", "step_count"][b, :, 0].tolist() == nxt
        assert out["next", "truncated"][b, :, 0].tolist() == trunc
        assert out["next", "done"][b, :, 0].tolist() == [d or t for d, t in zip(flags, trunc)]


def test_counts_on_transitions_use_the_root_value() -> None:
    td = TensorDict(
        {
            "step_count": torch.tensor([[0], [4]]),
            "next": {
                "done": torch.zeros(2, 1, dtype=torch.bool),
                "truncated": torch.zeros(2, 1, dtype=torch.bool),
            },
        },
        batch_size=[2],
    )
    out = StepCounter(max_steps=5)(td)
    assert out["next", "step_count"].squeeze(-1).tolist() == [1, 5]
    assert out["next", "truncated"].squeeze(-1).tolist() == [False, True]
    assert out["next", "done"].squeeze(-1).tolist() == [False, True]


def test_truncation_on_env_against_a_naive_loop() -> None:
    env = TransformedEnv(CountingEnv(max_steps=5), StepCounter(max_steps=3))
    check_env_specs(env)
    td = env.rollout(8, break_when_any_done=False)
    counts, truncs = naive_counts([False] * 8, 3)
    assert td["step_count"].squeeze(-1).tolist() == counts
    assert td["next", "truncated"].squeeze(-1).tolist() == truncs
    assert td["next", "done"].squeeze(-1).tolist() == truncs
    assert not td["next", "terminated"].any()


def test_partial_resets_restart_only_the_finished_sub_envs() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (2, 5)]
    env = TransformedEnv(SerialEnv(2, fns), StepCounter(max_steps=4))
    check_env_specs(env)
    td = env.rollout(9, break_when_any_done=False)
    assert td["next", "step_count"][0].squeeze(-1).tolist() == [1, 2, 1, 2, 1, 2, 1, 2, 1]
    assert td["next", "step_count"][1].squeeze(-1).tolist() == [1, 2, 3, 4, 1, 2, 3, 4, 1]
    assert isinstance(env.observation_spec["step_count"], Bounded)
    assert "step_count" in env.state_spec


def test_custom_keys_nested_env_and_errors() -> None:
    env = TransformedEnv(NestedSpecEnv(max_steps=10), StepCounter(2, step_count_key=("data", "n")))
    check_env_specs(env)
    td = env.rollout(5)
    assert td["next", "data", "n"].squeeze(-1).tolist() == [1, 2]
    with pytest.raises(ValueError, match="positive"):
        StepCounter(max_steps=0)
    with pytest.raises(TransformError, match="no 'ended'"):
        TransformedEnv(CountingEnv(), StepCounter(3, truncated_key="ended"))
    with pytest.raises(KeyError, match="episode ends"):
        StepCounter()(TensorDict({"next": {"reward": torch.ones(2, 1)}}, batch_size=[2]))
    with pytest.raises(ValueError, match="without batch dims"):
        StepCounter()(TensorDict({"next": {"done": torch.zeros(1, dtype=torch.bool)}}))


def test_missing_input_count_starts_an_episode() -> None:
    env = TransformedEnv(CountingEnv(), StepCounter())
    td = env.rand_action(TensorDict({}))
    assert env.step(td)["next", "step_count"].item() == 1


def test_counter_state_dict_round_trip() -> None:
    t = StepCounter(7)
    assert dict(t.state_dict()) == {}
    c = t.clone()
    assert isinstance(c, StepCounter)
    assert c.max_steps == 7


# ---------------------------------------------------------------------------- #
# InitTracker
# ---------------------------------------------------------------------------- #
def test_init_flags_over_trajectories_against_a_naive_loop() -> None:
    gen = torch.Generator().manual_seed(2)
    done = torch.rand(3, 10, 1, generator=gen) < 0.3
    out = InitTracker()(TensorDict({"next": {"done": done}}, batch_size=[3, 10]))
    for b in range(3):
        flags = [True] + done[b, :-1, 0].tolist()
        assert out["is_init"][b, :, 0].tolist() == flags
    assert not out["next", "is_init"].any()


def test_init_flags_on_transitions_and_errors() -> None:
    td = TensorDict(
        {
            "is_init": torch.ones(2, 1, dtype=torch.bool),
            "next": {"done": torch.zeros(2, 1, dtype=torch.bool)},
        },
        batch_size=[2],
    )
    out = InitTracker()(td)
    assert out["is_init"].all()
    assert not out["next", "is_init"].any()
    with pytest.raises(ValueError, match="without batch dims"):
        InitTracker()(TensorDict({"next": {"done": torch.zeros(1, dtype=torch.bool)}}))


def test_init_flags_on_env_with_partial_resets() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (1, 3)]
    env = TransformedEnv(SerialEnv(2, fns), InitTracker(init_key="first"))
    check_env_specs(env)
    td = env.rollout(6, break_when_any_done=False)
    assert td["first"][0].squeeze(-1).tolist() == [True] * 6
    assert td["first"][1].squeeze(-1).tolist() == [True, False, False, True, False, False]
    assert env.observation_spec["first"].dtype == torch.bool
    assert dict(InitTracker().state_dict()) == {}
