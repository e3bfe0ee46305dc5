"""RayCollector on a local Ray instance (2 CPUs): sync, async, weights, failures, replay buffers."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from rlbricks.collectors import CollectorError
from rlbricks.collectors import CollectorTimeoutError
from rlbricks.collectors import RayCollector
from rlbricks.collectors import SyncDataCollector
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import CrashingEnv
from rlbricks.modules import TensorDictModule
from rlbricks.tensordict import TensorDict

ray = pytest.importorskip("ray")

ENV = functools.partial(CountingEnv, max_steps=3, batch_size=[2])
ACTOR = {"num_cpus": 0.5}  # two collectors and a buffer actor fit on 2 CPUs


class IndexLinear(nn.Linear):
    """``Linear(1, 1)`` whose output is rounded to an int64 index: CountingEnv's action spec
    is ``Categorical(2)``, and env.step refuses float actions for it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).round().long()


def constant_policy(value: float) -> TensorDictModule:
    """Writes ``action = value`` (0 or 1) whatever the observation (CountingEnv's reward is
    the action)."""
    linear = IndexLinear(1, 1)
    nn.init.zeros_(linear.weight)
    nn.init.constant_(linear.bias, value)
    return TensorDictModule(linear, in_keys=["observation"], out_keys=["action"])


def set_action(policy: TensorDictModule, value: float) -> None:
    with torch.no_grad():
        policy.module.bias.fill_(value)  # type: ignore[union-attr,operator]


def reference_batches(num: int, frames: int, k: int, stride: int) -> list[TensorDict]:
    """What actor ``k`` of ``stride`` collects: a local SyncDataCollector, ids remapped."""
    collector = SyncDataCollector(ENV, constant_policy(0.0), frames_per_batch=frames)
    out = []
    for _ in range(num):
        batch = collector.next()
        batch["collector", "traj_ids"] = batch["collector", "traj_ids"] * stride + k
        batch["collector", "worker"] = torch.full(batch.batch_size, k)
        out.append(batch)
    return out


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    # postproc below is shipped by value: Ray workers cannot import this test file
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


# --------------------------------------------------------------------------- #
# arguments and the decision to start / stop Ray (a fake ray module, no cluster)
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"create_env_fns": 3}, "create_env_fns must be a callable"),
        ({"create_env_fns": []}, "create_env_fns is empty"),
        (
            {"create_env_fns": [ENV, ENV], "num_collectors": 3},
            "2 create_env_fns for num_collectors=3",
        ),
        ({"num_collectors": 0}, "num_collectors must be >= 1"),
        ({"frames_per_batch": 0}, "frames_per_batch must be >= 1"),
        ({"max_restarts": -1}, "max_restarts must be >= 0"),
        ({"collector_kwargs": {"total_frames": 5}}, r"pass RayCollector\(total_frames=...\)"),
        ({"split_trajs": True, "replay_buffer": []}, "split_trajs=True cannot be used"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"create_env_fns": ENV, "frames_per_batch": 4, **kwargs}
    with pytest.raises(CollectorError, match=match):
        RayCollector(**args)


class _Ref:
    def __init__(self, value: Any) -> None:
        self.value = value


class _FakeRay(types.ModuleType):
    """Runs the actors in this process, and records init/put/kill/shutdown."""

    def __init__(self) -> None:
        super().__init__("ray")
        self.calls: list[Any] = []
        self.initialised = False
        self.exceptions = ray.exceptions

    def is_initialized(self) -> bool:
        return self.initialised

    def init(self, **kwargs: Any) -> None:
        self.calls.append(("init", kwargs))
        self.initialised = True

    def shutdown(self) -> None:
        self.calls.append("shutdown")
        self.initialised = False

    def kill(self, actor: Any, no_restart: bool) -> None:
        self.calls.append(("kill", no_restart))

    def put(self, value: Any) -> Any:
        self.calls.append("put")
        return value

    def get(self, ref: Any) -> Any:
        return [r.value for r in ref] if isinstance(ref, list) else ref.value

    def wait(
        self, refs: list[Any], num_returns: int, timeout: float | None = None
    ) -> tuple[list[Any], list[Any]]:
        return refs[:num_returns], refs[num_returns:]

    def remote(self, cls: type) -> Any:
        fake = self

        class Handle:
            def __init__(self, *args: Any) -> None:
                self.obj = cls(*args)

            def __getattr__(self, name: str) -> Any:
                method = getattr(self.obj, name)
                return types.SimpleNamespace(remote=lambda *a: _Ref(method(*a)))

        def options(**options: Any) -> Any:
            fake.calls.append(("options", options))
            return types.SimpleNamespace(remote=Handle)

        return types.SimpleNamespace(options=options)


def test_in_process_run_starts_and_stops_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    policy = constant_policy(0.0)
    collector = RayCollector(
        [ENV, ENV],
        policy,
        frames_per_batch=16,
        total_frames=32,
        ray_init_config={"address": "auto"},
        max_restarts=2,
        update_after_each_batch=True,
    )
    batches = list(collector)
    collector.shutdown()
    collector.shutdown()
    expected = [reference_batches(2, 8, k, 2) for k in range(2)]
    for i, batch in enumerate(batches):
        assert (batch[:2] == expected[0][i]).all()
        assert (batch[2:] == expected[1][i]).all()
    options = {"num_cpus": 1, "max_restarts": 2, "max_task_retries": 2}
    assert fake.calls == [
        ("init", {"address": "auto"}),
        ("options", options),
        "put",
        "put",
        ("kill", True),
        ("kill", True),
        "shutdown",
    ]


def test_sync_needs_one_env_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    other = functools.partial(CountingEnv, batch_size=[3])
    with pytest.raises(CollectorError, match=r"batch sizes \[\[2\], \[3\]\]"):
        RayCollector([ENV, other], frames_per_batch=12)
    assert fake.calls[-3:] == [("kill", True), ("kill", True), "shutdown"]
    with RayCollector([ENV, other], frames_per_batch=12, sync=False) as collector:
        assert [b.batch_size for b in (collector.next(), collector.next())] == [(2, 6), (3, 4)]


# --------------------------------------------------------------------------- #
# on a local Ray instance
# --------------------------------------------------------------------------- #
def test_sync_batches_weights_seeds_and_state() -> None:
    policy = constant_policy(0.0)
    collector = RayCollector(
        [ENV, ENV], policy, frames_per_batch=16, total_frames=40, remote_config=ACTOR
    )
    assert collector.frames_per_batch == 16
    assert len(collector) == 3
    batches = list(collector)
    assert collector.frames == 48  # three batches of 16: the last one overshoots
    expected = [reference_batches(3, 8, k, 2) for k in range(2)]
    for i, batch in enumerate(batches):
        assert batch.batch_size == (4, 4)  # [2 actors x 2 sub-envs, T=4]
        assert (batch[:2] == expected[0][i]).all()
        assert (batch[2:] == expected[1][i]).all()
    # trajectory ids: unique across actors, each id in one row only
    ids = torch.cat([b["collector", "traj_ids"] for b in batches], dim=1)
    for i in ids.unique().tolist():
        [row] = {r for r in range(4) if bool((ids[r] == i).any())}  # one row per id
        assert i % 2 == row // 2  # rows 0-1 come from actor 0 (even ids), 2-3 from actor 1

    # new weights reach every actor before its next batch
    set_action(policy, 1.0)
    assert bool((collector.next()["next", "reward"] == 0).all())  # not sent yet
    collector.update_policy_weights_()
    assert bool((collector.next()["next", "reward"] == 1).all())
    collector.update_policy_weights_(
        {"module.weight": torch.zeros(1, 1), "module.bias": torch.zeros(1)}
    )
    assert bool((collector.next()["next", "reward"] == 0).all())

    assert collector.set_seed(3) == 7
    state = collector.state_dict()
    after = collector.next()
    collector.load_state_dict(state)
    assert collector.frames == state["frames"]
    again = collector.next()  # restored counters; the episodes restart with a reset
    assert again["next", "observation"][..., 0].tolist() == [[1.0, 2.0, 3.0, 1.0]] * 4
    assert not bool(torch.isin(again["collector", "traj_ids"], ids).any())
    assert after.batch_size == again.batch_size
    with pytest.raises(CollectorError, match="holds 1 collectors"):
        collector.load_state_dict({**state, "collectors": state["collectors"][:1]})
    assert "RayCollector(num_collectors=2, sync" in repr(collector)
    collector.shutdown()
    with pytest.raises(CollectorError, match="shut down"):
        collector.next()
    assert ray.is_initialized()  # started by the fixture, not by the collector


def test_lambda_and_closure_factories() -> None:
    """Ray sends the factories with cloudpickle: lambdas and closures work, as in TorchRL."""
    steps = 3

    def closure() -> CountingEnv:
        return CountingEnv(max_steps=steps, batch_size=[2])

    fns = [lambda: CountingEnv(max_steps=3, batch_size=[2]), closure]
    with RayCollector(
        fns, constant_policy(0.0), frames_per_batch=8, total_frames=8, remote_config=ACTOR
    ) as collector:
        [batch] = list(collector)
    expected = [reference_batches(1, 4, k, 2)[0] for k in range(2)]
    assert (batch[:2] == expected[0]).all()
    assert (batch[2:] == expected[1]).all()


def test_async_yields_batches_as_they_come() -> None:
    policy = constant_policy(0.0)
    with RayCollector(
        [ENV, ENV],
        policy,
        frames_per_batch=8,
        total_frames=40,
        sync=False,
        remote_config=ACTOR,
        update_after_each_batch=True,
    ) as collector:
        assert collector.frames_per_batch == 8
        assert len(collector) == 5
        batches = []
        for batch in collector:
            batches.append(batch)
            set_action(policy, 1.0)  # sent with every launch from now on
        assert collector.frames == 40  # never more batches than total_frames needs
        with pytest.raises(CollectorError, match="collected already"):
            collector.next()
    assert len(batches) == 5
    assert all(b.batch_size == (2, 4) for b in batches)
    # two batches were asked for before the first one arrived, one more after it
    rewards = sorted(float(b["next", "reward"].mean()) for b in batches)
    assert rewards == [0.0, 0.0, 0.0, 1.0, 1.0]
    for k in range(2):  # per actor, in order: what a local collector gives (but the action)
        mine = [b for b in batches if bool((b["collector", "traj_ids"] % 2 == k).all())]
        expected = reference_batches(len(mine), 8, k, 2)
        for got, want in zip(mine, expected):
            keep = [
                "observation",
                ("next", "observation"),
                ("next", "done"),
                ("collector", "traj_ids"),
            ]
            assert (got.select(*keep) == want.select(*keep)).all()


def not_an_env() -> int:
    return 3


def test_an_actor_that_cannot_build_its_collector() -> None:
    with pytest.raises(
        CollectorError, match=r"(?s)could not build its collector.*not an rlbricks env"
    ):
        RayCollector(not_an_env, frames_per_batch=4, remote_config=ACTOR)


def test_an_actor_failure_raises_with_the_remote_traceback() -> None:
    collector = RayCollector(
        functools.partial(CrashingEnv, crash_after=5),
        frames_per_batch=4,
        total_frames=100,
        remote_config=ACTOR,
    )
    it = iter(collector)
    next(it)
    with pytest.raises(CollectorError, match=r"(?s)actor 0 failed; .*max_restarts.*planned crash"):
        next(it)
    assert collector.is_shut_down


def test_a_failed_actor_is_restarted_max_restarts_times() -> None:
    collector = RayCollector(
        functools.partial(CrashingEnv, crash_after=6),  # one batch of 4 steps per life
        frames_per_batch=4,
        total_frames=100,
        remote_config=ACTOR,
        max_restarts=1,
    )
    it = iter(collector)
    first = next(it)
    second = next(it)  # the env crashed at its 7th step; the restarted actor made this batch
    assert collector.frames == 8
    assert first["next", "observation"].flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert second["next", "observation"].flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert first["collector", "traj_ids"].unique().tolist() == [0]
    assert second["collector", "traj_ids"].unique().tolist() == [1]  # not reused
    with pytest.raises(CollectorError, match=r"(?s)after 1 restarts.*planned crash"):
        next(it)


class ExitOnceEnv(CountingEnv):
    """Kills its whole process at its 3rd step, unless the file ``flag`` exists (it writes it)."""

    def __init__(self, flag: str) -> None:
        super().__init__(max_steps=100)
        self.flag = flag
        self.steps = 0

    def _step(self, tensordict: TensorDict) -> TensorDict:
        self.steps += 1
        if self.steps == 3 and not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os._exit(1)
        return super()._step(tensordict)


@pytest.mark.parametrize("max_restarts", [0, 1])
def test_a_dead_actor_process(tmp_path: Any, max_restarts: int) -> None:
    """A process that dies raises at once, or is restarted by Ray and its batch made again."""
    collector = RayCollector(
        functools.partial(ExitOnceEnv, str(tmp_path / "flag")),
        frames_per_batch=4,
        total_frames=8,
        remote_config=ACTOR,
        max_restarts=max_restarts,
    )
    if not max_restarts:
        with pytest.raises(CollectorError, match=r"(?s)actor 0 failed; .*max_restarts.*died"):
            collector.next()
        return
    with collector:
        batches = list(collector)
    assert (tmp_path / "flag").exists()
    observations = [b["next", "observation"].flatten().tolist() for b in batches]
    assert observations == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]


def test_timeouts_have_finite_defaults() -> None:
    params = inspect.signature(RayCollector).parameters
    assert params["timeout"].default == 300.0
    assert params["start_timeout"].default == 300.0
    with pytest.raises(CollectorError, match="start_timeout must be a positive number"):
        RayCollector(ENV, frames_per_batch=4, start_timeout=0)


class HangOnceEnv(CountingEnv):
    """Hangs at its 5th step unless the file ``flag`` exists (it writes it, with its pid)."""

    def __init__(self, flag: str) -> None:
        super().__init__(max_steps=100)
        self.flag = flag
        self.steps = 0

    def _step(self, tensordict: TensorDict) -> TensorDict:
        self.steps += 1
        if self.steps == 5 and not os.path.exists(self.flag):
            with open(self.flag, "w") as file:
                file.write(str(os.getpid()))
            while True:
                time.sleep(3600)
        return super()._step(tensordict)


def process_gone(pid: int, wait: float = 30.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("max_restarts", [0, 1])
def test_a_hung_actor(tmp_path: Any, max_restarts: int) -> None:
    """A hung actor is killed: the collector raises, or Ray restarts it and its batch is made again."""
    flag = tmp_path / "flag"
    collector = RayCollector(
        functools.partial(HangOnceEnv, str(flag)),
        frames_per_batch=4,
        total_frames=12,
        remote_config=ACTOR,
        max_restarts=max_restarts,
        timeout=5.0,
    )
    if not max_restarts:
        collector.next()
        start = time.monotonic()
        with pytest.raises(CollectorTimeoutError) as info:
            collector.next()  # its 5th step hangs
        assert time.monotonic() - start < 30
        assert (info.value.worker, info.value.phase) == (0, "collect")
        message = str(info.value)
        assert "actor 0 timed out during 'collect': no answer within timeout=5.0 s" in message
        assert "RayCollector(timeout=...); timeout=None waits forever" in message
        assert collector.is_shut_down
        assert process_gone(int(flag.read_text()))
        return
    with collector:
        batches = list(collector)
    hung_pid = int(flag.read_text())
    assert process_gone(hung_pid)
    observations = [b["next", "observation"].flatten().tolist() for b in batches]
    # the restarted actor has a new env: the batch it made again starts a new episode
    assert observations == [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    ids = [b["collector", "traj_ids"].unique().tolist() for b in batches]
    assert ids == [[0], [1], [1]]  # not reused


def postproc(batch: TensorDict) -> TensorDict:
    batch.set("doubled", batch.get("observation") * 2)
    return batch


def test_a_ray_replay_buffer_fed_by_two_remote_collectors() -> None:
    replay = pytest.importorskip("rlbricks.replay")
    buffer = replay.RayReplayBuffer(storage=replay.LazyTensorStorage(100), batch_size=10)
    try:
        collector = RayCollector(
            [ENV, ENV],
            constant_policy(0.0),
            frames_per_batch=16,
            total_frames=32,
            remote_config=ACTOR,
            replay_buffer=buffer,
            postproc=postproc,
        )
        assert list(collector) == [None, None]
        with pytest.raises(CollectorError, match="iterate over the collector"):
            collector.next()
        collector.shutdown()
        assert len(buffer) == 32
        stored = buffer.state_dict()["storage"]["data"]["tensordict"]
        got = sorted(
            zip(
                stored["collector"]["traj_ids"][:32].tolist(),
                stored["observation"][:32].flatten().tolist(),
            )
        )
        want = sorted(
            (int(i), float(o))
            for k in range(2)
            for b in reference_batches(2, 8, k, 2)
            for i, o in zip(b["collector", "traj_ids"].flatten(), b["observation"].flatten())
        )
        assert got == want
        sample = buffer.sample()  # the learner samples in the driver
        assert sample.batch_size == (10,)
        assert torch.equal(sample["doubled"], sample["observation"] * 2)
    finally:
        buffer.shutdown()


def test_a_local_buffer_is_extended_by_the_driver() -> None:
    class ListBuffer:
        def __init__(self) -> None:
            self.rows: list[TensorDict] = []

        def extend(self, data: TensorDict) -> None:
            self.rows.append(data)

    buffer = ListBuffer()
    with RayCollector(
        ENV, frames_per_batch=8, total_frames=16, remote_config=ACTOR, replay_buffer=buffer
    ) as collector:
        assert list(collector) == [None, None]
    assert [rows.batch_size for rows in buffer.rows] == [torch.Size([8])] * 2
