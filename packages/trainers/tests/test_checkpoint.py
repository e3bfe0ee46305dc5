"""Checkpoint and resume: bitwise-equal resumes in a fresh process, damaged files, atomic saves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _setup import build_dqn
from _setup import weights

from rlbricks.replay.testing import crash_renames_onto
from rlbricks.trainers import CheckpointError
from rlbricks.trainers._checkpoint import decode_state
from rlbricks.trainers._checkpoint import encode_state

TOTAL = 192  # 12 batches of 16 frames


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".ckpt."))


def test_encode_decode_round_trip() -> None:
    state = {
        "a": torch.arange(3), 1: (1.5, None, "x"), "nested": {"b": [torch.ones(2), True]},
        "rng": np.random.get_state(),  # noqa: NPY002
        "dtype": torch.float16,
    }  # fmt: skip
    tensors: dict[str, torch.Tensor] = {}
    tree = json.loads(json.dumps(encode_state(state, tensors)))
    back = decode_state(tree, tensors)
    assert torch.equal(back["a"], state["a"])
    assert back[1] == (1.5, None, "x")
    assert torch.equal(back["nested"]["b"][0], torch.ones(2))
    assert back["nested"]["b"][1] is True
    assert back["rng"][0] == "MT19937"
    assert np.array_equal(back["rng"][1], state["rng"][1])
    assert back["rng"][1].dtype == np.uint32
    assert back["dtype"] is torch.float16


def test_encode_rejects_objects() -> None:
    with pytest.raises(CheckpointError, match=r"state\.x.*object"):
        encode_state({"x": object()}, {})


def test_resume_in_a_fresh_process_is_bitwise_equal(tmp_path: Path) -> None:
    full = build_dqn(TOTAL)
    full.train()
    expected = weights(full)

    half = build_dqn(TOTAL // 2)
    half.train()
    ckpt = half.save(tmp_path / "ckpt")
    assert {"manifest.json", "state.json", "tensors.pt", "dumps"} <= {
        p.name for p in ckpt.iterdir()
    }

    out = tmp_path / "resumed.pt"
    script = Path(__file__).with_name("_setup.py")
    subprocess.run(
        [sys.executable, str(script), str(ckpt), str(TOTAL), str(out)], check=True, timeout=120
    )
    resumed = torch.load(out, weights_only=True)
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    # the run did not merely start from the same weights: training moved them
    assert any(not torch.equal(v, weights(half)[k]) for k, v in expected.items())


def test_save_and_load_restore_counters_and_history(tmp_path: Path) -> None:
    trainer = build_dqn(64)
    trainer.train()
    trainer.save(tmp_path / "ckpt")
    other = build_dqn(64, seed=5)
    other.load_state(tmp_path / "ckpt")
    assert (other.collected_frames, other.optim_steps, other.batches) == (64, 8, 4)
    assert other.history == trainer.history
    assert other._modules["Recorder"].count == 4
    assert other._modules["TargetNetUpdaterHook"].updater.counter == 8
    buffer = other._modules["ReplayBufferTrainer"].replay_buffer
    assert len(buffer) == 64


def test_periodic_saves_and_final_save(tmp_path: Path) -> None:
    ckpt = tmp_path / "run" / "ckpt"
    trainer = build_dqn(80, save_trainer_file=ckpt, save_trainer_interval=32)
    saved: list[int] = []
    original = trainer.save
    trainer.save = lambda path: saved.append(trainer.collected_frames) or original(path)  # type: ignore[method-assign]
    trainer.train()
    assert saved == [32, 64, 80]
    assert not list(ckpt.parent.glob(".ckpt.*"))  # no temporary folder left


def test_periodic_checkpoints_carry_the_cpu_time_so_far(tmp_path: Path) -> None:
    # the last periodic save falls on the final frame: no final save rewrites it
    ckpt = tmp_path / "ckpt"
    trainer = build_dqn(64, save_trainer_file=ckpt, save_trainer_interval=32)
    cpu_times: list[float] = []
    original = trainer.save
    trainer.save = lambda path: cpu_times.append(trainer.cpu_time) or original(path)  # type: ignore[method-assign]
    trainer.train()
    assert len(cpu_times) == 2
    assert 0.0 < cpu_times[0] < cpu_times[1] <= trainer.cpu_time
    other = build_dqn(64)
    other.load_state(ckpt)
    assert other.cpu_time == cpu_times[1]


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_checkpoint_names_the_file(tmp_path: Path, damage: str) -> None:
    trainer = build_dqn(32)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    target = ckpt / "tensors.pt"
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        target.write_bytes(data[:-10] + bytes(b ^ 0xFF for b in data[-10:]))
    else:
        target.unlink()
    with pytest.raises(CheckpointError, match=r"tensors\.pt"):
        build_dqn(32).load_state(ckpt)


def test_truncated_manifest_and_missing_checkpoint(tmp_path: Path) -> None:
    trainer = build_dqn(32)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    manifest = ckpt / "manifest.json"
    manifest.write_text(manifest.read_text()[:20])
    with pytest.raises(CheckpointError, match=r"manifest\.json is corrupted"):
        build_dqn(32).load_state(ckpt)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        build_dqn(32).load_state(tmp_path / "nowhere")


def test_interrupted_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = build_dqn(32)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    before = {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()}
    trainer.collected_frames += 1

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(trainer._modules["ReplayBufferTrainer"], "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(ckpt)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in ckpt.iterdir() if p.is_file()}
    assert after == before
    assert not list(tmp_path.glob(".ckpt.*"))
    fresh = build_dqn(32)
    fresh.load_state(ckpt)
    assert fresh.collected_frames == 32


def test_checkpoint_of_another_setup(tmp_path: Path) -> None:
    trainer = build_dqn(32)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    other = build_dqn(32)
    other.register_module("extra", other._modules["Recorder"])
    with pytest.raises(CheckpointError, match="extra"):
        other.load_state(ckpt)


def test_resume_argument_continues_a_killed_run(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    full = build_dqn(TOTAL)
    full.train()
    # a first run saves halfway and is "killed" after its checkpoint
    first = build_dqn(TOTAL // 2, save_trainer_file=ckpt, resume=ckpt)
    first.train()  # no checkpoint yet: resume is ignored, the run starts from scratch
    # the same command again: it continues from the checkpoint
    second = build_dqn(TOTAL, save_trainer_file=ckpt, resume=ckpt)
    second.train()
    assert second.collected_frames == TOTAL
    for key, value in weights(full).items():
        assert torch.equal(weights(second)[key], value), key


@pytest.mark.parametrize("rollback", ["works", "fails too"])
def test_crash_between_the_renames_of_a_save_loses_no_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rollback: str
) -> None:
    """Bug: the previous checkpoint was left only as .ckpt.old-PID, and resume= started over."""
    trainer = build_dqn(32)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    saved = weights(trainer)
    trainer.collected_frames += 16  # the save that crashes holds another state
    crash_renames_onto(ckpt, monkeypatch, rollback_fails=rollback == "fails too")
    with pytest.raises(OSError, match="killed"):
        trainer.save(ckpt)
    monkeypatch.undo()
    if rollback == "works":
        assert ckpt.is_dir()  # put back at once
    resumed = build_dqn(32, seed=123, resume=ckpt)  # another seed: only a resume gives `saved`
    resumed.train()
    assert (resumed.collected_frames, resumed.optim_steps) == (32, 4)
    for key, value in saved.items():
        assert torch.equal(weights(resumed)[key], value), key
    assert ckpt.is_dir()
    assert leftovers(tmp_path) == []


def test_resume_restores_the_checkpoint_a_killed_save_set_aside(
    tmp_path: Path, dead_pid: int
) -> None:
    """Bug: a save killed between its two renames made the next run start from zero."""
    trainer = build_dqn(32)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    saved = weights(trainer)
    # the writer `dead_pid` set the previous checkpoint aside and died before renaming its
    # new one (unfinished) into place; another writer, still running, is at work
    ckpt.rename(tmp_path / f".ckpt.old-{dead_pid}")
    (tmp_path / f".ckpt.tmp-{dead_pid}").mkdir()
    (tmp_path / f".ckpt.tmp-{dead_pid}" / "state.json").write_text("{")
    live = tmp_path / f".ckpt.tmp-{os.getppid()}"
    live.mkdir()
    resumed = build_dqn(32, seed=123, resume=ckpt)
    resumed.train()
    assert (resumed.collected_frames, resumed.optim_steps) == (32, 4)
    for key, value in saved.items():
        assert torch.equal(weights(resumed)[key], value), key
    assert leftovers(tmp_path) == [live.name]  # the live writer's folder is untouched


def test_save_deletes_the_leftovers_of_dead_writers_only(tmp_path: Path, dead_pid: int) -> None:
    """Bug: the temporary folders of killed writers stayed forever."""
    trainer = build_dqn(16)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    live = f".ckpt.tmp-{os.getppid()}"
    for name in (f".ckpt.tmp-{dead_pid}", f".ckpt.old-{dead_pid}", live):
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text("{}")
    trainer.save(ckpt)
    assert leftovers(tmp_path) == [live]
    build_dqn(16).load_state(ckpt)  # the new checkpoint is whole


@pytest.mark.parametrize("found", ["an unfinished save", "a damaged old", "a damaged manifest"])
def test_resume_without_a_loadable_checkpoint_raises(
    tmp_path: Path, dead_pid: int, found: str
) -> None:
    """Bug: resume= silently started over when only leftovers of a save remained."""
    trainer = build_dqn(16)
    trainer.train()
    ckpt = trainer.save(tmp_path / "ckpt")
    if found == "an unfinished save":
        shutil.rmtree(ckpt)
        named = tmp_path / f".ckpt.tmp-{dead_pid}"
        named.mkdir()
        (named / "state.json").write_text("{")
    elif found == "a damaged old":
        named = tmp_path / f".ckpt.old-{dead_pid}"
        ckpt.rename(named)
        (named / "manifest.json").write_text("{")
    else:
        named = ckpt / "manifest.json"
        named.write_text("{")
    before = leftovers(tmp_path)
    resumed = build_dqn(16, resume=ckpt)
    with pytest.raises(CheckpointError, match="start the run over") as info:
        resumed.train()
    assert str(named) in str(info.value)
    assert resumed.collected_frames == 0
    assert leftovers(tmp_path) == before  # nothing deleted: the user decides


def test_resume_of_a_path_never_saved_starts_a_fresh_run(tmp_path: Path) -> None:
    trainer = build_dqn(16, resume=tmp_path / "no" / "such" / "ckpt")
    trainer.train()
    assert trainer.collected_frames == 16
