"""The exceptions of ``rlbricks.envs``."""

from __future__ import annotations

__all__ = ["ActionError", "EnvError", "EnvStateWarning", "EnvTimeoutError"]


class EnvError(RuntimeError):
    """An environment broke its contract, or a worker process failed.

    For batched envs running in worker processes, the message carries the
    worker's index and its full traceback.

    Example:
        >>> from rlbricks.envs import EnvError
        >>> issubclass(EnvError, RuntimeError)
        True
    """


class EnvTimeoutError(EnvError, TimeoutError):
    """A ``ParallelEnv`` worker gave no answer within ``timeout`` (or ``start_timeout``).

    The message names the worker (index and pid), the phase (``"create env"``,
    ``"reset"``, ``"step"``, ...) and the time waited, and says which argument
    to raise. The worker was killed and the env closed before this was raised.
    ``except EnvError`` and ``except TimeoutError`` both catch it.

    Attributes:
        worker: the index of the (first) worker that did not answer.
        phase: what it was doing.
        elapsed: seconds waited for it.

    Example:
        >>> from rlbricks.envs import EnvError, EnvTimeoutError
        >>> err = EnvTimeoutError("worker 0 hung", worker=0, phase="step", elapsed=60.0)
        >>> isinstance(err, EnvError), isinstance(err, TimeoutError), err.phase
        (True, True, 'step')
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


class EnvStateWarning(UserWarning):
    """A saved env state was incomplete: a resumed run does not continue its episodes exactly.

    Raised as a warning by ``GymWrapper.load_state_dict`` (the message lists
    the attributes that were not saved, e.g. a Box2D world); a collector that
    meets it starts new episodes instead of continuing the saved ones.

    Example:
        >>> from rlbricks.envs import EnvStateWarning
        >>> issubclass(EnvStateWarning, UserWarning)
        True
    """


class ActionError(EnvError, ValueError):
    """An action does not match the env's action spec (shape, dtype or values).

    Raised by ``env.step`` (and the rollout and collector loops) before the
    action reaches the simulator. The message names the action key, the spec,
    what was received (shape and dtype, or the offending values and their
    index) and the fix. Shape and dtype are always checked; values (bounds,
    categories, one-hot rows, masks) unless ``env.validate_actions`` is False.
    ``except EnvError`` and ``except ValueError`` both catch it.

    Example:
        >>> import torch
        >>> from rlbricks.envs import ActionError
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env = CountingEnv()  # action spec: Categorical(2) of shape [1]
        >>> td = env.reset().set("action", torch.tensor([7]))
        >>> try:
        ...     env.step(td)
        ... except ActionError as err:
        ...     print(err)  # doctest: +ELLIPSIS
        CountingEnv.step: the action 'action' is not in the env's action spec Categorical(shape=[1], ..., n=2): 1 of 1 values not in [0, 2) (min 7, max 7); first at index (0,): 7. Fix the policy's output: ...
        >>> isinstance(ActionError("x"), ValueError)
        True
    """
