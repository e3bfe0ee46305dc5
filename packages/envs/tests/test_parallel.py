"""ParallelEnv: same results as SerialEnv, faults raised fast, no process left behind."""

from __future__ import annotations

import functools
import gc
import inspect
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import torch

from rlbricks.envs import EnvError
from rlbricks.envs import EnvTimeoutError
from rlbricks.envs import EnvTypeError
from rlbricks.envs import check_env_specs
from rlbricks.envs import shutdown_workers
from rlbricks.envs import stop_process
from rlbricks.envs._parallel import ParallelEnv
from rlbricks.envs._serial import SerialEnv
from rlbricks.envs.testing import ContinuousActionEnv
from rlbricks.envs.testing import CountingEnv
from rlbricks.envs.testing import CrashingEnv
from rlbricks.envs.testing import HangingEnv
from rlbricks.envs.testing import NestedSpecEnv
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGALRM and SIGKILL")

# fork starts workers in milliseconds; the spawn default is covered by the tests marked SPAWN
FAST = "fork"
SPAWN = "spawn"


class SleepyEnv(CountingEnv):
    """A CountingEnv whose step hangs (a simulator that never answers)."""

    def _step(self, tensordict: TensorDict) -> TensorDict:
        time.sleep(60)
        return super()._step(tensordict)


def slow_counting_env() -> CountingEnv:
    """A CountingEnv that takes 3 s to build (a heavy simulator, slow imports)."""
    time.sleep(3)
    return CountingEnv()


def gone(pids: list[int | None]) -> bool:
    """True when none of ``pids`` is a live process any more."""
    for pid in pids:
        assert pid is not None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def parity_policy(td: TensorDict) -> TensorDict:
    return td.set("action", (td["observation"] % 2 == 0).long())


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
        raise TimeoutError("test took more than 60 s: ParallelEnv hung")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert no_children(), f"worker processes left behind: {mp.active_children()}"


@pytest.mark.parametrize("env_cls", [CountingEnv, NestedSpecEnv, ContinuousActionEnv])
def test_check_env_specs(env_cls: type) -> None:
    with ParallelEnv(2, env_cls, mp_start_method=FAST) as env:
        check_env_specs(env, steps=8, seed=0)
        assert env.observation_spec == SerialEnv(2, env_cls).observation_spec


def test_check_env_specs_with_spawn() -> None:
    with ParallelEnv(2, NestedSpecEnv, mp_start_method=SPAWN) as env:
        check_env_specs(env, steps=8, seed=0)
        td = env.rollout(3)
    assert td["next", "data", "states"].shape == (2, 3, 3)
    assert td["next", "data", "step"][:, :, 0].tolist() == [[1.0, 2.0, 3.0]] * 2


@pytest.mark.parametrize("start", [FAST, SPAWN])
def test_rollouts_equal_serial_and_sub_envs(start: str) -> None:
    fns = [functools.partial(CountingEnv, max_steps=m) for m in (2, 3, 5)]
    serial = SerialEnv(3, fns)
    with ParallelEnv(3, fns, mp_start_method=start) as parallel:
        for seed in (0, 1):
            torch.manual_seed(seed)
            expected = serial.rollout(9, break_when_any_done=False)
            torch.manual_seed(seed)
            got = parallel.rollout(9, break_when_any_done=False)
            assert_close(got, expected)
        got = parallel.rollout(9, parity_policy, break_when_any_done=False)
    for i, fn in enumerate(fns):
        assert_close(got[i], fn().rollout(9, parity_policy, break_when_any_done=False))


def test_continuous_rollout_equals_serial() -> None:
    kwargs = {"max_steps": 3}
    serial = SerialEnv(2, ContinuousActionEnv, create_env_kwargs=kwargs)
    with ParallelEnv(2, ContinuousActionEnv, create_env_kwargs=kwargs, mp_start_method=FAST) as env:
        torch.manual_seed(3)
        got = env.rollout(7, break_when_any_done=False)
    torch.manual_seed(3)
    assert_close(got, serial.rollout(7, break_when_any_done=False))


def test_partial_reset() -> None:
    with ParallelEnv(
        3, CountingEnv, create_env_kwargs={"max_steps": 10}, mp_start_method=FAST
    ) as env:
        td = env.reset()
        for _ in range(3):
            td = env.step(env.rand_action(td))["next"].exclude("reward")
        td.set("_reset", torch.tensor([[True], [False], [True]]))
        out = env.reset(td)
        assert out["observation"][:, 0].tolist() == [0.0, 3.0, 0.0]
        assert [c.item() for c in env.sub_env_attr("count")] == [0, 3, 0]
        nxt = env.step(env.rand_action(out))["next"]
        assert nxt["observation"][:, 0].tolist() == [1.0, 4.0, 1.0]
        out = env.reset(td.set("_reset", torch.zeros(3, 1, dtype=torch.bool)))
        assert env.sub_env_attr("count") == [
            torch.tensor([1]),
            torch.tensor([4]),
            torch.tensor([1]),
        ]


def test_outputs_do_not_alias_the_shared_buffers() -> None:
    with ParallelEnv(2, CountingEnv, mp_start_method=FAST) as env:
        first = env.step(env.rand_action(env.reset()))["next"]
        env.step(env.rand_action(first.clone()))
        assert first["observation"][:, 0].tolist() == [1.0, 1.0]


def test_set_seed_gives_seed_plus_index() -> None:
    with ParallelEnv(3, CountingEnv, mp_start_method=FAST) as env:
        assert env.set_seed(11) == 14
        assert env.sub_env_attr("seed") == [11, 12, 13]


def test_worker_exception_raises_env_error_with_traceback() -> None:
    env = ParallelEnv(2, CrashingEnv, create_env_kwargs={"crash_after": 2}, mp_start_method=SPAWN)
    td = env.reset()
    for _ in range(2):
        td = env.step(env.rand_action(td))["next"].exclude("reward")
    start = time.monotonic()
    with pytest.raises(EnvError) as info:
        env.step(env.rand_action(td))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "planned crash" in message
    assert "Worker traceback" in message
    assert "testing.py" in message
    assert "worker 0" in message or "worker 1" in message
    assert env.is_closed
    assert no_children()
    with pytest.raises(EnvError, match="closed"):
        env.step(env.rand_action(td))


@pytest.mark.parametrize("start", [FAST, SPAWN])
def test_killed_worker_raises_within_seconds(start: str) -> None:
    env = ParallelEnv(2, CountingEnv, mp_start_method=start)
    td = env.step(env.rand_action(env.reset()))["next"].exclude("reward")
    pid = env.worker_pids[1]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    start_time = time.monotonic()
    with pytest.raises(EnvError, match=r"worker 1 .*died \(killed by signal SIGKILL\)"):
        env.step(env.rand_action(td))
    assert time.monotonic() - start_time < 10
    assert no_children()


def test_hung_worker_hits_the_timeout() -> None:
    env = ParallelEnv(2, SleepyEnv, mp_start_method=FAST, timeout=0.5)
    start = time.monotonic()
    with pytest.raises(EnvError, match=r"no answer within timeout=0.5 s"):
        env.step(env.rand_action(env.reset()))
    assert time.monotonic() - start < 10
    assert no_children()


def test_timeouts_have_finite_defaults() -> None:
    params = inspect.signature(ParallelEnv).parameters
    assert params["timeout"].default == 60.0
    assert params["start_timeout"].default == 300.0
    with ParallelEnv(1, CountingEnv, mp_start_method=FAST) as env:
        assert (env.timeout, env.start_timeout) == (60.0, 300.0)
    with pytest.raises(ValueError, match="start_timeout must be a positive number"):
        ParallelEnv(1, CountingEnv, start_timeout=0)


def test_hung_step_names_the_worker_the_phase_and_the_time() -> None:
    fns = [CountingEnv, functools.partial(HangingEnv, hang_after=1)]
    env = ParallelEnv(2, fns, mp_start_method=FAST, timeout=1.0)
    pids = env.worker_pids
    td = env.step(env.rand_action(env.reset()))["next"].exclude("reward")
    start = time.monotonic()
    with pytest.raises(EnvTimeoutError) as info:
        env.step(env.rand_action(td))  # worker 1's second step hangs
    assert 1.0 <= time.monotonic() - start < 10
    err = info.value
    assert isinstance(err, EnvError)
    assert isinstance(err, TimeoutError)
    assert (err.worker, err.phase) == (1, "step")
    assert err.elapsed is not None
    assert 1.0 <= err.elapsed < 10
    message = str(err)
    assert f"ParallelEnv worker 1 (pid {pids[1]}) timed out during 'step'" in message
    assert "no answer within timeout=1.0 s (waited 1." in message
    assert "raise ParallelEnv(timeout=...); timeout=None waits forever" in message
    assert env.is_closed
    assert no_children()
    assert gone(pids)


def test_slow_start_up_is_not_held_to_the_step_timeout() -> None:
    with ParallelEnv(2, slow_counting_env, mp_start_method=FAST, timeout=1.0) as env:
        assert env.rollout(3).batch_size == (2, 3)
    assert no_children()


def test_start_up_past_start_timeout_raises() -> None:
    start = time.monotonic()
    with pytest.raises(EnvTimeoutError) as info:
        ParallelEnv(2, slow_counting_env, mp_start_method=FAST, start_timeout=1.0)
    assert time.monotonic() - start < 10
    assert info.value.phase == "create env"
    message = str(info.value)
    assert "timed out during 'create env': no answer within start_timeout=1.0 s" in message
    assert "raise ParallelEnv(start_timeout=...); start_timeout=None waits forever" in message
    assert no_children()


# ---------------------------------------------------------------------- #
# factories sent with cloudpickle: lambdas, closures, local functions
# ---------------------------------------------------------------------- #
def test_lambda_and_closure_factories_with_spawn() -> None:
    steps = 3

    def make_env(max_steps: int) -> CountingEnv:  # a local function closing over nothing
        return CountingEnv(max_steps=max_steps)

    def closure() -> CountingEnv:  # closes over a local variable
        return make_env(steps)

    fns = [lambda: CountingEnv(max_steps=2), closure]
    with ParallelEnv(2, fns, mp_start_method=SPAWN) as env:
        got = env.rollout(6, parity_policy, break_when_any_done=False)
        assert env.sub_env_attr("max_steps") == [2, 3]
    assert_close(got, SerialEnv(2, fns).rollout(6, parity_policy, break_when_any_done=False))


def test_lambda_kwargs_and_forkserver() -> None:
    """create_env_kwargs go the same way, and forkserver pickles like spawn."""
    make = functools.partial(CountingEnv, max_steps=2)
    kwargs = {"batch_size": ()}
    fn = lambda **kw: make(**kw)  # noqa: E731
    with ParallelEnv(2, fn, create_env_kwargs=kwargs, mp_start_method="forkserver") as env:
        assert env.sub_env_attr("max_steps") == [2, 2]


def test_gym_lambda_factory_with_spawn() -> None:
    pytest.importorskip("gymnasium")
    from rlbricks.envs import GymEnv

    with ParallelEnv(2, lambda: GymEnv("CartPole-v1"), mp_start_method=SPAWN) as env:
        env.set_seed(0)
        td = env.rollout(5, break_when_any_done=False)
    assert td["next", "observation"].shape == (2, 5, 4)


def test_unpicklable_factory_names_the_factory_and_the_fix() -> None:
    lock = threading.Lock()

    def make_locked_env() -> CountingEnv:
        with lock:
            return CountingEnv()

    with pytest.raises(EnvTypeError) as info:
        ParallelEnv(2, make_locked_env, mp_start_method=SPAWN)
    message = str(info.value)
    assert message.startswith("ParallelEnv: create_env_fn of sub-env 0 (")
    assert "make_locked_env) cannot be sent to a worker process" in message
    assert "cannot pickle '_thread.lock' object" in message
    assert "create such objects inside the factory" in message
    assert "mp_start_method='fork'" in message
    assert isinstance(info.value, TypeError)
    assert no_children()
    # fork copies the process: the same factory works there
    with ParallelEnv(2, make_locked_env, mp_start_method=FAST) as env:
        assert env.rollout(2)["next", "observation"].shape == (2, 2, 1)


def test_env_creation_error_is_reported() -> None:
    bad = functools.partial(CountingEnv, max_steps=0)
    with pytest.raises(EnvError, match=r"worker \d failed during 'create env'.*max_steps must be"):
        ParallelEnv(2, bad, mp_start_method=FAST)
    assert no_children()


def test_batched_sub_env_is_rejected() -> None:
    with pytest.raises(EnvError, match="unbatched"):
        ParallelEnv(2, CountingEnv, create_env_kwargs={"batch_size": [2]}, mp_start_method=FAST)


def test_sub_envs_with_different_specs_are_rejected() -> None:
    with pytest.raises(EnvError, match="sub-env 1 has a different observation_spec"):
        ParallelEnv(2, [CountingEnv, NestedSpecEnv], mp_start_method=FAST)


def test_close_is_idempotent_and_stops_workers() -> None:
    env = ParallelEnv(2, CountingEnv, mp_start_method=FAST)
    assert len(mp.active_children()) == 2
    env.close()
    env.close()
    assert no_children()
    assert env.worker_pids == []
    assert "closed" in repr(env)
    with pytest.raises(EnvError, match="closed"):
        env.reset()


def test_garbage_collection_stops_workers() -> None:
    env = ParallelEnv(2, CountingEnv, mp_start_method=FAST)
    env.rollout(2)
    del env
    gc.collect()
    assert no_children()


def test_context_manager_stops_workers() -> None:
    with ParallelEnv(2, CountingEnv, mp_start_method=FAST) as env:
        env.rollout(3)
        assert len(mp.active_children()) == 2
    assert env.is_closed
    assert no_children()


def test_interrupted_step_closes_the_env() -> None:
    env = ParallelEnv(1, SleepyEnv, mp_start_method=FAST, timeout=None)
    td = env.rand_action(env.reset())

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            env.step(td)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        signal.alarm(60)
    assert env.is_closed
    assert no_children()


# --------------------------------------------------------------------------- #
# shutdown_workers / stop_process: public, shared with the collectors
# --------------------------------------------------------------------------- #
def _wait_for_close(conn) -> None:
    assert conn.recv() == ("close", None)


def test_shutdown_workers_closes_answering_workers_and_empties_the_lists():
    ctx = mp.get_context("fork")
    procs, conns = [], []
    for _ in range(2):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_wait_for_close, args=(child,))
        proc.start()
        procs.append(proc)
        conns.append(parent)
    started = list(procs)
    shutdown_workers(procs, conns, grace=5.0)
    assert procs == []
    assert conns == []
    assert [p.exitcode for p in started] == [0, 0]  # they exited by themselves
    shutdown_workers(procs, conns)  # again: nothing to do


def test_shutdown_workers_stops_a_worker_that_ignores_the_close():
    ctx = mp.get_context("fork")
    parent, _child = ctx.Pipe()
    proc = ctx.Process(target=time.sleep, args=(60,))
    proc.start()
    start = time.monotonic()
    shutdown_workers([proc], [parent], grace=0.2)
    assert not proc.is_alive()
    assert proc.exitcode == -15  # terminated
    assert time.monotonic() - start < 10


def test_stop_process_on_an_exited_process_does_nothing():
    proc = mp.get_context("fork").Process(target=int)
    proc.start()
    proc.join(10)
    stop_process(proc)
    assert proc.exitcode == 0


def test_process_helpers_are_public():
    import rlbricks.envs as envs

    assert {"shutdown_workers", "stop_process"} <= set(envs.__all__)
