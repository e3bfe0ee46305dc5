"""Pickling buffers and their parts: content, cursor, priorities and a lock of their own.

TorchRL buffers pickle (``ReplayBuffer.__getstate__`` drops the locks and the
prefetch thread); so do ours, e.g. to hand a buffer to ``torch.save`` or to a
worker process.
"""

from __future__ import annotations

import pickle
import threading
from multiprocessing.reduction import ForkingPickler

import pytest
import torch

from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import MinSegmentTree
from rlbricks.replay import PrioritizedReplayBuffer
from rlbricks.replay import PrioritizedSampler
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import SliceSampler
from rlbricks.replay import SumSegmentTree
from rlbricks.replay import TensorDictMaxValueWriter
from rlbricks.replay import TensorDictPrioritizedReplayBuffer
from rlbricks.replay import TensorDictReplayBuffer
from rlbricks.tensordict import TensorDict
from rlbricks.tensordict import assert_close

CAPACITY = 20


def steps(start: int, n: int) -> TensorDict:
    ids = torch.arange(start, start + n)
    return TensorDict(
        {
            "id": ids,
            "obs": ids[:, None].float().expand(n, 3).clone(),
            "next": {"done": (ids % 7 == 6)[:, None]},
        },
        batch_size=[n],
    )


BUFFERS = {
    "list": lambda tmp: ReplayBuffer(storage=ListStorage(CAPACITY), batch_size=4),
    "lazy": lambda tmp: ReplayBuffer(storage=LazyTensorStorage(CAPACITY), batch_size=4),
    "memmap": lambda tmp: ReplayBuffer(
        storage=LazyMemmapStorage(CAPACITY, scratch_dir=tmp / "rows"), batch_size=4
    ),
    "memmap_anon": lambda tmp: ReplayBuffer(storage=LazyMemmapStorage(CAPACITY), batch_size=4),
    "epochs": lambda tmp: TensorDictReplayBuffer(
        storage=LazyTensorStorage(CAPACITY), sampler=SamplerWithoutReplacement(), batch_size=4
    ),
    "prioritized": lambda tmp: PrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(CAPACITY), batch_size=4
    ),
    "td_prioritized": lambda tmp: TensorDictPrioritizedReplayBuffer(
        alpha=0.7, beta=0.5, storage=LazyTensorStorage(CAPACITY), batch_size=4
    ),
    "slice": lambda tmp: TensorDictReplayBuffer(
        storage=LazyTensorStorage(CAPACITY), sampler=SliceSampler(slice_len=2), batch_size=4
    ),
    "max_value": lambda tmp: ReplayBuffer(
        storage=LazyTensorStorage(CAPACITY), writer=TensorDictMaxValueWriter("id"), batch_size=4
    ),
    "prefetch": lambda tmp: ReplayBuffer(
        storage=LazyTensorStorage(CAPACITY), batch_size=4, prefetch=2
    ),
}


def filled(kind: str, tmp) -> ReplayBuffer:
    """A buffer of ``kind`` written past its capacity, with priorities and an epoch under way."""
    rb = BUFFERS[kind](tmp)
    rb.extend(steps(0, 15))
    rb.extend(steps(15, 12))  # wraps around: the cursor is not 0
    if isinstance(rb.sampler, PrioritizedSampler):
        rb.update_priority(torch.arange(CAPACITY), torch.rand(CAPACITY) + 0.1)
    rb.sample()  # SamplerWithoutReplacement: an epoch has started; prefetch: batches queued
    return rb


def rows_of(rb: ReplayBuffer) -> object:
    return rb.storage.get(torch.arange(len(rb)))


@pytest.mark.parametrize("kind", list(BUFFERS))
def test_round_trip_keeps_content_cursor_and_priorities(kind, tmp_path):
    rb = filled(kind, tmp_path)
    copy = pickle.loads(pickle.dumps(rb))
    assert type(copy) is type(rb)
    assert len(copy) == len(rb) == CAPACITY
    if kind == "list":
        assert [int(x["id"]) for x in rows_of(copy)] == [int(x["id"]) for x in rows_of(rb)]
    else:
        assert_close(rows_of(copy), rows_of(rb))
    assert copy.writer.state_dict().keys() == rb.writer.state_dict().keys()
    for key, value in rb.writer.state_dict().items():
        assert torch.equal(torch.as_tensor(copy.writer.state_dict()[key]), torch.as_tensor(value))
    sampler_state = rb.sampler.state_dict()
    for key, value in copy.sampler.state_dict().items():
        if isinstance(value, dict):  # the priority tree
            assert torch.equal(value["leaves"], sampler_state[key]["leaves"])
        elif isinstance(value, torch.Tensor):
            assert torch.equal(value, sampler_state[key])
        else:
            assert value == sampler_state[key]
    # both draw the same batches from the same seed, and write to the same rows next
    if kind != "prefetch":  # (prefetched batches were drawn before the seed is set)
        torch.manual_seed(3)
        a = rb.sample(return_info=True)[1]["index"]
        torch.manual_seed(3)
        b = copy.sample(return_info=True)[1]["index"]
        assert torch.equal(a, b)
    assert torch.equal(rb.extend(steps(100, 3)), copy.extend(steps(100, 3)))


@pytest.mark.parametrize("kind", ["lazy", "memmap", "td_prioritized"])
def test_copy_is_independent_of_the_original(kind, tmp_path):
    rb = filled(kind, tmp_path)
    before = rows_of(rb)["id"].clone()
    copy = pickle.loads(pickle.dumps(rb))
    copy.extend(steps(500, CAPACITY))
    assert torch.equal(rows_of(rb)["id"], before)
    assert sorted(rows_of(copy)["id"].tolist()) == list(range(500, 500 + CAPACITY))


def test_memmap_copy_is_memory_mapped_and_leaves_the_files_alone(tmp_path):
    rb = filled("memmap", tmp_path)
    copy = pickle.loads(pickle.dumps(rb))
    assert copy.storage.data.is_memmap()
    assert copy.storage.scratch_dir is None  # its own shared memory, not the original's files
    copy.extend(steps(500, 5))
    reopened = TensorDict.load_memmap(tmp_path / "rows")
    assert torch.equal(reopened["id"], rb.storage.data["id"])


def test_multiprocessing_still_shares_memmap_rows(tmp_path):
    """What a worker process receives maps the same files: writes are seen both ways."""
    storage = LazyMemmapStorage(CAPACITY, scratch_dir=tmp_path / "rows")
    storage.set(torch.arange(5), steps(0, 5))
    shared = pickle.loads(ForkingPickler.dumps(storage))
    assert shared.scratch_dir == storage.scratch_dir
    shared.set(torch.tensor([1]), steps(77, 1))
    assert storage.get(1)["id"].item() == 77


def test_copy_has_a_working_lock_of_its_own(tmp_path):
    rb = filled("td_prioritized", tmp_path)
    copy = pickle.loads(pickle.dumps(rb))
    assert copy._lock is not rb._lock
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rb._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:  # the original's lock, held by another thread, does not block the copy
        writing = threading.Thread(target=copy.extend, args=(steps(0, 2),))
        writing.start()
        writing.join(10)
        assert not writing.is_alive()
    finally:
        release.set()
        holder.join()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(200):
                copy.extend(steps(i, 3))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    thread = threading.Thread(target=writer)
    thread.start()
    for _ in range(200):
        sample = copy.sample()
        sample["td_error"] = torch.rand(4)
        copy.update_tensordict_priority(sample)
    thread.join()
    assert not errors, errors[0]


def test_pickled_prefetching_buffer_prefetches_again(tmp_path):
    rb = filled("prefetch", tmp_path)
    copy = pickle.loads(pickle.dumps(rb))
    assert copy.sample().batch_size == (4,)
    assert copy.sample().batch_size == (4,)


@pytest.mark.parametrize("cls", [SumSegmentTree, MinSegmentTree])
@pytest.mark.parametrize("capacity", [5, 300, 70_000])
def test_segment_trees_round_trip_and_stay_consistent(cls, capacity):
    """Bug: the levels are views into one tensor; pickled apart, writes stopped reaching the root."""
    tree = cls(capacity)
    tree[torch.arange(0, capacity, 3)] = torch.rand(len(range(0, capacity, 3))) + 0.5
    copy = pickle.loads(pickle.dumps(tree))
    assert torch.equal(copy[torch.arange(capacity)], tree[torch.arange(capacity)])
    assert torch.equal(copy.reduce(), tree.reduce())
    for t in (tree, copy):
        t[torch.tensor([capacity - 1])] = torch.tensor([0.25])
    assert torch.equal(copy.reduce(), tree.reduce())
    assert torch.equal(copy.reduce(1, capacity), tree.reduce(1, capacity))
    if cls is SumSegmentTree:
        mass = torch.rand(64, dtype=torch.float64) * float(tree.reduce())
        assert torch.equal(copy.find_prefixsum_idx(mass), tree.find_prefixsum_idx(mass))


def test_slice_sampler_forgets_its_cache_when_pickled(tmp_path):
    rb = filled("slice", tmp_path)
    copy = pickle.loads(pickle.dumps(rb))
    assert copy.sampler._bounds is None
    torch.manual_seed(5)
    a = rb.sample()
    torch.manual_seed(5)
    b = copy.sample()
    assert torch.equal(a["index"], b["index"])
