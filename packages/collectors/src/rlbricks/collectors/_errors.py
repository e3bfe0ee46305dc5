"""The exceptions of the collectors package."""

from __future__ import annotations

from rlbricks.envs import ActionError

__all__ = ["CollectorError", "CollectorTimeoutError", "WorkerActionError"]


class CollectorError(RuntimeError):
    """A collector was misconfigured, misused, or one of its workers failed.

    Example:
        >>> from rlbricks.collectors import CollectorError
        >>> issubclass(CollectorError, RuntimeError)
        True
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
