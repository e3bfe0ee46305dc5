"""CatFrames and the frame-stacking maths: checked against a naive per-step loop."""

from __future__ import annotations

import functools

import pytest
import torch

from rlbricks.envs import ParallelEnv
from rlbricks.envs import SerialEnv
from rlbricks.envs import check_env_specs
from rlbricks.envs.testing import CountingEnv
from rlbricks.specs import Bounded
from rlbricks.tensordict import TensorDict
from rlbricks.transforms import CatFrames
from rlbricks.transforms import EnvSpecs
from rlbricks.transforms import TransformedEnv
from rlbricks.transforms import TransformError
from rlbricks.transforms._fn_catframes import episode_start
from rlbricks.transforms._fn_catframes import fill_frames
from rlbricks.transforms._fn_catframes import push_frame
from rlbricks.transforms._fn_catframes import stack_frames_in_time


def naive_stacks(
    obs: torch.Tensor, nxt: torch.Tensor, done: torch.Tensor, n: int, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replay each row step by step with an online buffer, resetting it at episode starts."""
    batch, steps = done.shape
    roots, nexts = [], []
    for b in range(batch):
        row_root, row_next = [], []
        frames: list[torch.Tensor] = []
        for t in range(steps):
            if t == 0 or bool(done[b, t - 1]):
                frames = [obs[b, t]] * n
            row_root.append(torch.cat(frames, dim))
            frames = frames[1:] + [nxt[b, t]]
            row_next.append(torch.cat(frames, dim))
        roots.append(torch.stack(row_root))
        nexts.append(torch.stack(row_next))
    return torch.stack(roots), torch.stack(nexts)


def consistent_trajectories(
    batch: int, steps: int, frame: tuple[int, ...], seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random frames where obs[t + 1] == next[t] inside an episode, as an env writes them."""
    gen = torch.Generator().manual_seed(seed)
    done = torch.rand(batch, steps, generator=gen) < 0.3
    nxt = torch.randn(batch, steps, *frame, generator=gen)
    fresh = torch.randn(batch, steps, *frame, generator=gen)
    obs = torch.empty_like(nxt)
    obs[:, 0] = fresh[:, 0]
    for t in range(1, steps):
        new_episode = done[:, t - 1].reshape(batch, *([1] * len(frame)))
        obs[:, t] = torch.where(new_episode, fresh[:, t], nxt[:, t - 1])
    return obs, nxt, done


@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.parametrize(("frame", "dim"), [((3,), -1), ((1, 2, 2), -3), ((2, 3), -2)])
@pytest.mark.parametrize("seed", [0, 1])
def test_stacks_in_time_match_naive(n: int, frame: tuple[int, ...], dim: int, seed: int) -> None:
    obs, nxt, done = consistent_trajectories(3, 9, frame, seed)
    root, after = stack_frames_in_time(obs, nxt, done, n, dim)
    expected_root, expected_next = naive_stacks(obs, nxt, done, n, dim)
    assert torch.equal(root, expected_root)
    assert after is not None
    assert torch.equal(after, expected_next)


def test_episode_start_and_buffer_ops() -> None:
    done = torch.tensor([[True, False, False, True], [False, False, False, False]])
    assert episode_start(done).tolist() == [[0, 1, 1, 1], [0, 0, 0, 0]]
    stack = fill_frames(torch.tensor([[1.0]]), 3, -1)
    assert stack.tolist() == [[1.0, 1.0, 1.0]]
    assert push_frame(stack, torch.tensor([[2.0]]), -1).tolist() == [[1.0, 1.0, 2.0]]


def test_stack_errors() -> None:
    done = torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="negative"):
        stack_frames_in_time(torch.zeros(2, 3, 4), None, done, 2, 0)
    with pytest.raises(ValueError, match="do not start with the done shape"):
        stack_frames_in_time(torch.zeros(3, 2, 4), None, done, 2, -1)


# --------------------------------------------------------------------------- #
# the transform
# --------------------------------------------------------------------------- #
def counting_serial(*max_steps: int) -> SerialEnv:
    return SerialEnv(
        len(max_steps), [functools.partial(CountingEnv, max_steps=m) for m in max_steps]
    )


def test_env_stacks_match_naive_across_partial_resets() -> None:
    env = TransformedEnv(
        counting_serial(2, 3, 5), CatFrames(3, -1, in_keys=["observation"], out_keys=["stack"])
    )
    check_env_specs(env)
    td = env.rollout(11, break_when_any_done=False)
    done = td["next", "done"].squeeze(-1)
    expected_root, expected_next = naive_stacks(
        td["observation"], td["next", "observation"], done, 3, -1
    )
    assert torch.equal(td["stack"], expected_root)
    assert torch.equal(td["next", "stack"], expected_next)
    # hand-checked row: episodes of length 2 -> 0,1 | 0,1 | ...
    assert td["stack"][0, :3].tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_offline_stacks_equal_the_online_ones() -> None:
    online = TransformedEnv(counting_serial(2, 4), CatFrames(4, -1, in_keys=["observation"]))
    raw_env = counting_serial(2, 4)
    torch.manual_seed(0)
    td_online = online.rollout(9, break_when_any_done=False)
    torch.manual_seed(0)
    td_raw = raw_env.rollout(9, break_when_any_done=False)
    td_offline = CatFrames(4, -1, in_keys=["observation"])(td_raw)
    assert torch.equal(td_offline["observation"], td_online["observation"])
    assert torch.equal(td_offline["next", "observation"], td_online["next", "observation"])


def test_inside_parallel_workers_equals_on_the_batched_output() -> None:
    inside = ParallelEnv(
        2,
        [
            lambda m=m: TransformedEnv(
                CountingEnv(max_steps=m), CatFrames(2, -1, in_keys=["observation"])
            )
            for m in (2, 3)
        ],
        mp_start_method="fork",
    )
    outside = TransformedEnv(
        ParallelEnv(
            2, [functools.partial(CountingEnv, max_steps=m) for m in (2, 3)], mp_start_method="fork"
        ),
        CatFrames(2, -1, in_keys=["observation"]),
    )
    with inside, outside:
        a = inside.rollout(7, break_when_any_done=False)
        b = outside.rollout(7, break_when_any_done=False)
    assert torch.equal(a["observation"], b["observation"])
    assert torch.equal(a["next", "observation"], b["next", "observation"])


def test_trajectory_ids_and_missing_done_cut_episodes() -> None:
    obs = torch.arange(5.0).unsqueeze(-1)
    td = TensorDict(
        {"obs": obs, "collector": {"traj_ids": torch.tensor([0, 0, 1, 1, 1])}}, batch_size=[5]
    )
    out = CatFrames(2, -1, in_keys=["obs"])(td)  # no "next": root stacks only
    assert out["obs"].tolist() == [[0.0, 0.0], [0.0, 1.0], [2.0, 2.0], [2.0, 3.0], [3.0, 4.0]]


def test_specs_images_and_errors() -> None:
    specs = EnvSpecs.from_env(CountingEnv(batch_size=[2]))
    specs.observation["pixels"] = Bounded(0.0, 1.0, shape=(2, 1, 5, 5))
    specs = CatFrames(4, -3).transform_env_specs(specs)
    spec = specs.observation["pixels"]
    assert isinstance(spec, Bounded)
    assert spec.shape == (2, 4, 5, 5)
    with pytest.raises(ValueError, match="negative"):
        CatFrames(2, 0)
    with pytest.raises(ValueError, match="N must be"):
        CatFrames(0, -1)
    with pytest.raises(TransformError, match="out of range"):
        CatFrames(2, -3, in_keys=["observation"]).transform_env_specs(
            EnvSpecs.from_env(CountingEnv())
        )
    with pytest.raises(TransformError, match="trajectories"):
        CatFrames(2, -1, in_keys=["observation"])._call(TensorDict())
    with pytest.raises(ValueError, match="trajectories"):
        CatFrames(2, -1, in_keys=["obs"])(TensorDict({"obs": torch.zeros(3)}))
    with pytest.raises(KeyError, match="root frames"):
        CatFrames(2, -1, in_keys=["obs"])(
            TensorDict({"next": {"obs": torch.zeros(3, 1)}}, batch_size=[3])
        )


def test_clone_and_state_dict_hold_no_frames() -> None:
    t = CatFrames(2, -1, in_keys=["observation"])
    env = TransformedEnv(CountingEnv(), t)
    env.rollout(3)
    assert t._stacks
    assert not t.clone()._stacks
    assert t.state_dict() == {}
    assert "N=2, dim=-1" in repr(t)
