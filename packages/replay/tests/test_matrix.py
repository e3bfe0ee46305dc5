"""Every sensible storage x sampler x writer combination: write past capacity, sample, check rows."""

from __future__ import annotations

import pytest
import torch

from rlbricks.replay import LazyMemmapStorage
from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import PrioritizedSampler
from rlbricks.replay import RandomSampler
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import RoundRobinWriter
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import SliceSampler
from rlbricks.replay import TensorDictMaxValueWriter
from rlbricks.replay import TensorStorage
from rlbricks.tensordict import TensorDict

CAPACITY = 12
TRAJ_LEN = 5
BATCH = 10  # 2 slices of 5 for the SliceSampler
WRITES = (10, 10, 10)  # 30 rows into 12: the ring wraps twice
DONE = ("next", "done")
IDS = ("collector", "traj_ids")


def score_of(ids: torch.Tensor) -> torch.Tensor:
    """A rank that is not monotone in the id (distinct for ids < 30)."""
    return ((ids * 7) % 31).float()


def rows(start: int, n: int) -> TensorDict:
    ids = torch.arange(start, start + n)
    return TensorDict(
        {
            "id": ids,
            "obs": ids[:, None].float().expand(n, 3).clone(),
            "score": score_of(ids),
            "next": {"done": (ids % TRAJ_LEN == TRAJ_LEN - 1)[:, None]},
            "collector": {"traj_ids": ids // TRAJ_LEN},
        },
        batch_size=[n],
    )


STORAGES = {
    "list": lambda tmp: ListStorage(CAPACITY),
    "tensor": lambda tmp: TensorStorage(rows(0, CAPACITY).apply(torch.zeros_like)),
    "lazy": lambda tmp: LazyTensorStorage(CAPACITY),
    "memmap": lambda tmp: LazyMemmapStorage(CAPACITY, scratch_dir=tmp / "mm"),
}
SAMPLERS = {
    "random": lambda: RandomSampler(),
    "without_replacement": lambda: SamplerWithoutReplacement(drop_last=True),
    "prioritized": lambda: PrioritizedSampler(CAPACITY, alpha=0.7, beta=0.5),
    "slice": lambda: SliceSampler(slice_len=TRAJ_LEN, traj_key=IDS),
}
WRITERS = {
    "round_robin": lambda: RoundRobinWriter(),
    "max_value": lambda: TensorDictMaxValueWriter("score"),
}

SENSELESS = {
    ("list", "slice"): "SliceSampler reads trajectory columns: it needs a tensor storage",
    ("slice", "max_value"): "TensorDictMaxValueWriter places rows by rank, so stored rows "
    "are not trajectories a SliceSampler could cut",
}


def combinations():
    for s in STORAGES:
        for p in SAMPLERS:
            for w in WRITERS:
                reason = SENSELESS.get((s, p)) or SENSELESS.get((p, w))
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                yield pytest.param(s, p, w, id=f"{s}-{p}-{w}", marks=marks)


def expected_ids(writer: str) -> set[int]:
    total = sum(WRITES)
    if writer == "round_robin":
        return set(range(total - CAPACITY, total))
    ids = torch.arange(total)
    return set(ids[score_of(ids).argsort(descending=True)[:CAPACITY]].tolist())


def check_batch(batch: TensorDict, stored: set[int], n: int) -> None:
    assert isinstance(batch, TensorDict)
    assert batch.batch_size == (n,)
    assert batch["obs"].shape == (n, 3)
    assert batch[DONE].shape == (n, 1)
    assert batch["id"].dtype == torch.long
    assert batch[DONE].dtype == torch.bool
    ids = batch["id"]
    assert set(ids.tolist()) <= stored
    # each row is whole: every value still matches the id it was written with
    assert torch.equal(batch["obs"], ids[:, None].float().expand(n, 3))
    assert torch.equal(batch["score"], score_of(ids))
    assert torch.equal(batch[DONE].view(-1), ids % TRAJ_LEN == TRAJ_LEN - 1)
    assert torch.equal(batch[IDS], ids // TRAJ_LEN)


@pytest.mark.parametrize(("storage", "sampler", "writer"), list(combinations()))
def test_combination(storage, sampler, writer, tmp_path):
    torch.manual_seed(0)
    rb = ReplayBuffer(
        storage=STORAGES[storage](tmp_path),
        sampler=SAMPLERS[sampler](),
        writer=WRITERS[writer](),
        batch_size=BATCH,
    )
    start = 0
    for n in WRITES:
        index = rb.extend(rows(start, n))
        start += n
        assert index.dtype == torch.long
        assert bool((index >= 0).all())
        assert bool((index < CAPACITY).all())
    assert len(rb) == CAPACITY
    stored = expected_ids(writer)
    everything = rb.storage.get(torch.arange(CAPACITY))
    if isinstance(everything, list):
        everything = torch.stack([row["id"] for row in everything])
    else:
        everything = everything["id"]
    assert set(everything.tolist()) == stored

    for _ in range(3):
        batch, info = rb.sample(return_info=True)
        check_batch(batch, stored, BATCH)
        assert info["index"].shape == (BATCH,)
        # the index points at the rows the batch holds
        assert torch.equal(everything[info["index"]], batch["id"])
        if sampler == "slice":
            ids = batch["id"].view(-1, TRAJ_LEN)
            assert torch.equal(ids - ids[:, :1], torch.arange(TRAJ_LEN).expand_as(ids))
            assert bool((ids // TRAJ_LEN == ids[:, :1] // TRAJ_LEN).all())
        if sampler == "prioritized":
            assert info["_weight"].shape == (BATCH,)
            rb.update_priority(info["index"], torch.rand(BATCH))

    if sampler == "without_replacement":
        rb.sampler.empty()
        epoch = [rb.sample(6)["id"] for _ in range(2)]
        assert sorted(torch.cat(epoch).tolist()) == sorted(stored)


@pytest.mark.parametrize("writer", list(WRITERS))
def test_single_adds_past_capacity(writer, tmp_path):
    rb = ReplayBuffer(storage=LazyTensorStorage(CAPACITY), writer=WRITERS[writer](), batch_size=4)
    data = rows(0, sum(WRITES))
    for i in range(sum(WRITES)):
        rb.add(data[i])
    assert len(rb) == CAPACITY
    assert set(rb.storage.get(torch.arange(CAPACITY))["id"].tolist()) == expected_ids(writer)
    check_batch(rb.sample(), expected_ids(writer), 4)


def test_slice_sampler_on_list_storage_says_why():
    rb = ReplayBuffer(
        storage=ListStorage(CAPACITY), sampler=SliceSampler(slice_len=2), batch_size=4
    )
    rb.extend(rows(0, 6))
    with pytest.raises(TypeError, match="TensorStorage"):
        rb.sample()
