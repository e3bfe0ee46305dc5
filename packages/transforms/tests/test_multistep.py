"""MultiStepTransform and the n-step maths: checked against a naive per-step loop."""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import SerialEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import MultiStepTransform
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError
from rlbricks.transforms._fn_multistep import gather_time
from rlbricks.transforms._fn_multistep import nstep_discounted_reward
from rlbricks.transforms._fn_multistep import nstep_lookahead


def naive_nstep(
    reward: torch.Tensor, done: torch.Tensor, n: int, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-step Python loops over [B, T] (reward [B, T], done [B, T]): (returns, lookahead)."""
    batch, steps = done.shape
    ret = torch.zeros(batch, steps, dtype=torch.float64)
    look = torch.zeros(batch, steps, dtype=torch.long)
    for b in range(batch):
        for t in range(steps):
            total, k = 0.0, 0
            for i in range(n):
                if t + i >= steps:
                    break
                total += gamma**i * float(reward[b, t + i])
                k = i + 1
                if bool(done[b, t + i]):
                    break
            ret[b, t] = total
            look[b, t] = k
    return ret, look


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lookahead_and_returns_match_naive(n: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    done = torch.rand(3, 11, generator=gen) < 0.25
    reward = torch.randn(3, 11, generator=gen, dtype=torch.float64)
    expected_ret, expected_k = naive_nstep(reward, done, n, 0.9)
    k = nstep_lookahead(done, n)
    assert k.tolist() == expected_k.tolist()
    ret = nstep_discounted_reward(reward.unsqueeze(-1), k, 0.9, 1).squeeze(-1)
    torch.testing.assert_close(ret, expected_ret)


def test_lookahead_hand_computed() -> None:
    done = torch.tensor([[False, False, True, False], [True, True, False, False]])
    assert nstep_lookahead(done, 2).tolist() == [[2, 2, 1, 1], [1, 1, 2, 1]]


def test_gather_time_reads_the_right_steps() -> None:
    value = torch.arange(12.0).reshape(2, 3, 2)  # [B=2, T=3, F=2]
    index = torch.tensor([[2, 1, 2], [0, 0, 1]])
    out = gather_time(value, index, 1)
    expected = torch.stack([value[b, index[b]] for b in range(2)])
    assert torch.equal(out, expected)


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="n_steps"):
        nstep_lookahead(torch.zeros(3, dtype=torch.bool), 0)
    with pytest.raises(ValueError, match="index has shape"):
        gather_time(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="lookahead has shape"):
        nstep_discounted_reward(torch.zeros(4, 1), torch.ones(3, dtype=torch.long), 0.9, 0)


# --------------------------------------------------------------------------- #
# the transform
# --------------------------------------------------------------------------- #
def random_batch(batch: int, steps: int, seed: int) -> TensorDict:
    gen = torch.Generator().manual_seed(seed)
    terminated = torch.rand(batch, steps, 1, generator=gen) < 0.15
    truncated = (torch.rand(batch, steps, 1, generator=gen) < 0.1) & ~terminated
    return TensorDict(
        {
            "observation": torch.randn(batch, steps, 3, generator=gen),
            "action": torch.randn(batch, steps, 1, generator=gen),
            "next": {
                "observation": torch.randn(batch, steps, 3, generator=gen),
                "reward": torch.randn(batch, steps, 1, generator=gen),
                "terminated": terminated,
                "truncated": truncated,
                "done": terminated | truncated,
            },
        },
        batch_size=[batch, steps],
    )


def naive_transform(td: TensorDict, n: int, gamma: float) -> dict[str, torch.Tensor]:
    """The n-step transition of every step, one at a time."""
    batch, steps = td.batch_size
    done = td["next", "done"].squeeze(-1)
    ret, look = naive_nstep(td["next", "reward"].squeeze(-1).double(), done, n, gamma)
    out: dict[str, torch.Tensor] = {"reward": ret.unsqueeze(-1), "steps": look.unsqueeze(-1)}
    for key in ("observation", "done", "terminated", "truncated"):
        value = td["next", key]
        out[key] = torch.stack(
            [
                torch.stack([value[b, t + int(look[b, t]) - 1] for t in range(steps)])
                for b in range(batch)
            ]
        )
    return out


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_transform_matches_naive_across_episode_boundaries(n: int, seed: int) -> None:
    td = random_batch(3, 12, seed)
    original = td.clone()
    out = MultiStepTransform(n, 0.9)(td)
    expected = naive_transform(original, n, 0.9)
    torch.testing.assert_close(out["next", "reward"], expected["reward"].float())
    assert torch.equal(out["steps_to_next_obs"], expected["steps"])
    for key in ("observation", "done", "terminated", "truncated"):
        assert torch.equal(out["next", key], expected[key])
    assert torch.equal(out["next", "original_reward"], original["next", "reward"])
    assert torch.equal(out["observation"], original["observation"])  # the root is untouched


def test_on_env_rollouts_with_episodes_of_several_lengths() -> None:
    env = SerialEnv(2, [functools.partial(CountingEnv, max_steps=m) for m in (3, 4)])
    td = env.rollout(9, break_when_any_done=False)
    out = MultiStepTransform(2, 0.5)(td.clone())
    expected = naive_transform(td, 2, 0.5)
    torch.testing.assert_close(out["next", "reward"], expected["reward"].float())
    assert torch.equal(out["next", "observation"], expected["observation"])
    # CountingEnv: observation = step count; row 0 has episodes of 3 steps
    assert out["next", "observation"][0, :4, 0].tolist() == [2.0, 3.0, 3.0, 2.0]


def test_trajectory_ids_cut_and_more_batch_dims() -> None:
    td = TensorDict(
        {
            "next": {
                "reward": torch.ones(6, 1),
                "done": torch.zeros(6, 1, dtype=torch.bool),
                "observation": torch.arange(6.0).unsqueeze(-1),
            },
            "collector": {"traj_ids": torch.tensor([0, 0, 0, 1, 1, 1])},
        },
        batch_size=[6],
    )
    out = MultiStepTransform(2, 1.0)(td)
    assert out["steps_to_next_obs"].squeeze(-1).tolist() == [2, 2, 1, 2, 2, 1]
    assert out["next", "observation"].squeeze(-1).tolist() == [1.0, 2.0, 2.0, 4.0, 5.0, 5.0]
    nested = random_batch(6, 5, 3).reshape(2, 3, 5)
    flat = random_batch(6, 5, 3)
    a = MultiStepTransform(3, 0.9)(nested)
    b = MultiStepTransform(3, 0.9)(flat)
    assert torch.equal(a["next", "reward"].reshape(6, 5, 1), b["next", "reward"])


def test_errors_and_env_refusal() -> None:
    with pytest.raises(ValueError, match="n_steps"):
        MultiStepTransform(0, 0.9)
    with pytest.raises(ValueError, match="gamma"):
        MultiStepTransform(2, 1.5)
    with pytest.raises(TransformError, match="future steps"):
        TransformedEnv(CountingEnv(), MultiStepTransform(2, 0.9))
    t = MultiStepTransform(2, 0.9)
    with pytest.raises(KeyError, match="'next'"):
        t(TensorDict({"a": torch.zeros(3)}, batch_size=[3]))
    with pytest.raises(KeyError, match="done"):
        t(TensorDict({"next": {"reward": torch.zeros(3, 1)}}, batch_size=[3]))
    with pytest.raises(KeyError, match="reward"):
        t(TensorDict({"next": {"done": torch.zeros(3, 1, dtype=torch.bool)}}, batch_size=[3]))
    with pytest.raises(ValueError, match="trajectories"):
        t(TensorDict({"next": {"done": torch.zeros(1, dtype=torch.bool)}}))
    for hook in (lambda: t._call(TensorDict()), lambda: t._step(TensorDict(), TensorDict())):
        with pytest.raises(TransformError):
            hook()
    assert repr(t) == "MultiStepTransform(n_steps=2, gamma=0.9)"
