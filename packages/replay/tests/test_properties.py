"""Property tests (hypothesis): writers and samplers against naive reference implementations."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from rlbricks.replay import LazyTensorStorage
from rlbricks.replay import ListStorage
from rlbricks.replay import RandomSampler
from rlbricks.replay import ReplayBuffer
from rlbricks.replay import SamplerWithoutReplacement
from rlbricks.replay import TensorDictMaxValueWriter
from rlbricks.tensordict import TensorDict

SETTINGS = settings(max_examples=60, deadline=None)

# a write is ("add", 1) or ("extend", n); n may exceed the capacity
writes = st.lists(
    st.one_of(st.just(("add", 1)), st.tuples(st.just("extend"), st.integers(1, 12))),
    min_size=1,
    max_size=12,
)


class Ring:
    """The reference: rows written one by one into ``capacity`` slots."""

    def __init__(self, capacity: int) -> None:
        self.slots: list[int | None] = [None] * capacity
        self.cursor = 0

    def write(self, row: int) -> int:
        slot = self.cursor
        self.slots[slot] = row
        self.cursor = (slot + 1) % len(self.slots)
        return slot


def content(rb: ReplayBuffer) -> list[int]:
    got = rb.storage.get(torch.arange(len(rb)))
    return [int(x) for x in got] if isinstance(got, list) else got.tolist()


@pytest.mark.parametrize("storage", [LazyTensorStorage, ListStorage])
@SETTINGS
@given(capacity=st.integers(1, 8), ops=writes)
def test_round_robin_matches_a_ring(storage, capacity, ops):
    rb = ReplayBuffer(storage=storage(capacity))
    ring = Ring(capacity)
    row = 0
    for op, n in ops:
        data = torch.arange(row, row + n)
        slots = [ring.write(r) for r in data.tolist()]
        if op == "add":
            assert rb.add(data[0]) == slots[0]
        else:
            # a batch larger than the ring: only the last `capacity` rows survive
            assert rb.extend(data).tolist() == slots[-capacity:]
        row += n
        assert rb.writer.cursor == ring.cursor
        assert len(rb) == min(row, capacity)
        assert content(rb) == [r for r in ring.slots if r is not None]


def reference_rank(values: torch.Tensor, reduction: str) -> torch.Tensor:
    flat = values.double().reshape(values.shape[0], -1)
    return {"sum": flat.sum(1), "mean": flat.mean(1), "max": flat.amax(1), "min": flat.amin(1)}[
        reduction
    ]


@SETTINGS
@given(
    capacity=st.integers(1, 6),
    batches=st.lists(st.lists(st.integers(-4, 4), min_size=1, max_size=10), min_size=1, max_size=6),
    two_dims=st.booleans(),
    reduction=st.sampled_from(["sum", "mean", "max", "min"]),
    use_add=st.booleans(),
)
def test_max_value_keeps_the_top_ranks(capacity, batches, two_dims, reduction, use_add):
    rb = ReplayBuffer(
        storage=LazyTensorStorage(capacity),
        writer=TensorDictMaxValueWriter("v", reduction=reduction),
    )
    seen: list[float] = []
    row = 0
    for batch in batches:
        values = torch.tensor(batch, dtype=torch.float32)
        if two_dims:  # per-row values [x, x // 2]: the rank depends on the reduction
            values = torch.stack([values, torch.div(values, 2, rounding_mode="floor")], -1)
        n = values.shape[0]
        ids = torch.arange(row, row + n)
        data = TensorDict({"v": values, "id": ids}, batch_size=[n])
        ranks = reference_rank(values, reduction)
        if use_add:
            for i in range(n):
                index = rb.add(data[i])
                assert index is None or 0 <= index < capacity
        else:
            index = rb.extend(data)
            assert len(set(index.tolist())) == len(index)
            assert rb.writer.last_kept.shape == index.shape
        seen += ranks.tolist()
        row += n
        assert len(rb) == min(len(seen), capacity)
        stored = rb.storage.get(torch.arange(len(rb)))
        kept = sorted(reference_rank(stored["v"], reduction).tolist())
        assert kept == sorted(seen)[-len(kept) :]
        # rows move whole: each stored id still holds its own values
        assert len(set(stored["id"].tolist())) == len(rb)


@SETTINGS
@given(
    n=st.integers(1, 40),
    batch=st.integers(1, 16),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_without_replacement_serves_each_row_once_per_epoch(n, batch, drop_last, shuffle, seed):
    storage = LazyTensorStorage(64)
    storage.set(torch.arange(n), torch.arange(n))
    sampler = SamplerWithoutReplacement(
        drop_last=drop_last, shuffle=shuffle, generator=torch.Generator().manual_seed(seed)
    )
    if drop_last and batch > n:
        with pytest.raises(ValueError, match="drop_last"):
            sampler.sample(storage, batch)
        return
    full, rest = divmod(n, batch)
    expected = [batch] * full + ([] if drop_last or not rest else [rest])
    for _ in range(2):  # two epochs
        sizes, served = [], []
        while True:
            index, _ = sampler.sample(storage, batch)
            sizes.append(len(index))
            served += index.tolist()
            if sampler.ran_out:
                break
            assert len(sizes) <= math.ceil(n / batch)
        assert sizes == expected
        assert len(served) == len(set(served))  # no row twice in an epoch
        if drop_last:
            assert len(served) == full * batch
            assert set(served) <= set(range(n))
        else:
            assert sorted(served) == list(range(n))  # every row exactly once
        if not shuffle:
            assert served == list(range(len(served)))


@SETTINGS
@given(n=st.integers(1, 30), capacity_extra=st.integers(0, 30), batch=st.integers(1, 50))
def test_random_sampler_draws_valid_rows(n, capacity_extra, batch):
    storage = LazyTensorStorage(n + capacity_extra)
    storage.set(torch.arange(n), torch.arange(n))
    index, info = RandomSampler().sample(storage, batch)
    assert index.shape == (batch,)
    assert index.dtype == torch.long
    assert info == {}
    assert bool((index >= 0).all())
    assert bool((index < n).all())
