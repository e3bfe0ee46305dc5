"""Multiprocess collectors: worker faults raised fast, and no process ever left behind."""

from __future__ import annotations

import faulthandler
import functools
import gc
import inspect
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from rlbricks.collectors import CollectorError
from rlbricks.collectors import CollectorTimeoutError
from rlbricks.collectors import MultiaSyncDataCollector
from rlbricks.collectors import MultiSyncDataCollector
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import CrashingEnv
from rlbricks.envs.testing import HangingEnv
from rlbricks.tensordict import TensorDict

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses fork, SIGALRM and SIGKILL")

FORK = "fork"


class SlowEnv(CountingEnv):
    """A CountingEnv whose step takes 50 ms (a worker busy collecting)."""

    def _step(self, tensordict: TensorDict) -> TensorDict:
        time.sleep(0.05)
        return super()._step(tensordict)


class SleepyEnv(CountingEnv):
    """A CountingEnv whose step hangs (a simulator that never answers)."""

    def _step(self, tensordict: TensorDict) -> TensorDict:
        time.sleep(60)
        return super()._step(tensordict)


class SegfaultEnv(CountingEnv):
    """A CountingEnv whose third step kills its process with SIGSEGV (a crashing simulator)."""

    def _step(self, tensordict: TensorDict) -> TensorDict:
        if int(self.count.max()) >= 2:
            faulthandler.disable()  # pytest's handler would print the crash to stderr
            os.kill(os.getpid(), signal.SIGSEGV)
        return super()._step(tensordict)


def slow_counting_env() -> CountingEnv:
    """A CountingEnv that takes 3 s to build (a heavy simulator, slow imports)."""
    time.sleep(3)
    return CountingEnv()


def collect(collector: MultiSyncDataCollector | MultiaSyncDataCollector, batches: int) -> None:
    for _ in range(batches):
        collector.next()


def no_children(timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while mp.active_children():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def gone(pids: list[int | None]) -> bool:
    """True when none of ``pids`` is a live process any more (``os.kill(pid, 0)`` fails)."""
    for pid in pids:
        assert pid is not None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
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


@pytest.mark.parametrize("cls", [MultiSyncDataCollector, MultiaSyncDataCollector])
def test_exception_in_a_worker_is_raised_with_its_traceback(cls: type) -> None:
    fns = [CountingEnv, functools.partial(CrashingEnv, crash_after=3)]
    collector = cls(fns, frames_per_batch=4, mp_start_method=FORK)
    pids = collector.worker_pids
    start = time.monotonic()
    with pytest.raises(CollectorError) as info:
        collect(collector, 4)  # CrashingEnv's fourth step raises
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "worker 1 failed during 'collect'" in message
    assert "RuntimeError: CrashingEnv: planned crash after 3 steps" in message
    assert "Worker traceback:" in message
    assert "testing.py" in message
    assert no_children()
    assert gone(pids)
    with pytest.raises(CollectorError, match="shut down"):
        collector.next()


def test_killed_idle_worker_is_detected() -> None:
    collector = MultiSyncDataCollector([CountingEnv] * 2, frames_per_batch=4, mp_start_method=FORK)
    collector.next()
    pids = collector.worker_pids
    assert pids[1] is not None
    os.kill(pids[1], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"worker 1 .*died \(killed by signal SIGKILL\)"):
        collector.next()
    assert time.monotonic() - start < 10
    assert no_children()
    assert gone(pids)


def test_killed_busy_worker_is_detected() -> None:
    # 2 workers x 40 steps of 50 ms: each batch takes 2 s, the kill lands mid-batch
    env = functools.partial(SlowEnv, max_steps=1000)
    collector = MultiaSyncDataCollector([env] * 2, frames_per_batch=40, mp_start_method=FORK)
    pids = collector.worker_pids
    assert pids[0] is not None

    def kill(signum: int, frame: object) -> None:
        os.kill(pids[0], signal.SIGKILL)  # type: ignore[arg-type]

    previous = signal.signal(signal.SIGALRM, kill)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    start = time.monotonic()
    try:
        with pytest.raises(CollectorError, match=r"worker 0 .*killed by signal SIGKILL"):
            collector.next()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        signal.alarm(60)
    assert time.monotonic() - start < 10
    assert no_children()
    assert gone(pids)


def test_segfault_in_a_worker_is_detected() -> None:
    fns = [CountingEnv, SegfaultEnv]
    collector = MultiSyncDataCollector(fns, frames_per_batch=8, mp_start_method=FORK)
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"worker 1 .*killed by signal SIGSEGV"):
        collector.next()
    assert time.monotonic() - start < 10
    assert no_children()


def test_env_creation_error_is_reported() -> None:
    bad = functools.partial(CountingEnv, max_steps=0)
    with pytest.raises(
        CollectorError, match=r"worker \d failed during 'create collector'.*max_steps must be"
    ):
        MultiSyncDataCollector([CountingEnv, bad], frames_per_batch=4, mp_start_method=FORK)
    assert no_children()


def test_hung_worker_hits_the_timeout() -> None:
    collector = MultiSyncDataCollector(
        [SleepyEnv], frames_per_batch=2, mp_start_method=FORK, timeout=0.5
    )
    start = time.monotonic()
    with pytest.raises(CollectorError, match=r"no answer within timeout=0.5 s"):
        collector.next()
    assert time.monotonic() - start < 10
    assert no_children()


@pytest.mark.parametrize("cls", [MultiSyncDataCollector, MultiaSyncDataCollector])
def test_timeouts_have_finite_defaults(cls: type) -> None:
    params = inspect.signature(cls).parameters
    assert params["timeout"].default == 300.0
    assert params["start_timeout"].default == 300.0
    with pytest.raises(CollectorError, match="timeout must be a positive number"):
        cls([CountingEnv], frames_per_batch=2, timeout=-1)


@pytest.mark.parametrize("cls", [MultiSyncDataCollector, MultiaSyncDataCollector])
def test_hung_worker_is_killed_and_named(cls: type) -> None:
    # worker 1's third step sleeps forever; worker 0 keeps delivering (to the async collector)
    collector = cls(
        [CountingEnv, HangingEnv], frames_per_batch=6, mp_start_method=FORK, timeout=1.0
    )
    pids = collector.worker_pids
    start = time.monotonic()
    with pytest.raises(CollectorTimeoutError) as info:
        collect(collector, 10_000)
    assert 1.0 <= time.monotonic() - start < 10
    err = info.value
    assert isinstance(err, CollectorError)
    assert isinstance(err, TimeoutError)
    assert (err.worker, err.phase) == (1, "collect")
    assert err.elapsed is not None
    assert 1.0 <= err.elapsed < 10
    name = cls.__name__
    message = str(err)
    assert f"{name} worker 1 (pid {pids[1]}) timed out during 'collect'" in message
    assert "no answer within timeout=1.0 s (waited 1." in message
    assert f"raise {name}(timeout=...); timeout=None waits forever" in message
    assert no_children()
    assert gone(pids)
    with pytest.raises(CollectorError, match="shut down"):
        collector.next()


def test_slow_start_up_is_not_held_to_the_collect_timeout() -> None:
    with MultiSyncDataCollector(
        [slow_counting_env] * 2, frames_per_batch=4, mp_start_method=FORK, timeout=1.0
    ) as collector:
        assert collector.next().batch_size == (2, 2)
    assert no_children()


def test_start_up_past_start_timeout_raises() -> None:
    start = time.monotonic()
    with pytest.raises(CollectorTimeoutError) as info:
        MultiaSyncDataCollector(
            [CountingEnv, slow_counting_env],
            frames_per_batch=4,
            mp_start_method=FORK,
            start_timeout=1.0,
        )
    assert time.monotonic() - start < 10
    assert (info.value.worker, info.value.phase) == (1, "create collector")
    message = str(info.value)
    assert "timed out during 'create collector': no answer within start_timeout=1.0 s" in message
    assert "raise MultiaSyncDataCollector(start_timeout=...)" in message
    assert no_children()


def test_interrupted_collection_shuts_the_workers_down() -> None:
    collector = MultiSyncDataCollector([SleepyEnv], frames_per_batch=2, mp_start_method=FORK)

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            collector.next()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        signal.alarm(60)
    assert no_children()
    with pytest.raises(CollectorError, match="shut down"):
        collector.next()


@pytest.mark.parametrize("cls", [MultiSyncDataCollector, MultiaSyncDataCollector])
def test_shutdown_is_idempotent_and_stops_workers(cls: type) -> None:
    collector = cls([CountingEnv] * 2, frames_per_batch=4, mp_start_method=FORK)
    collector.next()  # the async collector has a batch in flight now
    pids = collector.worker_pids
    assert len(mp.active_children()) == 2
    collector.shutdown()
    collector.shutdown()
    assert no_children()
    assert gone(pids)
    assert collector.worker_pids == []
    with pytest.raises(CollectorError, match="shut down"):
        collector.set_seed(0)


def test_context_manager_stops_workers() -> None:
    env = functools.partial(CountingEnv, batch_size=[2])
    with MultiaSyncDataCollector([env] * 2, frames_per_batch=4, mp_start_method=FORK) as c:
        pids = c.worker_pids
        c.next()
    assert no_children()
    assert gone(pids)


def test_garbage_collection_stops_workers() -> None:
    collector = MultiSyncDataCollector([CountingEnv] * 2, frames_per_batch=4, mp_start_method=FORK)
    collector.next()
    pids = collector.worker_pids
    del collector
    gc.collect()
    assert no_children()
    assert gone(pids)


def test_abandoned_iteration_then_garbage_collection() -> None:
    collector = MultiaSyncDataCollector([CountingEnv] * 2, frames_per_batch=2, mp_start_method=FORK)
    pids = collector.worker_pids
    for _ in collector:  # infinite: stop after one batch, with the other in flight
        break
    del collector, _
    gc.collect()
    assert no_children()
    assert gone(pids)
