"""MemoryMappedTensor: a CPU tensor whose memory is a file on disk, or anonymous shared memory.

A file-backed tensor holds the raw bytes of its data in C order and native
byte order, ``numel * itemsize`` bytes and nothing else, so the same file can
be mapped again from its name, dtype and shape (:meth:`MemoryMappedTensor.from_filename`).
Sent through ``multiprocessing`` it travels by reference; pickled or saved
anywhere else it is an ordinary tensor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from multiprocessing.reduction import ForkingPickler
from typing import Any

import torch

from rlbricks.tensordict._errors import TensorDictFileExistsError
from rlbricks.tensordict._errors import TensorDictFileNotFoundError
from rlbricks.tensordict._errors import TensorDictTypeError
from rlbricks.tensordict._errors import TensorDictValueError

__all__ = ["MemoryMappedTensor"]


_ShapeLike = int | Sequence[int] | torch.Size
_PathLike = str | os.PathLike[str]


def _as_shape(shape: _ShapeLike) -> torch.Size:
    return torch.Size([shape]) if isinstance(shape, int) else torch.Size(shape)


def _nbytes(shape: torch.Size, dtype: torch.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


class MemoryMappedTensor(torch.Tensor):
    """A CPU tensor whose memory is a file on disk, or anonymous shared memory.

    Build one with :meth:`from_tensor`, :meth:`empty`, :meth:`zeros`,
    :meth:`ones`, :meth:`full` or :meth:`from_filename`. With a ``filename``
    the data lives in that file (``mmap`` with ``MAP_SHARED``): every write
    reaches the file and every process that maps it sees the same bytes.
    Without one the data lives in anonymous shared memory (``/dev/shm`` on
    Linux, allocated as ``Tensor.share_memory_`` does), which is freed with
    the last tensor using it.

    It behaves like a plain tensor. Results of operations, indexing included,
    are plain :class:`torch.Tensor` objects; views (``mmt[0]``, ``mmt.view``)
    still share its memory, so ``mmt[0] = 1`` writes to the file. In-place
    methods return the MemoryMappedTensor itself.

    Sent to another process through ``multiprocessing`` or
    ``torch.multiprocessing`` (process arguments, queues, pipes), a
    file-backed tensor travels as ``(filename, dtype, shape)`` and the
    receiver maps the same file; an anonymous one passes its shared memory
    along. Either way writes on one side are seen by the other. Everywhere
    else (``pickle``, ``torch.save``) it is saved as an ordinary tensor holding
    a copy of its data, which ``torch.load(weights_only=True)`` reads back.
    ``copy.deepcopy`` and ``clone()`` return a plain in-memory tensor too.

    Example:
        >>> import tempfile, os, torch
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = os.path.join(tmp, "x.memmap")
        ...     mmt = MemoryMappedTensor.from_tensor(torch.arange(6).view(2, 3), filename=path)
        ...     mmt[0] = 7
        ...     print(MemoryMappedTensor.from_filename(path, torch.int64, (2, 3)))
        MemoryMappedTensor([[7, 7, 7],
                            [3, 4, 5]])
    """

    __torch_function__ = torch._C._disabled_torch_function_impl  # type: ignore[assignment]
    _filename: str | None = None

    def __new__(cls, *args: Any, **kwargs: Any) -> MemoryMappedTensor:
        raise TensorDictTypeError(
            "MemoryMappedTensor cannot be built directly; use MemoryMappedTensor.from_tensor, "
            ".empty, .zeros, .ones, .full or .from_filename"
        )

    @property
    def filename(self) -> str | None:
        """The absolute path of the backing file, or ``None`` for anonymous shared memory.

        Example:
            >>> MemoryMappedTensor.zeros(3).filename is None
            True
        """
        return self._filename

    # ------------------------------------------------------------------ construction
    @classmethod
    def _allocate(
        cls,
        shape: _ShapeLike,
        dtype: torch.dtype,
        filename: _PathLike | None,
        existsok: bool,
    ) -> tuple[MemoryMappedTensor, bool]:
        """A new tensor and whether its memory is known to be zero-filled."""
        size = _as_shape(shape)
        if any(s < 0 for s in size):
            raise TensorDictValueError(
                f"a MemoryMappedTensor shape has no negative sizes, got {tuple(size)}"
            )
        nbytes = _nbytes(size, dtype)
        if filename is None:
            if nbytes == 0:  # zero-byte shared memory is not portable: nothing to share anyway
                return _wrap(torch.empty(size, dtype=dtype), None), True
            storage = torch.UntypedStorage._new_shared(nbytes)
            flat = torch.empty(0, dtype=dtype).set_(storage)
            return _wrap(flat.view(size), None), True
        path = os.path.abspath(os.fspath(filename))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | (0 if existsok else os.O_EXCL), 0o644)
        except FileExistsError:
            raise TensorDictFileExistsError(
                f"{path} already exists; pass existsok=True to overwrite it"
            ) from None
        try:
            fresh = os.fstat(fd).st_size == 0
            os.ftruncate(fd, nbytes)
        finally:
            os.close(fd)
        return _map_file(path, dtype, size), fresh

    @classmethod
    def from_tensor(
        cls,
        tensor: torch.Tensor,
        *,
        filename: _PathLike | None = None,
        existsok: bool = False,
        copy_data: bool = True,
    ) -> MemoryMappedTensor:
        """A memory-mapped copy of ``tensor`` (any device, any strides).

        Args:
            tensor: the data to copy. The result is contiguous, on CPU, and
                does not require grad.
            filename: the backing file (its folder must exist). ``None``
                allocates anonymous shared memory instead.
            existsok: overwrite ``filename`` if it exists; otherwise an
                existing file raises :class:`FileExistsError`.
            copy_data: when ``False`` only the shape and dtype are taken; a
                new file or anonymous memory is zero-filled, an overwritten
                file keeps its bytes.

        Example:
            >>> import torch
            >>> mmt = MemoryMappedTensor.from_tensor(torch.ones(2, 3).t())
            >>> mmt.shape, mmt.is_contiguous(), mmt.filename
            (torch.Size([3, 2]), True, None)
        """
        out, _ = cls._allocate(tensor.shape, tensor.dtype, filename, existsok)
        if copy_data and out.numel():
            with torch.no_grad():
                out.copy_(tensor)
        return out

    @classmethod
    def empty(
        cls,
        shape: _ShapeLike,
        *,
        dtype: torch.dtype = torch.float32,
        filename: _PathLike | None = None,
        existsok: bool = False,
    ) -> MemoryMappedTensor:
        """A memory-mapped tensor with unspecified content (zeros unless a file is reused).

        Args:
            shape: an int or a sequence of ints.
            dtype: element type.
            filename: the backing file, or ``None`` for anonymous shared memory.
            existsok: overwrite ``filename`` if it exists.

        Example:
            >>> MemoryMappedTensor.empty((2, 5), dtype=torch.uint8).shape
            torch.Size([2, 5])
        """
        return cls._allocate(shape, dtype, filename, existsok)[0]

    @classmethod
    def zeros(
        cls,
        shape: _ShapeLike,
        *,
        dtype: torch.dtype = torch.float32,
        filename: _PathLike | None = None,
        existsok: bool = False,
    ) -> MemoryMappedTensor:
        """A zero-filled memory-mapped tensor; arguments as in :meth:`empty`.

        Example:
            >>> MemoryMappedTensor.zeros(3, dtype=torch.bool)
            MemoryMappedTensor([False, False, False])
        """
        out, fresh = cls._allocate(shape, dtype, filename, existsok)
        if not fresh:
            out.zero_()
        return out

    @classmethod
    def ones(
        cls,
        shape: _ShapeLike,
        *,
        dtype: torch.dtype = torch.float32,
        filename: _PathLike | None = None,
        existsok: bool = False,
    ) -> MemoryMappedTensor:
        """A memory-mapped tensor filled with ones; arguments as in :meth:`empty`.

        Example:
            >>> MemoryMappedTensor.ones((1, 2), dtype=torch.int32)
            MemoryMappedTensor([[1, 1]], dtype=torch.int32)
        """
        return cls.full(shape, 1, dtype=dtype, filename=filename, existsok=existsok)

    @classmethod
    def full(
        cls,
        shape: _ShapeLike,
        fill_value: float | int | bool,
        *,
        dtype: torch.dtype = torch.float32,
        filename: _PathLike | None = None,
        existsok: bool = False,
    ) -> MemoryMappedTensor:
        """A memory-mapped tensor filled with ``fill_value``; other arguments as in :meth:`empty`.

        Example:
            >>> MemoryMappedTensor.full(2, 0.5)
            MemoryMappedTensor([0.5000, 0.5000])
        """
        out, _ = cls._allocate(shape, dtype, filename, existsok)
        out.fill_(fill_value)
        return out

    @classmethod
    def from_filename(
        cls, filename: _PathLike, dtype: torch.dtype, shape: _ShapeLike
    ) -> MemoryMappedTensor:
        """Map an existing file as a tensor of ``dtype`` and ``shape``, without copying.

        Raises:
            TensorDictFileNotFoundError: the file does not exist.
            TensorDictValueError: the file size is not ``numel * itemsize`` bytes.

        Example:
            >>> import tempfile, os, torch
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     path = os.path.join(tmp, "x.memmap")
            ...     _ = MemoryMappedTensor.full((2,), 3, dtype=torch.int16, filename=path)
            ...     print(MemoryMappedTensor.from_filename(path, torch.int16, 2).tolist())
            [3, 3]
        """
        path = os.path.abspath(os.fspath(filename))
        size = _as_shape(shape)
        expected = _nbytes(size, dtype)
        try:
            actual = os.stat(path).st_size
        except FileNotFoundError:
            raise TensorDictFileNotFoundError(
                f"memory-mapped file {path} does not exist: check the path, or create it with "
                "MemoryMappedTensor.from_tensor(..., filename=path)"
            ) from None
        if actual != expected:
            raise TensorDictValueError(
                f"{path} holds {actual} bytes but shape {tuple(size)} of {dtype} needs "
                f"{expected}: wrong shape or dtype, or a truncated file"
            )
        return _map_file(path, dtype, size)

    # ------------------------------------------------------------------ copying
    def __reduce_ex__(self, protocol: Any) -> Any:
        # pickle and torch.save: an ordinary tensor (multiprocessing uses _reduce_shared)
        return self.as_subclass(torch.Tensor).__reduce_ex__(protocol)

    def __deepcopy__(self, memo: dict[int, Any]) -> torch.Tensor:
        return self.clone()


def _wrap(tensor: torch.Tensor, filename: str | None) -> MemoryMappedTensor:
    out = tensor.as_subclass(MemoryMappedTensor)
    out._filename = filename
    return out


def _map_file(path: str, dtype: torch.dtype, shape: torch.Size) -> MemoryMappedTensor:
    numel = math.prod(shape)
    if numel == 0:  # as for anonymous memory: no zero-byte mapping
        return _wrap(torch.empty(shape, dtype=dtype), path)
    flat = torch.from_file(path, shared=True, size=numel, dtype=dtype)
    return _wrap(flat.view(shape), path)


def _reduce_shared(tensor: MemoryMappedTensor) -> tuple[Any, ...]:
    if tensor._filename is None:  # the plain tensor's own reducer shares its memory
        return (_rebuild_anonymous, (tensor.as_subclass(torch.Tensor),))
    return (_rebuild_from_file, (tensor._filename, tensor.dtype, tuple(tensor.shape)))


ForkingPickler.register(MemoryMappedTensor, _reduce_shared)


def _rebuild_from_file(
    filename: str, dtype: torch.dtype, shape: tuple[int, ...]
) -> MemoryMappedTensor:
    return MemoryMappedTensor.from_filename(filename, dtype, shape)


def _rebuild_anonymous(tensor: torch.Tensor) -> MemoryMappedTensor:
    return _wrap(tensor, None)
