"""Helpers for tests of code that saves with :func:`~rlbricks.replay.write_folder_atomically`.

* ``dead_pid`` — the id of a process that has exited, to name the leftovers of
  a writer that was killed (``.<name>.tmp-<pid>``).
* ``crash_renames_onto`` — make the swap of a write fail as if the process
  died between its two renames.

The tests of ``rlbricks-replay`` (dumps) and ``rlbricks-trainers``
(checkpoints) use them; so can yours.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from typing import Protocol

from rlbricks.replay._errors import ReplayOSError

__all__ = ["crash_renames_onto", "dead_pid"]


class _Patcher(Protocol):
    def setattr(self, target: Any, name: str, value: Any) -> None: ...


def dead_pid() -> int:
    """The id of a process that has exited, like a writer that was killed.

    Returns:
        The pid of a child process that ran nothing and was waited for.

    Example:
        >>> import os, tempfile
        >>> from pathlib import Path
        >>> from rlbricks.replay import folder_leftovers
        >>> from rlbricks.replay.testing import dead_pid
        >>> path = Path(tempfile.mkdtemp()) / "run"
        >>> (path.parent / f".run.tmp-{dead_pid()}").mkdir()
        >>> list(folder_leftovers(path).values())
        ['an unfinished write']
    """
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def crash_renames_onto(
    target: str | os.PathLike[str], monkeypatch: _Patcher, *, rollback_fails: bool
) -> None:
    """Make renames of a new folder onto ``target`` raise, as if the process died there.

    ``os.rename`` and ``os.replace`` raise :class:`~rlbricks.replay.ReplayOSError`
    (an ``OSError``) "killed between the two renames" when they move a ``.tmp-`` folder onto ``target``; with
    ``rollback_fails``, every rename onto ``target`` does (the previous
    folder, set aside, cannot be put back either). Undo it with
    ``monkeypatch.undo()``.

    Args:
        target: the folder being written.
        monkeypatch: a ``pytest.MonkeyPatch`` (the fixture), or any object
            with its ``setattr(target, name, value)``.
        rollback_fails: whether putting the previous folder back fails too.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import pytest
        >>> from rlbricks.replay import recover_folder, write_folder_atomically
        >>> from rlbricks.replay.testing import crash_renames_onto
        >>> def fill(folder):
        ...     (folder / "notes.txt").write_text("hello")
        >>> path = write_folder_atomically(
        ...     Path(tempfile.mkdtemp()) / "run", fill, format="my-notes", version=1
        ... )
        >>> monkeypatch = pytest.MonkeyPatch()
        >>> crash_renames_onto(path, monkeypatch, rollback_fails=True)
        >>> write_folder_atomically(path, fill, format="my-notes", version=1)
        Traceback (most recent call last):
        ...
        rlbricks.replay._errors.ReplayOSError: killed between the two renames
        >>> monkeypatch.undo()
        >>> path.exists()  # only the previous folder remains, set aside
        False
        >>> recover_folder(path)
        True
    """
    target = Path(target)

    def crashing(real: Callable[..., None]) -> Callable[..., None]:
        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if Path(dst) == target and (rollback_fails or ".tmp-" in Path(src).name):
                raise ReplayOSError("killed between the two renames")
            real(src, dst, *args, **kwargs)

        return rename

    monkeypatch.setattr(os, "rename", crashing(os.rename))
    monkeypatch.setattr(os, "replace", crashing(os.replace))
