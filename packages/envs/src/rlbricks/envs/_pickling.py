"""Sending env factories and policies to worker processes with cloudpickle.

A process started with ``"spawn"`` or ``"forkserver"`` receives its arguments
pickled by multiprocessing's pickler, which refuses lambdas, closures and
functions defined inside another function ("Can't pickle local object"). A
:class:`CloudpickleWrapper` pickles its object with cloudpickle instead, which
sends such functions by value. The wrapper keeps the reducers that
multiprocessing adds to pickle (torch registers its own there): a tensor in
shared memory reaches the worker as the same shared memory, as it does
without the wrapper.
"""

from __future__ import annotations

import copyreg
import io
import pickle
from collections import ChainMap
from collections.abc import Callable
from collections.abc import MutableMapping
from multiprocessing.reduction import ForkingPickler
from typing import Any

# untyped, and absent from the lint venv: a bare ignore fits both cases
import cloudpickle

from rlbricks.envs._errors import EnvTypeError

__all__ = ["CloudpickleWrapper"]


def _dispatch_table() -> ChainMap[Any, Any]:
    """cloudpickle's reducers, then those multiprocessing's pickler adds to the standard ones.

    A type both of them handle keeps cloudpickle's reducer. Read at each use:
    libraries may register reducers with multiprocessing after this module
    is imported.
    """
    standard = copyreg.dispatch_table
    cloud: MutableMapping[Any, Any] = cloudpickle.Pickler.dispatch_table
    own = {t for t, reducer in cloud.items() if standard.get(t) is not reducer}
    forking = ForkingPickler(io.BytesIO()).dispatch_table
    added = {
        t: reducer
        for t, reducer in forking.items()
        if standard.get(t) is not reducer and t not in own
    }
    return ChainMap(added, cloud)


class _ProcessPickler(cloudpickle.Pickler):
    """cloudpickle with the reducers of multiprocessing (shared tensors, pipes, sockets)."""

    def __init__(self, file: io.BytesIO) -> None:
        # the C pickler reads dispatch_table once, in __init__
        self.dispatch_table = _dispatch_table()
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)


def _dumps(obj: Any) -> bytes:
    with io.BytesIO() as file:
        _ProcessPickler(file).dump(obj)
        return file.getvalue()


def _name(obj: Any) -> str:
    """``module.qualname`` of a function or class, else a short repr."""
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(obj, "__module__", None)
        return f"{module}.{qualname}" if isinstance(module, str) else qualname
    text = repr(obj)
    return text if len(text) <= 100 else text[:97] + "..."


class CloudpickleWrapper:
    """An object bound for a worker process, pickled with cloudpickle; it arrives as itself.

    multiprocessing pickles the arguments of a process started with
    ``"spawn"`` or ``"forkserver"`` with the standard pickler, which refuses
    lambdas, closures and functions defined inside another function. Wrapped,
    the object is pickled with cloudpickle: those functions are sent by value
    (their code and what they capture), importable classes and functions by
    reference as before. The reducers multiprocessing adds are kept, so a
    tensor in shared memory (a policy's shared weights) reaches the worker as
    the same memory. The worker receives the object itself, not the wrapper;
    in this process, calling the wrapper calls the object.

    :class:`ParallelEnv` and the multiprocess collectors wrap their env
    factories, factory keyword arguments and policies this way (with
    ``"fork"`` nothing is pickled and they send them as they are). TorchRL's
    ``CloudpickleWrapper`` does the same for its env factories.

    Args:
        obj: what to send: an env factory, its keyword arguments, a policy.
        what: how an error message names it (e.g. ``"ParallelEnv: create_env_fn"``).

    Raises:
        EnvTypeError: when the wrapper is pickled, if ``obj`` holds something
            that cannot be copied into another process (a lock, a socket, a
            file open for writing, a live simulator). The message names the
            object, what cloudpickle refused, and the fix: create such things
            inside the factory, in the worker, or start the workers with
            ``"fork"``.

    Example:
        >>> import pickle
        >>> from rlbricks.envs import CloudpickleWrapper
        >>> from rlbricks.envs.testing import CountingEnv
        >>> make_env = lambda: CountingEnv(max_steps=2)
        >>> pickle.loads(pickle.dumps(CloudpickleWrapper(make_env)))().max_steps
        2

        What cannot leave this process is named, with the fix:

        >>> import threading
        >>> from rlbricks.envs import EnvTypeError
        >>> lock = threading.Lock()
        >>> try:
        ...     pickle.dumps(CloudpickleWrapper(lambda: lock, what="the env factory"))
        ... except EnvTypeError as err:
        ...     print(str(err).split(". It is")[0])  # doctest: +ELLIPSIS
        the env factory (...<lambda>) cannot be sent to a worker process: TypeError: cannot pickle '_thread.lock' object
    """

    def __init__(self, obj: Any, what: str = "the object") -> None:
        self.obj = obj
        self.what = what

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped object (in this process).

        Example:
            >>> from rlbricks.envs import CloudpickleWrapper
            >>> CloudpickleWrapper(lambda x: 2 * x)(3)
            6
        """
        return self.obj(*args, **kwargs)

    def __reduce__(self) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
        try:
            data = _dumps(self.obj)
        except EnvTypeError:
            raise  # a wrapper inside the object already said what failed
        except Exception as err:
            raise EnvTypeError(
                f"{self.what} ({_name(self.obj)}) cannot be sent to a worker process: "
                f"{type(err).__name__}: {err}. It is pickled with cloudpickle, which sends "
                "lambdas, closures and local functions, but not the objects they hold that "
                "cannot be copied into another process (locks, sockets, files open for "
                "writing, live simulators): create such objects inside the factory, in the "
                "worker, instead of capturing them, or start the workers with "
                "mp_start_method='fork'"
            ) from err
        return pickle.loads, (data,)

    def __repr__(self) -> str:
        return f"CloudpickleWrapper({self.obj!r})"
