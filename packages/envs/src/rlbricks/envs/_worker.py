"""The loop run by each ``ParallelEnv`` worker process.

Protocol (parent → worker, over a ``Pipe``): ``(command, argument)`` with the
commands ``"buffers"`` (the shared-memory tensors, sent once), ``"step"``,
``"reset"`` (argument: whether state entries were written), ``"seed"``,
``"getattr"`` and ``"close"``. The worker answers each with ``("ok", payload)``
or ``("error", (type name, message, formatted traceback))``. Data never goes
through the pipe: the worker reads its row of the shared input buffer and
writes its row of the shared output buffers.
"""

from __future__ import annotations

import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import torch

from rlbricks.envs._base import EnvBase
from rlbricks.envs._errors import EnvKeyError
from rlbricks.envs._errors import EnvValueError
from rlbricks.envs._serial import check_sub_env
from rlbricks.envs._serial import sub_env_specs
from rlbricks.tensordict import TensorDict

__all__ = ["worker_main"]

Rows = list[tuple[Any, torch.Tensor]]


def _describe(err: BaseException) -> tuple[str, str, str]:
    return type(err).__name__, str(err), traceback.format_exc()


def _read(rows: Rows) -> TensorDict:
    td = TensorDict(batch_size=())
    for key, view in rows:
        td.set(key, view.clone())
    return td


def _write(rows: Rows, source: TensorDict, what: str) -> None:
    for key, view in rows:
        value = source.get(key, None)
        if value is None:
            raise EnvKeyError(
                f"the sub-env's {what} output has no entry {key!r} although its specs declare it "
                f"(output keys: {list(source.keys(include_nested=True, leaves_only=True))})"
            )
        view.copy_(value)


def worker_main(
    index: int,
    conn: Connection,
    parent_conn: Connection,
    create_env_fn: Callable[..., EnvBase],
    create_env_kwargs: dict[str, Any],
) -> None:
    """Create sub-env ``index``, then serve the parent's commands until ``"close"``.

    The loop also ends when the parent goes away (the pipe closes).
    """
    parent_conn.close()  # so that the parent's death closes the pipe on our side
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent decides the shutdown
    torch.set_num_threads(1)
    try:
        env = create_env_fn(**create_env_kwargs)
        check_sub_env("ParallelEnv", index, env)
        env.validate_actions = False  # the parent checks the batched action's values once
        conn.send(("ok", sub_env_specs(env)))
    except BaseException as err:
        conn.send(("error", _describe(err)))
        return
    inputs: Rows = []
    resets: Rows = []
    nexts: Rows = []
    state_keys: set[Any] = set()
    while True:
        try:
            command, arg = conn.recv()
        except (EOFError, OSError):
            break
        try:
            payload: Any = None
            if command == "step":
                td = env.step(_read(inputs))
                _write(nexts, td.get("next"), "step")
            elif command == "reset":
                state = _read([r for r in inputs if r[0] in state_keys]) if arg else None
                _write(resets, env.reset(state), "reset")
            elif command == "seed":
                payload = env.set_seed(arg)
            elif command == "getattr":
                payload = getattr(env, arg)
            elif command == "buffers":
                in_buf, reset_buf, next_buf = arg
                inputs = [(k, t[index]) for k, t in in_buf.items()]
                resets = [(k, t[index]) for k, t in reset_buf.items()]
                nexts = [(k, t[index]) for k, t in next_buf.items()]
                state_keys = {k for k in in_buf if k != "action"}
            elif command == "close":
                env.close()
            else:
                raise EnvValueError(f"unknown ParallelEnv worker command {command!r}")
            reply: tuple[str, Any] = ("ok", payload)
        except Exception as err:
            reply = ("error", _describe(err))
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            break
        if command == "close":
            break
    if not env.is_closed:
        env.close()
    conn.close()
