"""Checkpoints: state_dict/load_state_dict and dumps/loads restore a buffer exactly."""

from __future__ import annotations

import fractions
import hashlib
import io
import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import PrioritizedReplayBuffer
from rlbricks.replay import RandomSampler
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import ReplayError
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import SliceSampler
from rlbricks.replay import TensorDictMaxValueWriter
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.replay import TensorStorage
from rlbricks.replay.testing import crash_renames_onto
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close

IDS = ("collector", "traj_ids")


def rows(start: int, n: int) -> TensorDict:
    ids = torch.arange(start, start + n)
    return TensorDict(
        {
            "id": ids,
            "obs": torch.randn(n, 3),
            "score": ((ids * 7) % 11).float(),
            "collector": {"traj_ids": ids // 4},
        },
        batch_size=[n],
    )


BUILDERS = {
    "list": lambda d: ReplayBuffer(storage=ListStorage(10), batch_size=4),
    "tensor": lambda d: ReplayBuffer(
        storage=TensorStorage(rows(0, 10).apply(torch.zeros_like)), batch_size=4
    ),
    "lazy_without_replacement": lambda d: ReplayBuffer(
        storage=LazyTensorStorage(10), sampler=SamplerWithoutReplacement(), batch_size=3
    ),
    "prioritized": lambda d: PrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(10), batch_size=4
    ),
    "td_prioritized": lambda d: TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(10), batch_size=4
    ),
    "memmap_anon": lambda d: ReplayBuffer(storage=LazyMemmapStorage(10), batch_size=4),
    "memmap_scratch": lambda d: ReplayBuffer(
        storage=LazyMemmapStorage(10, scratch_dir=d), batch_size=4
    ),
    "slice": lambda d: TensorDictReplayBuffer(
        storage=LazyTensorStorage(10), sampler=SliceSampler(slice_len=2, traj_key=IDS), batch_size=4
    ),
    "max_value": lambda d: ReplayBuffer(
        storage=LazyTensorStorage(6), writer=TensorDictMaxValueWriter("score"), batch_size=4
    ),
}


def filled(kind: str, scratch) -> ReplayBuffer:
    """A buffer that wrapped, was sampled (mid-epoch) and got new priorities."""
    torch.manual_seed(0)
    rb = BUILDERS[kind](scratch)
    rb.extend(rows(0, 8))
    rb.extend(rows(8, 6))  # 14 rows into 10: the ring wraps
    _, info = rb.sample(return_info=True)
    if "_weight" in info:
        rb.update_priority(info["index"], torch.rand(len(info["index"])) * 5)
    return rb


def same(a, b) -> None:
    if isinstance(a, TensorDict):
        assert_close(a, b)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            same(a[key], b[key])
    else:
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)


def assert_restored(original: ReplayBuffer, restored: ReplayBuffer) -> None:
    assert len(restored) == len(original)
    assert restored.batch_size == original.batch_size
    everything = torch.arange(len(original))
    same(original.storage.get(everything), restored.storage.get(everything))
    if hasattr(original.sampler, "priority"):
        full = torch.arange(original.sampler.max_capacity)
        assert torch.equal(original.sampler.priority(full), restored.sampler.priority(full))
        assert original.sampler.max_priority == restored.sampler.max_priority
    for step in range(2):
        # same seed -> same next samples (and the epoch state carries over)
        torch.manual_seed(step)
        a = original.sample(return_info=True)
        torch.manual_seed(step)
        b = restored.sample(return_info=True)
        same(a, b)
    # the writer cursor: the next write lands at the same rows
    new = rows(100, 3)
    assert torch.equal(original.extend(new.clone()), restored.extend(new.clone()))
    torch.manual_seed(7)
    a = original.sample(return_info=True)
    torch.manual_seed(7)
    same(a, restored.sample(return_info=True))


def through_torch_save(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_state_dict_round_trip(kind, tmp_path):
    original = filled(kind, tmp_path / "a")
    restored = BUILDERS[kind](tmp_path / "b")
    restored.load_state_dict(through_torch_save(original.state_dict()))
    assert_restored(original, restored)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_dumps_loads_round_trip(kind, tmp_path):
    """Bug for memmap_scratch: dumps refuses rows memory-mapped under scratch_dir."""
    original = filled(kind, tmp_path / "a")
    original.dumps(tmp_path / "dump")
    meta = json.loads((tmp_path / "dump" / "buffer.json").read_text())
    assert meta["buffer"] == type(original).__name__
    restored = BUILDERS[kind](tmp_path / "b")
    restored.loads(tmp_path / "dump")
    assert_restored(original, restored)


@pytest.mark.parametrize("kind", ["lazy_without_replacement", "list", "memmap_scratch"])
def test_load_state_dict_does_not_alias_the_source(kind, tmp_path):
    """Bug: load_state_dict adopts the source's tensors, so the two buffers share rows."""
    original = filled(kind, tmp_path / "a")
    before = original.storage.get(torch.arange(10))
    copy = BUILDERS[kind](tmp_path / "b")
    copy.load_state_dict(original.state_dict())
    copy.extend(rows(200, 10))  # overwrites every row of the copy
    same(original.storage.get(torch.arange(10)), before)


def test_loads_into_a_fresh_buffer_that_already_has_data(tmp_path):
    original = filled("prioritized", None)
    original.dumps(tmp_path / "dump")
    restored = BUILDERS["prioritized"](None)
    restored.extend(rows(50, 10))
    restored.update_priority(torch.arange(10), torch.full((10,), 9.0))
    restored.loads(tmp_path / "dump")
    assert_restored(original, restored)


@pytest.mark.parametrize(
    "other",
    [
        lambda: ReplayBuffer(storage=LazyTensorStorage(10), sampler=RandomSampler(), batch_size=4),
        lambda: ReplayBuffer(storage=ListStorage(10), batch_size=4),
        lambda: TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=4),
        lambda: ReplayBuffer(
            storage=LazyTensorStorage(10), writer=TensorDictMaxValueWriter(), batch_size=4
        ),
    ],
    ids=["sampler", "storage", "buffer", "writer"],
)
def test_loads_into_another_kind_raises(other, tmp_path):
    filled("lazy_without_replacement", None).dumps(tmp_path / "dump")
    target = other()
    with pytest.raises(ReplayError, match="SamplerWithoutReplacement"):
        target.loads(tmp_path / "dump")
    assert len(target) == 0


def test_loads_of_a_foreign_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"buffer\.json"):
        ReplayBuffer().loads(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ReplayBuffer().loads(tmp_path / "nowhere")
    (tmp_path / "buffer.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ReplayError, match=r"manifest\.json is missing"):
        ReplayBuffer().loads(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "x", "version": 1, "files": {}}))
    with pytest.raises(ReplayError, match="format"):
        ReplayBuffer().loads(tmp_path)


@pytest.mark.parametrize("kind", ["list", "td_prioritized", "memmap_anon", "slice"])
def test_loads_never_unpickles(kind, tmp_path, monkeypatch):
    filled(kind, None).dumps(tmp_path / "dump")
    calls = []
    real_load = torch.load

    def checked_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        assert kwargs.get("weights_only") is True, "torch.load without weights_only=True"
        return real_load(*args, **kwargs)

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used to load a buffer")

    monkeypatch.setattr(torch, "load", checked_load)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    restored = BUILDERS[kind](None)
    restored.loads(tmp_path / "dump")
    assert calls
    assert all(calls)
    assert len(restored) == 10


def test_tensor_storage_dump_is_raw_files_and_json(tmp_path):
    filled("prioritized", None).dumps(tmp_path / "dump")
    names = {p.name for p in (tmp_path / "dump" / "storage").rglob("*") if p.is_file()}
    assert names
    assert all(n.endswith((".json", ".memmap")) for n in names), names


def test_list_storage_dump_refuses_arbitrary_objects_on_load(tmp_path):
    rb = ReplayBuffer(storage=ListStorage(4), batch_size=1)
    rb.add(fractions.Fraction(1, 3))  # saved fine, but not a weights-only type
    rb.dumps(tmp_path / "dump")
    with pytest.raises(ReplayError, match=r"storage\.pt") as info:
        ReplayBuffer(storage=ListStorage(4), batch_size=1).loads(tmp_path / "dump")
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)


def test_loads_into_a_memmap_storage_with_scratch_dir(tmp_path):
    """Bug: loads memory-maps the loaded (file-backed) rows again under scratch_dir and
    the tensordict refuses to copy rows already mapped to another file."""
    original = filled("memmap_anon", None)
    original.dumps(tmp_path / "dump")
    restored = BUILDERS["memmap_scratch"](tmp_path / "scratch")
    restored.loads(tmp_path / "dump")
    assert restored.storage.data.is_memmap()
    assert_restored(original, restored)
    # the rows live under the restored buffer's own scratch_dir, not in the dump
    assert (tmp_path / "scratch" / "meta.json").exists()


@pytest.mark.parametrize("kind", ["memmap_anon", "lazy_without_replacement"])
def test_writes_after_loads_leave_the_dump_intact(kind, tmp_path):
    """Bug for memmap_anon: the loaded rows stay mapped to the dump's files, so writing
    into the restored buffer rewrites the checkpoint on disk."""
    original = filled(kind, None)
    original.dumps(tmp_path / "dump")
    restored = BUILDERS[kind](None)
    restored.loads(tmp_path / "dump")
    restored.extend(rows(300, 10))
    again = BUILDERS[kind](None)
    again.loads(tmp_path / "dump")
    same(again.storage.get(torch.arange(10)), original.storage.get(torch.arange(10)))


# -- atomic dumps and the manifest ---------------------------------------- #
STORAGE_KINDS = ["list", "tensor", "lazy_without_replacement", "memmap_anon", "memmap_scratch"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".dump."))


@pytest.mark.parametrize("kind", STORAGE_KINDS + ["prioritized"])
def test_failed_dumps_over_an_older_dump_keeps_the_older_dump(kind, tmp_path, monkeypatch):
    """Bug: dumps wrote in place, so a failure left new rows with the old writer cursor."""
    original = filled(kind, tmp_path / "a")
    dump = tmp_path / "dump"
    original.dumps(dump)
    reference = BUILDERS[kind](tmp_path / "b")
    reference.loads(dump)
    original.extend(rows(50, 4))  # new rows, another cursor
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        if Path(f).name == "writer.pt":
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        original.dumps(dump)
    monkeypatch.undo()
    restored = BUILDERS[kind](tmp_path / "c")
    restored.loads(dump)
    assert_restored(reference, restored)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("rollback", ["works", "fails too"])
def test_crash_between_the_renames_of_dumps_keeps_the_previous_dump(
    rollback, tmp_path, monkeypatch
):
    original = filled("prioritized", None)
    dump = tmp_path / "dump"
    original.dumps(dump)
    reference = BUILDERS["prioritized"](None)
    reference.loads(dump)
    original.extend(rows(50, 4))
    crash_renames_onto(dump, monkeypatch, rollback_fails=rollback == "fails too")
    with pytest.raises(OSError, match="killed"):
        original.dumps(dump)
    monkeypatch.undo()
    if rollback == "works":
        assert dump.is_dir()  # put back at once
    restored = BUILDERS["prioritized"](None)
    restored.loads(dump)  # puts the previous dump back first when the rollback failed
    assert_restored(reference, restored)
    assert leftovers(tmp_path) == []


def test_leftovers_of_a_killed_dumps(tmp_path, dead_pid):
    """Bug: a dumps() killed between its renames left no dump at the path."""
    original = filled("prioritized", None)
    dump = tmp_path / "dump"
    original.dumps(dump)
    # the writer `dead_pid` set the previous dump aside and died before renaming its new
    # one (unfinished) into place; another writer, still running, is at work
    dump.rename(tmp_path / f".dump.old-{dead_pid}")
    (tmp_path / f".dump.tmp-{dead_pid}").mkdir()
    (tmp_path / f".dump.tmp-{dead_pid}" / "sampler.pt").write_bytes(b"partial")
    live = tmp_path / f".dump.tmp-{os.getppid()}"
    live.mkdir()
    restored = BUILDERS["prioritized"](None)
    restored.loads(dump)
    assert_restored(original, restored)
    assert leftovers(tmp_path) == [live.name]
    # the next dumps deletes what dead writers left, never a live writer's folder
    (tmp_path / f".dump.old-{dead_pid}").mkdir()
    original.dumps(dump)
    assert leftovers(tmp_path) == [live.name]


def test_loads_with_only_leftovers_names_them(tmp_path, dead_pid):
    partial = tmp_path / f".dump.tmp-{dead_pid}"
    partial.mkdir()
    (partial / "sampler.pt").write_bytes(b"partial")
    with pytest.raises(ReplayError, match=re.escape(str(partial))):
        ReplayBuffer().loads(tmp_path / "dump")
    assert partial.is_dir()


@pytest.mark.parametrize("damage", ["missing", "extra", "changed", "truncated", "manifest"])
@pytest.mark.parametrize("kind", STORAGE_KINDS)
def test_loads_checks_every_file_against_the_manifest(kind, damage, tmp_path):
    """Bug: a changed, truncated, missing or extra file loaded silently or raised a raw error."""
    dump = tmp_path / "dump"
    filled(kind, tmp_path / "a").dumps(dump)
    files = sorted(p for p in dump.rglob("*") if p.is_file())
    target = next((p for p in files if p.suffix == ".memmap"), dump / "storage.pt")  # rows
    data = target.read_bytes()
    if damage == "missing":
        target.unlink()
    elif damage == "extra":
        target = target.with_name("stray.bin")
        target.write_bytes(b"stray")
    elif damage == "changed":
        target.write_bytes(bytes(b ^ 0xFF for b in data))  # same size
    elif damage == "truncated":
        target.write_bytes(data[:-1])
    else:
        target = dump / "manifest.json"
        target.write_text("{")
    restored = BUILDERS[kind](tmp_path / "b")
    with pytest.raises(ReplayError, match=re.escape(target.name)):
        restored.loads(dump)
    assert len(restored) == 0  # nothing was loaded


def test_loads_wraps_the_error_of_a_crafted_torch_file(tmp_path):
    """Bug: a crafted sampler.pt raised a raw UnpicklingError."""
    dump = tmp_path / "dump"
    filled("prioritized", None).dumps(dump)
    crafted = dump / "sampler.pt"
    torch.save(fractions.Fraction(1, 3), crafted)  # an object a weights-only load refuses
    manifest_file = dump / "manifest.json"  # crafted along: the folder matches its manifest
    manifest = json.loads(manifest_file.read_text()) if manifest_file.exists() else {"files": {}}
    manifest["files"]["sampler.pt"] = {
        "size": crafted.stat().st_size,
        "sha256": hashlib.sha256(crafted.read_bytes()).hexdigest(),
    }
    manifest_file.write_text(json.dumps(manifest))
    restored = BUILDERS["prioritized"](None)
    with pytest.raises(ReplayError, match=r"sampler\.pt") as info:
        restored.loads(dump)
    assert isinstance(info.value.__cause__, pickle.UnpicklingError)
    assert len(restored) == 0  # nothing was loaded


def test_dumps_refuses_to_replace_a_folder_that_is_not_a_dump(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ReplayError, match="not a buffer dump"):
        filled("prioritized", None).dumps(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
