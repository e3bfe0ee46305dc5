"""Folders written atomically, with a sha256 manifest checked when they are read.

:func:`write_folder_atomically` fills a temporary sibling folder
``.<name>.tmp-<host>-<pid>``, fsyncs every file, writes ``manifest.json``
(format, version, and the size and sha256 of every other file) and swaps the
folder into place: the previous folder at ``path`` is renamed aside to
``.<name>.old-<host>-<pid>`` and deleted only once the new one is at ``path``.
If the process dies between the two renames, :func:`recover_folder` (run by
every write) renames the previous folder back. Leftovers are deleted only when
the process that wrote them no longer runs. ``ReplayBuffer.dumps`` and the
trainers' checkpoints are written this way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

__all__ = ["check_folder", "folder_leftovers", "recover_folder", "write_folder_atomically"]

MANIFEST = "manifest.json"
_KINDS = ("old", "tmp")  # the previous folder set aside by a swap; a new folder being written


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    if os.name == "nt" and path.is_dir():
        return  # Windows cannot open a folder to flush it
    fd = os.open(path, os.O_RDONLY if os.name != "nt" else os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- who wrote a leftover, and does it still run ------------------------- #
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._]", "_", socket.gethostname()) or "host"


def _writer_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill would end the process there: never judge it dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _writer_alive(tag: str) -> bool:
    """Whether the writer ``<host>-<pid>`` (or ``<pid>``) of a leftover may still be at work."""
    host, _, pid = tag.rpartition("-")
    if not pid.isdigit() or (host and host != _host()):
        return True  # another machine on a shared file system, or a foreign name: keep it
    if int(pid) == os.getpid():
        return False  # this process is not in the middle of a write while it looks
    return _pid_alive(int(pid))


def _leftovers(path: Path) -> list[tuple[Path, str, str]]:
    """``(folder, "old" or "tmp", writer tag)`` of every leftover of a write of ``path``."""
    if not path.parent.is_dir():
        return []
    found: list[tuple[Path, str, str]] = []
    for child in sorted(path.parent.iterdir()):
        for kind in _KINDS:
            prefix = f".{path.name}.{kind}-"
            if child.name.startswith(prefix) and child.is_dir():
                found.append((child, kind, child.name[len(prefix) :]))
    return found


# -- writing ------------------------------------------------------------- #
def write_folder_atomically(
    path: str | os.PathLike[str],
    fill: Callable[[Path], object],
    *,
    format: str,
    version: int,
) -> Path:
    """Make ``path`` the folder that ``fill(folder)`` writes, atomically, with a manifest.

    ``fill`` writes into an empty temporary sibling folder
    (``.<name>.tmp-<host>-<pid>``). Then every file is fsync-ed, a
    ``manifest.json`` records ``format``, ``version`` and the size and sha256
    of every file, and the folder is swapped into place: a previous folder at
    ``path`` is renamed aside (``.<name>.old-<host>-<pid>``), the new one
    renamed in, the previous one deleted last. At every moment a complete
    folder is reachable; if the process dies between the two renames,
    :func:`recover_folder` (run by the next write) renames the previous one
    back. If ``fill`` raises, the temporary folder is deleted and ``path`` is
    left as it was. The whole folder is replaced: a caller that must not
    delete a foreign folder checks ``path`` first.

    Args:
        path: the folder to write (its parent folders are created).
        fill: writes the content into the folder it is given.
        format: the name of the folder's format, recorded in the manifest.
        version: the version of that format, recorded in the manifest.

    Returns:
        ``path``, as a ``Path``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from rlbricks.replay import write_folder_atomically
        >>> def fill(folder):
        ...     (folder / "notes.txt").write_text("hello")
        >>> path = write_folder_atomically(
        ...     Path(tempfile.mkdtemp()) / "run", fill, format="my-notes", version=1
        ... )
        >>> sorted(p.name for p in path.iterdir())
        ['manifest.json', 'notes.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    tag = _writer_tag()
    tmp = path.with_name(f".{path.name}.tmp-{tag}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        fill(tmp)
        files = {}
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            _fsync(file)
            rel = file.relative_to(tmp).as_posix()
            files[rel] = {"size": file.stat().st_size, "sha256": _sha256(file)}
        manifest = {"format": format, "version": version, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _fsync(tmp / MANIFEST)
        for folder in sorted((p for p in tmp.rglob("*") if p.is_dir()), reverse=True):
            _fsync(folder)
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(tmp, path, path.with_name(f".{path.name}.old-{tag}"))
    recover_folder(path)  # the leftovers of earlier writers that died
    return path


def _swap(tmp: Path, path: Path, old: Path) -> None:
    """Rename ``tmp`` to ``path``; a previous ``path`` goes to ``old`` first, deleted last."""
    had = path.exists()
    if had:
        os.rename(path, old)
        _fsync(path.parent)
    try:
        os.rename(tmp, path)
    except BaseException:
        if not had or _put_back(old, path):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(path.parent)
    if had:
        shutil.rmtree(old, ignore_errors=True)


def _put_back(old: Path, path: Path) -> bool:
    try:
        os.rename(old, path)
    except OSError:
        return False  # still reachable as old: the next recover_folder renames it back
    return True


# -- recovering and reading ---------------------------------------------- #
def recover_folder(path: str | os.PathLike[str]) -> bool:
    """Undo what interrupted writes of ``path`` left behind; whether ``path`` exists then.

    If ``path`` is missing, the newest previous folder that a swap set aside
    (``.<name>.old-*``) and whose files match its manifest is renamed back to
    ``path``. Once ``path`` exists, the leftovers (``.<name>.old-*``,
    ``.<name>.tmp-*``) of writers that no longer run are deleted; those of a
    live process, or of a process on another machine, never are.
    :func:`write_folder_atomically` runs it before and after each write; run
    it before reading ``path``.

    Args:
        path: the folder that :func:`write_folder_atomically` writes.

    Returns:
        Whether ``path`` exists afterwards (False: nothing can be loaded
        there; :func:`folder_leftovers` says what is left, if anything).

    Example:
        >>> import os, tempfile
        >>> from pathlib import Path
        >>> from rlbricks.replay import recover_folder, write_folder_atomically
        >>> def fill(folder):
        ...     (folder / "notes.txt").write_text("hello")
        >>> path = write_folder_atomically(
        ...     Path(tempfile.mkdtemp()) / "run", fill, format="my-notes", version=1
        ... )
        >>> # a writer died between its renames: the folder is only set aside
        >>> _ = path.rename(path.with_name(f".run.old-{os.getpid()}"))
        >>> recover_folder(path)
        True
        >>> (path / "notes.txt").read_text()
        'hello'
    """
    path = Path(path)
    stale = [(folder, kind) for folder, kind, tag in _leftovers(path) if not _writer_alive(tag)]
    if not path.exists():
        complete = [folder for folder, kind in stale if kind == "old" and _problem(folder) is None]
        if complete:
            newest = max(complete, key=lambda folder: (folder / MANIFEST).stat().st_mtime)
            os.rename(newest, path)
            _fsync(path.parent)
            stale.remove((newest, "old"))
    if path.exists():
        for folder, _ in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return True
    return False


def folder_leftovers(path: str | os.PathLike[str]) -> dict[Path, str]:
    """The folders that interrupted writes of ``path`` left beside it, with what each is.

    Each ``.<name>.tmp-<host>-<pid>`` (a folder being written) or
    ``.<name>.old-<host>-<pid>`` (the previous folder, set aside during a swap)
    maps to a note for the user: the process may still be writing it, it is
    unfinished, or why its files do not match its manifest. Nothing is
    changed on disk. Empty when nothing is left, so ``not folder_leftovers(path)``
    together with a missing ``path`` means that nothing was ever written there.

    Args:
        path: the folder that :func:`write_folder_atomically` writes.

    Returns:
        ``{leftover folder: note}``, sorted by folder name.

    Example:
        >>> import os, tempfile
        >>> from pathlib import Path
        >>> from rlbricks.replay import folder_leftovers
        >>> path = Path(tempfile.mkdtemp()) / "run"
        >>> folder_leftovers(path)
        {}
        >>> (path.parent / f".run.tmp-{os.getpid()}").mkdir()  # a write that died
        >>> list(folder_leftovers(path).values())
        ['an unfinished write']
    """
    path = Path(path)
    notes: dict[Path, str] = {}
    for folder, kind, tag in _leftovers(path):
        host, _, pid = tag.rpartition("-")
        if _writer_alive(tag):
            where = f" on {host}" if host and host != _host() else ""
            notes[folder] = f"of process {pid}{where}, which may still be writing: wait for it"
        elif kind == "tmp":
            notes[folder] = "an unfinished write"
        else:
            notes[folder] = _problem(folder) or f"complete: rename it to {path.name}"
    return notes


def check_folder(path: str | os.PathLike[str], *, format: str, version: int) -> str | None:
    """Why the folder ``path`` cannot be loaded, or None when every file matches its manifest.

    The manifest must name ``format`` and ``version``, and list every file of
    the folder with its size and sha256: a missing, extra, truncated or
    changed file is a problem. Nothing is changed on disk; run
    :func:`recover_folder` first.

    Args:
        path: a folder written by :func:`write_folder_atomically`.
        format: the format the manifest must name.
        version: the version the manifest must name.

    Returns:
        None, or a sentence naming the file at fault, for an error message.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from rlbricks.replay import check_folder, write_folder_atomically
        >>> def fill(folder):
        ...     (folder / "notes.txt").write_text("hello")
        >>> path = write_folder_atomically(
        ...     Path(tempfile.mkdtemp()) / "run", fill, format="my-notes", version=1
        ... )
        >>> print(check_folder(path, format="my-notes", version=1))
        None
        >>> _ = (path / "notes.txt").write_text("changed")
        >>> print(check_folder(path, format="my-notes", version=1))  # doctest: +ELLIPSIS
        /.../run/notes.txt is truncated or changed (7 bytes, 5 in the manifest)
    """
    return _problem(Path(path), (format, version))


def _problem(path: Path, expected: tuple[str, int] | None = None) -> str | None:
    """Why ``path`` does not match its manifest (and, if given, the ``expected`` format)."""
    if not path.is_dir():
        return f"{path} is not a folder" if path.exists() else f"{path} does not exist"
    manifest_file = path / MANIFEST
    try:
        manifest = json.loads(manifest_file.read_text())
        files = manifest["files"]
        fmt = (manifest["format"], manifest["version"])
        listed = {rel: (int(info["size"]), str(info["sha256"])) for rel, info in files.items()}
    except FileNotFoundError:
        return (
            f"{manifest_file} is missing: {path} is not complete (an interrupted write, or one "
            "made by an older version)"
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        return f"{manifest_file} is corrupted ({type(err).__name__}: {err})"
    if expected is not None and fmt != expected:
        return (
            f"{manifest_file}: format {fmt} is not {expected}; the folder was written by "
            "another program or version"
        )
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    extra = sorted(present - set(listed) - {MANIFEST})
    if extra:
        shown = [str(path / rel) for rel in extra[:3]] + (["..."] if len(extra) > 3 else [])
        return f"{', '.join(shown)} not listed in {manifest_file} (added after the write)"
    for rel, (size, sha256) in listed.items():
        file = path / rel
        if rel not in present:
            return f"{file} is missing"
        actual = file.stat().st_size
        if actual != size:
            return f"{file} is truncated or changed ({actual} bytes, {size} in the manifest)"
        if _sha256(file) != sha256:
            return f"{file} is corrupted (its sha256 does not match the manifest)"
    return None
