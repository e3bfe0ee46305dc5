"""The exception family of ``rlbricks.envs``: :class:`EnvError` and its subclasses."""

from __future__ import annotations

__all__ = [
    "ActionError",
    "EnvError",
    "EnvImportError",
    "EnvKeyError",
    "EnvRuntimeError",
    "EnvStateWarning",
    "EnvTimeoutError",
    "EnvTypeError",
    "EnvValueError",
]


class EnvError(Exception):
    """The root of every exception that ``rlbricks.envs`` raises.

    It derives from ``Exception`` only: ``except EnvError`` catches every env
    error, whichever built-in (``RuntimeError``, ``ValueError``,
    ``TimeoutError``, ...) the raised subclass also is.

    Example:
        >>> import torch
        >>> from rlbricks.envs import EnvError
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env = CountingEnv()
        >>> try:
        ...     env.step(env.reset().set("action", torch.tensor([7])))
        ... except EnvError as err:
        ...     print(type(err).__name__)
        ActionError
    """


class EnvRuntimeError(EnvError, RuntimeError):
    """An environment broke its contract, was used after ``close()``, or a worker failed.

    For batched envs running in worker processes, the message carries the
    worker's index and its full traceback.  Both a ``RuntimeError`` and an
    :class:`EnvError`.

    Example:
        >>> from rlbricks.envs import EnvRuntimeError
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env = CountingEnv()
        >>> env.close()
        >>> try:
        ...     env.reset()
        ... except RuntimeError as err:
        ...     print(type(err).__name__, err)
        EnvRuntimeError CountingEnv is closed: create a new env
    """


class EnvValueError(EnvError, ValueError):
    """An argument of an env or of a rollout has an invalid value.

    Examples: ``frame_skip=0``, ``max_steps=-1``, a ``timeout`` that is not
    positive.  Both a ``ValueError`` and an :class:`EnvError`; the message
    names the argument and the value received.

    Example:
        >>> from rlbricks.envs import rollout
        >>> from rlbricks.envs.testing import CountingEnv
        >>> try:
        ...     rollout(CountingEnv(), max_steps=0)
        ... except ValueError as err:
        ...     print(type(err).__name__, err)
        EnvValueError max_steps must be positive, got 0
    """


class EnvKeyError(EnvError, KeyError):
    """An entry an env reads (the ``"action"``) is missing from its input TensorDict.

    Both a ``KeyError`` and an :class:`EnvError`; the message names the entry.

    Example:
        >>> from rlbricks.envs import EnvKeyError, SerialEnv
        >>> from rlbricks.envs.testing import CountingEnv
        >>> env = SerialEnv(2, CountingEnv)
        >>> try:
        ...     env.step(env.reset())
        ... except KeyError as err:
        ...     print(type(err).__name__, err)
        EnvKeyError SerialEnv.step needs 'action' in the TensorDict: write the policy's action there first
        >>> env.close()
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


class EnvTypeError(EnvError, TypeError):
    """A simulator's space or object has a type the wrappers cannot handle.

    Both a ``TypeError`` and an :class:`EnvError`; the message names the
    type and what is supported.

    Example:
        >>> from rlbricks.envs import EnvTypeError, space_to_spec
        >>> try:
        ...     space_to_spec(object())
        ... except TypeError as err:
        ...     print(type(err).__name__)
        EnvTypeError
    """


class EnvImportError(EnvError, ImportError):
    """An optional simulator library (gymnasium, dm_control, ale-py) is not installed.

    Both an ``ImportError`` and an :class:`EnvError`; the message gives the
    ``pip install`` command that adds it.

    Example:
        >>> from rlbricks.envs import EnvError, EnvImportError
        >>> issubclass(EnvImportError, ImportError), issubclass(EnvImportError, EnvError)
        (True, True)
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


class ActionError(EnvValueError):
    """An action does not match the env's action spec (shape, dtype or values).

    Raised by ``env.step`` (and the rollout and collector loops) before the
    action reaches the simulator. The message names the action key, the spec,
    what was received (shape and dtype, or the offending values and their
    index) and the fix. Shape and dtype are always checked; values (bounds,
    categories, one-hot rows, masks) unless ``env.validate_actions`` is False.
    An :class:`EnvValueError`: ``except EnvError`` and ``except ValueError``
    both catch it.

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
