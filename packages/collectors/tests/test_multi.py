"""MultiSync/MultiaSync collectors: same data as SyncDataCollector, shared weights, state."""

from __future__ import annotations

import functools
import io
import multiprocessing as mp
import signal
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from rlbricks.collectors import CollectorError
from rlbricks.collectors import CollectorRuntimeError
from rlbricks.collectors import MultiaSyncDataCollector
from rlbricks.collectors import MultiSyncDataCollector
from rlbricks.collectors import SyncDataCollector
from rlbricks.collectors import split_trajectories
from rlbricks.collectors._shared import SharedWeights
from rlbricks.envs import EnvBase
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.modules import Actor
from rlbricks.modules import TensorDictModule
from rlbricks.modules import TensorDictSequential
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close
from rlbricks.tensordict import cat

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses fork and SIGALRM")

# fork starts workers in milliseconds; the spawn default is covered by test_spawn_*
FORK = "fork"
TRAJ = ("collector", "traj_ids")
WORKER = ("collector", "worker")
EnvFn = Callable[[], EnvBase]


class ParityPolicy(nn.Module):
    """Action 1 on even observations, 0 on odd ones (deterministic)."""

    def forward(self, td: TensorDict) -> TensorDict:
        return td.set("action", (td.get("observation") % 2 == 0).long())


class OnesPolicy(nn.Module):
    """Always action 1, and an extra output key (the batch layout changes after random frames)."""

    def forward(self, td: TensorDict) -> TensorDict:
        action = torch.ones_like(td.get("observation"), dtype=torch.int64)
        return td.set("action", action).set("policy_ran", torch.ones_like(action, dtype=torch.bool))


class ListBuffer:
    """The smallest replay buffer: remembers what it was extended with."""

    def __init__(self) -> None:
        self.data: list[TensorDict] = []

    def extend(self, td: TensorDict) -> None:
        self.data.append(td.clone())


def no_children(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while mp.active_children():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    """Fail (instead of hanging CI) when a test runs over 60 s; check no worker leaks."""

    def on_alarm(signum: int, frame: object) -> None:
        raise TimeoutError("test took more than 60 s: a collector hung")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert no_children(), f"worker processes left behind: {mp.active_children()}"


def sync_reference(
    fns: list[EnvFn], seed: int, batches: int, policy: Any = None, **kwargs: Any
) -> list[list[TensorDict]]:
    """Each worker's batches from a SyncDataCollector, seeded as MultiSync.set_seed documents."""
    out = []
    for fn in fns:
        collector = SyncDataCollector(fn, policy, **kwargs)
        torch.manual_seed(seed)
        seed = collector.set_seed(seed)
        out.append([collector.next() for _ in range(batches)])
        collector.shutdown()
    return out


def as_worker(batch: TensorDict, index: int, num_workers: int) -> TensorDict:
    """What worker ``index`` turns a SyncDataCollector batch into (documented id rule)."""
    batch = batch.clone()
    batch.set(TRAJ, batch.get(TRAJ) * num_workers + index)
    batch.set(WORKER, torch.full(batch.batch_size, index, dtype=torch.int64))
    return batch


def concatenated(reference: list[list[TensorDict]], k: int) -> TensorDict:
    """Batch ``k`` of a MultiSync collector: the workers' batches along the first dim."""
    n = len(reference)
    parts = [as_worker(reference[i][k], i, n) for i in range(n)]
    if parts[0].batch_dims == 1:  # unbatched envs: [T] -> [1, T]
        parts = [part.unsqueeze(0) for part in parts]
    return cat(parts, 0)


# ---------------------------------------------------------------------- #
# frame accounting
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("cls", "env_batch", "frames", "total", "shape", "batches"),
    [
        # 7 frames over 2 unbatched workers: ceil(7 / 2) = 4 steps each, 8 frames a batch
        (MultiSyncDataCollector, (), 7, 20, (2, 4), 3),
        # 10 frames over 2 workers of 3 sub-envs: ceil(10 / 6) = 2 steps, [6, 2] = 12 frames
        (MultiSyncDataCollector, (3,), 10, 30, (6, 2), 3),
        # async: every batch is one worker's: ceil(5 / 2) = 3 steps of 2 sub-envs, 6 frames
        (MultiaSyncDataCollector, (2,), 5, 13, (2, 3), 3),
    ],
)
def test_frame_accounting(
    cls: type, env_batch: tuple[int, ...], frames: int, total: int, shape: tuple, batches: int
) -> None:
    make_env = functools.partial(CountingEnv, batch_size=env_batch)
    with cls(
        [make_env] * 2, frames_per_batch=frames, total_frames=total, mp_start_method=FORK
    ) as c:
        numel = torch.Size(shape).numel()
        assert c.frames_per_batch == numel
        assert c.requested_frames_per_batch == frames
        assert len(c) == batches
        got = [batch.batch_size for batch in c]
        assert got == [torch.Size(shape)] * batches
        assert c.frames == batches * numel >= total


# ---------------------------------------------------------------------- #
# same data as SyncDataCollector
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("fns", "policy", "kwargs"),
    [
        # random actions (torch RNG of each worker), sub-envs of different episode lengths
        (
            [
                functools.partial(CountingEnv, max_steps=2),
                functools.partial(CountingEnv, max_steps=3),
            ],
            None,
            {},
        ),
        # batched envs, a deterministic policy, truncation by the collector
        (
            [functools.partial(CountingEnv, max_steps=5, batch_size=[2])] * 2,
            ParityPolicy(),
            {"max_frames_per_traj": 2},
        ),
        # a worker running a SerialEnv (a list of factories) beside a batched env
        (
            [
                [CountingEnv, functools.partial(CountingEnv, max_steps=2)],
                functools.partial(CountingEnv, max_steps=3, batch_size=[2]),
            ],
            ParityPolicy(),
            {},
        ),
    ],
)
def test_multisync_equals_sync_for_the_same_seeds(
    fns: list[EnvFn], policy: Any, kwargs: dict[str, Any]
) -> None:
    with MultiSyncDataCollector(
        fns, policy, frames_per_batch=7, mp_start_method=FORK, **kwargs
    ) as collector:
        next_seed = collector.set_seed(3)
        got = [collector.next() for _ in range(3)]
    per_worker = collector.worker_frames_per_batch
    reference = sync_reference(fns, 3, 3, policy, frames_per_batch=per_worker, **kwargs)
    for k in range(3):
        assert_close(got[k], concatenated(reference, k))
    assert next_seed == 3 + len(fns) * collector.env_batch_size.numel()


def test_multiasync_yields_every_workers_batches() -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (2, 3)]
    with MultiaSyncDataCollector(
        fns, frames_per_batch=3, total_frames=18, mp_start_method=FORK
    ) as collector:
        collector.set_seed(11)
        got = list(collector)
    assert len(got) == len(collector) == 6
    assert collector.frames == 18
    by_worker: dict[int, list[TensorDict]] = {0: [], 1: []}
    for batch in got:
        worker = batch.get(WORKER)
        assert (worker == worker[0]).all()
        by_worker[int(worker[0])].append(batch)
    assert all(by_worker.values()), "a worker yielded nothing"
    reference = sync_reference(fns, 11, 6, frames_per_batch=3)
    for i, batches in by_worker.items():
        for k, batch in enumerate(batches):
            assert_close(batch, as_worker(reference[i][k], i, 2))


def test_trajectory_ids_unique_across_workers_and_resets() -> None:
    make_env = functools.partial(CountingEnv, max_steps=2, batch_size=[2])
    with MultiSyncDataCollector([make_env] * 3, frames_per_batch=18, mp_start_method=FORK) as c:
        batches = [c.next() for _ in range(3)]
        c.reset()  # cuts every trajectory: the next batch starts new ids
        batches.append(c.next())
    rows = cat(batches, 1)  # [6 sub-envs, 12 steps], time order
    ids, done = rows.get(TRAJ), rows.get(("next", "done")).squeeze(-1)
    workers = rows.get(WORKER)
    assert (ids % 3 == workers).all()
    # naive reference: walk each sub-env's steps; an id changes exactly where an episode
    # ends (done) or at the reset before step 9, and no id is ever seen twice
    seen: set[int] = set()
    for row in range(ids.shape[0]):
        for t in range(ids.shape[1]):
            new_episode = t == 0 or bool(done[row, t - 1]) or t == 9
            if new_episode:
                assert int(ids[row, t]) not in seen
                seen.add(int(ids[row, t]))
            else:
                assert ids[row, t] == ids[row, t - 1]
    assert len(seen) == 6 * 7  # 6 sub-envs: 4 two-step episodes + the reset + 2 after it


# ---------------------------------------------------------------------- #
# policy weights
# ---------------------------------------------------------------------- #
def linear_actor(bias: list[float]) -> Actor:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor(bias))
    return Actor(layer)


def actions_equal(batch: TensorDict, value: list[float]) -> bool:
    return bool((batch.get("action") == torch.tensor(value)).all())


def test_weights_updates_reach_the_workers() -> None:
    actor = linear_actor([0.1, 0.2])
    env = functools.partial(ContinuousActionEnv, max_steps=3)
    with MultiSyncDataCollector([env] * 2, actor, frames_per_batch=4, mp_start_method=FORK) as c:
        assert actions_equal(c.next(), [0.1, 0.2])
        with torch.no_grad():  # in place: the shared tensor itself changes
            actor.module.bias.copy_(torch.tensor([0.3, -0.3]))
        assert actions_equal(c.next(), [0.3, -0.3])
        actor.module.bias = nn.Parameter(torch.tensor([-0.5, 0.5]))  # a new, unshared tensor
        assert actions_equal(c.next(), [0.3, -0.3])  # not seen before the update...
        c.update_policy_weights_()
        assert actions_equal(c.next(), [-0.5, 0.5])  # ...seen after it
        state = c.state_dict()
    assert state["policy"]["module.bias"].tolist() == [-0.5, 0.5]


def test_weights_updates_reach_async_workers() -> None:
    actor = linear_actor([0.1, 0.2])
    env = functools.partial(ContinuousActionEnv, max_steps=3)
    with MultiaSyncDataCollector([env], actor, frames_per_batch=2, mp_start_method=FORK) as c:
        assert actions_equal(c.next(), [0.1, 0.2])
        actor.module.bias = nn.Parameter(torch.tensor([-0.5, 0.5]))
        c.update_policy_weights_()
        c.next()  # was in flight during the update
        assert actions_equal(c.next(), [-0.5, 0.5])


def test_spawn_default_shares_weights_and_matches_sync() -> None:
    actor = linear_actor([0.25, -0.25])
    fns = [functools.partial(ContinuousActionEnv, max_steps=m) for m in (2, 3)]
    with MultiSyncDataCollector(fns, actor, frames_per_batch=6) as collector:
        collector.set_seed(0)
        first = collector.next()
        with torch.no_grad():
            actor.module.bias.mul_(2)
        second = collector.next()
    reference = sync_reference(fns, 0, 2, linear_actor([0.25, -0.25]), frames_per_batch=3)
    assert_close(first, concatenated(reference, 0))
    assert actions_equal(second, [0.5, -0.5])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_policy_is_shared_as_a_cpu_copy_and_refreshed() -> None:
    actor = linear_actor([0.1, 0.2]).cuda()
    env = functools.partial(ContinuousActionEnv, max_steps=3)
    with MultiSyncDataCollector([env], actor, frames_per_batch=2, policy_device="cuda") as c:
        assert actions_equal(c.next(), [0.1, 0.2])
        with torch.no_grad():
            actor.module.bias.fill_(0.5)
        assert actions_equal(c.next(), [0.1, 0.2])  # the workers' copy is not the GPU tensor
        c.update_policy_weights_()
        assert actions_equal(c.next(), [0.5, 0.5])


def test_shared_weights_of_other_policies() -> None:
    def plain(td: TensorDict) -> TensorDict:
        return td

    weights = SharedWeights(plain, "collector")
    assert weights.worker_policy is plain
    assert weights.tensors == {}
    weights.update_from(plain)  # nothing to share: a no-op
    layer = nn.Linear(1, 1)
    weights = SharedWeights(layer, "collector")
    layer.register_buffer("extra", torch.zeros(1))
    with pytest.raises(CollectorError, match=r"parameters and buffers changed.*'extra'"):
        weights.update_from(layer)


# ---------------------------------------------------------------------- #
# random frames, split_trajs, postproc, replay buffer, storing device
# ---------------------------------------------------------------------- #
def test_init_random_frames_then_policy() -> None:
    fns = [functools.partial(CountingEnv, max_steps=4)] * 2
    kwargs = {"init_random_frames": 8, "mp_start_method": FORK}
    with MultiSyncDataCollector(fns, OnesPolicy(), frames_per_batch=8, **kwargs) as c:
        c.set_seed(5)
        got = [c.next() for _ in range(3)]
    assert "policy_ran" not in got[0].keys()  # random actions for the first 8 frames
    assert bool(got[1].get("policy_ran").all())
    assert bool((got[2].get("action") == 1).all())
    reference = sync_reference(fns, 5, 3, OnesPolicy(), frames_per_batch=4, init_random_frames=4)
    for k in range(3):
        assert_close(got[k], concatenated(reference, k))


def test_split_trajs_postproc_and_storing_device_in_the_parent() -> None:
    fns = [functools.partial(CountingEnv, max_steps=3)] * 2

    def postproc(td: TensorDict) -> TensorDict:
        return td.set("seen", torch.ones(td.batch_size))

    with MultiSyncDataCollector(
        fns,
        frames_per_batch=8,
        total_frames=8,
        split_trajs=True,
        postproc=postproc,
        storing_device="cpu",
        mp_start_method=FORK,
    ) as c:
        c.set_seed(0)
        (batch,) = list(c)
    reference = sync_reference(fns, 0, 1, frames_per_batch=4)
    expected = split_trajectories(concatenated(reference, 0))
    assert_close(batch.exclude("seen"), expected)
    assert batch.get("seen").shape == expected.batch_size == (4, 3)  # 2 workers x 2 episodes
    assert batch.device == torch.device("cpu")


def test_replay_buffer_is_extended_with_flat_batches() -> None:
    buffer = ListBuffer()
    env = functools.partial(CountingEnv, batch_size=[2])
    with MultiaSyncDataCollector(
        [env] * 2, frames_per_batch=4, total_frames=8, replay_buffer=buffer, mp_start_method=FORK
    ) as c:
        assert list(c) == [None, None]
    assert [td.batch_size for td in buffer.data] == [torch.Size([4])] * 2
    assert sorted(int(td.get(WORKER)[0]) for td in buffer.data) == [0, 1]


# ---------------------------------------------------------------------- #
# state_dict
# ---------------------------------------------------------------------- #
def test_state_dict_round_trip() -> None:
    fns = [functools.partial(CountingEnv, max_steps=3)] * 2
    a = MultiSyncDataCollector(fns, frames_per_batch=6, mp_start_method=FORK)
    b = MultiSyncDataCollector(fns, frames_per_batch=6, mp_start_method=FORK)
    try:
        a.set_seed(0)
        before = [a.next(), a.next()]
        state = a.state_dict()
        file = io.BytesIO()
        torch.save(state, file)
        file.seek(0)
        loaded = torch.load(file, weights_only=True)
        a.next()
        a.load_state_dict(state)
        b.set_seed(123)
        b.next()
        b.load_state_dict(loaded)
        assert a.frames == b.frames == 12
        got_a, got_b = a.next(), b.next()
        assert_close(got_a, got_b)  # same RNG states, counters and trajectory ids
        old_ids = torch.cat([td.get(TRAJ) for td in before])
        assert got_b.get(TRAJ).min() > old_ids.max()  # episodes restarted with new ids
        with pytest.raises(CollectorError, match="the state has 1 workers, this collector 2"):
            b.load_state_dict({**state, "workers": state["workers"][:1]})
    finally:
        a.shutdown()
        b.shutdown()


def test_async_state_dict_round_trip() -> None:
    fns = [functools.partial(CountingEnv, max_steps=3)] * 2
    kwargs: dict[str, Any] = {"frames_per_batch": 3, "total_frames": 9, "mp_start_method": FORK}
    with (
        MultiaSyncDataCollector(fns, **kwargs) as a,
        MultiaSyncDataCollector(fns, **kwargs) as b,
    ):
        a.set_seed(0)
        a.next()
        state = a.state_dict()  # waits for the batch in flight (kept for next())
        assert a.frames == 3
        assert sum(w["frames"] for w in state["workers"]) == 9
        a.load_state_dict(state)  # drops the batches in flight
        b.load_state_dict(state)
        got_a = sorted(list(a), key=lambda td: int(td.get(WORKER)[0]))
        got_b = sorted(list(b), key=lambda td: int(td.get(WORKER)[0]))
    assert len(got_a) == len(got_b) == 2  # one batch from each worker: 3 + 2 * 3 = 9 frames
    for x, y in zip(got_a, got_b, strict=True):
        assert_close(x, y)


# ---------------------------------------------------------------------- #
# arguments
# ---------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ([], {}, "create_env_fns is empty"),
        (CountingEnv, {}, "must be a list with one env factory per worker"),
        ([CountingEnv()], {}, r"create_env_fns\[0\] is a CountingEnv"),
        ([CountingEnv], {"frames_per_batch": 0}, "frames_per_batch must be >= 1"),
        ([CountingEnv], {"max_frames_per_traj": 0}, "max_frames_per_traj must be >= 1"),
        ([CountingEnv], {"num_threads": 0}, "num_threads must be >= 1"),
        ([CountingEnv], {"split_trajs": True, "replay_buffer": ListBuffer()}, "split_trajs"),
    ],
)
def test_bad_arguments(args: Any, kwargs: dict[str, Any], match: str) -> None:
    kwargs = {"frames_per_batch": 4, **kwargs}
    with pytest.raises(CollectorError, match=match):
        MultiSyncDataCollector(args, mp_start_method=FORK, **kwargs)


def test_workers_with_different_batch_sizes_are_rejected() -> None:
    fns = [CountingEnv, functools.partial(CountingEnv, batch_size=[2])]
    with pytest.raises(CollectorError, match=r"worker 1's env has batch_size \[2\], worker 0's"):
        MultiSyncDataCollector(fns, frames_per_batch=4, mp_start_method=FORK)


# ---------------------------------------------------------------------- #
# factories and policies sent with cloudpickle (the spawn default)
# ---------------------------------------------------------------------- #
def test_lambda_and_closure_factories_and_lambda_policy_with_spawn() -> None:
    steps = 3

    def closure() -> EnvBase:
        return CountingEnv(max_steps=steps)

    fns: list[EnvFn] = [lambda: CountingEnv(max_steps=2), closure]
    policy = lambda td: td.set("action", (td.get("observation") % 2 == 0).long())  # noqa: E731
    with MultiSyncDataCollector(fns, policy, frames_per_batch=8) as collector:
        collector.set_seed(0)
        got = collector.next()
    assert_close(got, concatenated(sync_reference(fns, 0, 1, policy, frames_per_batch=4), 0))
    # each worker runs a SerialEnv of two factories: the lists are sent the same way
    lists: list[Any] = [[fns[0], closure], [closure, lambda: CountingEnv(max_steps=4)]]
    with MultiSyncDataCollector(lists, policy, frames_per_batch=8) as collector:
        collector.set_seed(0)
        got = collector.next()
    assert got.batch_size == (4, 2)  # 2 workers x 2 sub-envs, ceil(8 / 4) steps
    assert_close(got, concatenated(sync_reference(lists, 0, 1, policy, frames_per_batch=4), 0))


def test_async_lambda_factory_and_a_policy_holding_a_lambda_share_weights_with_spawn() -> None:
    actor = linear_actor([0.25, -0.25])
    clip = TensorDictModule(lambda a: a.clamp(-0.4, 0.4), ["action"], ["action"])
    policy = TensorDictSequential(actor, clip)
    fns: list[EnvFn] = [lambda: ContinuousActionEnv(max_steps=3)]
    with MultiaSyncDataCollector(fns, policy, frames_per_batch=2) as collector:
        assert actions_equal(collector.next(), [0.25, -0.25])
        with torch.no_grad():
            actor.module.bias.mul_(2)  # in place: the worker reads the same shared memory
        collector.next()  # was in flight during the change
        assert actions_equal(collector.next(), [0.4, -0.4])


def test_gym_lambda_factories_with_spawn() -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    fns: list[EnvFn] = [lambda: GymEnv("CartPole-v1")] * 2
    with MultiaSyncDataCollector(fns, frames_per_batch=4, total_frames=8) as collector:
        batches = list(collector)
    assert [b["next", "observation"].shape for b in batches] == [(4, 4), (4, 4)]
    assert sorted(int(b[WORKER][0]) for b in batches) == [0, 1]


def test_unpicklable_factory_or_policy_names_it_and_the_fix() -> None:
    lock = threading.Lock()

    def make_locked_env() -> EnvBase:
        with lock:
            return CountingEnv()

    def locked_policy(td: TensorDict) -> TensorDict:
        with lock:
            return td.set("action", torch.zeros_like(td.get("observation"), dtype=torch.int64))

    with pytest.raises(CollectorRuntimeError) as info:
        MultiaSyncDataCollector([CountingEnv, make_locked_env], frames_per_batch=4)
    message = str(info.value)
    assert message.startswith("MultiaSyncDataCollector: create_env_fns[1] (")
    assert "make_locked_env) cannot be sent to a worker process" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert "create such objects inside the factory" in message
    assert "mp_start_method='fork'" in message
    assert no_children()
    with pytest.raises(
        CollectorError, match=r"MultiSyncDataCollector: the policy \(.*locked_policy\)"
    ):
        MultiSyncDataCollector([CountingEnv], locked_policy, frames_per_batch=4)
    # fork copies the process: nothing is pickled, the same objects work
    with MultiSyncDataCollector(
        [make_locked_env], locked_policy, frames_per_batch=2, mp_start_method=FORK
    ) as collector:
        assert collector.next().batch_size == (1, 2)
