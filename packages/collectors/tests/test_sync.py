"""SyncDataCollector: frame accounting, trajectory ids, policies, resets, state."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlbricks.collectors import CollectorError
from rlbricks.collectors import SyncDataCollector
from rlbricks.envs import EnvBase
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import Actor
from rlbricks.modules import ExplorationType
from rlbricks.modules import exploration_type
from rlbricks.tensordict import TensorDict


def _naive_traj_ids(done: torch.Tensor, first: list[int], next_id: int) -> torch.Tensor:
    """Trajectory ids of ``done`` ``[n, T]`` by a plain loop: new ids in order of appearance."""
    n, steps = done.shape
    ids = torch.empty(n, steps, dtype=torch.int64)
    current = list(first)
    for t in range(steps):
        for i in range(n):
            ids[i, t] = current[i]
        for i in range(n):
            if done[i, t]:
                current[i] = next_id
                next_id += 1
    return ids


def test_frame_accounting_rounds_up_to_whole_steps() -> None:
    collector = SyncDataCollector(
        lambda: CountingEnv(max_steps=100, batch_size=[3]), frames_per_batch=10, total_frames=30
    )
    assert collector.steps_per_batch == 4
    assert collector.frames_per_batch == 12  # every sub-env steps 4 times
    assert len(collector) == 3
    batches = list(collector)
    assert [b.batch_size for b in batches] == [torch.Size([3, 4])] * 3
    assert collector.frames == 36
    observations = torch.cat([b["next", "observation"] for b in batches], dim=1)
    assert observations[0].squeeze(-1).tolist() == [float(t) for t in range(1, 13)]  # continued
    collector.shutdown()


def test_trajectory_ids_match_a_naive_reference_across_batches() -> None:
    collector = SyncDataCollector(
        CountingEnv(max_steps=3, batch_size=[2]), frames_per_batch=10, total_frames=40
    )
    batches = list(collector)
    ids = torch.cat([b["collector", "traj_ids"] for b in batches], dim=1)
    done = torch.cat([b["next", "done"] for b in batches], dim=1).squeeze(-1)
    assert torch.equal(ids, _naive_traj_ids(done, [0, 1], 2))
    assert ids[0, :6].tolist() == [0, 0, 0, 2, 2, 2]  # a trajectory of 3 steps, then the next


def test_uneven_episode_lengths_number_in_order_of_appearance() -> None:
    class Uneven(CountingEnv):
        """Sub-env 0 ends every 2 steps, sub-env 1 every 3."""

        def _step(self, td: TensorDict) -> TensorDict:
            out = super()._step(td)
            limit = torch.tensor([[2.0], [3.0]])
            out.set("terminated", out["observation"] >= limit)
            return out

    collector = SyncDataCollector(Uneven(max_steps=100, batch_size=[2]), frames_per_batch=14)
    batch = collector.next()
    done = batch["next", "done"].squeeze(-1)
    assert torch.equal(batch["collector", "traj_ids"], _naive_traj_ids(done, [0, 1], 2))
    assert batch["collector", "traj_ids"].tolist() == [[0, 0, 2, 2, 4, 4, 5], [1, 1, 1, 3, 3, 3, 6]]


def test_policy_none_draws_random_actions_in_the_spec() -> None:
    env = ContinuousActionEnv(batch_size=[4])
    collector = SyncDataCollector(env, frames_per_batch=40)
    batch = collector.next()
    assert batch.batch_size == (4, 10)
    assert env.action_spec.is_in(batch["action"].transpose(0, 1)[0])
    assert batch["action"].std() > 0


def test_init_random_frames_then_policy_under_the_exploration_type() -> None:
    seen: list[ExplorationType] = []

    def policy(td: TensorDict) -> TensorDict:
        seen.append(exploration_type())
        td.set("action", torch.full((2,), 0.5))
        return td

    collector = SyncDataCollector(
        ContinuousActionEnv(),
        policy,
        frames_per_batch=5,
        total_frames=20,
        init_random_frames=10,
        exploration_type=ExplorationType.MODE,
    )
    batches = list(collector)
    assert len(seen) == 10  # the last two batches only
    assert set(seen) == {ExplorationType.MODE}
    assert not bool((batches[0]["action"] == 0.5).all())
    assert bool((batches[3]["action"] == 0.5).all())
    assert exploration_type() is ExplorationType.RANDOM  # restored after each batch


def test_the_policy_runs_without_gradients() -> None:
    actor = Actor(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), in_keys=["observation"])
    batch = SyncDataCollector(ContinuousActionEnv(), actor, frames_per_batch=3).next()
    assert not batch["action"].requires_grad


def test_max_frames_per_traj_truncates_and_resets() -> None:
    collector = SyncDataCollector(
        CountingEnv(max_steps=100, batch_size=[2]), frames_per_batch=16, max_frames_per_traj=3
    )
    batch = collector.next()
    truncated = batch["next", "truncated"].squeeze(-1)
    assert truncated[0].tolist() == [False, False, True] * 2 + [False, False]
    assert torch.equal(batch["next", "done"], batch["next", "truncated"])
    assert batch["observation"][0].squeeze(-1).tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert batch["collector", "traj_ids"][0].tolist() == [0, 0, 0, 2, 2, 2, 4, 4]
    # the counter carries over into the next batch
    assert batch_step_counts(collector.next()) == [2, 0, 1, 2, 0, 1, 2, 0]


def batch_step_counts(batch: TensorDict) -> list[int]:
    return [int(x) for x in batch["observation"][0].squeeze(-1).tolist()]


def test_reset_at_each_iter_and_reset_start_new_trajectories() -> None:
    collector = SyncDataCollector(
        CountingEnv(max_steps=100), frames_per_batch=3, reset_at_each_iter=True
    )
    first, second = collector.next(), collector.next()
    assert first["observation"].squeeze(-1).tolist() == [0, 1, 2]
    assert second["observation"].squeeze(-1).tolist() == [0, 1, 2]
    assert first["collector", "traj_ids"].tolist() == [0, 0, 0]
    assert second["collector", "traj_ids"].tolist() == [1, 1, 1]
    plain = SyncDataCollector(CountingEnv(max_steps=100), frames_per_batch=2)
    plain.next()
    plain.reset()
    again = plain.next()
    assert again["observation"].squeeze(-1).tolist() == [0, 1]
    assert again["collector", "traj_ids"].tolist() == [1, 1]


def test_split_trajs_and_postproc() -> None:
    def postproc(batch: TensorDict) -> TensorDict:
        batch.set("seen", torch.ones(batch.batch_size))
        return batch

    collector = SyncDataCollector(
        CountingEnv(max_steps=3, batch_size=[2]),
        frames_per_batch=10,
        split_trajs=True,
        postproc=postproc,
    )
    out = next(iter(collector))
    assert out is not None
    # 5 steps per sub-env: a full trajectory and 2 steps of the next one each
    assert out.batch_size == (4, 3)
    assert out["collector", "mask"].sum(-1).tolist() == [3, 3, 2, 2]
    assert out["seen"].shape == (4, 3)


def test_replay_buffer_is_extended_and_nothing_is_yielded() -> None:
    replay = pytest.importorskip("rlbricks.replay")  # not a dependency of collectors
    buffer = replay.TensorDictReplayBuffer(storage=replay.LazyTensorStorage(100))
    collector = SyncDataCollector(
        CountingEnv(batch_size=[2]), frames_per_batch=8, total_frames=24, replay_buffer=buffer
    )
    assert list(collector) == [None, None, None]
    assert len(buffer) == 24
    assert ("collector", "traj_ids") in buffer.sample(4).keys(include_nested=True)


def test_any_object_with_extend_can_take_the_batches() -> None:
    class Sink:
        def __init__(self) -> None:
            self.sizes: list[torch.Size] = []

        def extend(self, batch: TensorDict) -> None:
            self.sizes.append(batch.batch_size)

    sink = Sink()
    collector = SyncDataCollector(
        CountingEnv(batch_size=[2]), frames_per_batch=8, total_frames=16, replay_buffer=sink
    )
    assert list(collector) == [None, None]
    assert sink.sizes == [torch.Size([8])] * 2  # [*env_batch, T] flattened to transitions


def test_return_same_td_reuses_the_batch() -> None:
    collector = SyncDataCollector(
        CountingEnv(max_steps=100, batch_size=[2]), frames_per_batch=6, return_same_td=True
    )
    first = collector.next()
    pointer = first["next", "observation"].data_ptr()
    first_values = first["next", "observation"].clone()
    second = collector.next()
    assert second is first
    assert second["next", "observation"].data_ptr() == pointer
    assert not torch.equal(second["next", "observation"], first_values)
    assert second["collector", "traj_ids"].tolist() == [[0, 0, 0], [1, 1, 1]]


def test_state_dict_round_trip_gives_the_same_next_batch() -> None:
    def make() -> SyncDataCollector:
        return SyncDataCollector(
            ContinuousActionEnv(batch_size=[2]), frames_per_batch=6, reset_at_each_iter=True
        )

    a = make()
    a.next()
    state = a.state_dict()
    expected = a.next()
    b = make()
    b.load_state_dict(state)
    got = b.next()
    assert b.frames == a.frames == 12
    torch.testing.assert_close(got["action"], expected["action"])  # the same RNG draws
    assert torch.equal(got["collector", "traj_ids"], expected["collector", "traj_ids"])


@pytest.mark.parametrize("num_envs", [None, 3])
def test_a_gym_env_state_round_trip_continues_the_episodes(num_envs: int | None) -> None:
    # the env saves its whole state: the next batches are those of the uninterrupted run
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    def make() -> SyncDataCollector:
        return SyncDataCollector(GymEnv("CartPole-v1", num_envs=num_envs), frames_per_batch=60)

    a = make()
    a.set_seed(0)
    a.next()
    state = a.state_dict()
    assert "root" in state  # mid-episode: the step the episodes are at
    expected = [a.next() for _ in range(3)]
    b = make()
    b.set_seed(7)  # all overwritten by the state
    b.load_state_dict(state)
    for want, got in zip(expected, (b.next() for _ in range(3))):
        for key in [("next", "observation"), ("next", "done"), "action", ("collector", "traj_ids")]:
            assert torch.equal(got[key], want[key]), key


def test_an_env_without_a_complete_state_restarts_its_episodes() -> None:
    collector = SyncDataCollector(CountingEnv(max_steps=100), frames_per_batch=4)
    collector.next()
    state = collector.state_dict()
    assert "root" not in state  # CountingEnv has no state_dict: its counter is not saved
    other = SyncDataCollector(CountingEnv(max_steps=100), frames_per_batch=4)
    other.load_state_dict(state)
    assert other.next()["observation"].squeeze(-1).tolist() == [0.0, 1.0, 2.0, 3.0]


def test_set_seed_makes_collection_reproducible() -> None:
    def run() -> TensorDict:
        collector = SyncDataCollector(ContinuousActionEnv(batch_size=[2]), frames_per_batch=6)
        assert collector.set_seed(3) == 5
        return collector.next()

    torch.manual_seed(0)
    first = run()
    torch.manual_seed(0)
    assert torch.equal(run()["action"], first["action"])


def test_a_list_of_env_factories_runs_as_a_serial_env() -> None:
    collector = SyncDataCollector(
        [lambda: CountingEnv(max_steps=2), lambda: CountingEnv(max_steps=5)], frames_per_batch=6
    )
    batch = collector.next()
    assert batch.batch_size == (2, 3)
    assert batch["next", "done"].squeeze(-1).tolist() == [[False, True, False], [False] * 3]
    collector.shutdown()
    assert collector.env.is_closed


def test_an_env_passed_in_is_not_closed_by_shutdown() -> None:
    env = CountingEnv()
    with SyncDataCollector(env, frames_per_batch=2) as collector:
        collector.next()
    assert not env.is_closed
    with pytest.raises(CollectorError, match="shut down"):
        collector.next()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frames_per_batch": 0}, "frames_per_batch"),
        ({"frames_per_batch": 4, "max_frames_per_traj": 0}, "max_frames_per_traj"),
        ({"frames_per_batch": 4, "env_device": "meta"}, "env_device"),
        ({"frames_per_batch": 4, "split_trajs": True, "replay_buffer": object()}, "split_trajs"),
    ],
)
def test_bad_arguments_say_what_is_wrong(kwargs: dict, match: str) -> None:
    with pytest.raises(CollectorError, match=match):
        SyncDataCollector(CountingEnv(), **kwargs)


def test_create_env_fn_must_give_an_env() -> None:
    with pytest.raises(CollectorError, match="GymWrapper"):
        SyncDataCollector(lambda: object(), frames_per_batch=2)  # type: ignore[arg-type,return-value]
    with pytest.raises(CollectorError, match="callable"):
        SyncDataCollector(3, frames_per_batch=2)  # type: ignore[arg-type]
    with pytest.raises(CollectorError, match="no length"):
        len(SyncDataCollector(CountingEnv(), frames_per_batch=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_policy_on_another_device_gets_updated_weights() -> None:
    actor = Actor(nn.Linear(2, 2), in_keys=["observation"])
    collector = SyncDataCollector(
        ContinuousActionEnv(), actor, frames_per_batch=2, policy_device="cuda"
    )
    with torch.no_grad():
        actor.module.weight.fill_(0.25)
    collector.update_policy_weights_()
    assert collector.next()["action"].device.type == "cpu"


def test_gym_env_with_a_recipe_policy() -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv
    from rlbricks.modules.recipes import dqn_model

    env: EnvBase = GymEnv("CartPole-v1", num_envs=2)
    actor = dqn_model(env)
    with SyncDataCollector(env, actor, frames_per_batch=20) as collector:
        collector.set_seed(0)
        batch = collector.next()
    env.close()
    assert batch.batch_size == (2, 10)
    chosen = batch["action_value"].argmax(-1)
    assert torch.equal(batch["action"].long().argmax(-1), chosen)


@pytest.mark.parametrize("num_envs", [None, 3])
def test_gym_batches_from_the_array_loop_equal_the_step_loop(num_envs: int | None) -> None:
    """GymEnv batches come from the env's array loop; return_same_td takes the step loop."""
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv
    from rlbricks.modules.recipes import dqn_model
    from rlbricks.tensordict import assert_close

    def run(return_same_td: bool) -> list[TensorDict]:
        torch.manual_seed(0)
        env = GymEnv("CartPole-v1", num_envs=num_envs, max_episode_steps=7)
        collector = SyncDataCollector(
            env, dqn_model(env), frames_per_batch=30, return_same_td=return_same_td
        )
        collector.set_seed(1)
        batches = [collector.next().clone() for _ in range(3)]
        env.close()
        return batches

    for fast, slow in zip(run(False), run(True)):
        assert_close(fast, slow, rtol=0, atol=0)


class _RolloutByHand(CountingEnv):
    """An env with its own ``policy_rollout`` (the generic loop), recording its calls."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: list[tuple[int, bool]] = []

    def policy_rollout(self, tensordict, policy, max_steps, break_when_any_done):
        self.calls.append((max_steps, break_when_any_done))
        steps = []
        for _ in range(max_steps):
            step, tensordict = self.step_and_maybe_reset(policy(tensordict))
            steps.append(step)
        return torch.stack(steps, len(self.batch_size)), tensordict


def test_the_collector_takes_batches_from_the_env_policy_rollout() -> None:
    """The public fast path: any env may implement it, the collector calls it per batch."""
    env = _RolloutByHand(max_steps=4, batch_size=[2])
    fast = SyncDataCollector(env, frames_per_batch=10)
    reference = SyncDataCollector(CountingEnv(max_steps=4, batch_size=[2]), frames_per_batch=10)
    for _ in range(3):
        batch, expected = fast.next(), reference.next()
        for key in [("next", "observation"), ("next", "done"), ("collector", "traj_ids")]:
            assert torch.equal(batch[key], expected[key]), key
    assert env.calls == [(5, False)] * 3
    # a per-trajectory limit needs the collector's own loop: the fast path is not asked
    env.calls.clear()
    SyncDataCollector(env, frames_per_batch=10, max_frames_per_traj=3).next()
    assert env.calls == []
