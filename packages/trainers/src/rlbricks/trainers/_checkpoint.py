"""Checkpoint files: nested state as JSON plus one weights-only torch file of tensors.

A checkpoint is a folder::

    <path>/
      manifest.json   format, version, and the size and sha256 of every other file
      state.json      the nested state; tensors replaced by {"__tensor__": "<id>"}
      tensors.pt      {"<id>": tensor}, read back with torch.load(weights_only=True)
      dumps/<name>/   folders written by objects with big state (replay buffers)

It is written by ``rlbricks.replay.write_folder_atomically`` (as replay-buffer
dumps are): into a temporary sibling folder ``.<name>.tmp-<host>-<pid>``
(every file fsync-ed) and swapped into place: the previous checkpoint is
renamed aside to ``.<name>.old-<host>-<pid>``, the new one renamed in, the
previous one deleted last. If the process dies between the two renames, the
next save, load or resume renames the previous checkpoint back (when its files
match its manifest); leftovers of writers that no longer run are deleted, a
live writer's never. Reading checks every file against the manifest first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlbricks.replay import check_folder
from rlbricks.replay import folder_leftovers
from rlbricks.replay import recover_folder
from rlbricks.replay import write_folder_atomically
from rlbricks.trainers._errors import CheckpointError

__all__ = ["decode_state", "encode_state", "read_checkpoint", "resumable", "write_checkpoint"]

FORMAT = "rlbricks-trainer-checkpoint"
VERSION = 1


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], where: str = "state") -> Any:
    """Turn ``obj`` into a JSON-able tree, moving its tensors into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().cpu()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(obj.astype(np.int64) if obj.dtype == np.uint32 else obj)
        return {"__ndarray__": key, "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        items = [
            [encode_state(k, tensors, where), encode_state(v, tensors, f"{where}.{k}")]
            for k, v in obj.items()
        ]
        return {"__dict__": items}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, torch.dtype):
        return {"__dtype__": str(obj).removeprefix("torch.")}
    raise CheckpointError(
        f"cannot checkpoint {where}: a {type(obj).__name__} is neither a tensor, an array, a "
        "number, a string, None nor a dict/list/tuple of those; return such values from "
        "state_dict()"
    )


def decode_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Rebuild the object that :func:`encode_state` encoded."""
    if isinstance(tree, list):
        return [decode_state(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__tensor__" in tree:
        return tensors[tree["__tensor__"]]
    if "__ndarray__" in tree:
        return tensors[tree["__ndarray__"]].numpy().astype(tree["dtype"])
    if "__tuple__" in tree:
        return tuple(decode_state(v, tensors) for v in tree["__tuple__"])
    if "__dtype__" in tree:
        return getattr(torch, tree["__dtype__"])
    return {decode_state(k, tensors): decode_state(v, tensors) for k, v in tree["__dict__"]}


def write_checkpoint(
    path: str | os.PathLike[str],
    state: dict[str, Any],
    dumps: dict[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write ``state`` (and each ``dumps[name](folder)``) atomically as the folder ``path``."""

    def fill(folder: Path) -> None:
        tensors: dict[str, torch.Tensor] = {}
        tree = encode_state(state, tensors)
        (folder / "state.json").write_text(json.dumps(tree))
        torch.save(tensors, folder / "tensors.pt")
        for name, dump in (dumps or {}).items():
            dump(folder / "dumps" / name)

    return write_folder_atomically(path, fill, format=FORMAT, version=VERSION)


def resumable(path: str | os.PathLike[str]) -> bool:
    """Whether ``Trainer(resume=path)`` has a checkpoint to load (False: a first run).

    False only when nothing was ever saved at ``path``: no such folder and no
    leftovers of a save next to it. A previous checkpoint that an interrupted
    save left aside is renamed back to ``path`` first.

    Raises:
        CheckpointError: ``path`` is missing and only leftovers of interrupted
            saves remain (the message lists them and how to start over).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from rlbricks.trainers._checkpoint import resumable, write_checkpoint
        >>> folder = Path(tempfile.mkdtemp())
        >>> resumable(folder / "ckpt")
        False
        >>> resumable(write_checkpoint(folder / "ckpt", {"step": 1}))
        True
    """
    path = Path(path)
    if path.exists() or recover_folder(path):
        return True
    found = folder_leftovers(path)
    if not found:
        return False
    raise _missing(path, found)


def _missing(path: Path, found: dict[Path, str]) -> CheckpointError:
    """The error for a missing ``path``, listing what interrupted saves left (``found``)."""
    if not found:
        return CheckpointError(
            f"no checkpoint at {path}; check the path (Trainer.save writes a folder)"
        )
    notes = "; ".join(f"{folder} ({why})" for folder, why in found.items())
    return CheckpointError(
        f"no checkpoint at {path}, but interrupted saves left: {notes}. None of them can be "
        "loaded: delete these folders to start the run over, or resume from another checkpoint"
    )


def _fix(path: Path) -> str:
    return f"load an earlier checkpoint, or delete {path} to start the run over"


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file of the checkpoint ``path`` against its manifest and return the state.

    A previous checkpoint that an interrupted save left aside is renamed back
    to ``path`` first, and the leftovers of dead writers are deleted.

    Raises:
        CheckpointError: a missing, extra, truncated or corrupted file (named in the
            message), or no checkpoint at ``path``.
    """
    path = Path(path)
    if not recover_folder(path) or not path.is_dir():
        raise _missing(path, folder_leftovers(path))
    problem = check_folder(path, format=FORMAT, version=VERSION)
    if problem is not None:
        raise CheckpointError(f"{problem}; {_fix(path)}")
    try:
        tensors = torch.load(path / "tensors.pt", map_location="cpu", weights_only=True)
        tree = json.loads((path / "state.json").read_text())
        state: dict[str, Any] = decode_state(tree, tensors)
    except Exception as err:
        raise CheckpointError(
            f"cannot decode the checkpoint {path} (state.json / tensors.pt): {err}"
        ) from err
    return state
