"""The exception family of ``rlbricks.replay``: :class:`ReplayError` and its subclasses."""

from __future__ import annotations

__all__ = [
    "EmptyBufferError",
    "ReplayArgumentError",
    "ReplayAttributeError",
    "ReplayError",
    "ReplayFileNotFoundError",
    "ReplayImportError",
    "ReplayIndexError",
    "ReplayKeyError",
    "ReplayOSError",
    "ReplayRuntimeError",
    "ReplayTypeError",
    "StructureError",
]


class ReplayError(Exception):
    """The root of every exception that ``rlbricks.replay`` raises.

    It derives from ``Exception`` only: ``except ReplayError`` catches every
    replay error, whichever built-in (``ValueError``, ``IndexError``,
    ``RuntimeError``, ...) the raised subclass also is.

    Example:
        >>> from rlbricks.replay import ReplayBuffer, ReplayError
        >>> try:
        ...     ReplayBuffer(batch_size=4).sample()
        ... except ReplayError as err:
        ...     print(type(err).__name__)
        EmptyBufferError
    """


class ReplayRuntimeError(ReplayError, RuntimeError):
    """A buffer cannot do what was asked in its current state.

    Examples: a dump that cannot be loaded, a sampler with nothing it may
    draw, a Ray buffer that is shut down.  Both a ``RuntimeError`` and a
    :class:`ReplayError`; the message says what to do (dump again, set
    priorities, build a new buffer, ...).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from rlbricks.replay import ReplayBuffer
        >>> folder = Path(tempfile.mkdtemp()) / "notes"
        >>> folder.mkdir()
        >>> _ = (folder / "notes.txt").write_text("mine")
        >>> try:
        ...     ReplayBuffer().dumps(folder)
        ... except RuntimeError as err:
        ...     print(type(err).__name__)
        ReplayRuntimeError
    """


class ReplayIndexError(ReplayError, IndexError):
    """An index or a row number is out of the range a storage, sampler or tree holds.

    Both an ``IndexError`` and a :class:`ReplayError`; the message names the
    index and the valid range.

    Example:
        >>> import torch
        >>> from rlbricks.replay import PrioritizedSampler
        >>> sampler = PrioritizedSampler(max_capacity=4, alpha=0.7, beta=0.5)
        >>> try:
        ...     sampler.update_priority(torch.tensor([9]), torch.tensor([1.0]))
        ... except IndexError as err:
        ...     print(type(err).__name__)
        ReplayIndexError
    """


class EmptyBufferError(ReplayIndexError):
    """Sampling was asked of a buffer that holds no data.

    A :class:`ReplayIndexError`, hence both an ``IndexError`` and a
    :class:`ReplayError`.

    Example:
        >>> from rlbricks.replay import ReplayBuffer, EmptyBufferError
        >>> try:
        ...     ReplayBuffer(batch_size=4).sample()
        ... except EmptyBufferError as err:
        ...     print(err)
        cannot sample from an empty buffer: add or extend it first
    """


class StructureError(ReplayError, ValueError):
    """Data does not have the structure a storage or a sampler needs.

    Raised when data written to a storage does not match what the storage
    holds (the message names the missing and extra keys, or the key whose
    shape or dtype differs), and when a stored column has a shape a sampler
    cannot read.  Both a ``ValueError`` and a :class:`ReplayError`.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, ReplayBuffer
        >>> rb = ReplayBuffer(storage=LazyTensorStorage(10))
        >>> _ = rb.extend({"obs": torch.zeros(2, 3)})
        >>> try:
        ...     rb.extend({"observation": torch.zeros(2, 3)})
        ... except ValueError as err:
        ...     print(type(err).__name__)
        StructureError
    """


class ReplayArgumentError(ReplayError, ValueError):
    """An argument of a buffer has an invalid value (e.g. ``sample(batch_size=-3)``).

    Both a :class:`ReplayError` and a ``ValueError``; the message names the
    argument, the value received and what is expected.

    Example:
        >>> from rlbricks.replay import ReplayArgumentError, ReplayBuffer
        >>> try:
        ...     ReplayBuffer(batch_size=0)
        ... except ValueError as err:
        ...     print(type(err).__name__, "batch_size" in str(err))
        ReplayArgumentError True
    """


class ReplayTypeError(ReplayError, TypeError):
    """An argument of a buffer has the wrong type (e.g. ``sample(batch_size=2.5)``).

    Both a :class:`ReplayError` and a ``TypeError``; the message names the
    argument, the value received and what is expected.

    Example:
        >>> from rlbricks.replay import ReplayBuffer, ReplayTypeError
        >>> try:
        ...     ReplayBuffer(batch_size=2.5)
        ... except TypeError as err:
        ...     print(type(err).__name__, "batch_size" in str(err))
        ReplayTypeError True
    """


class ReplayKeyError(ReplayError, KeyError):
    """An entry a buffer or sampler reads is missing from the data.

    Both a ``KeyError`` and a :class:`ReplayError`; the message names the
    entry and how to point the buffer at another one.

    Example:
        >>> import torch
        >>> from rlbricks.replay import LazyTensorStorage, SliceSampler, TensorDictReplayBuffer
        >>> from rlbricks.tensordict import TensorDict
        >>> rb = TensorDictReplayBuffer(
        ...     storage=LazyTensorStorage(10), sampler=SliceSampler(num_slices=2), batch_size=4
        ... )
        >>> _ = rb.extend(TensorDict({"obs": torch.zeros(6, 3)}, [6]))
        >>> try:
        ...     rb.sample()
        ... except KeyError as err:
        ...     print(type(err).__name__)
        ReplayKeyError
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


class ReplayAttributeError(ReplayError, AttributeError):
    """A :class:`~rlbricks.replay.RayReplayBuffer` was asked for a method its buffer lacks.

    Both an ``AttributeError`` and a :class:`ReplayError`; the message names
    the method and the buffer class served by the Ray actor.

    Example:
        >>> from rlbricks.replay import ReplayAttributeError, ReplayError
        >>> err = ReplayAttributeError("ReplayBuffer has no method 'pop'")
        >>> isinstance(err, AttributeError), isinstance(err, ReplayError)
        (True, True)
    """


class ReplayImportError(ReplayError, ImportError):
    """An optional library (Ray, for :class:`~rlbricks.replay.RayReplayBuffer`) is not installed.

    Both an ``ImportError`` and a :class:`ReplayError`; the message gives the
    ``pip install`` command that adds it.

    Example:
        >>> from rlbricks.replay import ReplayError, ReplayImportError
        >>> issubclass(ReplayImportError, ImportError), issubclass(ReplayImportError, ReplayError)
        (True, True)
    """


class ReplayFileNotFoundError(ReplayError, FileNotFoundError):
    """A buffer dump to load does not exist, or the folder holds no dump.

    Both a ``FileNotFoundError`` and a :class:`ReplayError`; the message names
    the path.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from rlbricks.replay import ReplayBuffer
        >>> try:
        ...     ReplayBuffer().loads(Path(tempfile.mkdtemp()) / "nothing")
        ... except FileNotFoundError as err:
        ...     print(type(err).__name__)
        ReplayFileNotFoundError
    """


class ReplayOSError(ReplayError, OSError):
    """The OS failure faked by :func:`rlbricks.replay.testing.crash_renames_onto`.

    It stands for a process killed between the two renames of an atomic folder
    write.  Both an ``OSError``, as a real failure of ``os.rename`` is, and a
    :class:`ReplayError`.

    Example:
        >>> from rlbricks.replay import ReplayError, ReplayOSError
        >>> issubclass(ReplayOSError, OSError), issubclass(ReplayOSError, ReplayError)
        (True, True)
    """
