"""Checkpoint and resume: bitwise-equal resumes in a fresh process, damaged files, atomic saves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _setup import build_dqn
from _setup import weights

from rlbricks.trainers import CheckpointError
from rlbricks.trainers._checkpoint import decode_state
from rlbricks.trainers._checkpoint import encode_state

TOTAL = 192  # 12 batches of 16 frames


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
