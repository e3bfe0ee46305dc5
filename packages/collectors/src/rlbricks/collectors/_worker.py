"""The worker processes of the multiprocess collectors: their loop, and the parent's side.

Protocol (parent → worker over a ``Pipe``): ``(command, argument)`` with the
commands

* ``"collect"`` (argument: the policy-weights version): collect one batch with
  the worker's :class:`~rlbricks.collectors.SyncDataCollector` and write it into
  the worker's shared-memory batch. The first answer (and any answer after the
  batch's layout changed, e.g. when the random frames end and the policy adds
  its own keys) carries the new shared batch; later answers carry nothing;
* ``"seed"`` (argument: a seed): ``torch.manual_seed(seed)`` then
  ``collector.set_seed(seed)``; answers the next seed;
* ``"state_dict"``, ``"load_state_dict"`` (argument: a state), ``"reset"``, ``"close"``.

The worker answers each command with ``("ok", payload)`` or ``("error", (type
name, message, formatted traceback))``; on start-up it sends one unprompted
answer (the env's batch size and the worker's frames per batch). The parent
waits on the pipes *and* the process sentinels, so a worker that dies is
noticed at once instead of blocking the parent, and each worker has a deadline:
``start_timeout`` seconds from its start for its first answer, ``timeout``
seconds from each command for the answer to it.
"""

from __future__ import annotations

import contextlib
import signal
import time
import traceback
import weakref
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any
from multiprocessing.process import BaseProcess
from typing import Any
from typing import NoReturn
from typing import cast

import torch

from rlbricks.collectors._errors import CollectorError
from rlbricks.collectors._errors import CollectorRuntimeError
from rlbricks.collectors._errors import CollectorTimeoutError
from rlbricks.collectors._errors import WorkerActionError
from rlbricks.collectors._sync import SyncDataCollector
from rlbricks.collectors._trajectories import TRAJ_IDS
from rlbricks.envs import EnvTypeError
from rlbricks.envs import shutdown_workers
from rlbricks.envs import stop_process
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["WORKER", "WorkerPool", "worker_main"]

WORKER: NestedKey = ("collector", "worker")

Leaves = list[tuple[Any, torch.Tensor]]


def _describe(err: BaseException) -> tuple[str, str, str]:
    return type(err).__name__, str(err), traceback.format_exc()


def _layout(td: TensorDict) -> list[tuple[Any, torch.Size, torch.dtype]]:
    return sorted(
        ((k, v.shape, v.dtype) for k, v in td.items(include_nested=True, leaves_only=True)),
        key=lambda item: str(item[0]),
    )


def _new_buffer(batch: TensorDict, index: int) -> TensorDict:
    """A shared-memory copy of ``batch`` with the worker index entry."""
    buffer = batch.clone()
    buffer.set(WORKER, torch.full(batch.batch_size, index, dtype=torch.int64))
    return buffer.share_memory_()


def worker_main(
    index: int,
    num_workers: int,
    conn: Connection,
    parent_conn: Connection,
    create_env_fn: Any,
    policy: Any,
    collector_kwargs: dict[str, Any],
    torch_seed: int,
    num_threads: int,
) -> None:
    """Build worker ``index``'s collector, then serve the parent's commands until ``"close"``.

    Trajectory ids are written as ``local_id * num_workers + index`` so that they
    are unique across workers. The loop also ends when the parent goes away.
    """
    parent_conn.close()  # so that the parent's death closes the pipe on our side
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent decides the shutdown
    torch.set_num_threads(num_threads)
    torch.manual_seed(torch_seed)
    try:
        collector = SyncDataCollector(create_env_fn, policy, **collector_kwargs)
        info = {
            "batch_size": tuple(collector.env.batch_size),
            "frames_per_batch": collector.frames_per_batch,
        }
        conn.send(("ok", info))
    except BaseException as err:
        with contextlib.suppress(OSError):
            conn.send(("error", _describe(err)))
        return
    buffer: TensorDict | None = None
    layout: list[Any] = []
    version = 0
    while True:
        try:
            command, arg = conn.recv()
        except (EOFError, OSError):
            break
        try:
            payload: Any = None
            if command == "collect":
                if arg != version:
                    collector.update_policy_weights_()  # refreshes a copy on policy_device
                    version = arg
                batch = collector.next()
                batch_layout = _layout(batch)
                if buffer is None or batch_layout != layout:
                    buffer, layout = _new_buffer(batch, index), batch_layout
                    leaves = list(buffer.items(include_nested=True, leaves_only=True))
                    payload = (tuple(buffer.batch_size), leaves)
                else:
                    buffer.update_(batch)
                ids = buffer.get(TRAJ_IDS)
                ids.mul_(num_workers).add_(index)
            elif command == "seed":
                torch.manual_seed(arg)
                payload = collector.set_seed(arg)
            elif command == "state_dict":
                payload = collector.state_dict()
                payload.pop("policy", None)  # the parent saves the shared policy once
            elif command == "load_state_dict":
                collector.load_state_dict(arg)
            elif command == "reset":
                collector.reset()
            elif command == "close":
                collector.shutdown()
            else:
                raise CollectorRuntimeError(f"unknown collector worker command {command!r}")
            reply: tuple[str, Any] = ("ok", payload)
        except Exception as err:
            reply = ("error", _describe(err))
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            break
        if command == "close":
            break
    collector.shutdown()
    conn.close()


def _exit_reason(proc: BaseProcess) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class WorkerPool:
    """The parent's end of the worker processes: send commands, wait for answers, fail loudly.

    Every wait watches the pipes and the process sentinels together: an error
    answer or a dead worker raises :class:`CollectorRuntimeError` at once (after
    shutting every worker down). A worker that misses its deadline (its first
    answer ``start_timeout`` seconds after its start, any other answer
    ``timeout`` seconds after its command was sent) is killed, the others are
    shut down and :class:`CollectorTimeoutError` is raised. Garbage collection
    of the pool (or interpreter exit) stops the workers.

    Args:
        owner: the collector's name, for error messages.
        ctx: the multiprocessing context.
        worker_args: the arguments of :func:`worker_main` after the two pipe ends,
            one tuple per worker.
        timeout: seconds to wait for the answer to a command (None: forever).
        start_timeout: seconds to wait for a worker's first answer, once it
            has built its collector (None: forever).
    """

    def __init__(
        self,
        owner: str,
        ctx: Any,
        worker_args: Sequence[tuple[Any, ...]],
        timeout: float | None,
        start_timeout: float | None = None,
    ) -> None:
        self.owner = owner
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.procs: list[BaseProcess] = []
        self.conns: list[Connection] = []
        self.closed = False
        self._finalizer = weakref.finalize(self, shutdown_workers, self.procs, self.conns)
        num_workers = len(worker_args)
        # per worker: when its pending command was sent, and its deadline (None: no limit)
        started = time.monotonic()
        self._sent = [started] * num_workers
        self._deadlines = [None if start_timeout is None else started + start_timeout] * num_workers
        self._starting = [True] * num_workers
        try:
            for i, args in enumerate(worker_args):
                parent_conn, child_conn = ctx.Pipe()
                proc = ctx.Process(
                    target=worker_main,
                    args=(i, num_workers, child_conn, parent_conn, *args),
                    name=f"rlbricks-{owner}-worker-{i}",
                    # not a daemon, so that a worker may itself run a ParallelEnv
                    daemon=False,
                )
                try:
                    proc.start()
                except EnvTypeError as err:  # a CloudpickleWrapper refused what it holds
                    parent_conn.close()
                    raise CollectorRuntimeError(str(err)) from err
                except BaseException:
                    parent_conn.close()
                    raise
                finally:
                    child_conn.close()
                self.procs.append(proc)
                self.conns.append(parent_conn)
        except BaseException:
            self.shutdown()
            raise

    def send(self, index: int, command: str, arg: Any = None) -> None:
        """Send ``(command, arg)`` to worker ``index``."""
        if self.closed:
            raise CollectorRuntimeError(f"{self.owner} is shut down: create a new one")
        now = time.monotonic()
        self._sent[index] = now
        self._deadlines[index] = None if self.timeout is None else now + self.timeout
        self._starting[index] = False
        try:
            self.conns[index].send((command, arg))
        except (BrokenPipeError, OSError):
            self.fail(index, command, self._death(index))

    def wait(self, indices: Sequence[int], command: str) -> dict[int, Any]:
        """The payloads of the answers of the workers ``indices``, once all have answered."""
        answers: dict[int, Any] = {}
        pending = list(indices)
        while pending:
            i, payload = self.wait_first(pending, command)
            answers[i] = payload
            pending.remove(i)
        return answers

    def wait_first(self, indices: Sequence[int], command: str) -> tuple[int, Any]:
        """The first answer among the workers ``indices`` (the earliest listed if several)."""
        if self.closed:
            raise CollectorRuntimeError(f"{self.owner} is shut down: create a new one")
        try:
            return self._wait_first(indices, command)
        except BaseException:
            # interrupted (Ctrl-C, alarm) or failed while workers were busy: their late
            # answers would desynchronise the pipes, so the workers cannot be used any more
            self.shutdown()
            raise

    def _wait_first(self, indices: Sequence[int], command: str) -> tuple[int, Any]:
        conns = {self.conns[i]: i for i in indices}
        sentinels = {self.procs[i].sentinel: i for i in indices}
        while True:
            remaining = self._check_deadlines(indices, command)
            ready = wait_any([*conns, *sentinels], timeout=remaining)
            if not ready:
                continue  # a deadline passed: the check above raises
            ready_conns = [
                conns[cast(Connection, obj)] for obj in ready if not isinstance(obj, int)
            ]
            if ready_conns:
                i = min(ready_conns, key=list(indices).index)
                try:
                    status, payload = self.conns[i].recv()
                except (EOFError, OSError):
                    self.fail(i, command, self._death(i))
                if status == "error":
                    kind, message, tb = payload
                    reason = f"{kind}: {message}\n\nWorker traceback:\n{tb}"
                    self.fail(
                        i, command, reason, WorkerActionError if kind == "ActionError" else None
                    )
                return i, payload
            for obj in ready:  # only sentinels: a worker exited without answering
                i = sentinels[cast(int, obj)]
                if not self.conns[i].poll():
                    self.fail(i, command, self._death(i))

    def _check_deadlines(self, indices: Sequence[int], command: str) -> float | None:
        """Time out a worker past its deadline with no answer; else the seconds to the next one."""
        now = time.monotonic()
        deadlines = [(d, i) for i in indices if (d := self._deadlines[i]) is not None]
        for deadline, i in sorted(deadlines):
            if deadline <= now and not self.conns[i].poll() and self.procs[i].is_alive():
                self.time_out(i, command)
        if not deadlines:
            return None
        return max(0.0, min(deadlines)[0] - now)

    def time_out(self, index: int, command: str) -> NoReturn:
        """Kill worker ``index``, shut the others down, raise :class:`CollectorTimeoutError`."""
        elapsed = time.monotonic() - self._sent[index]
        proc = self.procs[index]
        pid = proc.pid
        stop_process(proc)
        self.shutdown()
        if self._starting[index]:
            name, limit = "start_timeout", self.start_timeout
            work = "starting a worker (spawning it, imports, building its env and collector)"
        elif command == "collect":
            name, limit = "timeout", self.timeout
            work = "one batch (a large frames_per_batch, a slow env or policy)"
        else:
            name, limit, work = "timeout", self.timeout, f"a {command!r}"
        raise CollectorTimeoutError(
            f"{self.owner} worker {index} (pid {pid}) timed out during {command!r}: no answer "
            f"within {name}={limit} s (waited {elapsed:.1f} s). It was killed and all workers "
            f"were shut down; create a new {self.owner}. If {work} legitimately takes this "
            f"long, raise {self.owner}({name}=...); {name}=None waits forever.",
            worker=index,
            phase=command,
            elapsed=elapsed,
        )

    def _death(self, index: int) -> str:
        proc = self.procs[index]
        proc.join(1.0)
        return f"the worker process (pid {proc.pid}) died ({_exit_reason(proc)})"

    def fail(
        self, index: int, command: str, reason: str, kind: type[CollectorError] | None = None
    ) -> NoReturn:
        """Shut every worker down and raise :class:`CollectorRuntimeError` (or ``kind``) about worker ``index``."""
        self.shutdown()
        raise (kind or CollectorRuntimeError)(
            f"{self.owner} worker {index} failed during {command!r}: {reason}\n"
            f"All workers were shut down; create a new {self.owner}."
        )

    def shutdown(self) -> None:
        """Stop every worker: ask them to close, then terminate or kill (idempotent)."""
        self.closed = True
        self._finalizer()
