"""The exception family of ``rlbricks.tensordict``: :class:`TensorDictError` and its subclasses."""

from __future__ import annotations

from typing import Any

__all__ = [
    "BatchSizeError",
    "TensorDictAssertionError",
    "TensorDictError",
    "TensorDictFileExistsError",
    "TensorDictFileNotFoundError",
    "TensorDictIndexError",
    "TensorDictKeyError",
    "TensorDictTypeError",
    "TensorDictValueError",
]


class TensorDictError(Exception):
    """The root of every exception that ``rlbricks.tensordict`` raises.

    It derives from ``Exception`` only: ``except TensorDictError`` catches
    every TensorDict error, whichever built-in (``KeyError``, ``ValueError``,
    ``IndexError``, ...) the raised subclass also is.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, TensorDictError
        >>> td = TensorDict({"obs": torch.zeros(2)}, batch_size=[2])
        >>> try:
        ...     td["observation"]
        ... except TensorDictError as err:
        ...     print(type(err).__name__)
        TensorDictKeyError
    """


class TensorDictKeyError(TensorDictError, KeyError):
    """A key is missing from a TensorDict; the message lists the keys that exist.

    Both a ``KeyError`` and a :class:`TensorDictError`.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, TensorDictKeyError
        >>> td = TensorDict({"obs": torch.zeros(2)}, batch_size=[2])
        >>> try:
        ...     td["observation"]
        ... except TensorDictKeyError as err:
        ...     print(err)
        key 'observation' not found; available keys: ['obs']
    """

    def __str__(self) -> str:  # KeyError quotes its message; ours reads as a sentence
        return str(self.args[0]) if self.args else ""


class TensorDictValueError(TensorDictError, ValueError):
    """An argument or a stored file has a value a TensorDict cannot use.

    Examples: a negative ``batch_size`` dim, a ``reshape`` to a size with
    another number of elements, a non-positive ``chunk`` count, a corrupted
    memory-mapped folder.  Both a ``ValueError`` and a
    :class:`TensorDictError`.

    Example:
        >>> from rlbricks.tensordict import TensorDict
        >>> try:
        ...     TensorDict(batch_size=[4]).reshape(3)
        ... except ValueError as err:
        ...     print(type(err).__name__, err)
        TensorDictValueError reshape: batch_size (4,) (4 elements) cannot become (3,)
    """


class TensorDictTypeError(TensorDictError, TypeError):
    """An argument has a type a TensorDict cannot use.

    Examples: a key that is not a str, a value that is not a tensor, an
    element of ``stack`` that is not a TensorDict.  Both a ``TypeError`` and a
    :class:`TensorDictError`; the message names the argument and the type
    received.

    Example:
        >>> from rlbricks.tensordict import TensorDict
        >>> try:
        ...     TensorDict({"x": "text"})
        ... except TypeError as err:
        ...     print(type(err).__name__)
        TensorDictTypeError
    """


class TensorDictIndexError(TensorDictError, IndexError):
    """An index or a dim does not fit the TensorDict's batch dims.

    Both an ``IndexError`` and a :class:`TensorDictError`; the message names the
    index and the batch size.

    Example:
        >>> from rlbricks.tensordict import TensorDict
        >>> try:
        ...     TensorDict(batch_size=[2])[5]
        ... except IndexError as err:
        ...     print(type(err).__name__, err)
        TensorDictIndexError index 5 is out of range for batch dim 0 of size 2
    """


class TensorDictFileNotFoundError(TensorDictError, FileNotFoundError):
    """A memory-mapped file or folder that should be read does not exist.

    Both a ``FileNotFoundError`` and a :class:`TensorDictError`; the message
    names the path.

    Example:
        >>> import tempfile
        >>> from rlbricks.tensordict import TensorDict
        >>> try:
        ...     TensorDict.load_memmap(tempfile.mkdtemp())
        ... except FileNotFoundError as err:
        ...     print(type(err).__name__)
        TensorDictFileNotFoundError
    """


class TensorDictFileExistsError(TensorDictError, FileExistsError):
    """A memory-mapped file would overwrite an existing file (pass ``existsok=True`` to allow it).

    Both a ``FileExistsError`` and a :class:`TensorDictError`.

    Example:
        >>> import os, tempfile, torch
        >>> from rlbricks.tensordict import MemoryMappedTensor
        >>> path = os.path.join(tempfile.mkdtemp(), "x.memmap")
        >>> _ = MemoryMappedTensor.from_tensor(torch.zeros(2), filename=path)
        >>> try:
        ...     MemoryMappedTensor.from_tensor(torch.zeros(2), filename=path)
        ... except FileExistsError as err:
        ...     print(type(err).__name__)
        TensorDictFileExistsError
    """


class TensorDictAssertionError(TensorDictError, AssertionError):
    """:func:`~rlbricks.tensordict.assert_close` found two TensorDicts that differ.

    Both an ``AssertionError`` (so test frameworks report it as a failed
    assertion) and a :class:`TensorDictError`; the message names the batch
    sizes, the keys or the first key whose values differ.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, assert_close
        >>> a = TensorDict({"x": torch.ones(2)}, batch_size=[2])
        >>> try:
        ...     assert_close(a, TensorDict({"y": torch.ones(2)}, batch_size=[2]))
        ... except AssertionError as err:
        ...     print(type(err).__name__, err)
        TensorDictAssertionError keys differ: only in actual ['x'], only in expected ['y']
    """


class BatchSizeError(TensorDictValueError):
    """A value's leading dimensions disagree with the TensorDict's ``batch_size``.

    A :class:`TensorDictValueError`, hence also a ``ValueError``.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict, BatchSizeError
        >>> td = TensorDict(batch_size=[4])
        >>> try:
        ...     td["reward"] = torch.zeros(3, 1)
        ... except BatchSizeError as err:
        ...     print(err)
        key 'reward' has shape (3, 1) but the TensorDict has batch_size (4,): a value's leading dims must equal batch_size
    """

    def __init__(
        self,
        message: str,
        key: Any = None,
        shape: tuple[int, ...] | None = None,
        batch_size: tuple[int, ...] | None = None,
        what: str = "shape",
    ) -> None:
        super().__init__(message)
        self.key = key
        self.shape = shape
        self.batch_size = batch_size
        self.what = what

    @classmethod
    def for_key(
        cls, key: Any, shape: tuple[int, ...], batch_size: tuple[int, ...], what: str = "shape"
    ) -> BatchSizeError:
        """The error for a value at ``key`` whose leading dims disagree with ``batch_size``."""
        return cls(
            f"key {key!r} has {what} {shape} but the TensorDict has batch_size "
            f"{batch_size}: a value's leading dims must equal batch_size",
            key,
            shape,
            batch_size,
            what,
        )

    def under(self, prefix: Any, batch_size: tuple[int, ...]) -> BatchSizeError:
        """The same error seen from a parent TensorDict: the key gains ``prefix``."""
        if self.key is None or self.shape is None:
            return self
        inner = self.key if isinstance(self.key, tuple) else (self.key,)
        outer = prefix if isinstance(prefix, tuple) else (prefix,)
        return BatchSizeError.for_key(outer + inner, self.shape, batch_size, self.what)
