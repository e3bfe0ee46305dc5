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
noticed at once instead of blocking the parent.
"""

from __future__ import annotations

import contextlib
import pickle
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
from rlbricks.collectors._sync import SyncDataCollector
from rlbricks.collectors._trajectories import TRAJ_IDS
from rlbricks.tensordict import NestedKey
from rlbricks.tensordict import TensorDict

__all__ = ["WORKER", "WorkerPool", "shutdown_workers", "worker_main"]

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
                raise ValueError(f"unknown collector worker command {command!r}")
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


def shutdown_workers(
    processes: list[BaseProcess], conns: list[Connection], grace: float = 2.0
) -> None:
    """Ask every worker to close, wait up to ``grace`` seconds, then terminate/kill the rest."""
    for proc, conn in zip(processes, conns, strict=False):
        if proc.is_alive():
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close", None))
    deadline = time.monotonic() + grace
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
    for conn in conns:
        conn.close()
    processes.clear()
    conns.clear()


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
    answer or a dead worker raises :class:`CollectorError` at once (after
    shutting every worker down), and so does a wait longer than ``timeout``.
    Garbage collection of the pool (or interpreter exit) stops the workers.

    Args:
        owner: the collector's name, for error messages.
        ctx: the multiprocessing context.
        worker_args: the arguments of :func:`worker_main` after the two pipe ends,
            one tuple per worker.
        timeout: seconds to wait for an answer (None: forever).
    """

    def __init__(
        self, owner: str, ctx: Any, worker_args: Sequence[tuple[Any, ...]], timeout: float | None
    ) -> None:
        self.owner = owner
        self.timeout = timeout
        self.procs: list[BaseProcess] = []
        self.conns: list[Connection] = []
        self.closed = False
        self._finalizer = weakref.finalize(self, shutdown_workers, self.procs, self.conns)
        num_workers = len(worker_args)
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
                except (pickle.PicklingError, AttributeError, TypeError) as err:
                    method = ctx.get_start_method()
                    if method == "fork":
                        raise
                    raise CollectorError(
                        f"{owner}: cannot send worker {i}'s env factory and policy to its "
                        f"process ({type(err).__name__}: {err}). With mp_start_method="
                        f"{method!r} they must be picklable: use a class, a module-level "
                        "function or a functools.partial instead of a lambda or a local "
                        "function (or mp_start_method='fork')"
                    ) from err
                child_conn.close()
                self.procs.append(proc)
                self.conns.append(parent_conn)
        except BaseException:
            self.shutdown()
            raise

    def send(self, index: int, command: str, arg: Any = None) -> None:
        """Send ``(command, arg)`` to worker ``index``."""
        if self.closed:
            raise CollectorError(f"{self.owner} is shut down: create a new one")
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
            raise CollectorError(f"{self.owner} is shut down: create a new one")
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
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait_any([*conns, *sentinels], timeout=remaining)
            if not ready:
                self.fail(indices[0], command, f"no answer within timeout={self.timeout} s")
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
                    self.fail(i, command, f"{kind}: {message}\n\nWorker traceback:\n{tb}")
                return i, payload
            for obj in ready:  # only sentinels: a worker exited without answering
                i = sentinels[cast(int, obj)]
                if not self.conns[i].poll():
                    self.fail(i, command, self._death(i))

    def _death(self, index: int) -> str:
        proc = self.procs[index]
        proc.join(1.0)
        return f"the worker process (pid {proc.pid}) died ({_exit_reason(proc)})"

    def fail(self, index: int, command: str, reason: str) -> NoReturn:
        """Shut every worker down and raise :class:`CollectorError` about worker ``index``."""
        self.shutdown()
        raise CollectorError(
            f"{self.owner} worker {index} failed during {command!r}: {reason}\n"
            f"All workers were shut down; create a new {self.owner}."
        )

    def shutdown(self) -> None:
        """Stop every worker: ask them to close, then terminate or kill (idempotent)."""
        self.closed = True
        self._finalizer()
