"""The exception family of ``rlbricks.collectors``: :class:`CollectorError` and its subclasses."""

from __future__ import annotations

from rlbricks.envs import ActionError

__all__ = [
    "CollectorError",
    "CollectorImportError",
    "CollectorRuntimeError",
    "CollectorTimeoutError",
    "WorkerActionError",
]


class CollectorError(Exception):
    """The root of every exception that ``rlbricks.collectors`` raises.

    It derives from ``Exception`` only: ``except CollectorError`` catches
    every collector error, whichever built-in (``RuntimeError``,
    ``TimeoutError``, ``ValueError``, ...) the raised subclass also is.

    Example:
        >>> from rlbricks.collectors import CollectorError, SyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> try:
        ...     SyncDataCollector(CountingEnv(), None, frames_per_batch=0, total_frames=10)
        ... except CollectorError as err:
        ...     print(type(err).__name__)
        CollectorRuntimeError
    """


class CollectorRuntimeError(CollectorError, RuntimeError):
    """A collector was misconfigured, misused, or one of its workers failed.

    For the multi-process and Ray collectors the message names the worker and
    carries its traceback; the workers were shut down before this was raised.
    Both a ``RuntimeError`` and a :class:`CollectorError`.

    Example:
        >>> from rlbricks.collectors import SyncDataCollector
        >>> from rlbricks.envs.testing import CountingEnv
        >>> try:
        ...     SyncDataCollector(CountingEnv(), None, frames_per_batch=0, total_frames=10)
        ... except RuntimeError as err:
        ...     print(type(err).__name__, "frames_per_batch" in str(err))
        CollectorRuntimeError True
    """


class CollectorImportError(CollectorError, ImportError):
    """An optional library (Ray, for :class:`~rlbricks.collectors.RayCollector`) is not installed.

    Both an ``ImportError`` and a :class:`CollectorError`; the message gives
    the ``pip install`` command that adds it.

    Example:
        >>> from rlbricks.collectors import CollectorError, CollectorImportError
        >>> err = CollectorImportError("RayCollector needs ray")
        >>> isinstance(err, ImportError), isinstance(err, CollectorError)
        (True, True)
    """


class CollectorTimeoutError(CollectorError, TimeoutError):
    """A worker process or Ray actor gave no answer within its ``timeout`` or ``start_timeout``.

    The message names the worker, the phase it was in and the time waited, and
    says which argument to raise. The worker was killed and the collector shut
    down before this was raised. ``except CollectorError`` and
    ``except TimeoutError`` both catch it.

    Attributes:
        worker: the index of the worker (or actor) that did not answer.
        phase: what it was doing (``"create collector"``, ``"collect"``, ...).
        elapsed: seconds waited for it.

    Example:
        >>> from rlbricks.collectors import CollectorError, CollectorTimeoutError
        >>> err = CollectorTimeoutError("worker 1 hung", worker=1, phase="collect", elapsed=2.5)
        >>> isinstance(err, CollectorError), isinstance(err, TimeoutError), err.phase
        (True, True, 'collect')
    """

    def __init__(
        self,
        message: str,
        *,
        worker: int | None = None,
        phase: str | None = None,
        elapsed: float | None = None,
    ) -> None:
        super().__init__(message)
        self.worker = worker
        self.phase = phase
        self.elapsed = elapsed


class WorkerActionError(CollectorError, ActionError):
    """A multi-process collector's worker refused an action of the policy.

    The message carries the worker's :class:`~rlbricks.envs.ActionError` (key,
    spec, what was received, the fix) and its traceback; the workers were shut
    down. ``except ActionError`` catches it as it catches the error of a
    ``SyncDataCollector``, and so does ``except CollectorError``.

    Example:
        >>> from rlbricks.collectors import CollectorError, WorkerActionError
        >>> from rlbricks.envs import ActionError
        >>> issubclass(WorkerActionError, CollectorError), issubclass(WorkerActionError, ActionError)
        (True, True)
    """
