"""Folders written atomically: manifest, format check, recovery and leftovers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlbricks.replay import check_folder
from rlbricks.replay import folder_leftovers
from rlbricks.replay import recover_folder
from rlbricks.replay import write_folder_atomically
from rlbricks.replay.testing import crash_renames_onto

FMT = {"format": "test-notes", "version": 3}


def notes(text: str):
    def fill(folder: Path) -> None:
        (folder / "sub").mkdir()
        (folder / "sub" / "notes.txt").write_text(text)

    return fill


def test_write_returns_the_path_and_records_format_and_files(tmp_path):
    path = write_folder_atomically(str(tmp_path / "a" / "run"), notes("hello"), **FMT)
    assert path == tmp_path / "a" / "run"
    manifest = json.loads((path / "manifest.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("test-notes", 3)
    assert manifest["files"]["sub/notes.txt"]["size"] == 5
    assert check_folder(path, **FMT) is None
    assert sorted(p.name for p in tmp_path.joinpath("a").iterdir()) == ["run"]


def test_check_folder_names_the_problem(tmp_path):
    path = write_folder_atomically(tmp_path / "run", notes("hello"), **FMT)
    assert "format" in check_folder(path, format="other", version=3)
    assert "format" in check_folder(path, format="test-notes", version=4)
    (path / "stray.txt").write_text("x")
    assert "stray.txt" in check_folder(path, **FMT)
    assert "does not exist" in check_folder(tmp_path / "nowhere", **FMT)


def test_a_failing_fill_leaves_the_previous_folder(tmp_path):
    path = write_folder_atomically(tmp_path / "run", notes("hello"), **FMT)

    def failing(folder: Path) -> None:
        notes("half")(folder)
        raise ValueError("fill failed")

    with pytest.raises(ValueError, match="fill failed"):
        write_folder_atomically(path, failing, **FMT)
    assert (path / "sub" / "notes.txt").read_text() == "hello"
    assert folder_leftovers(path) == {}


@pytest.mark.parametrize("rollback", ["works", "fails too"])
def test_recover_folder_after_a_crash_between_the_renames(rollback, tmp_path, monkeypatch):
    path = write_folder_atomically(tmp_path / "run", notes("hello"), **FMT)
    crash_renames_onto(path, monkeypatch, rollback_fails=rollback == "fails too")
    with pytest.raises(OSError, match="killed"):
        write_folder_atomically(path, notes("new"), **FMT)
    monkeypatch.undo()
    assert path.exists() == (rollback == "works")
    assert recover_folder(path)
    assert (path / "sub" / "notes.txt").read_text() == "hello"
    assert folder_leftovers(path) == {}


def test_recover_folder_without_anything_to_recover(tmp_path):
    assert not recover_folder(tmp_path / "no" / "such" / "run")
    assert not (tmp_path / "no").exists()
    assert folder_leftovers(tmp_path / "no" / "such" / "run") == {}


def test_folder_leftovers_describes_each_and_recover_keeps_live_ones(tmp_path, dead_pid):
    path = tmp_path / "run"
    damaged = write_folder_atomically(tmp_path / "damaged", notes("hello"), **FMT)
    (damaged / "sub" / "notes.txt").write_text("HELLO")
    damaged = damaged.rename(tmp_path / f".run.old-{dead_pid}")
    (tmp_path / f".run.tmp-{dead_pid}").mkdir()
    (tmp_path / f".run.tmp-{os.getppid()}").mkdir()  # a live local writer
    (tmp_path / ".run.tmp-elsewhere-1").mkdir()  # a writer on another machine
    found = {folder.name: why for folder, why in folder_leftovers(path).items()}
    assert found == {
        f".run.old-{dead_pid}": f"{damaged / 'sub' / 'notes.txt'} is corrupted (its sha256 "
        "does not match the manifest)",
        f".run.tmp-{dead_pid}": "an unfinished write",
        f".run.tmp-{os.getppid()}": f"of process {os.getppid()}, which may still be writing: "
        "wait for it",
        ".run.tmp-elsewhere-1": "of process 1 on elsewhere, which may still be writing: wait for it",
    }
    assert not recover_folder(path)  # nothing loadable: nothing deleted either
    assert len(folder_leftovers(path)) == 4
    write_folder_atomically(path, notes("new"), **FMT)
    assert sorted(folder.name for folder in folder_leftovers(path)) == [
        f".run.tmp-{os.getppid()}",
        ".run.tmp-elsewhere-1",
    ]


def test_recover_folder_puts_back_a_folder_of_another_format(tmp_path):
    """The swap set aside whatever was at the path: recovery restores it as it was."""
    path = write_folder_atomically(tmp_path / "run", notes("hello"), format="other", version=1)
    path.rename(tmp_path / f".run.old-{os.getpid()}")
    assert recover_folder(path)
    assert check_folder(path, format="other", version=1) is None
