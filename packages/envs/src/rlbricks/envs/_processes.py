"""Stopping worker processes: the shutdown shared by ``ParallelEnv`` and the collectors."""

from __future__ import annotations

import contextlib
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

__all__ = ["shutdown_workers", "stop_process"]


def shutdown_workers(
    processes: list[BaseProcess], conns: list[Connection], grace: float = 2.0
) -> None:
    """Ask every worker to close, wait up to ``grace`` seconds, then terminate/kill the rest.

    The close request is the message ``("close", None)`` sent over each
    worker's pipe (the command the ``ParallelEnv`` and collector workers
    understand); a worker that is still alive after ``grace`` seconds (all
    workers share the delay) is stopped with :func:`stop_process`. Every pipe
    is closed, and both lists are emptied in place, so calling it again (e.g.
    from a ``weakref.finalize`` after an explicit shutdown) does nothing.

    Args:
        processes: the worker processes, one per pipe.
        conns: the parent's end of each worker's pipe.
        grace: seconds the workers have, together, to exit by themselves.

    Example:
        >>> import multiprocessing as mp
        >>> from rlbricks.envs import shutdown_workers
        >>> ctx = mp.get_context("fork")
        >>> parent, child = ctx.Pipe()
        >>> proc = ctx.Process(target=child.recv)  # a worker that exits on its first message
        >>> proc.start()
        >>> procs, conns = [proc], [parent]
        >>> shutdown_workers(procs, conns)
        >>> proc.exitcode, procs, conns
        (0, [], [])
    """
    for proc, conn in zip(processes, conns, strict=False):
        if proc.is_alive():
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close", None))
    deadline = time.monotonic() + grace
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in processes:
        stop_process(proc)
    for conn in conns:
        conn.close()
    processes.clear()
    conns.clear()


def stop_process(proc: BaseProcess) -> None:
    """Stop a process that does not answer any more: terminate, then kill.

    ``SIGTERM`` first, then ``SIGKILL`` if the process is still alive one
    second later; each is followed by a join of up to one second. Does
    nothing for a process that has already exited.

    Example:
        >>> import multiprocessing as mp
        >>> import time
        >>> from rlbricks.envs import stop_process
        >>> proc = mp.get_context("fork").Process(target=time.sleep, args=(60,))
        >>> proc.start()
        >>> stop_process(proc)
        >>> proc.is_alive(), proc.exitcode < 0  # ended by SIGTERM, or by SIGKILL if it ignored it
        (False, True)
    """
    if proc.is_alive():
        proc.terminate()
        proc.join(1.0)
    if proc.is_alive():
        proc.kill()
        proc.join(1.0)
