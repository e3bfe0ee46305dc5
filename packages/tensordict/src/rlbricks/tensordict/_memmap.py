"""Memory-mapped TensorDicts: a TensorDict saved as a folder of memory-mapped tensors.

A memory-mapped TensorDict saved at ``prefix`` is laid out as::

    prefix/meta.json        format version, batch_size, device and one entry per key
    prefix/<name>.memmap    the raw bytes of one leaf (C order, native byte order)
    prefix/<name>/          a nested TensorDict, laid out the same way

``<name>`` is the key itself when it is made of ASCII letters, digits, ``_``
and ``-``; any other character is percent-encoded (``"a/b"`` becomes
``a%2Fb``) and ``meta.json`` records the name used for every key, so any
string is a valid key. Nothing on disk is pickled: metadata is JSON and
leaves are raw tensor bytes, so loading never runs code from the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import quote

import torch

from rlbricks.tensordict._errors import TensorDictError
from rlbricks.tensordict._errors import TensorDictFileNotFoundError
from rlbricks.tensordict._errors import TensorDictTypeError
from rlbricks.tensordict._errors import TensorDictValueError
from rlbricks.tensordict._memmap_tensor import MemoryMappedTensor
from rlbricks.tensordict._memmap_tensor import _PathLike

if TYPE_CHECKING:
    from rlbricks.tensordict._td import TensorDict

__all__ = ["memmap_td", "load_memmap", "memmap_like", "is_memmap"]


META_FILENAME = "meta.json"
LEAF_SUFFIX = ".memmap"
FORMAT_NAME = "rlbricks.tensordict.memmap"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------- file names
def _entry_name(key: str, taken: set[str], suffix: str) -> str:
    """A file name for ``key`` unique in its folder, case-insensitively; records it in ``taken``.

    Encoded names never contain ``.``, so they cannot clash with ``meta.json``
    or with a leaf's ``.memmap`` suffix; long keys are shortened with a hash.
    """
    stem = quote(key, safe="", errors="surrogatepass").replace(".", "%2E").replace("~", "%7E")
    if not stem:
        stem = "%"  # the empty key; quote() never yields a lone "%"
    if len(stem) > 96:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        stem = f"{stem[:64]}.{digest}"
    name, i = stem + suffix, 1
    while name.lower() in taken:
        name, i = f"{stem}.{i}{suffix}", i + 1
    taken.add(name.lower())
    return name


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # either one does not exist
        return False


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---------------------------------------------------------------------- TensorDict <-> folder
def _check_td(td: Any, fn: str) -> None:
    from rlbricks.tensordict._td import TensorDict

    if not isinstance(td, TensorDict):
        raise TensorDictTypeError(f"{fn} expects a TensorDict, got {type(td).__name__}")


def _out_device(device: torch.device | None) -> torch.device | None:
    return None if device is None else torch.device("cpu")


def _write_meta(path: str, td: TensorDict, entries: dict[str, dict[str, Any]]) -> None:
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "byteorder": sys.byteorder,
        "batch_size": list(td._batch_size),
        "device": None if td._device is None else str(td._device),
        "entries": entries,
    }
    target = os.path.join(path, META_FILENAME)
    tmp = target + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, target)  # meta.json appears whole, after every leaf is written


_LeafFn = Callable[[tuple[str, ...], torch.Tensor, "str | None"], torch.Tensor]


def _build(
    td: TensorDict,
    path: str | None,
    make_leaf: _LeafFn,
    inplace: bool,
    parents: tuple[str, ...] = (),
) -> TensorDict:
    """Apply ``make_leaf(nested_key, value, filename)`` to every leaf; write meta.json to ``path``."""
    from rlbricks.tensordict._td import TensorDict

    if path is not None:
        os.makedirs(path, exist_ok=True)
    taken = {META_FILENAME}
    entries: dict[str, dict[str, Any]] = {}
    out: dict[str, torch.Tensor | TensorDict] = {}
    for key, value in list(td._tensordict.items()):
        if isinstance(value, TensorDict):
            name = _entry_name(key, taken, "")
            sub = None if path is None else os.path.join(path, name)
            out[key] = _build(value, sub, make_leaf, inplace, (*parents, key))
            entries[key] = {"type": "tensordict", "dirname": name}
        else:
            name = _entry_name(key, taken, LEAF_SUFFIX)
            leaf = None if path is None else os.path.join(path, name)
            out[key] = make_leaf((*parents, key), value, leaf)
            entries[key] = {
                "type": "tensor",
                "dtype": _dtype_name(value.dtype),
                "shape": list(value.shape),
                "filename": name,
            }
    if path is not None:
        _write_meta(path, td, entries)
    device = _out_device(td._device)
    if inplace:
        td._tensordict.update(out)
        td._device = device
        return td
    return TensorDict._new_unsafe(out, td._batch_size, device)


def memmap_td(
    td: TensorDict,
    prefix: _PathLike | None = None,
    *,
    copy_existing: bool = False,
    inplace: bool = False,
    existsok: bool = True,
) -> TensorDict:
    """Write every leaf of ``td`` to memory-mapped storage; return the memory-mapped TensorDict.

    With a ``prefix`` the folder is created and filled as described in this
    module's docstring (``meta.json`` is written last, so a folder without it
    is an interrupted write); :func:`load_memmap` reopens it. Without one the
    leaves move to anonymous shared memory and nothing is written to disk.

    Leaves are copied to CPU. A TensorDict with a device gets device ``cpu``
    (``meta.json`` records the original device); one without keeps ``None``.

    A leaf that already is a :class:`MemoryMappedTensor` is reused as is, not
    copied, when it is backed by the very file it would be written to, or when
    ``prefix`` is ``None``. Backed by another file, it raises unless
    ``copy_existing=True``: silently copying what is usually a large buffer
    is rarely what was meant.

    Args:
        td: the TensorDict to write.
        prefix: the folder, or ``None`` for anonymous shared memory.
        copy_existing: copy leaves memory-mapped to other files instead of raising.
        inplace: replace the leaves of ``td`` (and of its nested TensorDicts)
            and return ``td`` itself instead of a new TensorDict.
        existsok: overwrite files already under ``prefix`` (a file mapped
            elsewhere must keep its size); otherwise an existing leaf file
            raises :class:`FileExistsError`.

    Raises:
        TensorDictValueError: a leaf is memory-mapped to another file and ``copy_existing`` is ``False``.

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict(
        ...     {"obs": torch.zeros(4, 3), "next": {"done": torch.zeros(4, 1, dtype=torch.bool)}},
        ...     batch_size=[4],
        ... )
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     mm = memmap_td(td, tmp)
        ...     mm["obs"][1] = 2.0
        ...     print(is_memmap(mm), load_memmap(tmp)["obs"][1].tolist())
        True [2.0, 2.0, 2.0]
    """
    _check_td(td, "memmap_td")

    def make_leaf(key: tuple[str, ...], value: torch.Tensor, filename: str | None) -> torch.Tensor:
        if isinstance(value, MemoryMappedTensor):
            if filename is None:
                return value
            current = value.filename
            if current is not None and _same_file(current, filename):
                return value
            if current is not None and not copy_existing:
                name = key[0] if len(key) == 1 else key
                raise TensorDictValueError(
                    f"key {name!r} is already memory-mapped to {current}, not {filename}; "
                    "pass copy_existing=True to copy it"
                )
        return MemoryMappedTensor.from_tensor(value, filename=filename, existsok=existsok)

    path = None if prefix is None else os.path.abspath(os.fspath(prefix))
    return _build(td, path, make_leaf, inplace)


def memmap_like(
    td: TensorDict, prefix: _PathLike | None = None, *, existsok: bool = True
) -> TensorDict:
    """A zero-filled memory-mapped TensorDict with the structure, shapes and dtypes of ``td``.

    Only shapes and dtypes are read, so ``td`` may hold expanded (stride-0)
    leaves: this is how a buffer of ``[max_size, ...]`` is preallocated from
    one example. Storage, metadata and device follow :func:`memmap_td`.

    Args:
        td: the template.
        prefix: the folder, or ``None`` for anonymous shared memory.
        existsok: overwrite files already under ``prefix``.

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.tensordict import TensorDict
        >>> example = TensorDict({"obs": torch.ones(3), "reward": torch.ones(1)})
        >>> template = TensorDict(
        ...     {k: v.expand(1000, *v.shape) for k, v in example.items()}, batch_size=[1000]
        ... )
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     buffer = memmap_like(template, tmp)
        ...     print(buffer["obs"].shape, buffer["obs"].sum().item())
        torch.Size([1000, 3]) 0.0
    """
    _check_td(td, "memmap_like")

    def make_leaf(key: tuple[str, ...], value: torch.Tensor, filename: str | None) -> torch.Tensor:
        return MemoryMappedTensor.zeros(
            value.shape, dtype=value.dtype, filename=filename, existsok=existsok
        )

    path = None if prefix is None else os.path.abspath(os.fspath(prefix))
    return _build(td, path, make_leaf, inplace=False)


def is_memmap(td: TensorDict) -> bool:
    """Whether every leaf of ``td``, nested ones included, is a :class:`MemoryMappedTensor`.

    An empty TensorDict counts as memory-mapped.

    Example:
        >>> import torch
        >>> from rlbricks.tensordict import TensorDict
        >>> td = TensorDict({"a": torch.zeros(2)})
        >>> is_memmap(td), is_memmap(memmap_td(td))
        (False, True)
    """
    from rlbricks.tensordict._td import TensorDict

    for value in td._tensordict.values():
        if isinstance(value, TensorDict):
            if not is_memmap(value):
                return False
        elif not isinstance(value, MemoryMappedTensor):
            return False
    return True


# ---------------------------------------------------------------------- loading
class _BadMeta(TensorDictError):
    """A field of the metadata file is missing or malformed (caught by ``_load``)."""


def _field(mapping: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(mapping, dict) or name not in mapping:
        raise _BadMeta(f"missing field {name!r}")
    value = mapping[name]
    if not isinstance(value, kind):
        raise _BadMeta(f"field {name!r} has the wrong type: {value!r}")
    return value


def _size(value: Any, what: str) -> torch.Size:
    if not isinstance(value, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
    ):
        raise _BadMeta(f"{what} must be a list of non-negative ints, got {value!r}")
    return torch.Size(value)


def _plain_name(value: Any) -> str:
    if (
        not isinstance(value, str)
        or value in ("", ".", "..")
        or any(c in value for c in ("/", "\\", "\0", os.sep))
    ):
        raise _BadMeta(f"{value!r} is not a plain file name inside the folder")
    return value


def _parse_dtype(value: Any) -> torch.dtype:
    dtype = getattr(torch, value, None) if isinstance(value, str) else None
    if not isinstance(dtype, torch.dtype):
        raise _BadMeta(f"unknown dtype {value!r}")
    return dtype


def _read_meta(path: str) -> dict[str, Any]:
    meta_path = os.path.join(path, META_FILENAME)
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise TensorDictFileNotFoundError(
            f"no memory-mapped TensorDict at {path}: {meta_path} does not exist "
            "(was it written by memmap_td, and did the write finish?)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TensorDictValueError(
            f"{meta_path} is not valid JSON ({err}): the write did not finish or the file was "
            "changed; write the TensorDict again with memmap"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise TensorDictValueError(
            f"{meta_path} is not a memory-mapped TensorDict metadata file: load a folder written "
            "by TensorDict.memmap"
        )
    if meta.get("version") != FORMAT_VERSION:
        raise TensorDictValueError(
            f"{meta_path} has format version {meta.get('version')!r}; this rlbricks-tensordict "
            f"reads version {FORMAT_VERSION}; write it again with this version"
        )
    if meta.get("byteorder") != sys.byteorder:
        raise TensorDictValueError(
            f"{meta_path} was written on a {meta.get('byteorder')}-endian machine; "
            f"this one is {sys.byteorder}-endian; load it on a {meta.get('byteorder')}-endian machine"
        )
    return meta


def _load_entry(path: str, entry: Any) -> torch.Tensor | TensorDict:
    kind = _field(entry, "type", str)
    if kind == "tensor":
        shape = _size(_field(entry, "shape", list), "shape")
        dtype = _parse_dtype(_field(entry, "dtype", str))
        name = _plain_name(_field(entry, "filename", str))
        return MemoryMappedTensor.from_filename(os.path.join(path, name), dtype, shape)
    if kind == "tensordict":
        return _load(os.path.join(path, _plain_name(_field(entry, "dirname", str))))
    raise _BadMeta(f"unknown type {kind!r}")


def _load(path: str) -> TensorDict:
    from rlbricks.tensordict._td import TensorDict

    meta = _read_meta(path)
    out: dict[str, torch.Tensor | TensorDict] = {}
    key = None
    try:
        batch_size = _size(_field(meta, "batch_size", list), "batch_size")
        device = _field(meta, "device", (str, type(None)))
        for key, entry in _field(meta, "entries", dict).items():
            value = _load_entry(path, entry)
            if value.shape[: len(batch_size)] != batch_size:
                raise _BadMeta(
                    f"shape {tuple(value.shape)} does not start with batch_size {tuple(batch_size)}"
                )
            out[key] = value
    except _BadMeta as err:
        where = "" if key is None else f" (entry {key!r})"
        raise TensorDictValueError(
            f"{os.path.join(path, META_FILENAME)} is corrupted{where}: {err}; write the "
            "TensorDict again with memmap"
        ) from None
    return TensorDict._new_unsafe(out, batch_size, None if device is None else torch.device("cpu"))


def load_memmap(prefix: _PathLike) -> TensorDict:
    """Reopen a TensorDict written by :func:`memmap_td` or :func:`memmap_like`, without copying.

    Every leaf is a file-backed :class:`MemoryMappedTensor` on CPU, so
    in-place writes (``td["obs"][3] = 7``) go straight to disk. The device is
    ``cpu`` if the saved TensorDict had one (its original device is kept in
    ``meta.json``), ``None`` otherwise. Nothing is unpickled.

    Raises:
        TensorDictFileNotFoundError: ``meta.json`` or a leaf file is missing.
        TensorDictValueError: ``meta.json`` is not valid, or a leaf file has the wrong size.

    Example:
        >>> import tempfile, torch
        >>> from rlbricks.tensordict import TensorDict
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = memmap_td(TensorDict({"a": torch.arange(3)}, batch_size=[3]), tmp)
        ...     td = load_memmap(tmp)
        ...     print(td["a"].tolist(), td.batch_size)
        [0, 1, 2] torch.Size([3])
    """
    return _load(os.path.abspath(os.fspath(prefix)))
