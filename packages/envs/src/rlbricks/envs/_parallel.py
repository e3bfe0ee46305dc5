"""``ParallelEnv``: one worker process per sub-env, data exchanged through shared memory."""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from multiprocessing.process import BaseProcess
from typing import Any
from typing import NoReturn
from typing import cast

import torch

from rlbricks.envs._base import DeviceLike
from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvKeyError
from rlbricks.envs._errors import EnvRuntimeError
from rlbricks.envs._errors import EnvTimeoutError
from rlbricks.envs._errors import EnvValueError
from rlbricks.envs._pickling import CloudpickleWrapper
from rlbricks.envs._processes import shutdown_workers
from rlbricks.envs._processes import stop_process
from rlbricks.envs._serial import SPEC_NAMES
from rlbricks.envs._serial import EnvFn
from rlbricks.envs._serial import env_factories
from rlbricks.envs._serial import leaf_keys
from rlbricks.envs._serial import set_batched_specs
from rlbricks.envs._worker import worker_main
from rlbricks.specs import TensorSpec
from rlbricks.tensordict import TensorDict

__all__ = ["ParallelEnv"]

# the phases of start-up: they wait up to start_timeout, every other command up to timeout
_START_UP = ("create env", "share buffers")


def _shared_zeros(td: TensorDict) -> tuple[TensorDict, dict[Any, torch.Tensor]]:
    """A zero TensorDict shaped like ``td`` in shared memory, and its leaves by key."""
    leaves: dict[Any, torch.Tensor] = {}
    out = TensorDict(batch_size=td.batch_size)
    for key, value in td.items(include_nested=True, leaves_only=True):
        buf = torch.zeros(value.shape, dtype=value.dtype).share_memory_()
        out.set(key, buf)
        leaves[key] = buf
    return out, leaves


def _check_timeout(name: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise EnvValueError(
            f"ParallelEnv: {name} must be a positive number of seconds or None, got {value!r}"
        )


def _exit_reason(proc: BaseProcess) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ParallelEnv(EnvBase):
    """``num_workers`` unbatched envs, each in its own process, seen as one env of batch ``[n]``.

    Inputs and outputs go through shared-memory TensorDicts allocated once
    from the specs: the parent writes the actions into the input buffer and
    sends a short command to every worker over a pipe; each worker steps its
    env, writes its row of the output buffer and answers. Results equal those
    of :class:`SerialEnv` built from the same ``create_env_fn`` and seeds.

    Failures are never silent and never hang: an exception in a worker is
    raised in the parent as :class:`~rlbricks.envs.EnvRuntimeError` carrying the
    worker index and its traceback, and a worker that dies (killed, segfault)
    is detected as soon as its process exits. A worker that gives no answer
    within ``timeout`` seconds (``start_timeout`` while it starts) is killed
    and :class:`~rlbricks.envs.EnvTimeoutError` names it, the phase and the
    time waited. Either way the remaining workers are shut down and the env
    is closed. ``close()``, garbage collection and interpreter exit all stop
    the workers (graceful close, then terminate, then kill).

    Actions are checked here, in the parent, before they are written into the
    shared buffer (a wrong shape would otherwise be broadcast into it): a bad
    action raises :class:`~rlbricks.envs.ActionError` and leaves the workers
    and the env as they were. The workers' envs do not check the values again.

    Args:
        num_workers: the number of sub-envs (and worker processes).
        create_env_fn: a callable returning an unbatched env, or a list of
            ``num_workers`` such callables: a class, a function, a
            ``functools.partial``, a lambda or a closure. With ``"spawn"`` and
            ``"forkserver"`` it is sent to the workers with cloudpickle (see
            :class:`CloudpickleWrapper`), so it must not hold what cannot be
            copied into another process (a lock, an open socket): create such
            things inside the factory.
        create_env_kwargs: keyword arguments of ``create_env_fn``: one dict for
            all sub-envs, or a list of one dict per sub-env (sent like it).
        mp_start_method: ``"spawn"`` (default), ``"fork"`` or ``"forkserver"``.
            Spawn is the safe default: forking a parent that already runs
            threads (CUDA, OpenMP pools, loggers) can deadlock the child. Fork
            starts faster and copies the factory with the process; pick it
            knowingly.
        device: device of the outputs (the shared buffers live on the CPU).
        timeout: seconds to wait for the workers' answer to a ``step``,
            ``reset``, ``set_seed`` or attribute query before giving up (a
            worker stuck in its simulator). One step of one env rarely takes a
            second, so the default of 60 s only fires on a hang; raise it for
            an env whose reset legitimately takes longer. None waits forever
            (only by explicit choice). Dead workers are detected at once
            whatever the timeout.
        start_timeout: seconds to wait for each worker to start (spawn the
            process, import the modules, build the env, map the shared
            buffers), which can be much slower than a step: 300 s by default;
            None waits forever.

    Raises:
        EnvRuntimeError: a worker failed to create its env, or the sub-envs disagree
            on their specs.
        EnvTypeError: ``create_env_fn`` or ``create_env_kwargs`` cannot be sent
            to the workers (spawn and forkserver only); the message names it.
        EnvTimeoutError: a worker gave no answer within ``start_timeout``
            (raised by the constructor) or ``timeout`` (raised by ``step``,
            ``reset``, ...). The message says which to raise.

    Example:
        >>> from rlbricks.envs import ParallelEnv
        >>> from rlbricks.envs.testing import CountingEnv
        >>> with ParallelEnv(2, CountingEnv, create_env_kwargs={"max_steps": 2}) as env:
        ...     td = env.rollout(3, break_when_any_done=False)
        ...     seeds = env.set_seed(7), env.sub_env_attr("seed")
        >>> td["next", "observation"][:, :, 0].tolist()
        [[1.0, 2.0, 1.0], [1.0, 2.0, 1.0]]
        >>> seeds
        (9, [7, 8])

        The factory may be a lambda or a closure, as in TorchRL's
        ``ParallelEnv(2, lambda: GymEnv("Pendulum-v1"))``, with every start method:

        >>> with ParallelEnv(2, lambda: CountingEnv(max_steps=3), mp_start_method="spawn") as env:
        ...     env.rollout(4, break_when_any_done=False)["next", "done"].squeeze(-1).tolist()
        [[False, False, True, False], [False, False, True, False]]

        A worker that hangs is killed and reported (here ``HangingEnv``'s third
        step sleeps forever):

        >>> from rlbricks.envs import EnvTimeoutError
        >>> from rlbricks.envs.testing import HangingEnv
        >>> env = ParallelEnv(2, HangingEnv, create_env_kwargs={"hang_after": 2}, timeout=1.0)
        >>> try:
        ...     env.rollout(5)
        ... except EnvTimeoutError as err:
        ...     print(err.phase, env.is_closed, env.worker_pids)
        step True []
    """

    def __init__(
        self,
        num_workers: int,
        create_env_fn: EnvFn | Sequence[EnvFn],
        *,
        create_env_kwargs: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        mp_start_method: str | None = None,
        device: DeviceLike = None,
        timeout: float | None = 60.0,
        start_timeout: float | None = 300.0,
    ) -> None:
        factories = env_factories("ParallelEnv", num_workers, create_env_fn, create_env_kwargs)
        _check_timeout("timeout", timeout)
        _check_timeout("start_timeout", start_timeout)
        super().__init__(batch_size=(num_workers,), device=device)
        self.is_closed = True  # until the workers are up
        self.timeout = timeout
        self.start_timeout = start_timeout
        self._procs: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._finalizer = weakref.finalize(self, shutdown_workers, self._procs, self._conns)
        ctx: Any = mp.get_context(mp_start_method or "spawn")
        pickled = ctx.get_start_method() != "fork"  # fork copies the factories with the process
        self._started = time.monotonic()
        try:
            for i, (fn, kwargs) in enumerate(factories):
                sent: tuple[Any, Any] = (fn, kwargs)
                if pickled:
                    sent = (
                        CloudpickleWrapper(fn, f"ParallelEnv: create_env_fn of sub-env {i}"),
                        CloudpickleWrapper(
                            kwargs, f"ParallelEnv: create_env_kwargs of sub-env {i}"
                        ),
                    )
                parent_conn, child_conn = ctx.Pipe()
                proc = ctx.Process(
                    target=worker_main,
                    args=(i, child_conn, parent_conn, *sent),
                    name=f"rlbricks-ParallelEnv-worker-{i}",
                    daemon=True,
                )
                try:
                    proc.start()
                except BaseException:
                    parent_conn.close()
                    raise
                finally:
                    child_conn.close()
                self._procs.append(proc)
                self._conns.append(parent_conn)
            self.is_closed = False
            specs: list[dict[str, TensorSpec[Any]]] = self._run("create env", None, self._all)
            self._check_same_specs(specs)
            set_batched_specs(self, specs[0], num_workers, device)
            self._allocate_buffers()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ #
    # setup
    # ------------------------------------------------------------------ #
    @property
    def _all(self) -> range:
        return range(len(self._conns))

    @property
    def num_workers(self) -> int:
        """The number of sub-envs (worker processes)."""
        return self.batch_size[0]

    @property
    def worker_pids(self) -> list[int | None]:
        """The process ids of the workers (empty once closed)."""
        return [proc.pid for proc in self._procs]

    def _check_same_specs(self, specs: list[dict[str, TensorSpec[Any]]]) -> None:
        for i, other in enumerate(specs[1:], start=1):
            for name in SPEC_NAMES:
                if other[name] != specs[0][name]:
                    raise EnvRuntimeError(
                        f"ParallelEnv: sub-env {i} has a different {name} from sub-env 0 "
                        f"({other[name]} vs {specs[0][name]}); all sub-envs must share their specs"
                    )

    def _allocate_buffers(self) -> None:
        inputs = self.state_spec.zero()
        inputs.set("action", self.action_spec.zero())
        reset = self.observation_spec.zero()
        reset.update(self.done_spec.zero())
        nxt = self.observation_spec.zero()
        nxt.update(self.done_spec.zero())
        nxt.set("reward", self.reward_spec.zero())
        self._input_buf, in_leaves = _shared_zeros(inputs)
        self._reset_buf, reset_leaves = _shared_zeros(reset)
        self._next_buf, next_leaves = _shared_zeros(nxt)
        self._input_leaves = list(in_leaves.items())
        self._state_keys = leaf_keys(self.state_spec)
        self._run("share buffers", (in_leaves, reset_leaves, next_leaves), self._all)

    # ------------------------------------------------------------------ #
    # talking to the workers
    # ------------------------------------------------------------------ #
    def _run(self, command: str, arg: Any, indices: Sequence[int]) -> list[Any]:
        """Send ``command`` to the workers ``indices`` and return their answers.

        ``"create env"`` and ``"share buffers"`` are the setup phases (the
        workers answer the first one unprompted).
        """
        if self.is_closed:
            raise EnvRuntimeError("ParallelEnv is closed: create a new one")
        # the workers answer "create env" unprompted once started
        sent = self._started if command == "create env" else time.monotonic()
        wire = {"create env": None, "share buffers": "buffers"}.get(command, command)
        if wire is not None:
            for i in indices:
                try:
                    self._conns[i].send((wire, arg))
                except (BrokenPipeError, OSError):
                    self._fail(i, command, self._death(i))
        try:
            return self._collect(command, indices, sent)
        except BaseException:
            # interrupted (Ctrl-C, alarm) while workers were busy: their late answers would
            # desynchronise the pipes, so the env cannot be used any more
            if not self.is_closed:
                self.close()
            raise

    def _collect(self, command: str, indices: Sequence[int], sent: float) -> list[Any]:
        pending = {self._conns[i]: i for i in indices}
        sentinels = {self._procs[i].sentinel: i for i in indices}
        answers: dict[int, Any] = {}
        limit = self.start_timeout if command in _START_UP else self.timeout
        deadline = None if limit is None else sent + limit
        while pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait_any([*pending, *sentinels], timeout=remaining)
            if not ready:
                self._time_out(sorted(pending.values()), command, sent)
            for obj in ready:
                if isinstance(obj, int):  # a process exited
                    i = sentinels.pop(obj)
                    conn = self._conns[i]
                    if conn in pending and not conn.poll():
                        self._fail(i, command, self._death(i))
                    continue
                conn = cast(Connection, obj)
                i = pending.pop(conn)
                try:
                    status, payload = conn.recv()
                except (EOFError, OSError):
                    self._fail(i, command, self._death(i))
                if status == "error":
                    kind, message, tb = payload
                    self._fail(i, command, f"{kind}: {message}\n\nWorker traceback:\n{tb}")
                answers[i] = payload
        return [answers[i] for i in indices]

    def _death(self, index: int) -> str:
        proc = self._procs[index]
        proc.join(1.0)
        return f"the worker process (pid {proc.pid}) died ({_exit_reason(proc)})"

    def _time_out(self, indices: list[int], command: str, sent: float) -> NoReturn:
        """Kill the workers ``indices`` that gave no answer, close, raise :class:`EnvTimeoutError`."""
        elapsed = time.monotonic() - sent
        who = ", ".join(f"{i} (pid {self._procs[i].pid})" for i in indices)
        for i in indices:
            stop_process(self._procs[i])
        self.close()
        if command in _START_UP:
            name, limit = "start_timeout", self.start_timeout
            work = "starting a worker (spawning it, imports, building the env)"
        else:
            name, limit, work = "timeout", self.timeout, f"a {command!r} of the env"
        several = len(indices) > 1
        raise EnvTimeoutError(
            f"ParallelEnv worker{'s' if several else ''} {who} timed out during {command!r}: "
            f"no answer within {name}={limit} s (waited {elapsed:.1f} s). "
            f"{'They were' if several else 'It was'} killed and all workers were shut down; "
            f"create a new ParallelEnv. If {work} legitimately takes this long, raise "
            f"ParallelEnv({name}=...); {name}=None waits forever.",
            worker=indices[0],
            phase=command,
            elapsed=elapsed,
        )

    def _fail(self, index: int, command: str, reason: str) -> NoReturn:
        self.close()
        raise EnvRuntimeError(
            f"ParallelEnv worker {index} failed during {command!r}: {reason}\n"
            "All workers were shut down; create a new ParallelEnv."
        )

    # ------------------------------------------------------------------ #
    # EnvBase
    # ------------------------------------------------------------------ #
    def _out(self, buf: TensorDict) -> TensorDict:
        out = buf.clone()
        return out if self.device.type == "cpu" else out.to(self.device)

    def _reset(self, tensordict: TensorDict | None) -> TensorDict:
        indices: Sequence[int] = self._all
        with_state = False
        if tensordict is not None:
            if "_reset" in tensordict:
                mask = tensordict.get("_reset").reshape(self.num_workers, -1).any(-1)
                indices = mask.nonzero().squeeze(-1).tolist()
            for key in self._state_keys:
                value = tensordict.get(key, None)
                if value is not None:
                    self._input_buf.get(key).copy_(value)
                    with_state = True
        if indices:
            self._run("reset", with_state, indices)
        return self._out(self._reset_buf)

    def _step(self, tensordict: TensorDict) -> TensorDict:
        for key, buf in self._input_leaves:
            value = tensordict.get(key, None)
            if value is not None:
                buf.copy_(value)
            elif key == "action":
                raise EnvKeyError(
                    "ParallelEnv.step needs 'action' in the TensorDict: write the policy's action "
                    "there first"
                )
        self._run("step", None, self._all)
        return self._out(self._next_buf)

    def _set_seed(self, seed: int) -> None:
        for i in self._all:
            self._run("seed", seed + i, [i])

    def sub_env_attr(self, name: str) -> list[Any]:
        """The attribute ``name`` of every sub-env, fetched from the workers (picklable values).

        Example:
            >>> from rlbricks.envs import ParallelEnv
            >>> from rlbricks.envs.testing import CountingEnv
            >>> with ParallelEnv(1, CountingEnv) as env:
            ...     env.sub_env_attr("max_steps")
            [5]
        """
        return self._run("getattr", name, self._all)

    def close(self) -> None:
        """Stop every worker: ask them to close, then terminate or kill (idempotent)."""
        self.is_closed = True
        self._finalizer()

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else f"pids={self.worker_pids}"
        return f"ParallelEnv(num_workers={self.num_workers}, device={self.device}, {state})"
