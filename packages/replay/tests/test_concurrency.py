"""Threads writing while the learner samples, and buffers shared with other processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.tensordict import TensorDict

CAPACITY = 64
BATCH = 16


def rows(start: int, n: int) -> TensorDict:
    ids = torch.arange(start, start + n)
    return TensorDict(
        {
            "id": ids,
            "obs": ids[:, None].float().expand(n, 4).clone(),
            "next": {"reward": -ids[:, None].float()},
        },
        batch_size=[n],
    )


def well_formed(batch: TensorDict, written_up_to: int) -> None:
    assert batch.batch_size == (BATCH,)
    ids = batch["id"]
    assert bool((ids >= 0).all())
    assert int(ids.max()) < written_up_to
    assert torch.equal(batch["obs"], ids[:, None].float().expand(BATCH, 4))
    assert torch.equal(batch["next", "reward"].view(-1), -ids.float())


BUFFERS = {
    "lazy": lambda tmp: ReplayBuffer(storage=LazyTensorStorage(CAPACITY), batch_size=BATCH),
    "memmap": lambda tmp: ReplayBuffer(
        storage=LazyMemmapStorage(CAPACITY, scratch_dir=tmp / "mm"), batch_size=BATCH
    ),
    "list": lambda tmp: ReplayBuffer(storage=ListStorage(CAPACITY), batch_size=BATCH),
    "without_replacement": lambda tmp: ReplayBuffer(
        storage=LazyTensorStorage(CAPACITY),
        sampler=SamplerWithoutReplacement(drop_last=True),
        batch_size=BATCH,
    ),
    "prioritized": lambda tmp: TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(CAPACITY), batch_size=BATCH
    ),
    "prefetch": lambda tmp: ReplayBuffer(
        storage=LazyTensorStorage(CAPACITY), batch_size=BATCH, prefetch=2
    ),
}
DURATION = {"lazy": 1.0}  # the others run shorter to keep the suite fast


@pytest.mark.parametrize("kind", list(BUFFERS))
def test_writer_thread_while_sampling(kind, tmp_path):
    rb = BUFFERS[kind](tmp_path)
    rb.extend(rows(0, BATCH))
    written = [BATCH]
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            while not stop.is_set():
                start = written[0]
                rb.extend(rows(start, 7))
                written[0] = start + 7
        except Exception:
            errors.append(traceback.format_exc())

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    samples = 0
    deadline = time.monotonic() + DURATION.get(kind, 0.3)
    try:
        while time.monotonic() < deadline:
            batch = rb.sample()
            upper = written[0] + 7  # read after sampling; a finished write may not be counted yet
            if kind == "prioritized":
                well_formed(batch.exclude("index", "_weight"), upper)
                batch["td_error"] = batch["id"].float().remainder(5) + 0.1
                rb.update_tensordict_priority(batch)
            else:
                well_formed(batch, upper)
            samples += 1
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert not errors, errors[0]
    assert samples > 10
    assert written[0] > CAPACITY
    assert len(rb) == CAPACITY


def test_prefetch_survives_a_write_while_batches_are_queued(monkeypatch):
    """Bug: a write between the filling of the prefetch queue and the wait on its head
    cancels the head, and sample() raises CancelledError.

    The interleaving is forced: the first submit keeps the prefetch worker busy, and a
    "collector" write runs right after the last batch is queued (as a writer thread can).
    Without forcing, ``sys.setswitchinterval(1e-6)`` and a writer thread hit it in seconds.
    """
    rb = ReplayBuffer(storage=LazyTensorStorage(8), batch_size=2, prefetch=2)
    rb.extend(torch.zeros(8))
    real_submit = ThreadPoolExecutor.submit
    gate = threading.Event()
    calls = []

    def submit(self, fn, *args, **kwargs):
        calls.append(fn)
        if len(calls) == 1:
            real_submit(self, gate.wait, 10)  # the worker is busy: queued batches stay pending
        future = real_submit(self, fn, *args, **kwargs)
        if len(calls) == 3:  # the queue is full; a collector thread writes now
            rb.extend(torch.ones(8))
        return future

    monkeypatch.setattr(ThreadPoolExecutor, "submit", submit)
    try:
        threading.Timer(0.2, gate.set).start()
        batch = rb.sample()
    finally:
        gate.set()
    assert batch.shape == (2,)


def run_python(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_memmap_rows_are_visible_from_another_process(tmp_path):
    scratch = tmp_path / "scratch"
    rb = ReplayBuffer(storage=LazyMemmapStorage(CAPACITY, scratch_dir=scratch), batch_size=BATCH)
    rb.extend(rows(0, 40))
    rb.extend(rows(40, 30))  # wraps: rows 0..5 hold ids 64..69
    code = f"""
import json, torch
from rlbricks.tensordict import TensorDict
td = TensorDict.load_memmap({str(scratch)!r})
print(json.dumps({{"batch": list(td.batch_size), "id": td["id"].tolist(),
                  "obs": td["obs"].tolist(), "reward": td["next", "reward"].view(-1).tolist()}}))
td["id"][1] = -7  # writes go to the shared files
"""
    data = rb.storage.data.clone()
    seen = run_python(code)
    assert seen["batch"] == [CAPACITY]
    assert seen["id"] == data["id"].tolist()
    assert seen["obs"] == data["obs"].tolist()
    assert seen["reward"] == data["next", "reward"].view(-1).tolist()
    assert seen["id"][:6] == list(range(64, 70))
    assert int(rb.storage.data["id"][1]) == -7  # the other process's write is visible here


def test_dumps_folder_loads_in_another_process(tmp_path):
    torch.manual_seed(0)
    rb = TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(CAPACITY), batch_size=BATCH
    )
    rb.extend(rows(0, 50))
    rb.extend(rows(50, 30))
    sample = rb.sample()
    sample["td_error"] = torch.rand(BATCH) * 10
    rb.update_tensordict_priority(sample)
    rb.dumps(tmp_path / "dump")
    code = f"""
import json, torch
from rlbricks.replay import LazyTensorStorage, TensorDictPrioritizedReplayBuffer
rb = TensorDictPrioritizedReplayBuffer(alpha=0.7, beta=0.5, storage=LazyTensorStorage({CAPACITY}))
rb.loads({str(tmp_path / "dump")!r})
torch.manual_seed(5)
sample = rb.sample()
ids = rb.storage.get(torch.arange({CAPACITY}))["id"].tolist()
index = rb.extend(rb.storage.get(torch.arange(3)).clone())
print(json.dumps({{"len": len(rb), "batch_size": rb.batch_size, "ids": ids,
                  "sample": sample["id"].tolist(), "weight": sample["_weight"].tolist(),
                  "next_index": index.tolist()}}))
"""
    seen = run_python(code)
    assert seen["len"] == CAPACITY
    assert seen["batch_size"] == BATCH
    assert seen["ids"] == rb.storage.get(torch.arange(CAPACITY))["id"].tolist()
    torch.manual_seed(5)
    mine = rb.sample()
    assert seen["sample"] == mine["id"].tolist()
    assert torch.allclose(torch.tensor(seen["weight"]), mine["_weight"])
    assert seen["next_index"] == rb.extend(rb.storage.get(torch.arange(3)).clone()).tolist()
