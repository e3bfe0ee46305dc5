"""Checkpoint files: nested state as JSON plus one weights-only torch file of tensors.

A checkpoint is a folder::

    <path>/
      manifest.json   format, version, and the size and sha256 of every other file
      state.json      the nested state; tensors replaced by {"__tensor__": "<id>"}
      tensors.pt      {"<id>": tensor}, read back with torch.load(weights_only=True)
      dumps/<name>/   folders written by objects with big state (replay buffers)

It is written into a temporary sibling folder (every file fsync-ed) that is
renamed into place at the end, so an interrupted save leaves the previous
checkpoint untouched. Reading checks every file against the manifest first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlbricks.trainers._errors import CheckpointError

__all__ = ["decode_state", "encode_state", "read_checkpoint", "write_checkpoint"]

FORMAT = "rlbricks-trainer-checkpoint"
VERSION = 1
_MANIFEST = "manifest.json"


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(
    path: str | os.PathLike[str],
    state: dict[str, Any],
    dumps: dict[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write ``state`` (and each ``dumps[name](folder)``) atomically as the folder ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        tensors: dict[str, torch.Tensor] = {}
        tree = encode_state(state, tensors)
        (tmp / "state.json").write_text(json.dumps(tree))
        torch.save(tensors, tmp / "tensors.pt")
        for name, dump in (dumps or {}).items():
            dump(tmp / "dumps" / name)
        files = {}
        for file in sorted(p for p in tmp.rglob("*") if p.is_file()):
            _fsync(file)
            rel = file.relative_to(tmp).as_posix()
            files[rel] = {"size": file.stat().st_size, "sha256": _sha256(file)}
        manifest = {"format": FORMAT, "version": VERSION, "files": files}
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        _fsync(tmp / _MANIFEST)
        for folder in sorted((p for p in tmp.rglob("*") if p.is_dir()), reverse=True):
            _fsync(folder)
        _fsync(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.rename(path, old)
    os.rename(tmp, path)
    _fsync(path.parent)
    if old.exists():
        shutil.rmtree(old)
    return path


def _missing(path: Path) -> CheckpointError:
    leftovers = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.exists() else []
    hint = (
        f"; an interrupted save left the previous checkpoint at {leftovers[-1]}: rename it to "
        f"{path.name}"
        if leftovers
        else "; check the path (Trainer.save writes a folder)"
    )
    return CheckpointError(f"no checkpoint at {path}{hint}")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check every file of the checkpoint ``path`` against its manifest and return the state.

    Raises:
        CheckpointError: a missing, truncated or corrupted file (named in the message).
    """
    path = Path(path)
    if not path.is_dir():
        raise _missing(path)
    manifest_file = path / _MANIFEST
    try:
        manifest = json.loads(manifest_file.read_text())
        files = manifest["files"]
        fmt = (manifest["format"], manifest["version"])
    except FileNotFoundError:
        raise CheckpointError(
            f"{manifest_file} is missing: {path} is not a complete trainer checkpoint (was the "
            "save interrupted?); load an earlier checkpoint"
        ) from None
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(
            f"{manifest_file} is corrupted ({err}); load an earlier checkpoint"
        ) from None
    if fmt != (FORMAT, VERSION):
        raise CheckpointError(
            f"{manifest_file}: format {fmt} is not {(FORMAT, VERSION)}; this checkpoint was "
            "written by another program or version"
        )
    for rel, info in files.items():
        file = path / rel
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {file} is missing; load an earlier checkpoint")
        size = file.stat().st_size
        if size != info["size"]:
            raise CheckpointError(
                f"checkpoint file {file} is truncated or damaged ({size} bytes, expected "
                f"{info['size']}); load an earlier checkpoint"
            )
        if _sha256(file) != info["sha256"]:
            raise CheckpointError(
                f"checkpoint file {file} is corrupted (its sha256 does not match the manifest); "
                "load an earlier checkpoint"
            )
    try:
        tensors = torch.load(path / "tensors.pt", map_location="cpu", weights_only=True)
        tree = json.loads((path / "state.json").read_text())
        state: dict[str, Any] = decode_state(tree, tensors)
    except Exception as err:
        raise CheckpointError(
            f"cannot decode the checkpoint {path} (state.json / tensors.pt): {err}"
        ) from err
    return state
